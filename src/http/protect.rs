//! Layers that protect the API: the client's address, rate limits and CORS.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::problem;
use super::extract::CheckedBearer;
use crate::domain::Timestamp;
use crate::limits::address::{client_ip, forwarded_for_hops};
use crate::limits::{Quota, Verdict, bucket_ip};
use crate::state::AppState;

/// The address of the client, as `limits::address` derives it; every layer and handler uses this one.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

pub async fn client_address(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let values = |name: &str| -> Vec<&str> {
            req.headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        // RFC 7239 `Forwarded` when the proxy sends it, else the de facto `X-Forwarded-For`.
        let forwarded = forwarded_for_hops(&values("forwarded"));
        let hops: Vec<&str> = if forwarded.is_empty() {
            values("x-forwarded-for")
        } else {
            forwarded.iter().map(String::as_str).collect()
        };
        let ip = client_ip(peer.ip(), &hops, &app.config.trusted_proxies);
        let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
        if !probe && app.blocks.is_blocked(ip) {
            return problem(
                StatusCode::FORBIDDEN,
                "address_blocked",
                "requests from this address are blocked for now",
                None,
            );
        }
        req.extensions_mut().insert(ClientIp(ip));
    }
    next.run(req).await
}

/// Which limit a request falls under; probes and the documentation are not limited.
fn quota(app: &AppState, method: &Method, path: &str) -> Option<(&'static str, Quota)> {
    let c = &app.config;
    match (method, path) {
        (_, "/healthz" | "/readyz") => None,
        (_, p) if p.starts_with("/docs") || p == "/openapi.json" => None,
        (&Method::POST, "/api/v1/token") => Some(("token", c.rate_limit_token)),
        (&Method::POST, "/api/v1/users") => Some(("register", c.rate_limit_register)),
        _ => Some(("api", c.rate_limit_api)),
    }
}

/// GCRA limits per client and route class: the user when the request carries a valid token,
/// otherwise the address. Every limited answer carries `RateLimit-*`; a refusal is 429 with `Retry-After`.
pub async fn rate_limit(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if !app.config.rate_limits {
        return next.run(req).await;
    }
    let Some((class, quota)) = quota(&app, req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let address = req
        .extensions()
        .get::<ClientIp>()
        .map(|ip| format!("ip:{}", bucket_ip(ip.0)));
    // Logging in and registering are limited per address whatever token comes along: a token
    // must not buy a second budget of guesses or sign-ups.
    let by_user = if matches!(class, "token" | "register") {
        None
    } else {
        checked_bearer(&app, &req).and_then(|checked| {
            let verified = checked.0.as_ref().ok().cloned();
            req.extensions_mut().insert(checked);
            verified
        })
    };
    let who = by_user
        .map(|v| format!("user:{}", v.user))
        .or(address)
        .unwrap_or_else(|| "ip:unknown".to_owned());
    let verdict = app.limiter.check(&format!("{class}:{who}"), quota).await;
    let mut res = if verdict.allowed {
        next.run(req).await
    } else {
        tracing::warn!(target: "security", class, client = %who, "rate limited");
        app.metrics.throttled(class);
        if class == "token" {
            app.metrics.auth(crate::metrics::AuthStatus::RateLimited);
        }
        let mut r = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry later",
            None,
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(verdict.retry_after_s),
        );
        r
    };
    rate_headers(res.headers_mut(), &verdict);
    res
}

fn rate_headers(h: &mut HeaderMap, v: &Verdict) {
    h.insert(
        HeaderName::from_static("ratelimit-limit"),
        HeaderValue::from(v.limit),
    );
    h.insert(
        HeaderName::from_static("ratelimit-remaining"),
        HeaderValue::from(v.remaining),
    );
    h.insert(
        HeaderName::from_static("ratelimit-reset"),
        HeaderValue::from(v.reset_s),
    );
}

/// The outcome of checking the request's bearer token, if it has one (signature and claims; no
/// database look-up: a verified one is a throttling key, never an authentication). Kept on the
/// request so the `Principal` extractor does not check it a second time.
fn checked_bearer(app: &AppState, req: &Request) -> Option<CheckedBearer> {
    let token = super::extract::bearer(req.headers()).ok().flatten()?;
    Some(CheckedBearer(app.tokens.verify(token, Timestamp::now())))
}

const CORS_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const CORS_HEADERS: &str = "authorization, content-type";
const CORS_EXPOSE: &str =
    "ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after, x-request-id";

/// CORS with an exact allowlist: a listed origin is echoed (never `*` with credentials), with
/// explicit methods and headers; any other origin, `null` included, gets no `Access-Control-*`.
pub async fn cors(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let allowed = origin.as_deref().filter(|o| {
        app.config
            .cors_origins
            .iter()
            // `null` (sandboxed frames, file:// pages) is never an allowed origin, not even for `*`.
            .any(|a| a == o || (a == "*" && *o != "null" && !app.config.cors_credentials))
    });
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = if preflight {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = if allowed.is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::FORBIDDEN
        };
        r
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = allowed.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        if app.config.cors_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(CORS_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(CORS_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        } else {
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(CORS_EXPOSE),
            );
        }
    }
    res
}
