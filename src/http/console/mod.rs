//! `/console`: the security console for admins and managers, served from assets built into the
//! binary (no CDN, no build step). The page holds the access token in memory only and calls the
//! same API, under the same policy, as any client; it runs under its own strict
//! Content-Security-Policy (`middleware::CONSOLE_CSP`): no inline script or style.
//!
//! The page signs in as the built-in first-party OAuth client (`service::oauth::CONSOLE_CLIENT_ID`,
//! registered at start with the redirect URI `{IMANGOR_PUBLIC_URL}/console`): its "Sign in"
//! button opens the server's sign-in page (`/oauth/authorize`) with a PKCE challenge, and the
//! script exchanges the code that comes back at `POST /api/v1/token`. The page has no password
//! field and no form: nothing it could post, and no `POST /console` (405).

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::state::AppState;

// The assets live at the top of the repository (`console/`), out of `src/`.
const INDEX: &str = include_str!("../../../console/index.html");
const SCRIPT: &str = include_str!("../../../console/console.js");
const STYLE: &str = include_str!("../../../console/console.css");
/// The sign-in pages' one script: passkeys (`navigator.credentials.get`).
const PASSKEY: &str = include_str!("../../../console/passkey.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(index))
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }),
        )
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .route("/console/passkey.js", get(passkey))
}

async fn index(headers: HeaderMap) -> Response {
    static TAG: OnceLock<HeaderValue> = OnceLock::new();
    asset(&headers, INDEX, &TAG, "text/html; charset=utf-8")
}

async fn script(headers: HeaderMap) -> Response {
    static TAG: OnceLock<HeaderValue> = OnceLock::new();
    asset(&headers, SCRIPT, &TAG, "text/javascript; charset=utf-8")
}

async fn passkey(headers: HeaderMap) -> Response {
    static TAG: OnceLock<HeaderValue> = OnceLock::new();
    asset(&headers, PASSKEY, &TAG, "text/javascript; charset=utf-8")
}

async fn style(headers: HeaderMap) -> Response {
    static TAG: OnceLock<HeaderValue> = OnceLock::new();
    asset(&headers, STYLE, &TAG, "text/css; charset=utf-8")
}

/// A strong validator for an asset: its content hash, so a new build is fetched at once.
/// Computed once per asset and process.
fn etag(body: &str, cache: &'static OnceLock<HeaderValue>) -> HeaderValue {
    cache
        .get_or_init(|| {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
            let hex = crate::crypto::hex(&digest.as_ref()[..12]);
            HeaderValue::from_str(&format!("\"{hex}\""))
                .expect("hex digits in quotes are a valid header value")
        })
        .clone()
}

/// Assets hold no data, only code: browsers keep them and revalidate each use (`no-cache` with an
/// ETag, so a reload costs a 304). The data itself comes from the API, which answers `no-store`.
fn asset(
    headers: &HeaderMap,
    body: &'static str,
    tag: &'static OnceLock<HeaderValue>,
    content_type: &'static str,
) -> Response {
    let tag = etag(body, tag);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().as_bytes() == tag.as_bytes()));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, tag);
    res
}
