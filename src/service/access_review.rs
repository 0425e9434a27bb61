//! The guide's permission review: every admin and manager, and every dormant or never-used
//! account, with its last login. One computation for the operator's `imangor access-review` and
//! for `GET /api/v1/access-review` (admins, by the policy).

use crate::authz::{Action, Authorized};
use crate::db::Db;
use crate::db::users;
use crate::domain::{Role, Timestamp, User};
use crate::error::Result;
use crate::service::context::Store;

/// Accounts unused for this many days are dormant, unless asked otherwise.
pub const DEFAULT_DORMANT_DAYS: u64 = 90;
/// The longest dormancy the review accepts (ten years).
pub const MAX_DORMANT_DAYS: u64 = 3650;

/// One account the review lists, and why.
#[derive(Debug, Clone)]
pub struct Finding {
    pub user: User,
    pub last_login: Option<Timestamp>,
    /// `admin`, `manager`, `no_second_factor` (a privileged account signing in with a password
    /// alone), `never_logged_in`, `dormant`, `disabled`.
    pub flags: Vec<&'static str>,
}

/// The review as the operator runs it: the command line acts as the system, not under the policy.
pub async fn as_operator(db: &Db, dormant_days: u64) -> Result<Vec<Finding>> {
    let rows = users::with_last_login(db).await?;
    Ok(review(rows, dormant_days, Timestamp::now()))
}

/// The review through the API, with the caller's permission (`account.review`), decided once by
/// the handler before it read the query.
pub async fn run(store: &Store, grant: &Authorized<()>, dormant_days: u64) -> Result<Vec<Finding>> {
    grant.require(Action::AccessReviewRead)?;
    as_operator(&store.db, dormant_days).await
}

/// Keeps every privileged account and every dormant or never-used one (a disabled plain account
/// that is otherwise fine is not a finding).
pub fn review(
    rows: Vec<(User, Option<Timestamp>, bool)>,
    dormant_days: u64,
    now: Timestamp,
) -> Vec<Finding> {
    let days = dormant_days.min(MAX_DORMANT_DAYS) as i64;
    let dormant_before = now.micros() - days * 86_400 * 1_000_000;
    rows.into_iter()
        .filter_map(|(user, last_login, second_factor)| {
            let mut flags = Vec::new();
            match user.role {
                Role::Admin => flags.push("admin"),
                Role::Manager => flags.push("manager"),
                Role::User => {}
            }
            if user.role != Role::User && !second_factor {
                flags.push("no_second_factor");
            }
            match last_login {
                None => flags.push("never_logged_in"),
                Some(t) if t.micros() < dormant_before => flags.push("dormant"),
                Some(_) => {}
            }
            if user.disabled {
                flags.push("disabled");
            }
            flags.iter().any(|f| *f != "disabled").then_some(Finding {
                user,
                last_login,
                flags,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    fn user(role: Role, disabled: bool) -> User {
        User {
            id: UserId::new(),
            email: "a@example.com".into(),
            full_name: "A".into(),
            role,
            disabled,
            created_at: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn privileged_dormant_and_unused_accounts_are_findings() {
        let now = Timestamp::from_micros(400 * 86_400 * 1_000_000);
        let recent = Some(Timestamp::from_micros(now.micros() - 86_400 * 1_000_000));
        let old = Some(Timestamp::from_micros(0));
        let found = review(
            vec![
                (user(Role::Admin, false), recent, false),
                (user(Role::Manager, false), recent, true),
                (user(Role::User, false), recent, false),
                (user(Role::User, false), old, false),
                (user(Role::User, true), None, false),
                (user(Role::User, true), recent, false),
            ],
            90,
            now,
        );
        let flags: Vec<_> = found.iter().map(|f| f.flags.clone()).collect();
        assert_eq!(
            flags,
            vec![
                vec!["admin", "no_second_factor"],
                vec!["manager"],
                vec!["dormant"],
                vec!["never_logged_in", "disabled"]
            ]
        );
    }
}
