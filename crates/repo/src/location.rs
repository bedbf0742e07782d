//! Where a peer is: the parsed form of a roster's `location` string. The
//! string stays the persisted form (container manifests, the index); it is
//! parsed here, once, into a type.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use trove_node::NodeTicket;
use trove_remote::{RemoteLocation, RemoteLocationError};

const DIR: &str = "dir:";
const NODE: &str = "node:";
/// How a node ticket starts (tickets may be given without `node:`).
const TICKET_PREFIX: &str = "trovenode";

/// Where a peer's fragments and metadata live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerLocation {
    /// A folder on a local or mounted disk: `dir:/abs/path`.
    Folder(PathBuf),
    /// A Trove node, reached over the network: `node:trovenode1…`.
    Node(NodeTicket),
    /// A bucket or WebDAV folder: `s3://BUCKET/PREFIX?endpoint=URL&region=R`,
    /// `webdav://HOST[:PORT]/PATH`. Never holds a credential.
    Remote(RemoteLocation),
}

/// A location that cannot be used, and what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    #[error(
        "peer location `{0}` is not understood; use dir:PATH for a folder peer, a node's ticket (trovenode1...), s3://BUCKET/PREFIX?endpoint=URL&region=R or webdav://HOST[:PORT]/PATH"
    )]
    Unknown(String),
    #[error(transparent)]
    Remote(#[from] RemoteLocationError),
    #[error("dir: needs a path, e.g. dir:/mnt/usb/trove")]
    EmptyPath,
    #[error("{0}")]
    BadTicket(String),
    #[error("{} is already a peer", .0.display())]
    FolderTaken(PathBuf),
    #[error("node {node} is already peer `{peer}`")]
    NodeTaken { node: String, peer: String },
    #[error("{location} is already peer `{peer}`")]
    RemoteTaken { location: String, peer: String },
}

impl PeerLocation {
    /// A location as the user typed it: `dir:PATH` (made absolute), or a
    /// node ticket with or without `node:`.
    pub fn from_user(input: &str) -> Result<Self, LocationError> {
        if let Some(path) = input.strip_prefix(DIR) {
            if path.is_empty() {
                return Err(LocationError::EmptyPath);
            }
            let abs =
                std::path::absolute(path).map_err(|_| LocationError::Unknown(input.to_owned()))?;
            return Ok(PeerLocation::Folder(abs));
        }
        if RemoteLocation::is_remote(input) {
            return Ok(PeerLocation::Remote(input.parse()?));
        }
        let ticket = input.strip_prefix(NODE).unwrap_or(input);
        if ticket.starts_with(TICKET_PREFIX) {
            return ticket
                .parse()
                .map(PeerLocation::Node)
                .map_err(|e: trove_node::NodeError| LocationError::BadTicket(e.to_string()));
        }
        Err(LocationError::Unknown(input.to_owned()))
    }

    /// The folder, for a folder peer.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            PeerLocation::Folder(p) => Some(p),
            PeerLocation::Node(_) | PeerLocation::Remote(_) => None,
        }
    }
}

impl FromStr for PeerLocation {
    type Err = LocationError;
    /// The persisted form (`dir:/abs/path` or `node:TICKET`).
    fn from_str(s: &str) -> Result<Self, LocationError> {
        if let Some(path) = s.strip_prefix(DIR) {
            if path.is_empty() {
                return Err(LocationError::EmptyPath);
            }
            return Ok(PeerLocation::Folder(PathBuf::from(path)));
        }
        if RemoteLocation::is_remote(s) {
            return Ok(PeerLocation::Remote(s.parse()?));
        }
        if let Some(ticket) = s.strip_prefix(NODE) {
            return ticket
                .parse()
                .map(PeerLocation::Node)
                .map_err(|e: trove_node::NodeError| LocationError::BadTicket(e.to_string()));
        }
        Err(LocationError::Unknown(s.to_owned()))
    }
}

impl fmt::Display for PeerLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerLocation::Folder(p) => write!(f, "{DIR}{}", p.display()),
            PeerLocation::Node(t) => write!(f, "{NODE}{t}"),
            PeerLocation::Remote(r) => write!(f, "{r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_bad_ones_say_what_to_type() {
        let dir: PeerLocation = "dir:/mnt/usb/trove".parse().unwrap();
        assert_eq!(dir, PeerLocation::Folder("/mnt/usb/trove".into()));
        assert_eq!(dir.to_string(), "dir:/mnt/usb/trove");
        let ticket = NodeTicket {
            node: trove_node::OwnerId::from_seed(&[3; 32]).0,
            addrs: vec!["127.0.0.1:7420".parse().unwrap()],
            relay: None,
        };
        let node = PeerLocation::from_user(&ticket.to_string()).unwrap();
        assert_eq!(node, PeerLocation::Node(ticket.clone()));
        assert_eq!(node.to_string().parse::<PeerLocation>().unwrap(), node);
        assert_eq!(
            PeerLocation::from_user(&format!("node:{ticket}")).unwrap(),
            node
        );
        let s3 = PeerLocation::from_user("s3://bk1/p?endpoint=http://127.0.0.1:8333").unwrap();
        assert!(matches!(s3, PeerLocation::Remote(_)));
        assert_eq!(s3.to_string().parse::<PeerLocation>().unwrap(), s3);
        assert!(matches!(
            PeerLocation::from_user("s3://key:secret@bk1/p"),
            Err(LocationError::Remote(_))
        ));
        let rel = PeerLocation::from_user("dir:rel/path").unwrap();
        assert!(rel.folder().unwrap().is_absolute());
        assert_eq!(
            PeerLocation::from_user("dir:"),
            Err(LocationError::EmptyPath)
        );
        assert!(matches!(
            PeerLocation::from_user("/mnt/usb"),
            Err(LocationError::Unknown(_))
        ));
        assert!(matches!(
            PeerLocation::from_user("trovenode1garbage"),
            Err(LocationError::BadTicket(_))
        ));
    }
}
