//! The node protocol, version 1 (ALPN `trove/node/1`).
//!
//! Every request travels on its own bidirectional QUIC stream, so a slow
//! transfer never blocks a `has` or a `stat` behind it:
//!
//! ```text
//! frame    := u32 LE body length | body
//! body     := u8 version (= 1) | postcard(Request or Response)
//! request  := frame [raw bytes: `len` of them, for Put and PutMeta] FIN
//! response := frame [raw bytes: for Data and Ids] FIN
//! ```
//!
//! Bulk bytes follow the frame raw, so both sides stream them to and from
//! disk without holding them in a message. The owner is not named in any
//! message: the node learns it from the QUIC handshake, which authenticates
//! the owner's key (see `docs/design.md`, "Node protocol").

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use trove_core::{ContainerId, FragmentId};
use trove_peer::{AuditRange, DeletedMeta, MetaKey, MetaRejection};

use crate::escrow::{EscrowSpec, EscrowView};
use crate::store::OwnerId;

/// The ALPN that selects this protocol on a QUIC connection.
pub const ALPN: &[u8] = b"trove/node/1";
/// Version byte at the start of every message body.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest request frame a node reads; anything longer drops the stream.
pub const MAX_REQUEST_FRAME: u32 = 64 * 1024;
/// Largest response frame an owner reads (audit proofs, metadata key lists).
pub const MAX_RESPONSE_FRAME: u32 = 8 * 1024 * 1024;
/// Largest fragment a node accepts (a whole 16 MiB pack with k = 1, with
/// ample headroom for larger pack targets).
pub const MAX_FRAGMENT_LEN: u64 = 1 << 30;
/// Largest metadata object (manifests, index segments) a node accepts.
pub const MAX_META_LEN: u64 = 256 * 1024 * 1024;

/// What an owner asks of a node. Variants are only ever appended (postcard
/// encodes the variant index); a node that does not know a variant drops
/// the connection as malformed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Check the grant and learn the node's limits.
    Hello {
        /// The owner's software, for the node's log.
        client: String,
    },
    /// Store a fragment: `len` raw bytes follow the frame.
    Put {
        id: FragmentId,
        len: u64,
    },
    /// Read a fragment, whole (`len: None`) or a byte range.
    Get {
        id: FragmentId,
        offset: u64,
        len: Option<u64>,
    },
    Has {
        id: FragmentId,
    },
    List,
    /// Delayed deletion: the node keeps the bytes for its grace period.
    Delete {
        id: FragmentId,
    },
    /// Store a metadata object: `len` raw bytes follow the frame.
    PutMeta {
        key: MetaKey,
        len: u64,
    },
    GetMeta {
        key: MetaKey,
    },
    ListMeta {
        container: Option<ContainerId>,
    },
    Stat,
    /// Bao proofs of byte ranges of a fragment.
    Audit {
        id: FragmentId,
        ranges: Vec<AuditRange>,
    },
    /// Delayed deletion of a metadata object (kept in the trash).
    DeleteMeta {
        key: MetaKey,
    },
    /// Metadata objects in the trash (replaced or deleted).
    ListDeletedMeta {
        container: Option<ContainerId>,
    },
    /// The most recently trashed copy of a metadata object.
    GetDeletedMeta {
        key: MetaKey,
    },
    /// Bring a deleted fragment back from the trash.
    UndeleteFragment {
        id: FragmentId,
    },
    // Inheritance (appended 2026-11, `docs/design.md` §9f). The first four
    // act on the calling owner's own escrow and need a grant; the last
    // three are the heir's, served to any caller whose id an escrow names
    // as heir, granted or not.
    /// Store (or replace) the caller's escrow: answered `Ok`.
    EscrowPut {
        spec: EscrowSpec,
    },
    /// Delete the caller's escrow: answered `Escrow(previous)`.
    EscrowDelete,
    /// Veto every open claim on the caller's escrow: answered `Escrow`.
    EscrowVeto,
    /// The caller's escrow as this node sees it: answered `Escrow`.
    EscrowStatus,
    /// The heir claims `owner`'s escrow (the node's clock starts the
    /// wait; a repeated claim keeps its start): answered `Escrow`.
    InheritClaim {
        owner: OwnerId,
    },
    /// The heir asks where its claim stands: answered `Escrow`.
    InheritStatus {
        owner: OwnerId,
    },
    /// The heir asks for the share: `Released` once the claim's time has
    /// come by this node's clock, else `Escrow` (waiting, vetoed, none).
    InheritCollect {
        owner: OwnerId,
    },
    /// (Appended 2026-11, `docs/design.md` §2a.) The caller hands its
    /// namespace and grant over to the certificate's new owner id, and its
    /// objects to the new identity: answered `Ok`, also when the hand-over
    /// was already done (a retry, from the old or the new owner id).
    HandOver {
        cert: Vec<u8>,
    },
}

