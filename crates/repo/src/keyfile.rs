//! The local keyfile: the master secret wrapped by a passphrase
//! (Argon2id, then XChaCha20-Poly1305). Format in `docs/design.md`.
//!
//! ```text
//! "TRVK" | version u8 | m_kib u32 | t u32 | p u32 | salt [16] | public identity [32] | nonce [24] | ct [32] | tag [16]
//! ```
//! Everything before the nonce is associated data, so the KDF parameters and
//! the public identity cannot be altered unnoticed.

use crate::error::{RepoError, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::path::Path;
use trove_core::keys::{MasterSecret, PublicIdentity};
use trove_peer::durable;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"TRVK";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 12 + 16 + 32;
const FILE_LEN: usize = HEADER_LEN + 24 + 32 + 16;

/// Argon2id cost. The default for new keyfiles is 32 MiB and 6 passes: the
/// same memory traffic per guess as RFC 9106's 64 MiB and 3 passes (an
/// attacker's cost where memory bandwidth bounds it, and the unlock's time),
/// half the memory held, so that an unlock with the scan beside it is no
/// longer a backup's peak of memory (docs/design.md, keyfile). Keyfiles
/// store their own parameters: older ones keep 64 MiB and 3 passes.
#[derive(Debug, Clone, Copy)]
pub struct KdfParams {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl KdfParams {
    /// Bounds on parameters read from a keyfile, checked before they are
    /// used: the parameters are authenticated only by the tag that the
    /// derived key checks, so a tampered keyfile could otherwise make an
    /// unlock allocate terabytes or run for days. 4 GiB and 64 passes are
    /// far beyond any sensible setting.
    const MAX_M_KIB: u32 = 4 * 1024 * 1024;
    const MAX_T: u32 = 64;
    const MAX_P: u32 = 64;

    fn check(&self) -> std::result::Result<(), String> {
        let ok = (1..=Self::MAX_P).contains(&self.p)
            && (8 * self.p..=Self::MAX_M_KIB).contains(&self.m_kib)
            && (1..=Self::MAX_T).contains(&self.t);
        if ok {
            Ok(())
        } else {
            Err(format!(
                "its Argon2 parameters (memory {} KiB, {} passes, {} lanes) are out of range \
                 (at most {} KiB, {} passes, {} lanes): the file was damaged or tampered with; \
                 recover from the 24-word phrase into a new TROVE_HOME",
                self.m_kib,
                self.t,
                self.p,
                Self::MAX_M_KIB,
                Self::MAX_T,
                Self::MAX_P
            ))
        }
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            m_kib: 32 * 1024,
            t: 6,
            p: 1,
        }
    }
}

fn derive(passphrase: &[u8], salt: &[u8], p: KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(p.m_kib, p.t, p.p, Some(32))
        .map_err(|e| RepoError::Format(format!("argon2 parameters: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| RepoError::Format(format!("argon2: {e}")))?;
    Ok(out)
}

/// The keyfile bytes for `master` under `passphrase`: a fresh random salt
/// and nonce, the given KDF parameters.
fn seal(master: &MasterSecret, passphrase: &[u8], kdf: KdfParams) -> Result<Vec<u8>> {
    let salt: [u8; 16] = rand::random();
    let nonce: [u8; 24] = rand::random();
    let mut out = Vec::with_capacity(FILE_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    for v in [kdf.m_kib, kdf.t, kdf.p] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&salt);
    out.extend_from_slice(&master.identity().public().0);
    let key = derive(passphrase, &salt, kdf)?;
    let ct = XChaCha20Poly1305::new(key.as_ref().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: master.as_bytes(),
                aad: &out,
            },
        )
        .expect("encrypting 32 bytes cannot fail");
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Write a new keyfile (fsynced); refuses to replace an existing one.
pub fn create(path: &Path, master: &MasterSecret, passphrase: &[u8], kdf: KdfParams) -> Result<()> {
    let out = seal(master, passphrase, kdf)?;
    // A crash leaves either no keyfile or a whole one, and an existing
    // keyfile is never replaced.
    durable::create_new(path, &out, None).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => RepoError::IdentityExists(path.to_owned()),
        _ => RepoError::io("create", path, e),
    })
}

/// Re-wrap the master secret of an existing keyfile under a new
/// passphrase (`trove passphrase change`): a fresh salt and nonce, the
/// keyfile's own KDF parameters. `master` must be the secret the keyfile
/// holds (its identity is compared with the stored one); the caller has
/// unlocked it with the current passphrase. The new file replaces the old
/// one with [`durable::replace`] (a temporary file beside it, `0600`,
/// `fsync`ed, renamed over the keyfile, the folder `fsync`ed): a crash
/// leaves the old keyfile or the new one, never neither or a mix.
pub fn rewrap(path: &Path, master: &MasterSecret, new_passphrase: &[u8]) -> Result<()> {
    let b = read(path)?;
    let kdf = stored_kdf(path, &b)?;
    if master.identity().public().0 != b[33..65] {
        return Err(RepoError::Keyfile {
            path: path.to_owned(),
            reason: "it holds another identity than the secret to re-wrap".into(),
        });
    }
    let out = seal(master, new_passphrase, kdf)?;
    durable::replace(path, &out, None).map_err(|e| RepoError::io("replace", path, e))
}

/// Write a new keyfile at `path` for another master secret under the same
/// passphrase and KDF parameters as the keyfile at `like` (a master secret
/// rotation's next keyfile); refuses to replace an existing file.
pub fn create_like(
    path: &Path,
    like: &Path,
    master: &MasterSecret,
    passphrase: &[u8],
) -> Result<()> {
    let kdf = stored_kdf(like, &read(like)?)?;
    create(path, master, passphrase, kdf)
}

/// The KDF parameters stored in keyfile bytes `b`, checked to be in range.
fn stored_kdf(path: &Path, b: &[u8]) -> Result<KdfParams> {
    let word = |i: usize| u32::from_le_bytes(b[5 + 4 * i..9 + 4 * i].try_into().expect("4 bytes"));
    let kdf = KdfParams {
        m_kib: word(0),
        t: word(1),
        p: word(2),
    };
    kdf.check().map_err(|reason| RepoError::Keyfile {
        path: path.to_owned(),
        reason,
    })?;
    Ok(kdf)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            RepoError::NoIdentity(path.parent().unwrap_or(path).to_owned())
        }
        _ => RepoError::io("read", path, e),
    })?;
    if bytes.len() != FILE_LEN || &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return Err(RepoError::Keyfile {
            path: path.to_owned(),
            reason: "not a version-1 Trove keyfile".into(),
        });
    }
    Ok(bytes)
}

