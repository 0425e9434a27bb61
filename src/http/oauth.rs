//! The authorization endpoint's pages (`/oauth/authorize`: sign-in, then consent for clients
//! that are not first-party) and the metadata documents (RFC 8414, RFC 9728).
//!
//! The pages load only the console's style sheet and one script of this server (passkeys:
//! `/console/passkey.js`, which calls `navigator.credentials.get` and fetches options from
//! `/oauth/passkey`), cannot be framed, and post only to themselves and (by the 303 that follows) to the client's redirect URI. Each form is
//! bound to the browser that loaded it: a random cookie (`HttpOnly`, `SameSite=Strict`;
//! `__Host-` and `Secure` over https) whose value the form repeats; a post without both, or with two that differ, is
//! refused (login CSRF). A consent ticket is also bound to that cookie (its hash).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::OAuthForm;
use crate::auth::{random_token, sha256_hex, webauthn};
use crate::domain::client::Scope;
use crate::error::AppError;
use crate::service;
use crate::service::audit::RequestMeta;
use crate::service::mfa::Factor;
use crate::service::oauth::{self, AuthRequest, AuthorizeError, AuthorizeParams, SignInNext};
use crate::state::AppState;

/// The cookie that binds a form to the browser it was served to. Over https it is a `__Host-`
/// cookie (Secure, path `/`, no Domain: no sibling host can plant it); over http (development,
/// a loopback public URL) browsers refuse that prefix, so it is a plain one on `/oauth`.
const COOKIE: &str = "imangor_oauth";
const HOST_COOKIE: &str = "__Host-imangor_oauth";

fn cookie_name(app: &AppState) -> &'static str {
    if app.config.public_url.starts_with("https://") {
        HOST_COOKIE
    } else {
        COOKIE
    }
}
/// The longest query or form of an authorization request.
const MAX_PARAMS_LEN: usize = 4096;

/// The pages: HTML, outside the OpenAPI document.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/oauth/authorize", get(authorize).post(submit))
        .route("/oauth/passkey", axum::routing::post(passkey_options))
}

/// The metadata documents, in the OpenAPI document.
pub fn metadata() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authorization_server))
        .routes(routes!(protected_resource))
}

/// RFC 8414 authorization server metadata. `issuer` is the `iss` of the tokens.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "RFC 8414 metadata", body = Object)))]
async fn authorization_server(State(app): State<AppState>) -> Response {
    let base = &app.config.public_url;
    let mut grants = vec!["authorization_code", "client_credentials", "refresh_token"];
    if app.config.password_grant {
        grants.push("password");
    }
    public(Json(serde_json::json!({
        "issuer": app.identity.tokens.issuer(),
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/api/v1/token"),
        "introspection_endpoint": format!("{base}/api/v1/token/introspect"),
        "revocation_endpoint": format!("{base}/api/v1/token/revoke"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": Scope::NAMES,
        "authorization_response_iss_parameter_supported": true,
        "service_documentation": format!("{base}/docs"),
    })))
}

/// RFC 9728 metadata of the protected API.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "oauth",
    responses((status = 200, description = "RFC 9728 metadata", body = Object)))]
async fn protected_resource(State(app): State<AppState>) -> Response {
    let base = &app.config.public_url;
    public(Json(serde_json::json!({
        "resource": format!("{base}/api/v1"),
        "authorization_servers": [app.identity.tokens.issuer()],
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "scopes_supported": Scope::NAMES,
        "bearer_methods_supported": ["header"],
        "resource_documentation": format!("{base}/docs"),
    })))
}

fn public(json: Json<serde_json::Value>) -> Response {
    let mut res = json.into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// Name/value pairs of a query or form, each name at most once (RFC 6749 §3.1).
fn pairs(raw: &str) -> Option<Vec<(String, String)>> {
    if raw.len() > MAX_PARAMS_LEN {
        return None;
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).ok()?;
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    Some(pairs)
}

fn get_param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn params(pairs: &[(String, String)]) -> AuthorizeParams<'_> {
    AuthorizeParams {
        response_type: get_param(pairs, "response_type"),
        client_id: get_param(pairs, "client_id"),
        redirect_uri: get_param(pairs, "redirect_uri"),
        scope: get_param(pairs, "scope"),
        state: get_param(pairs, "state"),
        code_challenge: get_param(pairs, "code_challenge"),
        code_challenge_method: get_param(pairs, "code_challenge_method"),
    }
}

