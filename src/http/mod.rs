//! The HTTP surface: routes, OpenAPI document, documentation page, and the layers around them.

pub mod audit;
pub mod clients;
pub mod console;
pub mod error;
pub mod extract;
pub mod health;
pub mod incidents;
pub mod metrics;
pub mod mfa;
pub mod middleware;
pub mod oauth;
pub mod page;
pub mod protect;
pub mod qr;
pub mod resources;
pub mod secrets;
pub mod security;
pub mod server;
pub mod token;
pub mod users;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

/// Largest request body accepted: room for a resource's 64 KiB of content plus its JSON
/// encoding (escapes); anything larger is a 413 before any parsing.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "imangor", description = "An API server built to the security guide: identity, tokens, authorization, encrypted data."),
    modifiers(&BearerScheme),
    components(schemas(error::Problem)),
    tags((name = "identity", description = "Accounts and OAuth2 tokens"), (name = "resources", description = "Owned resources, ownership-based authorization"), (name = "secrets", description = "Encrypted values, readable by their owner only"), (name = "security operations", description = "The audit trail, incidents, containment"), (name = "keys", description = "Public keys that verify imangor's access tokens"), (name = "health", description = "Probes"))
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The answers any operation can give besides its own: documented on every operation, each with
/// its condition, so that the document lists every status the server can send.
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |why: &str| {
            ResponseBuilder::new()
                .description(why)
                .content(
                    error::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                let oauth = path.starts_with("/api/v1/token");
                let json_body = op.request_body.as_ref().is_some_and(|b| match b {
                    utoipa::openapi::RefOr::T(b) => b.content.contains_key("application/json"),
                    utoipa::openapi::RefOr::Ref(_) => false,
                });
                let mut add = |code: &str, why: &str| {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| problem(why).into());
                };
                if json_body {
                    add("400", "the body is not well-formed JSON");
                    add("413", "the body is larger than 128 KiB");
                    add("415", "the body is not application/json");
                    add("422", "invalid input; `errors` lists each field");
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    add("422", "invalid parameters; `errors` lists each one");
                }
                if op.security.is_some() {
                    add("401", "no valid bearer token (`WWW-Authenticate: Bearer`)");
                }
                if oauth || op.request_body.is_some() {
                    add("413", "the body is larger than 128 KiB");
                }
                if path.starts_with("/api/") {
                    add(
                        "403",
                        "forbidden; or the client's address is blocked (containment)",
                    );
                    add("429", "rate limited; `Retry-After` says when to retry");
                    add(
                        "503",
                        "the server is busy or its database is unreachable; retry later",
                    );
                }
            }
        }
    }
}

/// The routes and the OpenAPI document generated from them (so the two cannot drift).
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(
            "/api/v1",
            users::router()
                .merge(token::router())
                .merge(resources::router())
                .merge(secrets::router())
                .merge(audit::router())
                .merge(incidents::router())
                .merge(security::router())
                .merge(clients::router())
                .merge(mfa::router()),
        )
        .merge(health::router())
        .merge(oauth::metadata())
        .split_for_parts();
    // After the routes are in: the common answers go on every operation.
    utoipa::Modify::modify(&CommonAnswers, &mut doc);
    (router, doc)
}

/// The whole application, with its layers.
pub fn router(app: AppState) -> Router {
    let timeout = app.config.request_timeout;
    let (api, openapi) = api();
    let docs = SwaggerUi::new("/docs")
        .url("/openapi.json", openapi)
        .config(
            utoipa_swagger_ui::Config::from("/openapi.json")
                .validator_url("none")
                .try_it_out_enabled(true),
        );
    // One layer made of all of them, applied once: `Router::layer` re-boxes every route's
    // service for each call, and axum clones a route's service for every request, so twelve
    // `.layer` calls cost twelve boxed clones and drops per request (callgrind: about a third of
    // (a)'s instructions). The order is the same: the first here is the outermost.
    let layers = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(app.clone(), metrics::observe))
        .layer(axum::middleware::from_fn(middleware::request_id))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The path only, never the query string: it may carry a token.
                    let id = req.headers().get(middleware::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = req.uri().path(), request_id = id)
                })
                .on_request(())
                .on_response(|res: &axum::response::Response, latency: std::time::Duration, _: &tracing::Span| {
                    let (status, latency_ms) = (res.status().as_u16(), latency.as_millis() as u64);
                    // One line per request; a refused token's reason rides on it rather than on a line of its own.
                    match res.extensions().get::<error::TokenRefused>() {
                        Some(r) => tracing::info!(status, latency_ms, token_refused = r.0, "answered"),
                        None => tracing::info!(status, latency_ms, "answered"),
                    }
                }),
        )
        .layer(axum::middleware::from_fn(middleware::security_headers))
        // Inside the security headers and the request log: its refusals (a blocked address, an
        // unreadable forwarding header, an address past its share) carry the one and are in the other.
        .layer(axum::middleware::from_fn_with_state(app.clone(), protect::client_address))
        .layer(axum::middleware::from_fn_with_state(app.clone(), protect::cors))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(axum::middleware::from_fn_with_state(app.clone(), protect::body_deadline))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(app.clone(), protect::rate_limit))
        .layer(axum::middleware::from_fn_with_state(app.clone(), middleware::record_denials));
    api.merge(docs)
        .merge(console::router())
        .merge(oauth::pages())
        .fallback(middleware::not_found)
        .layer(layers)
        .with_state(app)
}
