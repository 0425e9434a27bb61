//! One error type for the whole application. It knows nothing of HTTP: `http::error` maps it.

pub use crate::domain::{FieldError, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No credentials (`token_refused: None`), or a presented token that did not verify, and
    /// why: the reason goes to the request's log line, never to the client.
    #[error("authentication required")]
    Unauthenticated { token_refused: Option<&'static str> },
    /// The authorization policy refused (403) or hid (404) the object.
    #[error("{}", match (.0.decision, .0.missing_scope) {
        (crate::authz::policy::Decision::Hide, _) => "not found".to_owned(),
        (_, Some(scope)) => format!("this token was not granted the scope {scope}"),
        _ => "not allowed".to_owned(),
    })]
    Denied(crate::authz::policy::Denial),
    /// A sensitive change was asked with a wrong current password.
    #[error("the current password is not correct")]
    WrongPassword,
    #[error("not found")]
    NotFound,
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A rule of the domain refused the operation (for example: the last admin cannot be demoted).
    #[error("{0}")]
    Refused(&'static str),
    /// The account holds as many of these as its quota allows (`var` sets the limit).
    #[error("quota exceeded: an account may hold at most {limit} {what} ({var})")]
    QuotaExceeded {
        what: &'static str,
        limit: u64,
        var: &'static str,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("too many requests")]
    RateLimited { retry_after_s: u64 },
    /// The server is at capacity (for example: the password-hashing queue is full).
    #[error("service busy")]
    Busy { retry_after_s: u64 },
    /// A backing service (the database) is unreachable.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
    /// A sensitive operation needs a token whose user passed a second factor within
    /// `max_age_s` (RFC 9470).
    #[error("this operation needs a recent second factor: sign in again with it")]
    StepUpRequired { max_age_s: u64 },
    /// An OAuth request refused with one of the errors of RFC 6749 §4.1.2.1 and §5.2.
    #[error("{description}")]
    OAuth {
        error: OAuthCode,
        description: &'static str,
    },
}

/// The OAuth errors (RFC 6749 §4.1.2.1, §5.2) a use case may answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    InvalidRequest,
    /// The client could not be authenticated: 401.
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
}

impl OAuthCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthCode::InvalidRequest => "invalid_request",
            OAuthCode::InvalidClient => "invalid_client",
            OAuthCode::InvalidGrant => "invalid_grant",
            OAuthCode::UnauthorizedClient => "unauthorized_client",
            OAuthCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthCode::InvalidScope => "invalid_scope",
            OAuthCode::AccessDenied => "access_denied",
        }
    }
}

impl AppError {
    pub fn oauth(error: OAuthCode, description: &'static str) -> Self {
        AppError::OAuth { error, description }
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    pub fn unauthenticated() -> Self {
        AppError::Unauthenticated {
            token_refused: None,
        }
    }
    /// A presented token (or `Authorization` header) that is refused, and why.
    pub fn invalid_token(refused: &'static str) -> Self {
        AppError::Unauthenticated {
            token_refused: Some(refused),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => AppError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                AppError::Unavailable(anyhow::Error::new(e).context("database unreachable"))
            }
            other => AppError::Internal(anyhow::Error::new(other).context("database error")),
        }
    }
}

/// Turns a unique-constraint violation into a client-facing conflict (the same on SQLite and PostgreSQL).
pub trait ResultExt<T> {
    fn on_unique(self, what: &'static str) -> Result<T>;
}

impl<T> ResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn on_unique(self, what: &'static str) -> Result<T> {
        self.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation => {
                AppError::Conflict(what)
            }
            _ => AppError::from(e),
        })
    }
}