/// The browser's binding cookie, if it sent a well-formed one.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// GET: checks the request and shows the sign-in form (RFC 6749 §4.1.1).
async fn authorize(
    State(app): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(pairs) = pairs(query.as_deref().unwrap_or("")) else {
        let why =
            "The authorization request is malformed (a parameter is repeated, or it is too long).";
        oauth::refused_page(&app.sinks, None, why, &meta).await;
        return error_page(StatusCode::BAD_REQUEST, why);
    };
    let req = match oauth::authorization_request(&app.store, &params(&pairs)).await {
        Ok(r) => r,
        Err(e) => return refused(&app, e, get_param(&pairs, "client_id"), &meta).await,
    };
    let name = cookie_name(&app);
    let (binding, set_cookie) = match cookie(&headers, name) {
        Some(c) => (c, false),
        None => match random_token(32) {
            Ok(c) => (c, true),
            Err(_) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Try again later."),
        },
    };
    let mut res = sign_in_page(&req, &binding, StatusCode::OK, None);
    if set_cookie {
        let v = if name == HOST_COOKIE {
            format!("{name}={binding}; Path=/; Secure; HttpOnly; SameSite=Strict")
        } else {
            format!("{name}={binding}; Path=/oauth; HttpOnly; SameSite=Strict")
        };
        if let Ok(v) = HeaderValue::from_str(&v) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    res
}

/// The browser binding a form or a fetch of a page repeats (`csrf`), when it is the cookie's;
/// a refusal is recorded (login CSRF).
async fn bound_to_browser(
    app: &AppState,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    meta: &RequestMeta,
) -> Option<String> {
    match (cookie(headers, cookie_name(app)), get_param(pairs, "csrf")) {
        (Some(c), Some(f))
            if aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), f.as_bytes())
                .is_ok() =>
        {
            Some(c)
        }
        _ => {
            let client = get_param(pairs, "client_id");
            let why = "a form not bound to this browser (CSRF)";
            oauth::refused_page(&app.sinks, client, why, meta).await;
            None
        }
    }
}

