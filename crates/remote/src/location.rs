//! Where a remote peer is, as the roster records it: a URL without any
//! secret.

use std::fmt;
use std::str::FromStr;

/// A bucket or a WebDAV folder that holds one peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemoteLocation {
    /// An S3-compatible bucket: AWS, SeaweedFS, MinIO, Garage, R2, ...
    S3 {
        bucket: String,
        /// The folder inside the bucket ("" for the whole bucket), without
        /// leading or trailing slashes.
        prefix: String,
        /// The server's URL; `None` is AWS.
        endpoint: Option<String>,
        region: String,
    },
    /// A WebDAV server (Nextcloud, Apache, rclone serve, SeaweedFS).
    WebDav {
        /// `http` or `https`.
        scheme: String,
        /// `host[:port]`.
        authority: String,
        /// The folder on the server, without leading or trailing slashes.
        path: String,
    },
}

/// A remote location that cannot be used, and what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteLocationError {
    #[error("`{0}` is not a URL: use s3://BUCKET/PREFIX?endpoint=URL&region=R or webdav://HOST[:PORT]/PATH")]
    NotUrl(String),
    #[error("s3:// needs a bucket name, e.g. s3://my-bucket/trove")]
    NoBucket,
    #[error("webdav:// needs a host, e.g. webdav://nas.local:8080/trove")]
    NoHost,
    #[error(
        "the location holds credentials: they never go into the roster, which is replicated to \
         every peer. Put them in TROVE_HOME/credentials.toml (mode 0600) or in the environment \
         (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; TROVE_WEBDAV_USERNAME, TROVE_WEBDAV_PASSWORD)"
    )]
    HoldsCredentials,
    #[error(
        "unknown setting `{0}` in the location: s3:// takes endpoint= and region=, webdav:// none"
    )]
    UnknownSetting(String),
    #[error("endpoint `{0}` is not an http:// or https:// URL")]
    BadEndpoint(String),
}

const DEFAULT_REGION: &str = "us-east-1";

impl RemoteLocation {
    /// Whether `s` names a remote location (as opposed to a folder or a
    /// node), so the caller knows which parser's error to show.
    pub fn is_remote(s: &str) -> bool {
        ["s3://", "webdav://", "webdav+http://"]
            .iter()
            .any(|p| s.starts_with(p))
    }

    /// What a user reads: the location (it holds no secret).
    pub fn kind(&self) -> &'static str {
        match self {
            RemoteLocation::S3 { .. } => "s3",
            RemoteLocation::WebDav { .. } => "webdav",
        }
    }
}

impl FromStr for RemoteLocation {
    type Err = RemoteLocationError;

    fn from_str(s: &str) -> Result<Self, RemoteLocationError> {
        let url = url::Url::parse(s).map_err(|_| RemoteLocationError::NotUrl(s.to_owned()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RemoteLocationError::HoldsCredentials);
        }
        let path = url.path().trim_matches('/').to_owned();
        match url.scheme() {
            "s3" => {
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or(RemoteLocationError::NoBucket)?
                    .to_owned();
                let (mut endpoint, mut region) = (None, DEFAULT_REGION.to_owned());
                for (k, v) in url.query_pairs() {
                    match k.as_ref() {
                        "endpoint" => {
                            let e = url::Url::parse(&v)
                                .ok()
                                .filter(|e| matches!(e.scheme(), "http" | "https"))
                                .filter(|e| e.query().is_none() && e.fragment().is_none())
                                .ok_or_else(|| RemoteLocationError::BadEndpoint(v.to_string()))?;
                            if !e.username().is_empty() || e.password().is_some() {
                                return Err(RemoteLocationError::HoldsCredentials);
                            }
                            endpoint = Some(v.trim_end_matches('/').to_owned());
                        }
                        "region" => region = v.into_owned(),
                        k if is_secret_name(k) => {
                            return Err(RemoteLocationError::HoldsCredentials)
                        }
                        k => return Err(RemoteLocationError::UnknownSetting(k.to_owned())),
                    }
                }
                Ok(RemoteLocation::S3 {
                    bucket,
                    prefix: path,
                    endpoint,
                    region,
                })
            }
            scheme @ ("webdav" | "webdav+http") => {
                if let Some((k, _)) = url.query_pairs().next() {
                    return Err(if is_secret_name(&k) {
                        RemoteLocationError::HoldsCredentials
                    } else {
                        RemoteLocationError::UnknownSetting(k.into_owned())
                    });
                }
                let host = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or(RemoteLocationError::NoHost)?;
                let authority = match url.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_owned(),
                };
                Ok(RemoteLocation::WebDav {
                    scheme: if scheme == "webdav" { "https" } else { "http" }.to_owned(),
                    authority,
                    path,
                })
            }
            _ => Err(RemoteLocationError::NotUrl(s.to_owned())),
        }
    }
}

