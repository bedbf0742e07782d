//! The one async runtime every remote peer of the process runs its
//! requests on: [`trove_peer::Peer`] is blocking, OpenDAL is async.

use std::future::IntoFuture;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        // rustls needs a process-wide crypto provider; ring is the one the
        // rest of the build already uses. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal_http_transport_reqwest::install_default();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("trove-remote")
            .enable_all()
            .build()
            // Without threads or timers the process cannot work at all.
            .expect("cannot start the runtime for remote peers")
    })
}

/// Run `fut` to completion from blocking code. From inside another
/// runtime (the dashboard's handlers), on a scoped thread, because a
/// runtime cannot be blocked on from one of its own threads.
pub(crate) fn block_on<F>(fut: F) -> F::Output
where
    F: IntoFuture,
    F::IntoFuture: Send,
    F::Output: Send,
{
    let fut = fut.into_future();
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| runtime().block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        runtime().block_on(fut)
    }
}
