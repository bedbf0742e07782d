//! Repacking: the used blobs of partly used packs, copied into new packs
//! and stored like a backup's (erasure-coded, placed, every fragment put
//! and acknowledged, each pack recorded once all `k+m` are). A blob's seal
//! binds its kind and id, not its pack, so the sealed bytes move verbatim:
//! nothing is decrypted to be re-encrypted, but each blob is opened and
//! checked against its id before it is copied (invariant 5).

use super::plan::PackUse;
use crate::error::Result;
use crate::fetch::Fetcher;
use crate::home::{Container, Home};
use crate::index::BlobLocation;
use crate::progress::{Event, Progress};
use crate::upload::Uploader;
use std::sync::Arc;
use trove_core::manifest::{PackRecord, PeerRecord};
use trove_core::pack::{self, PackBuilder};
use trove_core::PackId;
use trove_peer::Peer;

/// What a repack stored.
#[derive(Debug, Default)]
pub(crate) struct Repacked {
    /// The packs it wrote, recorded in the index.
    pub written: Vec<PackRecord>,
    /// The packs whose used blobs are now in those.
    pub emptied: Vec<PackId>,
    /// Packs that could not be read: kept as they are.
    pub unreadable: Vec<PackId>,
    pub blobs: u64,
    pub fragment_bytes: u64,
}

/// Copy the used blobs of `packs` into new packs on `peers`. A pack that
/// cannot be fetched or whose blobs do not verify is kept (and named);
/// failing to store a new pack stops the repack with an error, before
/// anything is deleted.
pub(crate) fn repack(
    home: &Home,
    container: &Container,
    fetcher: &Fetcher,
    peers: Vec<(PeerRecord, Arc<dyn Peer>)>,
    packs: &[PackUse],
    progress: &dyn Progress,
) -> Result<Repacked> {
    let cid = container.manifest.id;
    let target = container.manifest.pack_target as usize;
    let uploader = Uploader::new(peers, container.manifest.redundancy, progress)
        .recording_intents(&home.index, cid);
    let mut out = Repacked::default();
    let new_builder = || PackBuilder::with_capacity(target + 4 * 1024 * 1024);
    let mut builder = new_builder();
    // Packs whose blobs sit in the builder, not yet stored.
    let mut waiting: Vec<PackId> = Vec::new();
    let flush = |b: PackBuilder, waiting: &mut Vec<PackId>, out: &mut Repacked| -> Result<()> {
        let finished = b.finish(&container.keys.seal);
        let rec = uploader.store(finished)?;
        home.index.record_packs(&cid, std::slice::from_ref(&rec))?;
        out.written.push(rec);
        out.emptied.append(waiting);
        Ok(())
    };
    for (n, u) in packs.iter().enumerate() {
        progress.event(Event::Step {
            done: n as u64,
            total: packs.len() as u64,
        });
        let bytes = match fetcher.pack_uncached(&u.rec) {
            Ok(b) => b,
            Err(e) => {
                progress.event(Event::Warning(format!(
                    "pack {} is kept as it is: {e}",
                    u.rec.id.short()
                )));
                out.unreadable.push(u.rec.id);
                continue;
            }
        };
        let mut sealed = Vec::with_capacity(u.live.len());
        let mut bad = None;
        for e in &u.live {
            let loc = BlobLocation {
                pack: u.rec.id,
                entry: *e,
            };
            if let Err(err) = Fetcher::open_blob(&container.keys, &bytes, &loc) {
                bad = Some(err);
                break;
            }
            match pack::blob_bytes(&bytes, e) {
                Ok(b) => sealed.push((e, b)),
                Err(err) => {
                    bad = Some(crate::error::RepoError::Lost(err.to_string()));
                    break;
                }
            }
        }
        if let Some(e) = bad {
            progress.event(Event::Warning(format!(
                "pack {} is kept as it is: {e}",
                u.rec.id.short()
            )));
            out.unreadable.push(u.rec.id);
            continue;
        }
        for (e, b) in sealed {
            builder.add(e.kind, e.id, b, e.raw_length);
            out.blobs += 1;
        }
        waiting.push(u.rec.id);
        if builder.len() >= target {
            let full = std::mem::replace(&mut builder, new_builder());
            flush(full, &mut waiting, &mut out)?;
        }
    }
    if !builder.is_empty() {
        flush(builder, &mut waiting, &mut out)?;
    }
    out.fragment_bytes = uploader.fragment_bytes();
    Ok(out)
}
