//! Signed envelopes (`docs/design.md` §5): `trove_core::envelope::peek` and
//! `open_signed`.

use crate::keys::{identity, master, public, seal_key, stranger};
use crate::{Input, InputBuilder};
use ed25519_dalek::{Signature, Verifier};
use trove_core::envelope::{self, EnvelopeError};
use trove_core::keys::SealKey;
use trove_core::seal::BlobKind;

/// Bytes before the sealed body, by envelope version (v2 adds the revision).
fn header_len(version: u8) -> usize {
    if version == 1 {
        74
    } else {
        82
    }
}
const KINDS: [BlobKind; 3] = [
    BlobKind::ContainerManifest,
    BlobKind::SnapshotManifest,
    BlobKind::IndexSegment,
];

/// The key §5 seals each kind's body with.
fn key_for(kind: BlobKind) -> SealKey {
    match kind {
        BlobKind::ContainerManifest => master().manifest_key(),
        _ => seal_key(),
    }
}

/// `peek` and `open_signed` must agree, and nothing opens that the fixed
/// identity did not sign. Returns the body if it opened.
fn check_agreement(bytes: &[u8], kind: BlobKind, object: &[u8; 32]) -> Option<Vec<u8>> {
    let peeked = envelope::peek(bytes);
    let opened = envelope::open_signed(&public(), &key_for(kind), kind, object, bytes);
    match (&peeked, &opened) {
        (Err(p), o) => assert_eq!(
            o.as_ref().err(),
            Some(p),
            "peek refused, open_signed did not"
        ),
        (Ok(h), Err(EnvelopeError::WrongSigner)) => assert_ne!(h.signer, public()),
        (Ok(h), _) if h.signer != public() => panic!("another signer got {opened:?}"),
        (Ok(h), Err(EnvelopeError::WrongKind { expected, found })) => {
            assert_eq!((*expected, *found), (kind, h.kind))
        }
        (Ok(h), Err(EnvelopeError::WrongObject)) => assert_ne!(&h.object, object),
        (Ok(h), Ok((opened_header, _))) => {
            assert_eq!((h.kind, &h.object, h.signer), (kind, object, public()));
            assert_eq!(h, opened_header, "peek and open_signed read one header");
            assert!(h.version == 2 || h.revision == 0, "v1 has no revision");
            let hl = header_len(h.version);
            let body_len = u32::from_le_bytes(bytes[hl - 4..hl].try_into().expect("4")) as usize;
            assert_eq!(bytes.len(), hl + body_len + 64);
            // The signature verifies under the fixed identity, checked here
            // with ed25519-dalek directly.
            let (signed, sig) = bytes.split_at(bytes.len() - 64);
            let sig = Signature::from_bytes(sig.try_into().expect("64"));
            public()
                .verifying_key()
                .expect("valid key")
                .verify(signed, &sig)
                .expect("open_signed accepted a signature that does not verify");
        }
        (Ok(_), Err(_)) => {}
    }
    opened.ok().map(|(_, body)| body)
}

/// Mode 0: the rest is an envelope, tried for each kind, with the object id
/// its header names. Mode 1: `kind u8 ‖ object [32] ‖ changes u8 ‖
/// n × (offset u16 LE, xor u8) ‖ cut u16 LE ‖ body`: the oracle signs the
/// body with the fixed identity (revision: the object's first 8 bytes, LE),
/// then changes the bytes (and cuts
/// `cut % 4` bytes off the end if `cut ≥ 4`, appends one if `cut % 4 == 0`).
///
/// Asserts:
/// - `open_signed` refuses whatever `peek` refuses, with the same error;
///   refuses with `WrongSigner` exactly when the header names another
///   signer; `WrongKind`/`WrongObject` name what the header says;
/// - whatever opens is signed by the fixed identity (checked with
///   ed25519-dalek directly), has the expected kind, object and length;
/// - (mode 1) an envelope the oracle signed opens to its body; after any
///   change of any byte, a cut or an extra byte, it never opens; signed by
///   another identity it is `WrongSigner`; an opened body that decodes as its
///   manifest type round-trips.
pub fn open(data: &[u8]) {
    let mut r = Input::new(data);
    if r.u8() % 2 == 0 {
        let bytes = r.rest();
        let object = envelope::peek(bytes).map_or([0; 32], |h| h.object);
        for kind in KINDS {
            if let Some(body) = check_agreement(bytes, kind, &object) {
                crate::manifest::decode_as(kind, &body);
            }
        }
        return;
    }

    let kind = KINDS[r.u8() as usize % 3];
    let object: [u8; 32] = {
        let mut o = [0u8; 32];
        let t = r.take(32);
        o[..t.len()].copy_from_slice(t);
        o
    };
    let changes: Vec<(u16, u8)> = (0..r.u8() % 4).map(|_| (r.u16(), r.u8())).collect();
    let cut = r.u16();
    let body = r.rest();
    let key = key_for(kind);
    // The revision (signed, in the clear) comes from the object's bytes, so
    // the input layout stays as it was before envelopes carried one.
    let revision = u64::from_le_bytes(object[..8].try_into().expect("8"));
    let env = envelope::seal_signed(identity(), &key, kind, &object, revision, body);
    let (h, opened) = envelope::open_signed(&public(), &key, kind, &object, &env)
        .expect("a signed envelope opens");
    assert_eq!(
        (h.version, h.revision, opened.as_slice()),
        (2, revision, body)
    );
    crate::manifest::decode_as(kind, body);

    let mut bad = env.clone();
    for &(off, x) in &changes {
        let n = bad.len();
        bad[off as usize % n] ^= x;
    }
    match cut {
        c if c % 4 == 0 => bad.push((c >> 8) as u8),
        c if c >= 4 => bad.truncate(bad.len().saturating_sub((c % 4) as usize)),
        _ => {}
    }
    let opened = check_agreement(&bad, kind, &object);
    if bad != env {
        assert!(opened.is_none(), "an altered envelope opened");
    }

    let forged = envelope::seal_signed(stranger(), &key, kind, &object, revision, body);
    assert_eq!(
        envelope::open_signed(&public(), &key, kind, &object, &forged),
        Err(EnvelopeError::WrongSigner)
    );
    check_agreement(&forged, kind, &object);
}

/// A mode-0 input.
pub fn raw_input(envelope: &[u8]) -> Vec<u8> {
    InputBuilder::default().u8(0).bytes(envelope).build()
}

/// A mode-1 input with no changes.
pub fn signed_input(kind_index: u8, object: [u8; 32], body: &[u8]) -> Vec<u8> {
    InputBuilder::default()
        .u8(1)
        .u8(kind_index)
        .bytes(&object)
        .u8(0)
        .u16(1)
        .bytes(body)
        .build()
}
