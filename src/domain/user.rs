//! An account as the rest of the server sees it: never its password hash.

use super::{Role, Timestamp, UserId};

/// A user as stored, without the password hash.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub full_name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Timestamp,
}
