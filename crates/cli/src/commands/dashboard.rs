//! `trove ui`: the local web dashboard (`trove-web`). Binds first (a port
//! in use fails before the passphrase is asked), unlocks once, prints the
//! URL with its token, and serves until SIGINT or SIGTERM.

use crate::context::{home_dir, open_home_waiting, unlock, Out};
use anyhow::Result;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The address to listen on (port 0: any free port, printed).
    #[arg(long, default_value = trove_web::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Allow an address other machines can reach: they would see your file
    /// names and contents, and the token, over plain HTTP.
    #[arg(long)]
    allow_remote: bool,
}

/// What `--json` prints once listening.
#[derive(serde::Serialize)]
struct Listening {
    url: String,
    listen: SocketAddr,
    token: String,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    trove_web::check_listen(args.listen, args.allow_remote)?;
    let listener = trove_web::bind(args.listen)?;
    let addr = listener.local_addr()?;
    let dir = home_dir()?;
    // Unlock once (Argon2 is slow on purpose); the server opens the home
    // per request, so it is closed again here.
    let owner = {
        let home = open_home_waiting(Duration::from_secs(60))?;
        unlock(&home)?
    };
    let dash_dir = dir.clone();
    let dash = trove_web::Dashboard::new(dir, Arc::new(owner));
    let row = Listening {
        url: dash.url(addr),
        listen: addr,
        token: dash.token.as_str().to_owned(),
    };
    if out.json {
        println!("{}", serde_json::to_string(&row)?);
    } else {
        println!("{}", row.url);
    }
    eprintln!(
        "serving the dashboard of {}; Ctrl-C stops it",
        dash_dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(trove_web::serve(
        listener,
        trove_web::app(dash),
        crate::context::shutdown_signal(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
