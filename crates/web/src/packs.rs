//! The pack-health map: every pack of every container, judged from the
//! index and the peers' states alone (nothing is read from the peers), by
//! the rule of `trove status`: a pack is *full* with `k+m` fragments on
//! distinct online peers, *unreadable* with fewer than `k` on peers that
//! are online or suspect, and *degraded* in between.
//!
//! The index's pack records include the packs of an interrupted backup not
//! yet committed, which `trove status` leaves out of its counts; the map
//! shows them too.

use serde::Serialize;
use std::collections::HashMap;
use trove_core::PeerId;
use trove_repo::{Home, PackStanding, PeerState, Result};

/// More cells than this per container are counted but not sent one by one.
const MAX_CELLS: usize = 4096;

/// How one pack stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackState {
    /// `k+m` fragments on distinct online peers.
    Full,
    /// Readable (`k` or more on online or suspect peers) but short of `k+m`
    /// online.
    Degraded,
    /// Fewer than `k` fragments on peers that are online or suspect.
    Unreadable,
}

/// One pack of the map.
#[derive(Debug, Clone, Serialize)]
pub struct PackCell {
    /// The pack id's short form.
    pub id: String,
    /// Fragments on distinct online peers.
    pub online: u32,
    /// Fragments on distinct online or suspect peers.
    pub readable: u32,
    pub state: PackState,
}

/// One container's packs.
#[derive(Debug, Clone, Serialize)]
pub struct PackMap {
    pub container: String,
    pub k: u8,
    pub m: u8,
    pub full: u64,
    pub degraded: u64,
    pub unreadable: u64,
    /// The first 4096 packs (`MAX_CELLS`), in index order.
    pub cells: Vec<PackCell>,
    /// Packs counted above but not in `cells`.
    pub cells_omitted: u64,
}

/// The map of every container, given each configured peer's state (a peer
/// the index places fragments on that is not in `states` was removed: its
/// fragments count as lost).
pub fn pack_maps(home: &Home, states: &HashMap<PeerId, PeerState>) -> Result<Vec<PackMap>> {
    let containers = home.containers();
    let mut out = Vec::new();
    for c in containers.manifests()? {
        let mut map = PackMap {
            container: c.name.clone(),
            k: c.redundancy.k,
            m: c.redundancy.m,
            full: 0,
            degraded: 0,
            unreadable: 0,
            cells: Vec::new(),
            cells_omitted: 0,
        };
        for p in containers.packs(&c.id)? {
            let PackStanding {
                online, readable, ..
            } = PackStanding::of(&p, states);
            let state = if readable < u32::from(p.k) {
                map.unreadable += 1;
                PackState::Unreadable
            } else if online < u32::from(p.k) + u32::from(p.m) {
                map.degraded += 1;
                PackState::Degraded
            } else {
                map.full += 1;
                PackState::Full
            };
            if map.cells.len() < MAX_CELLS {
                map.cells.push(PackCell {
                    id: p.id.short(),
                    online,
                    readable,
                    state,
                });
            } else {
                map.cells_omitted += 1;
            }
        }
        out.push(map);
    }
    Ok(out)
}
