//! Trees (`docs/design.md` §4): `trove_core::tree::Tree::decode`.

use trove_core::tree::Tree;

/// §4's rule for a name, written out independently of `is_safe_name`.
fn name_is_safe(n: &[u8]) -> bool {
    !n.is_empty() && n != b"." && n != b".." && !n.iter().any(|&b| b == b'/' || b == 0)
}

/// Input: any bytes, as a tree blob's plaintext.
///
/// Asserts:
/// - `decode` accepts exactly what §4 allows: version byte 1, then postcard
///   of the tree, with every name safe (non-empty, not `.` or `..`, no `/`
///   or NUL) and the names strictly increasing bytewise;
/// - what it accepts round-trips: `decode(encode(t)) == t`.
pub fn decode(data: &[u8]) {
    let got = Tree::decode(data);
    let parsed = match data.split_first() {
        Some((1, rest)) => postcard::from_bytes::<Tree>(rest).ok(),
        _ => None,
    };
    let valid = parsed.as_ref().is_some_and(|t| {
        t.nodes.iter().all(|n| name_is_safe(&n.name))
            && t.nodes.windows(2).all(|w| w[0].name < w[1].name)
    });
    match &got {
        Ok(t) => {
            assert!(valid, "accepted a tree §4 refuses");
            assert_eq!(Some(t), parsed.as_ref());
            for n in &t.nodes {
                assert!(name_is_safe(&n.name), "unsafe name {:?}", n.name);
            }
            assert!(t.nodes.windows(2).all(|w| w[0].name < w[1].name));
            let enc = t.encode();
            let back = Tree::decode(&enc).expect("a valid tree re-encodes validly");
            assert_eq!(&back, t);
        }
        Err(e) => assert!(!valid, "refused a valid tree: {e}"),
    }
}
