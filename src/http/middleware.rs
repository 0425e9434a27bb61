//! Cross-cutting layers: request ids, security headers, problem bodies for router-level errors.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use axum::extract::State;

use super::error::problem;
use crate::authz::Denial;
use crate::service::audit::RequestMeta;
use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every request gets a fresh id; one sent by the client is replaced (it could be forged or reused).
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
        .expect("a UUID is a valid header value");
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let mut res = next.run(req).await;
    res.headers_mut().insert(REQUEST_ID, id);
    res
}

const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
/// The documentation page loads only its own scripts and styles, from this server.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The console runs only its own script and style: no inline code, no other origin, no framing;
/// it talks to this server alone.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every answer, and problem+json bodies for the router's own 404 and 405.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let docs = req.uri().path().starts_with("/docs");
    let console = req.uri().path() == "/console" || req.uri().path().starts_with("/console/");
    let oauth_page = req.uri().path() == "/oauth/authorize";
    let mut res = next.run(req).await;
    if matches!(res.status(), StatusCode::METHOD_NOT_ALLOWED)
        && !res.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = res.headers().get(header::ALLOW).cloned();
        res = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this path",
            None,
        );
        if let Some(a) = allow {
            res.headers_mut().insert(header::ALLOW, a);
        }
    }
    if res.status() == StatusCode::REQUEST_TIMEOUT
        && !res.headers().contains_key(header::CONTENT_TYPE)
    {
        res = problem(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request took longer than the server allows",
            None,
        );
    }
    let h = res.headers_mut();
    // Room for the headers below at once: the map otherwise grows (and rehashes) twice.
    h.reserve(8);
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    );
    // The OAuth pages set their own policy (their forms may lead to the client's redirect URI).
    if !(oauth_page && h.contains_key(header::CONTENT_SECURITY_POLICY)) {
        set(
            h,
            header::CONTENT_SECURITY_POLICY,
            if docs {
                DOCS_CSP
            } else if console {
                CONSOLE_CSP
            } else {
                API_CSP
            },
        );
    }
    set(
        h,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    if !docs && !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

/// Every refusal by the authorization policy becomes a security event (actor, action, target,
/// client address, request id), whichever handler it came from.
pub async fn record_denials(
    State(app): State<AppState>,
    meta: RequestMeta,
    req: Request,
    next: Next,
) -> Response {
    let res = next.run(req).await;
    if let Some(d) = res.extensions().get::<Denial>()
        && let Err(e) = crate::service::record_denial(&app.sinks, d, &meta).await
    {
        tracing::error!(error = format!("{e:#}"), "recording a denied access failed");
    }
    res
}

/// Paths that name nothing.
pub async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "not_found", "no such path", None)
}

/// A panic in a handler becomes a generic 500; the panic message goes to the log only.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("?");
    tracing::error!(panic = msg, "handler panicked");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
        None,
    )
}
