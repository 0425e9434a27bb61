//! Extractors: the authenticated caller, strict JSON bodies, OAuth2 form bodies, request metadata.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::problem;
use crate::auth::token::{TokenError, Verified};
use crate::authz::Principal;
use crate::error::{AppError, ValidationError};
use crate::service::audit::RequestMeta;
use crate::service::auth::{authenticate, authenticate_checked};
use crate::state::AppState;

/// The bearer token of a request: `Ok(None)` without an `Authorization` header, an error when the
/// header is there but unusable (several headers, another scheme, an empty token).
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AppError::invalid_token("several authorization headers"));
    }
    let value = value
        .to_str()
        .map_err(|_| AppError::invalid_token("authorization header is not text"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    // Auth schemes are case-insensitive (RFC 9110 section 11.1).
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AppError::unauthenticated());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AppError::invalid_token("empty bearer token"));
    }
    Ok(Some(token))
}

fn client(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<super::protect::ClientIp>()
        .map(|c| c.0)
}

/// The outcome of checking a request's bearer token, kept on the request by the rate-limit
/// layer (`protect::rate_limit`).
#[derive(Clone)]
pub(crate) struct CheckedBearer(pub(crate) Result<Verified, TokenError>);

/// The caller behind `token`, checking the token only if the rate-limit layer did not already.
async fn principal(parts: &Parts, app: &AppState, token: &str) -> Result<Principal, AppError> {
    match parts.extensions.get::<CheckedBearer>().cloned() {
        Some(checked) => {
            authenticate_checked(
                &app.store,
                &app.identity,
                &app.guards,
                &app.sinks,
                token,
                checked.0,
                client(parts),
            )
            .await
        }
        None => {
            authenticate(
                &app.store,
                &app.identity,
                &app.guards,
                &app.sinks,
                token,
                client(parts),
            )
            .await
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?.ok_or_else(AppError::unauthenticated)?;
        principal(parts, app, token).await
    }
}

/// `Option<Principal>`: no header is `None`; a header that does not verify is still a 401.
impl OptionalFromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        match bearer(&parts.headers)? {
            None => Ok(None),
            Some(t) => principal(parts, app, t).await.map(Some),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The address the `client_address` layer derived (trusted proxies considered).
        let ip = parts
            .extensions
            .get::<super::protect::ClientIp>()
            .map(|c| c.0);
        let request_id = parts
            .headers
            .get(super::middleware::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(RequestMeta { ip, request_id })
    }
}

/// For optional fields that may be left out but not sent as `null`: `#[serde(default,
/// deserialize_with = "present")]` (absent -> `None`; `null` -> a 422 like any wrong type).
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A JSON body parsed strictly: `application/json` only (415), well-formed (400), and of the
/// right shape, with unknown fields refused (422 naming the field).
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be application/json",
                None,
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        // Well-formedness first (400), then the shape (422), so a syntax error is never reported as a field.
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
            problem(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                "the body is not well-formed JSON",
                None,
            )
        })?;
        serde_path_to_error::deserialize(value)
            .map(AppJson)
            .map_err(|e| {
                let message = e.inner().to_string();
                let field = field_name(&e.path().to_string(), &message);
                AppError::Invalid(ValidationError::field(field, json_error_message(&message)))
                    .into_response()
            })
    }
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn body_rejection(r: BytesRejection) -> Response {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the body is larger than allowed",
            None,
        )
    } else {
        problem(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "the body could not be read",
            None,
        )
    }
}

/// The field an error is about: the path when serde has one, else the name in backticks of
/// "missing field `x`" / "unknown field `x`", else the whole body.
fn field_name(path: &str, message: &str) -> String {
    if path != "." && !path.is_empty() {
        return path.to_owned();
    }
    message
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| "body".to_owned())
}

/// serde's message, without the position suffix and the list of expected fields.
fn json_error_message(message: &str) -> String {
    let m = message.split(" at line ").next().unwrap_or(message);
    if m.starts_with("unknown field") {
        "is not a field of this request".to_owned()
    } else if m.starts_with("missing field") {
        "is required".to_owned()
    } else {
        m.split(", expected one of").next().unwrap_or(m).to_owned()
    }
}

/// An `application/x-www-form-urlencoded` body as name/value pairs, each name at most once
/// (RFC 6749 section 3.2: repeated parameters are an invalid request).
pub struct OAuthForm(pub Vec<(String, String)>);

impl OAuthForm {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = super::error::OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use super::error::OAuthError;
        // Credentials never travel in the URL (ASVS V14.2.1).
        if req.uri().query().is_some() {
            return Err(OAuthError::invalid_request(
                "parameters must be sent in the request body, not the URL",
            ));
        }
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| OAuthError::invalid_request("the body could not be read"))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| OAuthError::invalid_request("the body is not a valid form"))?;
        let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(OAuthError::invalid_request("a parameter is repeated"));
        }
        Ok(OAuthForm(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_strict() {
        let mut h = HeaderMap::new();
        assert!(matches!(bearer(&h), Ok(None)));
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), Some("abc"));
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(bearer(&h).is_err());
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(bearer(&h).is_err());
        h.insert(header::AUTHORIZATION, "Bearer a".parse().unwrap());
        h.append(header::AUTHORIZATION, "Bearer b".parse().unwrap());
        assert!(bearer(&h).is_err());
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field_name(".", "unknown field `role`, expected one of `email`"),
            "role"
        );
        assert_eq!(field_name("title", "invalid type"), "title");
        assert_eq!(
            json_error_message("unknown field `role`, expected one of `a` at line 1 column 9"),
            "is not a field of this request"
        );
    }
}
