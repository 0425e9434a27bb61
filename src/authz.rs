//! Who is calling. Holding a `Principal` is the proof that a request carried a valid access token
//! for a user who may still log in: only `service::auth::authenticate` makes one.

use crate::domain::{Role, SessionId, Timestamp, UserId};
use crate::error::{AppError, Result};

/// The authenticated caller, with the role read from the database at this request (never from the token).
#[derive(Debug, Clone)]
pub struct Principal {
    user_id: UserId,
    role: Role,
    session: SessionId,
    token_expires_at: Timestamp,
}

impl Principal {
    pub(crate) fn new(
        user_id: UserId,
        role: Role,
        session: SessionId,
        token_expires_at: Timestamp,
    ) -> Self {
        Self {
            user_id,
            role,
            session,
            token_expires_at,
        }
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn session(&self) -> SessionId {
        self.session
    }
    pub fn token_expires_at(&self) -> Timestamp {
        self.token_expires_at
    }

    /// Succeeds when the caller holds one of `roles`; otherwise 403.
    pub fn require_role(&self, roles: &[Role]) -> Result<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }
}