/// POST `/oauth/passkey` (the page's script, `csrf` and, on the second-factor page,
/// `mfa_token`): request options for `navigator.credentials.get`, bound to this browser. 404
/// when the `mfa_token` is not live for this browser or its account has no passkey.
async fn passkey_options(
    State(app): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    form: Result<OAuthForm, super::error::OAuthError>,
) -> Response {
    let Ok(OAuthForm(pairs)) = form else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(binding) = bound_to_browser(&app, &headers, &pairs, &meta).await else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let bound = sha256_hex(&binding);
    let token = get_param(&pairs, "mfa_token");
    match service::passkeys::sign_in_options(&app.store, &app.config, &bound, token).await {
        Ok(Some(options)) => {
            let mut res = Json(options).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => failure_page(e),
    }
}

/// A passkey's answer as the page's script posts it (base64url fields `passkey_*`).
fn passkey_answer(pairs: &[(String, String)]) -> Option<service::passkeys::Answer> {
    let field = |name: &str| get_param(pairs, name).and_then(webauthn::unb64url);
    Some(service::passkeys::Answer {
        raw_id: field("passkey_id")?,
        client_data_json: field("passkey_client_data")?,
        authenticator_data: field("passkey_authenticator_data")?,
        signature: field("passkey_signature")?,
        user_handle: match get_param(pairs, "passkey_user_handle") {
            None => None,
            Some(h) => Some(webauthn::unb64url(h)?),
        },
    })
}

/// POST: the sign-in form, or the consent form (it carries `decision`).
async fn submit(
    State(app): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    form: Result<OAuthForm, super::error::OAuthError>,
) -> Response {
    let Ok(OAuthForm(pairs)) = form else {
        return error_page(StatusCode::BAD_REQUEST, "The form is malformed.");
    };
    // The form must come from a page this server gave this browser (login CSRF).
    let Some(binding) = bound_to_browser(&app, &headers, &pairs, &meta).await else {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form was not served to this browser, or it expired. Start again from the application.",
        );
    };
    let bound = sha256_hex(&binding);
    if let Some(decision) = get_param(&pairs, "decision") {
        let approve = match decision {
            "approve" => true,
            "deny" => false,
            _ => return error_page(StatusCode::BAD_REQUEST, "The form is malformed."),
        };
        let ticket = get_param(&pairs, "ticket").unwrap_or("");
        return match oauth::consent(&app.store, &app.identity, ticket, &bound, approve, &meta).await
        {
            Ok(Some(url)) => redirect(&url),
            Ok(None) => {
                let why = "a consent ticket unknown, expired, spent or bound to another browser";
                oauth::refused_page(&app.sinks, None, why, &meta).await;
                error_page(
                    StatusCode::BAD_REQUEST,
                    "This sign-in expired or was already used. Start again from the application.",
                )
            }
            Err(e) => failure_page(e),
        };
    }
    let req = match oauth::authorization_request(&app.store, &params(&pairs)).await {
        Ok(r) => r,
        Err(e) => return refused(&app, e, get_param(&pairs, "client_id"), &meta).await,
    };
    let passkey = get_param(&pairs, "passkey_id").map(|_| passkey_answer(&pairs));
    let rp = service::passkeys::relying_party(&app.config);
    if let Some(mfa_token) = get_param(&pairs, "mfa_token") {
        let factor = match (
            get_param(&pairs, "otp"),
            get_param(&pairs, "recovery_code"),
            &passkey,
        ) {
            (Some(otp), ..) => Factor::Totp(otp),
            (None, Some(code), _) => Factor::RecoveryCode(code),
            (None, None, Some(Some(answer))) => Factor::Passkey(answer, &rp),
            (None, None, Some(None)) => {
                return second_factor_page(
                    &req,
                    &binding,
                    mfa_token,
                    StatusCode::BAD_REQUEST,
                    Some("The passkey's answer is malformed."),
                );
            }
            // Nothing typed: asked again, no attempt spent.
            (None, None, None) => {
                return second_factor_page(
                    &req,
                    &binding,
                    mfa_token,
                    StatusCode::BAD_REQUEST,
                    Some("Type the code from your authenticator app, or a recovery code."),
                );
            }
        };
        let next = oauth::second_factor(
            &app.store,
            &app.identity,
            &app.guards,
            &app.sinks,
            &app.keys,
            &req,
            mfa_token,
            factor,
            &bound,
            &meta,
        )
        .await;
        return match next {
            Err(AppError::OAuth { .. }) => second_factor_page(
                &req,
                &binding,
                mfa_token,
                StatusCode::UNAUTHORIZED,
                Some("The code is not correct, or this sign-in expired."),
            ),
            other => answer(&req, &binding, other),
        };
    }
    if let Some(given) = passkey {
        let next = match given {
            Some(answer) => {
                oauth::passkey_sign_in(
                    &app.store,
                    &app.identity,
                    &app.guards,
                    &app.config,
                    &app.sinks,
                    &req,
                    &answer,
                    &bound,
                    &meta,
                )
                .await
            }
            None => Err(AppError::oauth(
                crate::error::OAuthCode::InvalidRequest,
                "malformed passkey answer",
            )),
        };
        return match next {
            Err(AppError::OAuth { .. }) => sign_in_page(
                &req,
                &binding,
                StatusCode::UNAUTHORIZED,
                Some("The passkey was not accepted. Try again, or sign in with your password."),
            ),
            other => answer(&req, &binding, other),
        };
    }
    let (username, password) = (
        get_param(&pairs, "username").unwrap_or(""),
        get_param(&pairs, "password").unwrap_or(""),
    );
    let next = oauth::sign_in(
        &app.store,
        &app.identity,
        &app.guards,
        &app.sinks,
        &req,
        username,
        password,
        &bound,
        &meta,
    )
    .await;
    answer(&req, &binding, next)
}

/// The page (or redirect) that follows a sign-in step.
fn answer(req: &AuthRequest, binding: &str, next: Result<SignInNext, AppError>) -> Response {
    match next {
        Ok(SignInNext::Redirect(url)) => redirect(&url),
        Ok(SignInNext::Consent { ticket }) => consent_page(req, binding, &ticket),
        Ok(SignInNext::SecondFactor { mfa_token }) => {
            second_factor_page(req, binding, &mfa_token, StatusCode::OK, None)
        }
        Err(AppError::Unauthenticated { .. }) => sign_in_page(
            req,
            binding,
            StatusCode::UNAUTHORIZED,
            Some("The email or the password is not correct."),
        ),
        Err(e) => failure_page(e),
    }
}
/// A refused request: an error page where the redirect URI cannot be trusted (recorded: it is
/// how phishing and redirect probing look), else the error sent back to the client (RFC 6749
/// §4.1.2.1) with `state` and `iss`.
async fn refused(
    app: &AppState,
    e: AuthorizeError,
    client_id: Option<&str>,
    meta: &RequestMeta,
) -> Response {
    match e {
        AuthorizeError::Page(why) => {
            oauth::refused_page(&app.sinks, client_id, why, meta).await;
            error_page(StatusCode::BAD_REQUEST, why)
        }
        AuthorizeError::Redirect {
            redirect_uri,
            error,
            description,
            state,
        } => redirect(&oauth::answer_url(
            &app.identity,
            &redirect_uri,
            &[("error", error), ("error_description", description)],
            state.as_deref(),
        )),
    }
}