impl Request {
    /// An heir's request: served to callers the node has not granted.
    pub fn is_heirs(&self) -> bool {
        matches!(
            self,
            Request::InheritClaim { .. }
                | Request::InheritStatus { .. }
                | Request::InheritCollect { .. }
        )
    }
}

/// Why a node declined a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    /// The node's operator has not granted this owner (or revoked it).
    NotGranted,
    /// The owner's quota on this node is used up.
    QuotaExceeded,
    /// The node's capacity or disk is used up.
    NodeFull,
    /// The bytes of a put do not hash to its id.
    HashMismatch,
    /// A malformed or oversized request.
    BadRequest,
    /// The node failed (disk error); details are in its log.
    Internal,
    /// A new fragment would take the owner past what the node's
    /// reciprocity rule lets it store (appended 2026-12; `message` has the
    /// figures). Stored data stays readable; the owner places elsewhere.
    NotReciprocal,
    /// No escrow here names the caller as the heir of the owner it named
    /// (appended 2026-11). Said the same whether the owner has no escrow
    /// here or another heir, so a stranger learns nothing.
    NotHeir,
}

/// A node's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Hello {
        /// The node's software version.
        node: String,
        /// Bytes this owner may store here.
        quota: u64,
        /// Bytes this owner stores here now.
        used: u64,
        /// The node's operator's own owner id, if the operator named it
        /// (`trove node run --operator`). Appended 2026-12 as the last
        /// field: an older owner stops reading before it (postcard ignores
        /// trailing bytes); [`decode_response`] reads an older node's Hello
        /// as `None`.
        operator: Option<OwnerId>,
    },
    Ok,
    /// `len` raw bytes follow.
    Data {
        len: u64,
    },
    Has(bool),
    /// `count` fragment ids (32 bytes each) follow, sorted.
    Ids {
        count: u64,
    },
    MetaKeys(Vec<MetaKey>),
    Stat {
        fragments: u64,
        fragment_bytes: u64,
        /// The smaller of the owner's remaining quota and the node's room.
        free_bytes: Option<u64>,
    },
    /// One bao slice per requested range, in order.
    Proofs(Vec<Vec<u8>>),
    Error {
        kind: ErrorKind,
        message: String,
    },
    /// Metadata objects in the trash.
    DeletedMeta(Vec<DeletedMeta>),
    /// A metadata object the node refuses to store, and why.
    MetaRejected(MetaRejection),
    /// Whether a deleted fragment came back (false: not in the trash).
    Undeleted(bool),
    /// An escrow as the node sees it, by its clock (`None`: no escrow of
    /// the caller here). Appended 2026-11.
    Escrow(Option<EscrowView>),
    /// The heir's share, released: the claim's wait has passed on this
    /// node's clock without a veto. Appended 2026-11.
    Released {
        view: EscrowView,
        sealed_share: Vec<u8>,
    },
}

/// Reading or writing a message failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("message of {len} bytes is larger than the limit of {max}")]
    TooLarge { len: u32, max: u32 },
    #[error("message has protocol version {0}; this build speaks version {PROTOCOL_VERSION}")]
    Version(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encode a message as one frame.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut body = vec![PROTOCOL_VERSION];
    // Serializing our own enums into a Vec cannot fail.
    body.extend(postcard::to_stdvec(msg).unwrap_or_default());
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Decode a frame body (version byte and postcard).
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, WireError> {
    match body.split_first() {
        None => Err(WireError::Malformed("empty message".into())),
        Some((&PROTOCOL_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| WireError::Malformed(e.to_string()))
        }
        Some((&v, _)) => Err(WireError::Version(v)),
    }
}

/// `Hello` as nodes before 2026-12 answer it (no `operator`): variant 0
/// of [`Response`] with its first three fields.
#[derive(Deserialize)]
enum HelloV1 {
    Hello { node: String, quota: u64, used: u64 },
}

/// Decode a response body: a [`Response`], or an older node's `Hello`
/// (without `operator`, which reads as `None`).
pub fn decode_response(body: &[u8]) -> Result<Response, WireError> {
    match decode::<Response>(body) {
        Err(WireError::Malformed(e)) => match decode::<HelloV1>(body) {
            Ok(HelloV1::Hello { node, quota, used }) => Ok(Response::Hello {
                node,
                quota,
                used,
                operator: None,
            }),
            Err(_) => Err(WireError::Malformed(e)),
        },
        other => other,
    }
}

/// Write one message.
pub async fn write_msg<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), WireError> {
    w.write_all(&encode(msg)).await?;
    Ok(())
}

/// Read one message, refusing frames longer than `max` before reading them.
pub async fn read_msg<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
    max: u32,
) -> Result<T, WireError> {
    decode(&read_frame(r, max).await?)
}

/// Read one response ([`decode_response`]: older nodes' answers too).
pub async fn read_response<R: AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
) -> Result<Response, WireError> {
    decode_response(&read_frame(r, max).await?)
}

