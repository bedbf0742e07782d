//! The blob ids a backup has met, each held once and known by a number:
//! the dedup set and the read files' chunk lists share the one copy. A set
//! of ids beside lists of ids held each new chunk's 32 bytes twice, and
//! the set's own table about 48 bytes a blob (docs/performance.md,
//! fifteenth round).

use hashbrown::HashTable;
use trove_core::{BlobId, ChunkId};

/// The number of an id in its [`Seen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SeenId(u32);

/// Ids in the order they were first met, and a hash table of their numbers.
#[derive(Debug, Default)]
pub(super) struct Seen {
    ids: Vec<BlobId>,
    set: HashTable<u32>,
}

/// Blob ids are keyed hashes: their first bytes are as good a hash as any.
fn hash(id: &BlobId) -> u64 {
    u64::from_le_bytes(id.0[..8].try_into().expect("an id has 32 bytes"))
}

impl Seen {
    /// The number of `id`, and whether this is the first time it is met.
    pub fn intern(&mut self, id: BlobId) -> (SeenId, bool) {
        let ids = &self.ids;
        if let Some(&n) = self.set.find(hash(&id), |&n| ids[n as usize] == id) {
            return (SeenId(n), false);
        }
        // Past 4 billion ids (128 GiB of them) the process is long out of
        // memory.
        let n = u32::try_from(self.ids.len()).expect("fewer than 4 billion blobs");
        if self.ids.len() == self.ids.capacity() {
            // A quarter more, not twice: the list is held to the commit, and
            // past 2 MiB the pages it has touched are huge ones.
            self.ids.reserve_exact(self.ids.len() / 4 + 1024);
        }
        self.ids.push(id);
        let ids = &self.ids;
        self.set
            .insert_unique(hash(&id), n, |&m| hash(&ids[m as usize]));
        (SeenId(n), true)
    }

    /// The chunk ids numbered `ns`, in order.
    pub fn chunks(&self, ns: &[SeenId]) -> Vec<ChunkId> {
        ns.iter()
            .map(|n| ChunkId(self.ids[n.0 as usize].0))
            .collect()
    }

    /// How many ids it holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8, last: u8) -> BlobId {
        let mut b = [0u8; 32];
        b[0] = first;
        b[31] = last;
        BlobId(b)
    }

    #[test]
    fn an_id_is_new_once_and_keeps_its_number() {
        let mut seen = Seen::default();
        let (a, new_a) = seen.intern(id(1, 1));
        let (b, new_b) = seen.intern(id(2, 2));
        assert!(new_a && new_b);
        assert_ne!(a, b);
        assert_eq!(seen.intern(id(1, 1)), (a, false));
        assert_eq!(seen.intern(id(2, 2)), (b, false));
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen.chunks(&[b, a, b]),
            vec![
                ChunkId(id(2, 2).0),
                ChunkId(id(1, 1).0),
                ChunkId(id(2, 2).0)
            ]
        );
    }

    #[test]
    fn ids_alike_in_their_hash_bytes_stay_apart() {
        // Same first eight bytes (same hash), different ids.
        let mut seen = Seen::default();
        let ns: Vec<SeenId> = (0..100).map(|i| seen.intern(id(7, i)).0).collect();
        assert_eq!(seen.len(), 100);
        for (i, n) in ns.iter().enumerate() {
            assert_eq!(seen.intern(id(7, i as u8)), (*n, false));
        }
        let ids: Vec<ChunkId> = (0..100).map(|i| ChunkId(id(7, i).0)).collect();
        assert_eq!(seen.chunks(&ns), ids);
    }

    #[test]
    fn many_ids_through_the_table_growing() {
        let mut seen = Seen::default();
        let make = |i: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
            b[28..].copy_from_slice(&i.to_le_bytes());
            BlobId(b)
        };
        for i in 0..50_000 {
            assert!(seen.intern(make(i)).1, "{i} met for the first time");
        }
        for i in (0..50_000).step_by(7) {
            assert_eq!(seen.intern(make(i)), (SeenId(i), false));
        }
        assert_eq!(seen.len(), 50_000);
    }
}
