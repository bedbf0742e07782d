//! The dashboard's token: 32 random bytes (hex) printed at start, without
//! which every request is 401. A GET (or HEAD) may carry it as `?token=`
//! (the URL opened in the browser, download links) or as
//! `Authorization: Bearer`; any other method only in the header, which a
//! page of another site cannot set on a cross-site request, so state
//! cannot be changed by a forged form or link (no CSRF token needed).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The secret a request must present.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// 32 bytes from the OS's random source, as 64 hex digits.
    pub fn random() -> Self {
        Self(hex::encode(rand::random::<[u8; 32]>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the token, in time that does not depend on where
    /// they differ (the length is no secret: always 64).
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The token of the `Authorization: Bearer` header.
fn from_header(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The `token` parameter of the query (hex: nothing to percent-decode; a
/// token that was encoded anyway just does not match).
fn from_query(req: &Request) -> Option<&str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
}

/// The middleware in front of every route: 401 unless the request carries
/// the token where its method allows (see the module doc).
pub async fn require(State(token): State<Token>, req: Request, next: Next) -> Response {
    let query_allowed = matches!(*req.method(), Method::GET | Method::HEAD);
    let ok = from_header(&req).is_some_and(|t| token.matches(t))
        || (query_allowed && from_query(&req).is_some_and(|t| token.matches(t)));
    if !ok {
        let why = if query_allowed {
            "missing or wrong token: open the URL `trove ui` printed (it ends in ?token=...)\n"
        } else {
            "missing or wrong token: a request that is not a GET must carry it in an `Authorization: Bearer` header\n"
        };
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // The token is in the page's URL: never send it on as a Referer, and
    // keep pages and answers (file names) out of caches.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn matches_only_the_same_token() {
        let t = Token::random();
        assert_eq!(t.as_str().len(), 64);
        assert!(t.matches(t.as_str()));
        let mut wrong = t.as_str().to_owned().into_bytes();
        wrong[63] = if wrong[63] == b'0' { b'1' } else { b'0' };
        assert!(!t.matches(std::str::from_utf8(&wrong).unwrap()));
        assert!(!t.matches(&t.as_str()[..63]));
        assert!(!t.matches(""));
        assert_ne!(Token::random().as_str(), t.as_str());
    }
}
