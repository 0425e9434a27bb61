//! Layers that protect the API: the client's address, rate limits and CORS.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, SizeHint};

use super::error::problem;
use super::extract::CheckedBearer;
use crate::domain::Quota;
use crate::domain::Timestamp;
use crate::limits::address::{is_trusted, resolve};
use crate::limits::{Verdict, bucket_ip};
use crate::state::AppState;

/// The address of the client, as `limits::address` derives it; every layer and handler uses this one.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

pub async fn client_address(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let headers = req.headers();
        // Only the header the operator's proxy sets (IMANGOR_CLIENT_IP_HEADER); any other
        // forwarding header could have been written by the client and passed on untouched.
        // Read as bytes: a client's byte outside ASCII, which the proxy passes on in the same
        // line as the address it appends, spoils only its own part of the line.
        let resolved = resolve(
            peer.ip(),
            app.config.client_ip_header,
            |name| {
                headers
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()))
                    .collect()
            },
            &app.config.trusted_proxies,
            app.config.trusted_hops,
        );
        // A trusted proxy's request whose client cannot be read is refused: counted as the
        // proxy's own it would share the proxy's budget and escape the connection share.
        let Some(resolved) = resolved else {
            tracing::warn!(target: "security", peer = %peer.ip(), header = app.config.client_ip_header.name(), "a trusted proxy's forwarding header names no readable client; refused");
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid_forwarding_header",
                "the client address cannot be read from the forwarding header",
                None,
            );
        };
        // Drill traffic (signed with IMANGOR_DRILL_KEY) comes from the drill address it names:
        // every layer below (blocks, limits, the login guard, the audit trail) sees that one, so
        // whatever the drill sets off is keyed on an address no real client has.
        let drill = drill_address(&app, &req, resolved);
        let ip = drill.unwrap_or(resolved);
        let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
        // A blocked address stays blocked with a drill header too (a captured header must not
        // lift a block of its sender).
        if !probe
            && (app.guards.blocks.is_blocked(ip)
                || (drill.is_some() && app.guards.blocks.is_blocked(resolved)))
        {
            return problem(
                StatusCode::FORBIDDEN,
                "address_blocked",
                "requests from this address are blocked for now",
                None,
            );
        }
        // Through a trusted proxy the client's connections are the proxy's, which are not
        // counted (`http::server`): its requests in flight are, against the same share.
        let trusted = &app.config.trusted_proxies;
        let forwarded = is_trusted(peer.ip(), trusted) && !is_trusted(ip, trusted);
        let share = if forwarded {
            match app.guards.shares.take(ip) {
                Some(s) => Some(s),
                None => {
                    let mut r = problem(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_connections",
                        "too many requests in flight from this address; retry later",
                        None,
                    );
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    return r;
                }
            }
        } else {
            None
        };
        req.extensions_mut().insert(ClientIp(ip));
        let res = next.run(req).await;
        drop(share);
        return res;
    }
    next.run(req).await
}

/// The drill address of a request carrying a valid drill header, when the server has a drill
/// key (`crypto::drill`), presented for the first time; `None` leaves it ordinary traffic. The
/// real address of drill traffic is logged (the audit trail records the drill address).
fn drill_address(app: &AppState, req: &Request, client: IpAddr) -> Option<IpAddr> {
    let key = app.config.drill_key.as_ref()?;
    let value = req
        .headers()
        .get(crate::crypto::drill::HEADER)?
        .to_str()
        .ok()?;
    let addr = crate::crypto::drill::verify(
        key.expose().as_bytes(),
        value,
        Timestamp::now().unix_seconds(),
        req.method().as_str(),
        req.uri().path(),
    );
    match addr {
        Some(a) if app.guards.drill_seen.first(value) => {
            tracing::info!(target: "security", drill = %a, client = %client, "drill traffic");
            Some(a)
        }
        Some(_) => {
            tracing::warn!(target: "security", client = %client, "a drill header presented again; the request is ordinary traffic");
            None
        }
        None => {
            tracing::warn!(target: "security", client = %client, "a drill header that does not verify; the request is ordinary traffic");
            None
        }
    }
}

/// The body of a request must be in within `IMANGOR_BODY_TIMEOUT` of its headers: with bodies of
/// at most 128 KiB that is a minimum rate, and a client sending a byte at a time is answered
/// 408 and its connection closed, instead of holding it for the whole request timeout.
pub async fn body_deadline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let late = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| {
        Body::new(Deadline {
            body,
            deadline: Box::pin(tokio::time::sleep(app.config.body_timeout)),
            late: late.clone(),
        })
    });
    let res = next.run(req).await;
    if !late.load(Ordering::Relaxed) {
        return res;
    }
    let mut r = problem(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        "the request body did not arrive in time",
        None,
    );
    // The rest of the body may still come: the connection cannot carry another request.
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// A request body that fails once its deadline has passed, and says so in `late`.
struct Deadline {
    body: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    late: Arc<AtomicBool>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.late.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new("request body timeout"))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Which limit a request falls under; the documentation is not limited.
fn quota(app: &AppState, method: &Method, path: &str) -> Option<(&'static str, Quota)> {
    let c = &app.config;
    match (method, path) {
        // Probes cost nothing (readiness answers the background probe's last result) but are
        // still limited per address, in a bucket of their own, so that no flood of them from one
        // address is free and no API traffic from a probe's address can fail the probe.
        (_, "/healthz" | "/readyz") => Some(("health", c.rate_limit_api)),
        (_, p) if p.starts_with("/docs") || p == "/openapi.json" => None,
        // The sign-in page's form takes passwords as the token endpoint does: the same budget.
        (&Method::POST, "/api/v1/token" | "/oauth/authorize") => {
            Some(("token", c.rate_limit_token))
        }
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
    // must not buy a second budget of guesses or sign-ups. Probes never carry one.
    let by_user = if matches!(class, "token" | "register" | "health") {
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
    let verdict = app
        .guards
        .limiter
        .check(&format!("{class}:{who}"), quota)
        .await;
    let mut res = if verdict.allowed {
        next.run(req).await
    } else {
        tracing::warn!(target: "security", class, client = %who, "rate limited");
        app.sinks.metrics.throttled(class);
        if class == "token" {
            app.sinks
                .metrics
                .auth(crate::infra::metrics::AuthStatus::RateLimited);
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
    Some(CheckedBearer(
        app.identity.tokens.verify(token, Timestamp::now()),
    ))
}

const CORS_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const CORS_HEADERS: &str = "authorization, content-type";
/// `www-authenticate` among them: a browser client reads why a token was refused (RFC 6750
/// §3.1, `insufficient_scope` and the scope it lacked).
const CORS_EXPOSE: &str = "ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after, www-authenticate, x-request-id";

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