fn redirect(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(v) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            res.headers_mut().insert(header::LOCATION, v);
            res
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect URI is not usable."),
    }
}

/// An error of the sign-in (the guard's lock, a busy server) as a page, with its status.
fn failure_page(e: AppError) -> Response {
    let (status, text, retry) = match &e {
        AppError::RateLimited { retry_after_s } => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Wait a while and try again.",
            Some(*retry_after_s),
        ),
        AppError::Busy { retry_after_s } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is busy. Try again in a moment.",
            Some(*retry_after_s),
        ),
        AppError::Unavailable(err) | AppError::Internal(err) => {
            tracing::error!(error = format!("{err:#}"), "sign-in page failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The server could not complete the sign-in. Try again later.",
                None,
            )
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "The request could not be completed.",
            None,
        ),
    };
    let mut res = error_page(status, text);
    if let Some(s) = retry {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    res
}

/// Text for HTML: `& < > " '` escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page in the console's look, under a CSP that allows no script and posts only here and,
/// when given, to the origin (or private-use scheme) of `redirect_uri`.
fn page(status: StatusCode, title: &str, body: &str, redirect_uri: Option<&str>) -> Response {
    render(status, title, body, redirect_uri, false)
}

/// `page`, with the one passkey script of this server (`script-src 'self'`; its fetches go only
/// here, `connect-src 'self'`).
fn page_with_passkeys(
    status: StatusCode,
    title: &str,
    body: &str,
    redirect_uri: Option<&str>,
) -> Response {
    render(status, title, body, redirect_uri, true)
}

fn render(
    status: StatusCode,
    title: &str,
    body: &str,
    redirect_uri: Option<&str>,
    passkeys: bool,
) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{} · imangor</title>\n\
         <link rel=\"icon\" href=\"data:,\">\n<link rel=\"stylesheet\" href=\"/console/console.css\">\n\
         </head>\n<body>\n<header class=\"top\"><span class=\"brand\">imangor</span></header>\n\
         <main id=\"main\">\n{body}</main>\n{}</body>\n</html>\n",
        esc(title),
        if passkeys {
            "<script src=\"/console/passkey.js\" defer></script>\n"
        } else {
            ""
        }
    );
    let target = redirect_uri.and_then(form_target).unwrap_or_default();
    let script = if passkeys {
        "script-src 'self'; connect-src 'self'; "
    } else {
        ""
    };
    let csp = format!(
        "default-src 'none'; {script}style-src 'self'; img-src 'self' data:; form-action 'self'{target}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// What a form's `form-action` must also allow for the 303 to `redirect_uri` to be followed:
/// its origin, or its private-use scheme.
fn form_target(redirect_uri: &str) -> Option<String> {
    let u = url::Url::parse(redirect_uri).ok()?;
    match u.origin() {
        url::Origin::Tuple(..) => Some(format!(" {}", u.origin().ascii_serialization())),
        url::Origin::Opaque(_) => Some(format!(" {}:", u.scheme())),
    }
}

fn error_page(status: StatusCode, text: &str) -> Response {
    page(
        status,
        "Sign-in refused",
        &format!(
            "<section><h1>Sign-in refused</h1>\n<p class=\"error\" role=\"alert\">{}</p></section>\n",
            esc(text)
        ),
        None,
    )
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
        esc(value)
    )
}

/// The hidden fields that carry an authorization request through a form.
fn request_fields(req: &AuthRequest, binding: &str) -> String {
    let mut fields = String::new();
    fields.push_str(&hidden("response_type", "code"));
    fields.push_str(&hidden("client_id", &req.client.id.to_string()));
    fields.push_str(&hidden("redirect_uri", &req.redirect_uri));
    fields.push_str(&hidden("scope", &req.scope.to_string()));
    if let Some(s) = &req.state {
        fields.push_str(&hidden("state", s));
    }
    fields.push_str(&hidden("code_challenge", &req.challenge));
    fields.push_str(&hidden("code_challenge_method", "S256"));
    fields.push_str(&hidden("csrf", binding));
    fields
}

fn error_line(error: Option<&str>) -> String {
    error
        .map(|e| {
            format!(
                "<p id=\"signin-error\" class=\"error\" role=\"alert\">{}</p>\n",
                esc(e)
            )
        })
        .unwrap_or_default()
}

