//! Trove peers: where a container's fragments and replicated metadata live.
//!
//! - [`Peer`] is the small, blocking, object-safe trait every kind of peer
//!   implements (`Arc<dyn Peer>`): put/get/has/list/delete fragments, put/get/
//!   list the sealed metadata objects ([`MetaKey`]), and stat. Peers only
//!   ever see ids and bytes the caller has already encrypted.
//! - [`FolderPeer`] is a directory on a local or mounted disk: crash-safe
//!   writes (tmp, fsync, rename, fsync dir) and delayed deletion via a trash
//!   folder.
//! - [`audit`] lets an owner check that a peer still holds a fragment from a
//!   few random byte ranges, proven with BLAKE3 (bao) slices against the
//!   fragment id alone.
//! - [`place`] decides which peer gets which fragment of a pack: distinct
//!   peers when there are enough, spread over failure domains, rotated so
//!   load evens out; [`replace_one`] picks a substitute when one fails.
//!
//! - [`mod@admit`] decides which metadata objects a peer stores (signed,
//!   pinned signer, never rolled back); [`durable`] is the one durable-write
//!   recipe every writer uses.
//!
//! - `testing` (feature `testing`, for tests of this and other crates):
//!   an in-memory peer, wrappers that fail, lie or dawdle on demand, and the
//!   contract every peer keeps.
//!
//! Node peers (`trove-node`) are another implementation of [`Peer`] that
//! wraps its own async runtime.

pub mod admit;
pub mod audit;
pub mod durable;
pub mod folder;
pub mod layout;
pub mod peer;
pub mod placement;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use admit::{admit, Admission, MetaRejection};
pub use audit::AuditRange;
pub use folder::FolderPeer;
pub use folder::MetaStored;
pub use peer::{DeletedMeta, MetaKey, Peer, PeerError, PeerStat};
pub use placement::{
    place, place_with, replace_one, replace_one_with, Candidate, Placement, PlacementError,
    DEFAULT_DOMAIN_LABEL,
};
