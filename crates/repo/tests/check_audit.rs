//! `check` with audit proofs, over a real backup on folder peers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::RngCore;
use trove_core::keys::MasterSecret;
use trove_core::manifest::PackRecord;
use trove_core::FragmentId;
use trove_repo::{backup, check, BackupOptions, CheckOptions, CheckReport, Home, KdfParams};
use trove_repo::{CheckProblem, FragmentFault, Owner, Quiet};

const FAST_KDF: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};
const AUDIT: CheckOptions = CheckOptions {
    read_data: false,
    audit: true,
    peer_lost_after: trove_repo::DEFAULT_PEER_LOST_AFTER,
};

/// A home with three folder peers `p1`..`p3` (redundancy 2+1) and one
/// backed-up container `c` of a few hundred KiB of random files.
fn backed_up(tmp: &Path) -> (Home, Owner) {
    let (home, owner) = Home::init(
        &tmp.join("home"),
        MasterSecret::generate(),
        b"pass",
        FAST_KDF,
    )
    .unwrap();
    for p in ["p1", "p2", "p3"] {
        let loc = format!("dir:{}", tmp.join(p).display());
        home.peers().add(p, &loc, BTreeMap::new()).unwrap();
    }
    let src = tmp.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (i, len) in [300_000, 5_000, 70_000].into_iter().enumerate() {
        let mut bytes = vec![0; len];
        rand::thread_rng().fill_bytes(&mut bytes);
        std::fs::write(src.join(format!("f{i}")), bytes).unwrap();
    }
    home.containers().create(&owner, "c", &[src], None).unwrap();
    backup(&home, &owner, "c", &BackupOptions::default(), &Quiet).unwrap();
    (home, owner)
}

fn packs(home: &Home, owner: &Owner) -> Vec<PackRecord> {
    let c = home.containers().open(owner, "c").unwrap();
    home.containers().packs(&c.manifest.id).unwrap()
}

/// Where folder peer `peer` keeps fragment `id` (`fragments/<2 hex>/<64 hex>`).
fn fragment_file(tmp: &Path, peer: &str, id: &FragmentId) -> PathBuf {
    let hex = id.to_hex();
    tmp.join(peer).join("fragments").join(&hex[..2]).join(hex)
}

/// The one fragment of the first pack that `peer` holds.
fn held_by(home: &Home, owner: &Owner, peer: &str) -> (PackRecord, FragmentId) {
    let id = home
        .peers()
        .records()
        .unwrap()
        .into_iter()
        .find(|p| p.name == peer)
        .unwrap()
        .id;
    let rec = packs(home, owner).remove(0);
    let loc = rec.fragments.iter().find(|l| l.peer == id).unwrap().id;
    (rec, loc)
}

fn check_c(home: &Home, owner: &Owner, opts: &CheckOptions) -> CheckReport {
    check(home, owner, Some("c"), opts, &Quiet).unwrap()
}

#[test]
fn audit_passes_a_healthy_backup_and_counts_what_it_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, owner) = backed_up(tmp.path());
    let r = check_c(&home, &owner, &AUDIT);
    assert_eq!(r.problems, Vec::<CheckProblem>::new());
    assert!(r.packs >= 1);
    assert_eq!(r.fragments, r.packs * 3);
    assert_eq!(r.fragments_ok, r.fragments);
    assert_eq!(r.audited_fragments, r.fragments);
    assert_eq!(r.audited_ranges, 4 * r.fragments);

    // Without `audit` nothing is audited.
    let r = check_c(&home, &owner, &CheckOptions::default());
    assert_eq!((r.audited_fragments, r.audited_ranges), (0, 0));
    assert!(r.problems.is_empty());
}

#[test]
fn audit_names_the_peer_of_a_damaged_or_missing_fragment() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, owner) = backed_up(tmp.path());

    // One byte changed in the middle of p1's fragment: almost surely outside
    // the four audited KiB, and still caught.
    let (rec, damaged) = held_by(&home, &owner, "p1");
    let path = fragment_file(tmp.path(), "p1", &damaged);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let r = check_c(&home, &owner, &AUDIT);
    assert_eq!(r.fragments_ok, r.fragments - 1);
    assert_eq!(r.packs_unrecoverable, 0);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(
        matches!(&r.problems[0], CheckProblem::Fragment(f)
            if f.pack == rec.id && f.peer == "p1" && matches!(f.fault, FragmentFault::AuditFailed(_))),
        "{:?}",
        r.problems[0]
    );
    let p = &r.problems[0].to_string();
    assert!(p.starts_with(&format!("pack {}", rec.id.short())), "{p}");
    assert!(p.contains("on peer `p1`"), "{p}");
    assert!(
        p.contains("audit failed: proof does not match the fragment id"),
        "{p}"
    );
    // A full read finds the same fragment bad.
    let full = check_c(&home, &owner, &CheckOptions::default());
    assert_eq!(full.fragments_ok, r.fragments_ok);

    // p2 loses its fragment of the same pack: 1 of the 2 needed is left.
    let (_, lost) = held_by(&home, &owner, "p2");
    std::fs::remove_file(fragment_file(tmp.path(), "p2", &lost)).unwrap();
    let r = check_c(&home, &owner, &AUDIT);
    assert_eq!(r.fragments_ok, r.fragments - 2);
    assert_eq!(r.packs_unrecoverable, 1);
    let problems: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
    assert!(
        problems.iter().any(|p| p.contains("on peer `p2`: missing")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("its data is lost")),
        "{problems:?}"
    );
    assert!(r.problems.iter().any(|p| matches!(
        p,
        CheckProblem::Fragment(f) if f.peer == "p2" && f.fault == FragmentFault::Missing
    )));
}
