//! A redb storage backend that never writes its file: the file is opened
//! read-only and whatever redb writes (the header flags it sets when it
//! opens a database, the transaction that makes sure every table exists)
//! goes to blocks kept in memory and dropped with the database. A `trove
//! drill` reads the live home's index through it, so the index stays byte
//! for byte what it was.
//!
//! The file is locked shared (`flock`) for as long as it is open: redb's
//! own backend locks exclusively, so no trove process writes the index
//! while it is read this way, and one that holds it makes the open fail
//! with `WouldBlock`.

use redb::StorageBackend;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// The unit of the in-memory overlay.
const BLOCK: u64 = 4096;

/// A database file, opened read-only, with an in-memory overlay for writes.
#[derive(Debug)]
pub(crate) struct ReadOnlyFile {
    file: File,
    overlay: Mutex<Overlay>,
}

#[derive(Debug, Default)]
struct Overlay {
    /// The length redb sees.
    len: u64,
    /// Below this offset, bytes not in `blocks` come from the file; at and
    /// above it, they are zeros (the storage was shrunk, then grown).
    backed: u64,
    /// Blocks written, by block number.
    blocks: HashMap<u64, Box<[u8]>>,
}

impl ReadOnlyFile {
    /// Open `path` read-only and lock it shared; `WouldBlock` when another
    /// process holds it (a trove process that may write it).
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared)
            .map_err(io::Error::from)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            overlay: Mutex::new(Overlay {
                len,
                backed: len,
                blocks: HashMap::new(),
            }),
        })
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, Overlay> {
        self.overlay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Block `b` as redb last saw it.
    fn block(&self, o: &Overlay, b: u64) -> io::Result<Box<[u8]>> {
        if let Some(block) = o.blocks.get(&b) {
            return Ok(block.clone());
        }
        let mut block = vec![0u8; BLOCK as usize].into_boxed_slice();
        let start = b * BLOCK;
        if start < o.backed {
            let n = (o.backed - start).min(BLOCK) as usize;
            self.file.read_exact_at(&mut block[..n], start)?;
        }
        Ok(block)
    }
}

impl StorageBackend for ReadOnlyFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.overlay().len)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let o = self.overlay();
        let end = offset + len as u64;
        if end > o.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read of {len} bytes at {offset} past the end ({})", o.len),
            ));
        }
        let mut out = vec![0u8; len];
        if len == 0 {
            return Ok(out);
        }
        let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
        let untouched = o.blocks.is_empty() || (first..=last).all(|b| !o.blocks.contains_key(&b));
        if untouched && end <= o.backed {
            self.file.read_exact_at(&mut out, offset)?;
            return Ok(out);
        }
        for b in first..=last {
            let block = self.block(&o, b)?;
            let start = b * BLOCK;
            let from = offset.max(start);
            let to = end.min(start + BLOCK);
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&block[(from - start) as usize..(to - start) as usize]);
        }
        Ok(out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut o = self.overlay();
        if len < o.len {
            o.backed = o.backed.min(len);
            o.blocks.retain(|b, _| b * BLOCK < len);
            // The block holding the new end: what lies past it is gone.
            if let Some(block) = o.blocks.get_mut(&(len / BLOCK)) {
                block[(len % BLOCK) as usize..].fill(0);
            }
        }
        o.len = len;
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut o = self.overlay();
        let end = offset + data.len() as u64;
        if data.is_empty() {
            return Ok(());
        }
        for b in offset / BLOCK..=(end - 1) / BLOCK {
            let mut block = self.block(&o, b)?;
            let start = b * BLOCK;
            let from = offset.max(start);
            let to = end.min(start + BLOCK);
            block[(from - start) as usize..(to - start) as usize]
                .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
            o.blocks.insert(b, block);
        }
        o.len = o.len.max(end);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableTableMetadata, TableDefinition};

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    #[test]
    fn reads_a_database_and_never_writes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(T).unwrap();
                for i in 0..2000u64 {
                    t.insert(format!("key-{i:05}").as_str(), i).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        {
            let db = Database::builder()
                .create_with_backend(ReadOnlyFile::open(&path).unwrap())
                .unwrap();
            // Writes land in memory: they read back, the file is untouched.
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(T).unwrap();
                t.insert("written", 7).unwrap();
                t.remove("key-00003").unwrap();
            }
            tx.commit().unwrap();
            let tx = db.begin_read().unwrap();
            let t = tx.open_table(T).unwrap();
            assert_eq!(t.get("key-01999").unwrap().unwrap().value(), 1999);
            assert_eq!(t.get("written").unwrap().unwrap().value(), 7);
            assert!(t.get("key-00003").unwrap().is_none());
            assert_eq!(t.len().unwrap(), 2000);
            // A writer is refused while it is open.
            assert!(Database::create(&path).is_err());
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // Closed: the file is free again.
        drop(Database::open(&path).unwrap());
    }

    #[test]
    fn a_file_held_by_a_writer_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let _db = Database::create(&path).unwrap();
        let e = ReadOnlyFile::open(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn shrinking_then_growing_reads_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![0xAAu8; 3 * BLOCK as usize]).unwrap();
        let f = ReadOnlyFile::open(&path).unwrap();
        f.write(BLOCK + 10, b"xyz").unwrap();
        assert_eq!(f.read(BLOCK + 9, 5).unwrap(), b"\xAAxyz\xAA");
        f.set_len(BLOCK + 11).unwrap();
        f.set_len(3 * BLOCK).unwrap();
        assert_eq!(f.read(BLOCK + 9, 4).unwrap(), b"\xAAx\0\0");
        assert_eq!(f.read(2 * BLOCK, 2).unwrap(), b"\0\0");
        assert_eq!(f.read(0, 2).unwrap(), b"\xAA\xAA");
        assert!(f.read(3 * BLOCK - 1, 2).is_err());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            vec![0xAAu8; 3 * BLOCK as usize]
        );
    }
}
