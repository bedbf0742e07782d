//! Placement rules (invariants 2 and 3, docs/design.md §Invariants).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use trove_core::PeerId;
use trove_peer::{place, place_with, replace_one, Candidate, Placement, PlacementError};

fn cand(site: Option<&str>, free: Option<u64>) -> Candidate {
    Candidate {
        id: PeerId::random(),
        labels: site
            .map(|s| [("site".to_owned(), s.to_owned())].into())
            .unwrap_or_default(),
        free_bytes: free,
    }
}

fn sites(spec: &[&str]) -> Vec<Candidate> {
    spec.iter().map(|s| cand(Some(s), None)).collect()
}

/// Fragments per site value.
fn per_site(p: &Placement, c: &[Candidate]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for &i in &p.peers {
        *out.entry(c[i].labels["site"].clone()).or_insert(0) += 1;
    }
    out
}

fn is_distinct(p: &Placement) -> bool {
    p.peers.iter().collect::<BTreeSet<_>>().len() == p.peers.len()
}

#[test]
fn distinct_peers_when_enough() {
    let c: Vec<_> = (0..9).map(|_| cand(None, None)).collect();
    for seq in 0..20 {
        let p = place(6, &c, seq).unwrap();
        assert_eq!(p.peers.len(), 6);
        assert!(p.distinct);
        assert!(is_distinct(&p), "{p:?}");
    }
    let p = place(6, &c[..6], 3).unwrap();
    assert!(p.distinct && is_distinct(&p));
}

#[test]
fn spreads_over_sites_three_and_three() {
    let c = sites(&["home", "office", "home", "home", "office", "office"]);
    for seq in 0..12 {
        let p = place(6, &c, seq).unwrap();
        assert!(p.distinct && is_distinct(&p));
        assert_eq!(
            per_site(&p, &c),
            [("home".into(), 3), ("office".into(), 3)].into()
        );
    }
}

#[test]
fn spreads_over_sites_when_more_peers_than_fragments() {
    // 5 at home, 2 at the office, 1 at a friend's: with distinct peers the
    // best for 6 fragments is 3/2/1 (the office and the friend are used up).
    let c = sites(&[
        "home", "home", "home", "home", "home", "office", "office", "friend",
    ]);
    for seq in 0..16 {
        let p = place(6, &c, seq).unwrap();
        assert!(p.distinct && is_distinct(&p));
        let s = per_site(&p, &c);
        assert_eq!(s["home"], 3, "{s:?}");
        assert_eq!(s["office"], 2, "{s:?}");
        assert_eq!(s["friend"], 1, "{s:?}");
    }
}

#[test]
fn four_peers_in_two_sites_six_fragments() {
    let c = sites(&["home", "home", "office", "office"]);
    for seq in 0..8 {
        let p = place(6, &c, seq).unwrap();
        assert!(!p.distinct);
        assert_eq!(p.max_per_peer(), 2);
        assert_eq!(
            per_site(&p, &c),
            [("home".into(), 3), ("office".into(), 3)].into()
        );
    }
}

#[test]
fn domain_label_is_configurable() {
    let mut c = sites(&["a", "a", "b", "b"]);
    for (i, x) in c.iter_mut().enumerate() {
        x.labels.insert(
            "rack".into(),
            if i == 0 { "r1".into() } else { "r2".into() },
        );
    }
    // By rack: r1 has one peer, r2 three; 2 fragments go one to each rack.
    for seq in 0..8 {
        let p = place_with(2, &c, seq, "rack").unwrap();
        assert!(p.peers.contains(&0), "{p:?}");
    }
}

#[test]
fn rotation_spreads_load_over_many_packs() {
    for labelled in [false, true] {
        let c: Vec<_> = (0..8)
            .map(|i| {
                cand(
                    labelled.then_some(if i % 2 == 0 { "home" } else { "office" }),
                    None,
                )
            })
            .collect();
        let mut load = [0usize; 8];
        for seq in 0..600 {
            for i in place(6, &c, seq).unwrap().peers {
                load[i] += 1;
            }
        }
        let mean = (600 * 6) as f64 / 8.0;
        for l in load {
            assert!(
                (l as f64 - mean).abs() <= mean * 0.1,
                "labelled={labelled} {load:?}"
            );
        }
    }
}

#[test]
fn prefers_more_free_space_among_equals() {
    let mut c: Vec<_> = (0..8).map(|_| cand(None, Some(1_000_000))).collect();
    c[3].free_bytes = Some(100_000);
    c[5].free_bytes = Some(0);
    for seq in 0..16 {
        let p = place(6, &c, seq).unwrap();
        assert!(!p.peers.contains(&3) && !p.peers.contains(&5), "{p:?}");
    }
    // But distinctness still wins over free space.
    let p = place(8, &c, 0).unwrap();
    assert!(p.distinct && is_distinct(&p));
}