/// The second factor: a TOTP code (`otp`) or, instead, a recovery code (`recovery_code`).
fn second_factor_page(
    req: &AuthRequest,
    binding: &str,
    mfa_token: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let body = format!(
        "<section aria-labelledby=\"mfa-title\">\n\
         <h1 id=\"mfa-title\">Second factor</h1>\n\
         <p class=\"muted\">to continue to <strong>{}</strong></p>\n{}\
         <form method=\"post\" action=\"/oauth/authorize\">\n{}{}\
         <label for=\"otp\">Code from your authenticator app</label>\n\
         <input id=\"otp\" name=\"otp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{{6}}\">\n\
         <label for=\"recovery_code\">or a recovery code</label>\n\
         <input id=\"recovery_code\" name=\"recovery_code\" autocomplete=\"off\">\n\
         <button type=\"submit\">Continue</button>\n</form>\n{}</section>\n",
        esc(&req.client.name),
        error_line(error),
        request_fields(req, binding),
        hidden("mfa_token", mfa_token),
        passkey_form(req, binding, Some(mfa_token), "Use a passkey instead"),
    );
    page_with_passkeys(status, "Second factor", &body, Some(&req.redirect_uri))
}

/// The form the passkey script fills and posts (hidden until the script finds passkeys usable:
/// on the sign-in page the browser supports them; on the second-factor page the account has
/// one). Without script the page works as before.
fn passkey_form(req: &AuthRequest, binding: &str, mfa_token: Option<&str>, label: &str) -> String {
    let fields: String = [
        "passkey_id",
        "passkey_client_data",
        "passkey_authenticator_data",
        "passkey_signature",
        "passkey_user_handle",
    ]
    .iter()
    .map(|n| hidden(n, ""))
    .collect();
    format!(
        "<form id=\"passkey-form\" method=\"post\" action=\"/oauth/authorize\" hidden>\n{}{}{fields}\
         <button id=\"passkey-button\" type=\"button\">{}</button>\n\
         <p id=\"passkey-status\" class=\"muted\" role=\"status\"></p>\n</form>\n",
        request_fields(req, binding),
        mfa_token
            .map(|t| hidden("mfa_token", t))
            .unwrap_or_default(),
        esc(label),
    )
}

fn sign_in_page(
    req: &AuthRequest,
    binding: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let fields = request_fields(req, binding);
    let error = error_line(error);
    let body = format!(
        "<section id=\"signin\" aria-labelledby=\"signin-title\">\n\
         <h1 id=\"signin-title\">Sign in</h1>\n\
         <p class=\"muted\">to continue to <strong>{}</strong></p>\n{error}\
         <form method=\"post\" action=\"/oauth/authorize\">\n{fields}\
         <label for=\"username\">Email</label>\n\
         <input id=\"username\" name=\"username\" type=\"email\" autocomplete=\"username\" required>\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
         <button type=\"submit\">Sign in</button>\n</form>\n{}</section>\n",
        esc(&req.client.name),
        passkey_form(req, binding, None, "Sign in with a passkey"),
    );
    page_with_passkeys(status, "Sign in", &body, Some(&req.redirect_uri))
}

fn consent_page(req: &AuthRequest, binding: &str, ticket: &str) -> Response {
    let scopes: String = req
        .scope
        .iter()
        .map(|s| {
            format!(
                "<li><code>{}</code> {}</li>\n",
                s.as_str(),
                esc(describe(s))
            )
        })
        .collect();
    let body = format!(
        "<section aria-labelledby=\"consent-title\">\n\
         <h1 id=\"consent-title\">Allow access?</h1>\n\
         <p><strong>{}</strong> asks to act on your behalf, within what your role allows:</p>\n\
         <ul>\n{scopes}</ul>\n\
         <form method=\"post\" action=\"/oauth/authorize\">\n{}{}\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n\
         </form>\n</section>\n",
        esc(&req.client.name),
        hidden("ticket", ticket),
        hidden("csrf", binding),
    );
    page(
        StatusCode::OK,
        "Allow access",
        &body,
        Some(&req.redirect_uri),
    )
}

/// What a scope lets a client do, for the consent page.
fn describe(s: Scope) -> &'static str {
    match s {
        Scope::ResourcesRead => "read your resources",
        Scope::ResourcesWrite => "create, change and delete your resources",
        Scope::SecretsRead => "read your secrets",
        Scope::SecretsWrite => "store and delete your secrets",
        Scope::Profile => "read and change your profile",
        Scope::Incidents => "report incidents (and, for staff, handle them)",
        Scope::Admin => "administer accounts and read the audit trail (admins only)",
    }
}