/// Read one frame's body, refusing frames longer than `max` before reading them.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> Result<Vec<u8>, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len);
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip() {
        let c = ContainerId([3; 32]);
        let msgs = vec![
            Request::Hello { client: "t".into() },
            Request::Put {
                id: FragmentId([1; 32]),
                len: 9,
            },
            Request::Get {
                id: FragmentId([1; 32]),
                offset: 5,
                len: Some(7),
            },
            Request::ListMeta { container: Some(c) },
            Request::PutMeta {
                key: MetaKey::Container(c),
                len: 3,
            },
            Request::Audit {
                id: FragmentId([2; 32]),
                ranges: vec![AuditRange { offset: 1, len: 2 }],
            },
        ];
        for m in msgs {
            let frame = encode(&m);
            let mut r = &frame[..];
            let back: Request = read_msg(&mut r, MAX_REQUEST_FRAME).await.unwrap();
            assert_eq!(back, m);
            assert!(r.is_empty());
        }
    }

    /// The Hello of an older node (no operator) and the Hello of a newer
    /// node read by an older owner (it stops before the operator).
    #[test]
    fn hello_with_and_without_the_operator_reads_both_ways() {
        #[derive(Serialize)]
        enum OldResponse {
            Hello { node: String, quota: u64, used: u64 },
        }
        let old = encode(&OldResponse::Hello {
            node: "0.1".into(),
            quota: 7,
            used: 3,
        });
        assert_eq!(
            decode_response(&old[4..]).unwrap(),
            Response::Hello {
                node: "0.1".into(),
                quota: 7,
                used: 3,
                operator: None
            }
        );
        let operator = Some(OwnerId([9; 32]));
        let new = encode(&Response::Hello {
            node: "0.2".into(),
            quota: 7,
            used: 3,
            operator,
        });
        assert_eq!(
            new.len(),
            old.len() + 33,
            "one option tag and 32 bytes appended"
        );
        let r = decode_response(&new[4..]).unwrap();
        assert!(matches!(r, Response::Hello { operator: o, .. } if o == operator));
        // What an older owner decodes: its own Hello, trailing bytes ignored.
        let seen_by_old: HelloV1 = decode(&new[4..]).unwrap();
        let HelloV1::Hello { quota, used, .. } = seen_by_old;
        assert_eq!((quota, used), (7, 3));
        // Anything else that does not decode stays malformed.
        assert!(matches!(
            decode_response(&[PROTOCOL_VERSION, 0xff, 0xff, 0xff]),
            Err(WireError::Malformed(_))
        ));
        // The new refusal travels like any other.
        let refusal = encode(&Response::Error {
            kind: ErrorKind::NotReciprocal,
            message: "m".into(),
        });
        assert!(matches!(
            decode_response(&refusal[4..]).unwrap(),
            Response::Error {
                kind: ErrorKind::NotReciprocal,
                ..
            }
        ));
    }

    /// The inheritance messages are appended: every older variant keeps
    /// its postcard index, so older owners and nodes read each other.
    #[test]
    fn inheritance_variants_are_appended_after_the_older_ones() {
        let index = |frame: Vec<u8>| frame[5];
        let o = OwnerId([4; 32]);
        assert_eq!(
            index(encode(&Request::UndeleteFragment {
                id: FragmentId([0; 32])
            })),
            14
        );
        assert_eq!(index(encode(&Request::EscrowDelete)), 16);
        assert_eq!(index(encode(&Request::InheritClaim { owner: o })), 19);
        assert_eq!(index(encode(&Request::InheritCollect { owner: o })), 21);
        assert_eq!(index(encode(&Response::Undeleted(true))), 11);
        assert_eq!(index(encode(&Response::Escrow(None))), 12);
        let e = encode(&Response::Error {
            kind: ErrorKind::NotHeir,
            message: String::new(),
        });
        assert_eq!(
            (e[5], e[6]),
            (8, 8),
            "Error, then NotHeir after NotReciprocal"
        );
        assert!(Request::InheritStatus { owner: o }.is_heirs());
        assert!(!Request::EscrowStatus.is_heirs() && !Request::List.is_heirs());
    }

    #[tokio::test]
    async fn oversized_wrong_version_and_garbage_are_refused() {
        let mut big = (MAX_REQUEST_FRAME + 1).to_le_bytes().to_vec();
        big.extend(vec![0; 16]);
        let err = read_msg::<_, Request>(&mut &big[..], MAX_REQUEST_FRAME)
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::TooLarge { .. }), "{err}");

        let mut frame = encode(&Request::Stat);
        frame[4] = 2;
        let err = read_msg::<_, Request>(&mut &frame[..], MAX_REQUEST_FRAME)
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Version(2)), "{err}");

        let garbage = [5u8, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        let err = read_msg::<_, Request>(&mut &garbage[..], MAX_REQUEST_FRAME)
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{err}");

        // A frame cut short is an I/O error, not a hang or a panic.
        let frame = encode(&Request::List);
        let err = read_msg::<_, Request>(&mut &frame[..frame.len() - 1], MAX_REQUEST_FRAME)
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Io(_)), "{err}");
    }
}