#[test]
fn fewer_candidates_spread_evenly() {
    for n in 1..6 {
        let c: Vec<_> = (0..n).map(|_| cand(None, None)).collect();
        for seq in 0..10 {
            let p = place(6, &c, seq).unwrap();
            assert!(!p.distinct);
            assert_eq!(p.peers.len(), 6);
            assert_eq!(p.max_per_peer(), 6usize.div_ceil(n), "n={n} {p:?}");
        }
    }
}

#[test]
fn zero_candidates_is_an_error() {
    assert_eq!(place(6, &[], 0), Err(PlacementError::NoCandidates));
}

#[test]
fn replace_one_prefers_a_fresh_peer_then_the_least_loaded() {
    let c = sites(&[
        "home", "home", "home", "office", "office", "office", "office",
    ]);
    let p = place(6, &c, 0).unwrap();
    let unused: Vec<usize> = (0..7).filter(|i| !p.peers.contains(i)).collect();
    assert_eq!(unused.len(), 1);
    let failed = p.peers[0];
    assert_eq!(replace_one(&p, 0, &c, &[]), Some(unused[0]));
    // With the only fresh peer excluded, a holder is picked, never the
    // failed one or an excluded one.
    let sub = replace_one(&p, 0, &c, &unused).unwrap();
    assert!(sub != failed && !unused.contains(&sub));
    // Everything excluded.
    let all: Vec<usize> = (0..7).collect();
    assert_eq!(replace_one(&p, 0, &c, &all), None);
    assert_eq!(replace_one(&p, 99, &c, &[]), None);

    // Among fresh peers, keep the sites balanced: 3 home (one failed) and
    // 3 office with a spare at each site → the home spare.
    let c = sites(&[
        "home", "home", "home", "home", "office", "office", "office", "office",
    ]);
    let p = Placement {
        peers: vec![0, 1, 2, 4, 5, 6],
        distinct: true,
    };
    assert_eq!(replace_one(&p, 1, &c, &[]), Some(3));
    assert_eq!(replace_one(&p, 4, &c, &[]), Some(7));
    assert_eq!(replace_one(&p, 4, &c, &[7]), Some(3));
}

#[test]
fn replace_one_with_few_peers_picks_least_loaded() {
    let c: Vec<_> = (0..3).map(|_| cand(None, None)).collect();
    let p = Placement {
        peers: vec![0, 0, 1, 1, 2, 0],
        distinct: false,
    };
    // Peer 0 failed for slot 0: peers 1 and 2 both hold; 2 holds fewer.
    assert_eq!(replace_one(&p, 0, &c, &[]), Some(2));
}

fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::vec(
        (prop::option::of(0u8..4), prop::option::of(0u64..1_000_000)),
        0..20,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(site, free)| cand(site.map(|s| format!("s{s}")).as_deref(), free))
            .collect()
    })
}

proptest! {
    #[test]
    fn placement_indices_in_range_and_distinct_when_enough(
        c in arb_candidates(),
        count in 0usize..20,
        seq in any::<u64>(),
    ) {
        match place(count, &c, seq) {
            Err(PlacementError::NoCandidates) => prop_assert!(c.is_empty()),
            Err(e) => prop_assert!(false, "unexpected {e}"),
            Ok(p) => {
                prop_assert!(!c.is_empty());
                prop_assert_eq!(p.peers.len(), count);
                prop_assert!(p.peers.iter().all(|&i| i < c.len()));
                if c.len() >= count {
                    prop_assert!(p.distinct);
                    prop_assert!(is_distinct(&p));
                } else {
                    prop_assert!(!p.distinct);
                    prop_assert!(p.max_per_peer() <= count.div_ceil(c.len()));
                }
            }
        }
    }

    #[test]
    fn replacement_is_in_range_and_not_excluded(
        c in arb_candidates(),
        count in 1usize..12,
        seq in any::<u64>(),
        slot in 0usize..12,
        excluded in prop::collection::vec(0usize..20, 0..5),
    ) {
        prop_assume!(!c.is_empty());
        let p = place(count, &c, seq).unwrap();
        if let Some(sub) = replace_one(&p, slot, &c, &excluded) {
            prop_assert!(sub < c.len());
            prop_assert!(!excluded.contains(&sub));
            prop_assert_ne!(sub, p.peers[slot]);
            if c.len() > count && !excluded.iter().any(|e| *e < c.len()) {
                prop_assert!(!p.peers.contains(&sub), "a fresh peer was available");
            }
        }
    }
}