/// The public identity, readable without the passphrase.
pub fn public_identity(path: &Path) -> Result<PublicIdentity> {
    let b = read(path)?;
    Ok(PublicIdentity(b[33..65].try_into().expect("32 bytes")))
}

/// Unlock the master secret.
pub fn unlock(path: &Path, passphrase: &[u8]) -> Result<MasterSecret> {
    let b = read(path)?;
    let kdf = stored_kdf(path, &b)?;
    let key = derive(passphrase, &b[17..33], kdf)?;
    let pt = Zeroizing::new(
        XChaCha20Poly1305::new(key.as_ref().into())
            .decrypt(
                XNonce::from_slice(&b[HEADER_LEN..HEADER_LEN + 24]),
                Payload {
                    msg: &b[HEADER_LEN + 24..],
                    aad: &b[..HEADER_LEN],
                },
            )
            .map_err(|_| RepoError::WrongPassphrase(path.to_owned()))?,
    );
    let master = MasterSecret::from_bytes(pt.as_slice().try_into().expect("32 bytes"));
    if master.identity().public().0 != b[33..65] {
        return Err(RepoError::Keyfile {
            path: path.to_owned(),
            reason: "stored identity does not match the secret".into(),
        });
    }
    Ok(master)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn create_unlock_wrong_passphrase_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyfile");
        let m = MasterSecret::generate();
        create(&path, &m, b"correct horse", FAST).unwrap();
        assert_eq!(
            unlock(&path, b"correct horse").unwrap().as_bytes(),
            m.as_bytes()
        );
        assert!(matches!(
            unlock(&path, b"wrong"),
            Err(RepoError::WrongPassphrase(_))
        ));
        assert!(matches!(
            create(&path, &m, b"x", FAST),
            Err(RepoError::IdentityExists(_))
        ));
        assert_eq!(public_identity(&path).unwrap(), m.identity().public());
        // Tampering with the KDF parameters or identity breaks the tag.
        let mut b = std::fs::read(&path).unwrap();
        b[40] ^= 1;
        std::fs::write(&path, &b).unwrap();
        assert!(unlock(&path, b"correct horse").is_err());
    }

    /// A tampered keyfile asking for a huge Argon2 memory or pass count is
    /// refused before Argon2 runs (the parameters are only authenticated by
    /// the tag the derived key checks).
    #[test]
    fn out_of_range_kdf_parameters_are_refused_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyfile");
        create(&path, &MasterSecret::generate(), b"pass", FAST).unwrap();
        let good = std::fs::read(&path).unwrap();
        for (offset, value) in [(5, u32::MAX), (9, 1_000_000), (13, 0), (5, 4)] {
            let mut b = good.clone();
            b[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
            std::fs::write(&path, &b).unwrap();
            match unlock(&path, b"pass") {
                Err(RepoError::Keyfile { reason, .. }) => {
                    assert!(reason.contains("out of range"), "{reason}")
                }
                other => panic!("offset {offset} = {value}: {other:?}"),
            }
        }
    }

    /// `trove passphrase change`: the same secret under a new passphrase,
    /// a new salt, the same KDF parameters and identity, still private, and
    /// no temporary file left beside it.
    #[test]
    fn rewrap_changes_the_passphrase_and_nothing_else() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyfile");
        let m = MasterSecret::generate();
        let kdf = KdfParams {
            m_kib: 72,
            t: 2,
            p: 1,
        };
        create(&path, &m, b"old pass", kdf).unwrap();
        let before = std::fs::read(&path).unwrap();
        let unlocked = unlock(&path, b"old pass").unwrap();
        rewrap(&path, &unlocked, b"new pass").unwrap();
        let after = std::fs::read(&path).unwrap();

        assert!(matches!(
            unlock(&path, b"old pass"),
            Err(RepoError::WrongPassphrase(_))
        ));
        assert_eq!(unlock(&path, b"new pass").unwrap().as_bytes(), m.as_bytes());
        assert_eq!(public_identity(&path).unwrap(), m.identity().public());
        assert_eq!(after.len(), FILE_LEN);
        assert_eq!(after[..17], before[..17], "magic, version, KDF parameters");
        assert_ne!(after[17..33], before[17..33], "a fresh salt");
        assert_eq!(after[33..65], before[33..65], "the public identity");
        assert_ne!(after[65..89], before[65..89], "a fresh nonce");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keyfile"], "no temporary file is left");

        // Another identity's secret is refused, and the keyfile is kept.
        match rewrap(&path, &MasterSecret::generate(), b"x") {
            Err(RepoError::Keyfile { reason, .. }) => {
                assert!(reason.contains("another identity"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), after);
    }

    #[test]
    fn the_keyfile_is_private() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyfile");
        create(&path, &MasterSecret::generate(), b"pass", FAST).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }
}
