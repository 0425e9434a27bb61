//! How errors look on the wire: RFC 9457 problem+json, except on the token endpoints, which
//! answer RFC 6749 section 5.2 errors. Internals are logged here, once, and never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::authz::{Decision, Denial};
use crate::error::{AppError, FieldError, OAuthCode};

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<Vec<FieldError>>,
}

/// A problem+json answer.
pub fn problem(
    status: StatusCode,
    code: &str,
    detail: &str,
    errors: Option<Vec<FieldError>>,
) -> Response {
    let body = Problem {
        kind: format!("urn:imangor:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        errors,
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

/// `Retry-After` of a 503 when a backing service is unreachable.
const UNAVAILABLE_RETRY_S: u64 = 2;

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AppError::Unauthenticated { .. } => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            AppError::StepUpRequired { .. } => {
                (StatusCode::UNAUTHORIZED, "insufficient_user_authentication")
            }
            AppError::Denied(d) if d.decision == Decision::Hide => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            AppError::Denied(d) if d.missing_scope.is_some() => {
                (StatusCode::FORBIDDEN, "insufficient_scope")
            }
            AppError::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::WrongPassword => (StatusCode::FORBIDDEN, "wrong_password"),
            AppError::QuotaExceeded { .. } => (StatusCode::FORBIDDEN, "quota_exceeded"),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::Refused(_) => (StatusCode::CONFLICT, "refused"),
            AppError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            AppError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            AppError::OAuth {
                error: OAuthCode::InvalidClient,
                ..
            } => (StatusCode::UNAUTHORIZED, "invalid_client"),
            AppError::OAuth { error, .. } => (StatusCode::BAD_REQUEST, error.as_str()),
        };
        let detail = match &self {
            AppError::Internal(e) | AppError::Unavailable(e) => {
                // `{:#}` prints the whole context chain; it goes to the log only.
                tracing::error!(error = format!("{e:#}"), "request failed");
                self.to_string()
            }
            e => e.to_string(),
        };
        let errors = match &self {
            AppError::Invalid(v) => Some(v.errors.clone()),
            _ => None,
        };
        let mut res = problem(status, code, &detail, errors);
        let h = res.headers_mut();
        match &self {
            AppError::Unauthenticated {
                token_refused: None,
            } => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::Unauthenticated {
                token_refused: Some(_),
            } => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            AppError::Denied(Denial {
                missing_scope: Some(scope),
                ..
            }) => {
                // RFC 6750 §3.1; a scope name holds no quote or backslash.
                let v = format!(r#"Bearer error="insufficient_scope", scope="{scope}""#);
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            AppError::StepUpRequired { max_age_s } => {
                // RFC 9470 §3: the error and the age a new authentication may have.
                let v = format!(
                    r#"Bearer error="insufficient_user_authentication", error_description="a recent second factor is required", max_age={max_age_s}"#
                );
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            AppError::RateLimited { retry_after_s } | AppError::Busy { retry_after_s } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            // The database is unreachable: a client (or a load balancer) should come back soon.
            AppError::Unavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_S));
            }
            _ => {}
        }
        match self {
            // Read by the `record_denials` middleware, which writes the security event.
            AppError::Denied(d) => {
                res.extensions_mut().insert(d);
            }
            // Read by the access log, which names the reason on the request's one line.
            AppError::Unauthenticated {
                token_refused: Some(reason),
            } => {
                res.extensions_mut().insert(TokenRefused(reason));
            }
            _ => {}
        }
        res
    }
}

/// Why this response refused a presented token ("bad signature", "session ended", ...): the
/// access log writes it on the request's line (`token_refused`); the client is never told.
#[derive(Debug, Clone, Copy)]
pub struct TokenRefused(pub &'static str);

/// An OAuth2 error (RFC 6749 section 5.2), answered by the token endpoints. Its `Debug` leaves
/// the `mfa_token` out (a live credential).
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
    retry_after_s: Option<u64>,
    /// `mfa_required`: the token the second factor is presented with.
    mfa_token: Option<String>,
}

impl std::fmt::Debug for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthError")
            .field("status", &self.status)
            .field("error", &self.error)
            .field("description", &self.description)
            .field("retry_after_s", &self.retry_after_s)
            .field("mfa_token", &self.mfa_token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl OAuthError {
    pub fn invalid_request(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description,
            retry_after_s: None,
            mfa_token: None,
        }
    }
    /// The password was right and the account has a second factor (API.md).
    pub fn mfa_required(mfa_token: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "mfa_required",
            description: "a second factor is required: present it with grant_type=urn:imangor:grant-type:mfa",
            retry_after_s: None,
            mfa_token: Some(mfa_token),
        }
    }
    pub fn unsupported_grant_type() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: "supported grant types: password, authorization_code, client_credentials, refresh_token, urn:imangor:grant-type:mfa",
            retry_after_s: None,
            mfa_token: None,
        }
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        let (status, error, description, retry_after_s) = match &e {
            AppError::OAuth { error, description } => (
                if *error == OAuthCode::InvalidClient {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::BAD_REQUEST
                },
                error.as_str(),
                *description,
                None,
            ),
            AppError::Unauthenticated { .. }
            | AppError::StepUpRequired { .. }
            | AppError::NotFound
            | AppError::Denied(_)
            | AppError::WrongPassword
            | AppError::Refused(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the credentials or the refresh token are not valid",
                None,
            ),
            AppError::Invalid(_) | AppError::Conflict(_) | AppError::QuotaExceeded { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request is malformed",
                None,
            ),
            AppError::RateLimited { retry_after_s } => (
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                "too many attempts; retry later",
                Some(*retry_after_s),
            ),
            AppError::Busy { retry_after_s } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the server is busy; retry later",
                Some(*retry_after_s),
            ),
            AppError::Unavailable(err) | AppError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "token request failed");
                let status = if matches!(e, AppError::Unavailable(_)) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                (
                    status,
                    if status == StatusCode::SERVICE_UNAVAILABLE {
                        "temporarily_unavailable"
                    } else {
                        "server_error"
                    },
                    "the server could not complete the request",
                    (status == StatusCode::SERVICE_UNAVAILABLE).then_some(UNAVAILABLE_RETRY_S),
                )
            }
        };
        Self {
            status,
            error,
            description,
            retry_after_s,
            mfa_token: None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut body =
            serde_json::json!({ "error": self.error, "error_description": self.description });
        if let Some(t) = &self.mfa_token {
            body["mfa_token"] = serde_json::Value::String(t.clone());
        }
        let mut res = (self.status, Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(s) = self.retry_after_s {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        // RFC 6749 §5.2: a failed client authentication names the scheme the client may use.
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="imangor", charset="UTF-8""#),
            );
        }
        res
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_debug_of_an_mfa_required_answer_leaves_its_token_out() {
        let e = super::OAuthError::mfa_required("live-mfa-token-value".into());
        let shown = format!("{e:?}");
        assert!(!shown.contains("live-mfa-token-value"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }
}
