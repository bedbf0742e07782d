//! What signs a remote peer's requests. Credentials live on this machine
//! only: in `TROVE_HOME/credentials.toml` (mode 0600) or the environment.
//! They are never written into the roster, a manifest, a log or an error
//! message (docs/design.md §6b.2); `Debug` prints them redacted.
//!
//! ```toml
//! version = 1
//! [peers.cloud-1]                 # by peer name
//! access_key_id = "AKIA..."
//! secret_access_key = "..."
//! [peers.nas]                     # a WebDAV peer
//! username = "me"
//! password = "..."
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::location::RemoteLocation;

/// The file, in `TROVE_HOME`.
pub const CREDENTIALS_FILE: &str = "credentials.toml";
const FORMAT_VERSION: u32 = 1;

/// What one remote peer signs its requests with.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Credentials")
            .field("access_key_id", &shown(&self.access_key_id))
            .field("secret_access_key", &shown(&self.secret_access_key))
            .field("session_token", &shown(&self.session_token))
            .field("username", &shown(&self.username))
            .field("password", &shown(&self.password))
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    #[serde(default)]
    peers: BTreeMap<String, Credentials>,
}

/// Why the credentials file cannot be used. Never quotes its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    #[error(
        "{} can be read by other users of this machine (mode {mode:o}): run `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not valid: {reason} (expected `version = 1` and [peers.NAME] tables of \
         access_key_id/secret_access_key or username/password)",
        .path.display()
    )]
    Invalid { path: PathBuf, reason: String },
    #[error("{} has version {found}; this Trove reads version {FORMAT_VERSION}", .path.display())]
    Version { path: PathBuf, found: u32 },
}

impl Credentials {
    /// The credentials of peer `name` at `location`: its table in
    /// `home/credentials.toml` if there is one, else the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
    /// for S3; `TROVE_WEBDAV_USERNAME`, `TROVE_WEBDAV_PASSWORD` for WebDAV).
    /// Empty when neither has any: the request then goes unsigned.
    pub fn for_peer(
        home: &Path,
        name: &str,
        location: &RemoteLocation,
    ) -> Result<Credentials, CredentialsError> {
        if let Some(c) = read_file(&home.join(CREDENTIALS_FILE))?.remove(name) {
            return Ok(c);
        }
        Ok(Self::from_env(location, |k| std::env::var(k).ok()))
    }

    fn from_env(location: &RemoteLocation, var: impl Fn(&str) -> Option<String>) -> Credentials {
        let var = |k: &str| var(k).filter(|v| !v.is_empty());
        match location {
            RemoteLocation::S3 { .. } => Credentials {
                access_key_id: var("AWS_ACCESS_KEY_ID"),
                secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
                session_token: var("AWS_SESSION_TOKEN"),
                ..Credentials::default()
            },
            RemoteLocation::WebDav { .. } => Credentials {
                username: var("TROVE_WEBDAV_USERNAME"),
                password: var("TROVE_WEBDAV_PASSWORD"),
                ..Credentials::default()
            },
        }
    }

    /// Whether anything signs the requests.
    pub fn is_empty(&self) -> bool {
        *self == Credentials::default()
    }
}

/// The peers' tables of the file; none when the file does not exist.
fn read_file(path: &Path) -> Result<BTreeMap<String, Credentials>, CredentialsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(CredentialsError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        path: path.to_owned(),
        source,
    })?;
    // toml's message may quote the offending line: only its position is
    // kept, so no secret reaches the screen.
    let file: File = toml::from_str(&text).map_err(|e| CredentialsError::Invalid {
        path: path.to_owned(),
        reason: match e.span() {
            Some(span) => format!("error at byte {}", span.start),
            None => "not understood".to_owned(),
        },
    })?;
    if file.version != FORMAT_VERSION {
        return Err(CredentialsError::Version {
            path: path.to_owned(),
            found: file.version,
        });
    }
    Ok(file.peers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn s3() -> RemoteLocation {
        "s3://bk1/x".parse().unwrap()
    }

    #[test]
    fn file_wins_then_environment() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(CREDENTIALS_FILE);
        std::fs::write(
            &path,
            "version = 1\n[peers.c1]\naccess_key_id = \"AK\"\nsecret_access_key = \"SECRET-XYZ\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Credentials::for_peer(home.path(), "c1", &s3()).unwrap();
        assert_eq!(c.secret_access_key.as_deref(), Some("SECRET-XYZ"));
        assert!(!format!("{c:?}").contains("SECRET-XYZ"), "Debug redacts");
        let env = Credentials::from_env(&s3(), |k| {
            (k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY").then(|| format!("v-{k}"))
        });
        assert_eq!(env.access_key_id.as_deref(), Some("v-AWS_ACCESS_KEY_ID"));
        assert!(env.session_token.is_none());
        let dav: RemoteLocation = "webdav://h/x".parse().unwrap();
        assert!(Credentials::from_env(&dav, |_| None).is_empty());
    }

    #[test]
    fn exposed_or_broken_files_are_refused_without_quoting_them() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(CREDENTIALS_FILE);
        std::fs::write(
            &path,
            "version = 1\n[peers.c1]\nsecret_access_key = SECRET-XYZ\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Credentials::for_peer(home.path(), "c1", &s3()).unwrap_err();
        assert!(matches!(e, CredentialsError::Exposed { mode: 0o644, .. }));
        assert!(e.to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Credentials::for_peer(home.path(), "c1", &s3()).unwrap_err();
        assert!(matches!(e, CredentialsError::Invalid { .. }));
        assert!(!e.to_string().contains("SECRET-XYZ"), "{e}");
        std::fs::write(&path, "version = 2\n").unwrap();
        assert!(matches!(
            Credentials::for_peer(home.path(), "c1", &s3()).unwrap_err(),
            CredentialsError::Version { found: 2, .. }
        ));
    }
}