fn is_secret_name(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["key", "secret", "token", "password", "credential", "user"]
        .iter()
        .any(|w| k.contains(w))
}

impl fmt::Display for RemoteLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                // The endpoint is written as typed (it has no query of its
                // own), so the location reads as the user gave it.
                write!(f, "s3://{bucket}/{prefix}?")?;
                if let Some(e) = endpoint {
                    write!(f, "endpoint={e}&")?;
                }
                write!(f, "region={region}")
            }
            RemoteLocation::WebDav {
                scheme,
                authority,
                path,
            } => {
                let scheme = if scheme == "https" {
                    "webdav"
                } else {
                    "webdav+http"
                };
                write!(f, "{scheme}://{authority}/{path}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_round_trips_and_defaults() {
        let l: RemoteLocation = "s3://bk1/trove/p1?endpoint=http://127.0.0.1:8333&region=eu-1"
            .parse()
            .unwrap();
        assert_eq!(
            l,
            RemoteLocation::S3 {
                bucket: "bk1".into(),
                prefix: "trove/p1".into(),
                endpoint: Some("http://127.0.0.1:8333".into()),
                region: "eu-1".into()
            }
        );
        assert_eq!(l.to_string().parse::<RemoteLocation>().unwrap(), l);
        let aws: RemoteLocation = "s3://bk1".parse().unwrap();
        assert!(
            matches!(aws, RemoteLocation::S3 { ref prefix, endpoint: None, ref region, .. } if prefix.is_empty() && region == "us-east-1")
        );
        assert_eq!(aws.to_string().parse::<RemoteLocation>().unwrap(), aws);
    }

    #[test]
    fn webdav_round_trips() {
        let l: RemoteLocation = "webdav+http://127.0.0.1:7333/a/b/".parse().unwrap();
        assert_eq!(l.to_string(), "webdav+http://127.0.0.1:7333/a/b");
        assert_eq!(l.to_string().parse::<RemoteLocation>().unwrap(), l);
        let s: RemoteLocation = "webdav://nas/x".parse().unwrap();
        assert!(matches!(s, RemoteLocation::WebDav { ref scheme, .. } if scheme == "https"));
    }

    #[test]
    fn secrets_and_nonsense_are_refused() {
        for bad in [
            "s3://AKIA:secret@bk1/x",
            "s3://bk1/x?access_key_id=AKIA",
            "s3://bk1/x?secret_access_key=s",
            "s3://bk1/x?endpoint=http://k:s@host",
            "webdav://u:p@host/x",
            "webdav://host/x?password=p",
        ] {
            assert_eq!(
                bad.parse::<RemoteLocation>(),
                Err(RemoteLocationError::HoldsCredentials),
                "{bad}"
            );
        }
        assert!(matches!(
            "s3://bk1/x?colour=red".parse::<RemoteLocation>(),
            Err(RemoteLocationError::UnknownSetting(_))
        ));
        assert!(matches!(
            "s3://bk1/x?endpoint=ftp://h".parse::<RemoteLocation>(),
            Err(RemoteLocationError::BadEndpoint(_))
        ));
        assert!(matches!(
            "s3://bk1/x?endpoint=http://h/?a=b".parse::<RemoteLocation>(),
            Err(RemoteLocationError::BadEndpoint(_))
        ));
        assert!("s3:///x".parse::<RemoteLocation>().is_err());
        assert!(RemoteLocation::is_remote("s3://b") && !RemoteLocation::is_remote("dir:/x"));
    }
}
