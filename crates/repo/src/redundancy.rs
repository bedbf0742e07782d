//! How much redundancy each container has left, from the index and the
//! peers' states alone (nothing is read from the peers): what `trove
//! status` reports and what tells the daemon whether a repair is due.

use crate::error::Result;
use crate::health::{PeerHealth, PeerState};
use crate::home::Home;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use trove_core::manifest::PackRecord;
use trove_core::PeerId;
use trove_peer::placement::DEFAULT_DOMAIN_LABEL;

/// One container's packs against the peers' states.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerRedundancy {
    pub name: String,
    pub k: u8,
    pub m: u8,
    /// Published packs (an interrupted backup's packs are not counted).
    pub packs_total: u64,
    /// Packs below `k+m` fragments on distinct online peers: a fragment on
    /// a suspect, lost or removed peer, or fewer fragments than that.
    pub packs_degraded: u64,
    /// Packs with a fragment on a lost or removed peer, or a second one on
    /// the same peer: what a repair rebuilds.
    pub packs_to_repair: u64,
    /// Packs with fewer than `k` fragments on peers that are online or
    /// suspect: their data cannot be read until a peer comes back.
    pub packs_unreadable: u64,
    /// Bytes of the packs (before erasure coding) and of their fragments.
    pub bytes_packed: u64,
    pub bytes_stored: u64,
    /// Failure domains (the `site` label; a peer without one is its own)
    /// that hold its fragments.
    pub failure_domains: u32,
}

/// How one pack's fragments stand against the peers' states: the rule of
/// `trove status` and of the dashboard's pack map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackStanding {
    /// Fragments on distinct online peers.
    pub online: u32,
    /// Fragments on distinct online or suspect peers.
    pub readable: u32,
    /// A fragment on a lost or removed peer, or a second one on one peer.
    pub to_repair: bool,
}

impl PackStanding {
    /// A peer not in `states` was removed: its fragments count as lost.
    pub fn of(p: &PackRecord, states: &HashMap<PeerId, PeerState>) -> Self {
        let mut seen = HashSet::new();
        let mut s = PackStanding {
            online: 0,
            readable: 0,
            to_repair: false,
        };
        for f in &p.fragments {
            if !seen.insert(f.peer) {
                s.to_repair = true;
                continue;
            }
            match states.get(&f.peer) {
                Some(PeerState::Online) => {
                    s.online += 1;
                    s.readable += 1;
                }
                Some(PeerState::Suspect) => s.readable += 1,
                Some(PeerState::Lost) | None => s.to_repair = true,
            }
        }
        s
    }
}

/// Every container's redundancy, given each configured peer's state.
/// A peer the index places fragments on that is not in `peers` has been
/// removed: its fragments count as lost.
pub fn redundancy(home: &Home, peers: &[PeerHealth]) -> Result<Vec<ContainerRedundancy>> {
    let states: HashMap<PeerId, PeerState> = peers.iter().map(|p| (p.id, p.state)).collect();
    let domains: HashMap<PeerId, String> = home
        .index
        .peers()?
        .into_iter()
        .map(|r| {
            let domain = r
                .labels
                .get(DEFAULT_DOMAIN_LABEL)
                .map_or_else(|| format!("peer:{}", r.id), |d| format!("site:{d}"));
            (r.id, domain)
        })
        .collect();
    let mut out = Vec::new();
    for c in home.index.containers()? {
        let mut row = ContainerRedundancy {
            name: c.name.clone(),
            k: c.redundancy.k,
            m: c.redundancy.m,
            ..Default::default()
        };
        let mut used_domains = HashSet::new();
        for p in home.index.published_packs(&c.id)? {
            row.packs_total += 1;
            row.bytes_packed += p.pack_len;
            row.bytes_stored += p.fragments.len() as u64 * crate::check::fragment_len(&p);
            for f in &p.fragments {
                if let Some(d) = domains.get(&f.peer) {
                    used_domains.insert(d.clone());
                }
            }
            let s = PackStanding::of(&p, &states);
            let full = u32::from(p.k) + u32::from(p.m);
            row.packs_degraded += u64::from(s.online < full);
            row.packs_to_repair += u64::from(s.to_repair || p.fragments.len() < full as usize);
            row.packs_unreadable += u64::from(s.readable < u32::from(p.k));
        }
        row.failure_domains = used_domains.len() as u32;
        out.push(row);
    }
    Ok(out)
}
