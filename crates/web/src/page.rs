//! The page: `assets/index.html` with `app.css` and `app.js` put inline,
//! so that loading it takes one request (which carries the token in its
//! URL) and nothing comes from elsewhere.

use axum::http::header;
use axum::response::IntoResponse;
use std::sync::LazyLock;

const HTML: &str = include_str!("../assets/index.html");
const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

static PAGE: LazyLock<String> =
    LazyLock::new(|| HTML.replace("/*CSS*/", CSS).replace("/*JS*/", JS));

/// Inline script and style only; the API on this origin; no framing (a
/// page of another site cannot overlay it and trick clicks).
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        PAGE.as_str(),
    )
}
