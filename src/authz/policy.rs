//! The authorization policy: one table that decides every (actor, action, relation, visibility).
//! Everything else derives from it: the guards in `authz`, the SQL scope of lists, the generated
//! `docs/authorization.md`, and the matrix test that sends a request for every cell.

use std::fmt;

use crate::domain::UserId;
use crate::domain::client::Scope;

/// Who is asking: a role, or nobody (no valid token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    Anonymous,
    User,
    Manager,
    Admin,
}

/// What is being done. Account actions on another account are split by the target's role,
/// because the rules differ (a manager may disable a `user`, not another manager or an admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `POST /users` while registration is open.
    AccountRegister,
    /// `POST /users` while registration is admin-only.
    AccountCreate,
    AccountReadSelf,
    AccountUpdateSelf,
    AccountList,
    AccountSetRole,
    /// Disable or enable an account whose role is `user`.
    AccountDisableUser,
    /// Disable or enable an account whose role is `manager` or `admin`.
    AccountDisableStaff,
    ResourceCreate,
    ResourceList,
    ResourceRead,
    ResourceUpdate,
    ResourceDelete,
    SecretCreate,
    /// The caller's own secrets, names only.
    SecretList,
    /// The plaintext of a secret.
    SecretRead,
    SecretDelete,
    /// The audit trail and its chain check.
    AuditRead,
    /// Report an incident.
    IncidentReport,
    /// List and read incidents.
    IncidentList,
    /// Contain or resolve an incident, with a note.
    IncidentUpdate,
    /// Export an incident's evidence bundle (its audit events and chain segment).
    IncidentEvidence,
    /// Block an address or network for a while (containment).
    AddressBlock,
    /// Lift a block before its end: the admins' alone (a manager's block may be an admin's
    /// decision; lifting one is a judgement the admins keep).
    AddressUnblock,
    /// The security dashboard's figures: incidents by level, logins by hour, sessions.
    SecuritySummaryRead,
    /// The access review: privileged, dormant and never-used accounts with their last login.
    AccessReviewRead,
    /// OAuth clients: register, list, rotate a secret, delete (with every token issued to it).
    ClientManage,
}

/// The caller's relation to the object: its owner (for an account: the account itself), or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    Owner,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    Public,
    Private,
}

/// The answer of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    /// 403: the caller may see the object but not do this.
    Deny,
    /// 404: the caller may not know the object exists.
    Hide,
    /// 401: a token is needed.
    Unauthenticated,
}

/// A refusal by the policy, kept on the error so that it is recorded as a security event.
#[derive(Debug, Clone)]
pub struct Denial {
    pub decision: Decision,
    pub action: Action,
    pub actor: Option<UserId>,
    pub target: Option<String>,
    /// The role allowed it but the token's scopes do not reach it: 403 `insufficient_scope`
    /// naming this scope (RFC 6750 §3.1).
    pub missing_scope: Option<Scope>,
}

/// Which columns of the table an action looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No object: only the actor matters.
    Plain,
    /// Another account (relation: the caller's own account or not).
    Account,
    /// A resource (relation and visibility).
    Object,
    /// An object that is always private to its owner (relation only): a secret.
    Owned,
}

impl Action {
    pub const ALL: [Action; 27] = [
        Action::AccountRegister,
        Action::AccountCreate,
        Action::AccountReadSelf,
        Action::AccountUpdateSelf,
        Action::AccountList,
        Action::AccountSetRole,
        Action::AccountDisableUser,
        Action::AccountDisableStaff,
        Action::ResourceCreate,
        Action::ResourceList,
        Action::ResourceRead,
        Action::ResourceUpdate,
        Action::ResourceDelete,
        Action::SecretCreate,
        Action::SecretList,
        Action::SecretRead,
        Action::SecretDelete,
        Action::AuditRead,
        Action::IncidentReport,
        Action::IncidentList,
        Action::IncidentUpdate,
        Action::IncidentEvidence,
        Action::AddressBlock,
        Action::AddressUnblock,
        Action::SecuritySummaryRead,
        Action::AccessReviewRead,
        Action::ClientManage,
    ];

    pub fn shape(self) -> Shape {
        match self {
            Action::AccountSetRole | Action::AccountDisableUser | Action::AccountDisableStaff => {
                Shape::Account
            }
            Action::ResourceRead | Action::ResourceUpdate | Action::ResourceDelete => Shape::Object,
            Action::SecretRead | Action::SecretDelete => Shape::Owned,
            Action::AccountRegister
            | Action::AccountCreate
            | Action::AccountReadSelf
            | Action::AccountUpdateSelf
            | Action::AccountList
            | Action::ResourceCreate
            | Action::ResourceList
            | Action::SecretCreate
            | Action::SecretList
            | Action::AuditRead
            | Action::IncidentReport
            | Action::IncidentList
            | Action::IncidentUpdate
            | Action::IncidentEvidence
            | Action::AddressBlock
            | Action::AddressUnblock
            | Action::SecuritySummaryRead
            | Action::AccessReviewRead
            | Action::ClientManage => Shape::Plain,
        }
    }

    /// The scope a token narrowed to scopes must hold for this action (an OAuth client's
    /// token); the role still decides first, so a scope never widens it. A token of the
    /// password grant is not narrowed.
    pub fn scope(self) -> Scope {
        match self {
            Action::AccountReadSelf | Action::AccountUpdateSelf => Scope::Profile,
            Action::ResourceCreate | Action::ResourceUpdate | Action::ResourceDelete => {
                Scope::ResourcesWrite
            }
            Action::ResourceList | Action::ResourceRead => Scope::ResourcesRead,
            Action::SecretCreate | Action::SecretDelete => Scope::SecretsWrite,
            Action::SecretList | Action::SecretRead => Scope::SecretsRead,
            Action::IncidentReport
            | Action::IncidentList
            | Action::IncidentUpdate
            | Action::AddressBlock
            | Action::AddressUnblock
            | Action::SecuritySummaryRead => Scope::Incidents,
            Action::AccountRegister
            | Action::AccountCreate
            | Action::AccountList
            | Action::AccountSetRole
            | Action::AccountDisableUser
            | Action::AccountDisableStaff
            | Action::AuditRead
            | Action::IncidentEvidence
            | Action::AccessReviewRead
            | Action::ClientManage => Scope::Admin,
        }
    }

    /// Sensitive: role and status changes, containment, client management. From an account
    /// with a second factor, or whose role must have one, they need a token whose user passed
    /// the second factor recently (RFC 9470 step-up).
    pub fn sensitive(self) -> bool {
        matches!(
            self,
            Action::AccountSetRole
                | Action::AccountDisableUser
                | Action::AccountDisableStaff
                | Action::AddressBlock
                | Action::AddressUnblock
                | Action::ClientManage
        )
    }

    /// The name used in security events and the documentation.
    pub fn name(self) -> &'static str {
        match self {
            Action::AccountRegister => "account.register",
            Action::AccountCreate => "account.create",
            Action::AccountReadSelf => "account.read_self",
            Action::AccountUpdateSelf => "account.update_self",
            Action::AccountList => "account.list",
            Action::AccountSetRole => "account.set_role",
            Action::AccountDisableUser => "account.disable_user",
            Action::AccountDisableStaff => "account.disable_staff",
            Action::ResourceCreate => "resource.create",
            Action::ResourceList => "resource.list",
            Action::ResourceRead => "resource.read",
            Action::ResourceUpdate => "resource.update",
            Action::ResourceDelete => "resource.delete",
            Action::SecretCreate => "secret.create",
            Action::SecretList => "secret.list",
            Action::SecretRead => "secret.read",
            Action::SecretDelete => "secret.delete",
            Action::AuditRead => "audit.read",
            Action::IncidentReport => "incident.report",
            Action::IncidentList => "incident.list",
            Action::IncidentUpdate => "incident.update",
            Action::IncidentEvidence => "incident.evidence",
            Action::AddressBlock => "containment.block_address",
            Action::AddressUnblock => "containment.unblock_address",
            Action::SecuritySummaryRead => "security.summary",
            Action::AccessReviewRead => "account.review",
            Action::ClientManage => "client.manage",
        }
    }

    /// The endpoint that performs the action (API.md).
    pub fn endpoint(self) -> &'static str {
        match self {
            Action::AccountRegister | Action::AccountCreate => "POST /api/v1/users",
            Action::AccountReadSelf => "GET /api/v1/users/me",
            Action::AccountUpdateSelf => "PATCH /api/v1/users/me",
            Action::AccountList => "GET /api/v1/users",
            Action::AccountSetRole => "PATCH /api/v1/users/{id} `role`",
            Action::AccountDisableUser | Action::AccountDisableStaff => {
                "PATCH /api/v1/users/{id} `disabled`"
            }
            Action::ResourceCreate => "POST /api/v1/resources",
            Action::ResourceList => "GET /api/v1/resources",
            Action::ResourceRead => "GET /api/v1/resources/{id}",
            Action::ResourceUpdate => "PUT /api/v1/resources/{id}",
            Action::ResourceDelete => "DELETE /api/v1/resources/{id}",
            Action::SecretCreate => "POST /api/v1/secrets",
            Action::SecretList => "GET /api/v1/secrets",
            Action::SecretRead => "GET /api/v1/secrets/{id}",
            Action::SecretDelete => "DELETE /api/v1/secrets/{id}",
            Action::AuditRead => "GET /api/v1/audit",
            Action::IncidentReport => "POST /api/v1/incidents",
            Action::IncidentList => "GET /api/v1/incidents, GET /api/v1/incidents/{id}",
            Action::IncidentUpdate => "PATCH /api/v1/incidents/{id}",
            Action::IncidentEvidence => "GET /api/v1/incidents/{id}/evidence",
            Action::AddressBlock => "POST /api/v1/containment `block_address`",
            Action::AddressUnblock => "POST /api/v1/containment `unblock_address`",
            Action::SecuritySummaryRead => "GET /api/v1/security/summary",
            Action::AccessReviewRead => "GET /api/v1/access-review",
            Action::ClientManage => {
                "POST, GET /api/v1/clients, POST /api/v1/clients/{id}/secret, DELETE /api/v1/clients/{id}"
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// THE TABLE. Arms are read top to bottom; the first that matches decides. The match is
/// exhaustive, so a new actor or action does not compile until the table says what it may do.
/// For plain actions the relation is `Owner` and the visibility `Private` (they do not matter).
pub fn decide(
    actor: Actor,
    action: Action,
    relation: Relation,
    visibility: Visibility,
) -> Decision {
    use Action::*;
    use Actor::*;
    use Decision::*;
    use Relation::*;
    use Visibility::*;
    match (actor, action, relation, visibility) {
        // Without a token, only open registration.
        (Anonymous, AccountRegister, _, _) => Allow,
        (Anonymous, _, _, _) => Unauthenticated,

        // Every role: their own profile, registration, creating and listing resources and secrets,
        // reporting an incident.
        (
            _,
            AccountRegister | AccountReadSelf | AccountUpdateSelf | ResourceCreate | ResourceList
            | SecretCreate | SecretList | IncidentReport,
            _,
            _,
        ) => Allow,

        // Secrets: the plaintext is its owner's alone, whatever the caller's role; an admin may
        // delete another's secret (containment) without ever reading it.
        (_, SecretRead | SecretDelete, Owner, _) => Allow,
        (Admin, SecretDelete, Other, _) => Allow,
        (_, SecretRead | SecretDelete, Other, _) => Hide,

        // Admins may do everything (business rules still refuse demoting oneself or the last admin).
        (Admin, _, _, _) => Allow,

        // The audit trail, an incident's evidence (its events and chain segment), the access
        // review (who holds which rights, which the admins alone can change) and the OAuth
        // clients are the admins' alone; incidents, containment and the security summary are for
        // admins and managers.
        (
            Manager | User,
            AuditRead | IncidentEvidence | AccessReviewRead | ClientManage | AddressUnblock,
            _,
            _,
        ) => Deny,
        (Manager, IncidentList | IncidentUpdate | AddressBlock | SecuritySummaryRead, _, _) => {
            Allow
        }
        (User, IncidentList | IncidentUpdate | AddressBlock | SecuritySummaryRead, _, _) => Deny,

        // Accounts: managers list them and disable or enable plain users; nothing else.
        (Manager, AccountList | AccountDisableUser, _, _) => Allow,
        (
            Manager | User,
            AccountCreate | AccountList | AccountSetRole | AccountDisableUser | AccountDisableStaff,
            _,
            _,
        ) => Deny,

        // Resources: read = manager, owner or public; write = owner (or admin, above).
        (Manager, ResourceRead, _, _) => Allow,
        (User, ResourceRead, Owner, _) | (User, ResourceRead, Other, Public) => Allow,
        (User, ResourceRead, Other, Private) => Hide,
        (Manager | User, ResourceUpdate | ResourceDelete, Owner, _) => Allow,
        // Readable but not writable: 403. Not readable: 404.
        (Manager, ResourceUpdate | ResourceDelete, Other, _) => Deny,
        (User, ResourceUpdate | ResourceDelete, Other, Public) => Deny,
        (User, ResourceUpdate | ResourceDelete, Other, Private) => Hide,
    }
}

/// The rows a list shows, derived from the `ResourceRead` rows of the table (never written twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadScope {
    All,
    OwnOrPublic,
    Own,
}

pub fn read_scope(actor: Actor) -> ReadScope {
    let read = |rel, vis| decide(actor, Action::ResourceRead, rel, vis) == Decision::Allow;
    if read(Relation::Other, Visibility::Private) && read(Relation::Other, Visibility::Public) {
        ReadScope::All
    } else if read(Relation::Other, Visibility::Public) {
        ReadScope::OwnOrPublic
    } else {
        ReadScope::Own
    }
}

pub const ACTORS: [Actor; 4] = [Actor::Anonymous, Actor::User, Actor::Manager, Actor::Admin];

/// Every cell of the table that means something: (action, relation, visibility) by actor.
pub fn cells() -> Vec<(Action, Option<Relation>, Option<Visibility>)> {
    let mut out = Vec::new();
    for action in Action::ALL {
        match action.shape() {
            Shape::Plain => out.push((action, None, None)),
            Shape::Account | Shape::Owned => {
                for r in [Relation::Owner, Relation::Other] {
                    out.push((action, Some(r), None));
                }
            }
            Shape::Object => {
                for r in [Relation::Owner, Relation::Other] {
                    for v in [Visibility::Public, Visibility::Private] {
                        out.push((action, Some(r), Some(v)));
                    }
                }
            }
        }
    }
    out
}

/// `docs/authorization.md`, generated from the table (a test fails when the file is stale).
pub fn markdown() -> String {
    let mut s = String::from(
        "# Authorization\n\n\
         Generated from `src/authz/policy.rs` by `cargo run -- policy > docs/authorization.md`; a test fails when it is stale.\n\n\
         Cells: **allow**, **403** (may see it, may not do this), **404** (its existence is not revealed), **401** (a token is needed).\n\
         Relation: *own* = the caller owns the object (for accounts: it is the caller's own account).\n\
         Scope: what a token issued to an OAuth client must also hold (a scope narrows the role, never widens it: \
         the role's cell decides first; a token without the scope gets 403 `insufficient_scope`). Tokens of the \
         password grant carry the whole role.\n\
         Sensitive (**yes**): from an account with a second factor, or whose role must have one \
         (IMANGOR_MFA_REQUIRED_ROLES), the token's user must have passed the second factor within 15 minutes \
         (401 `insufficient_user_authentication`, RFC 9470).\n\n\
         | action | endpoint | scope | sensitive | relation | visibility | anonymous | user | manager | admin |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (action, rel, vis) in cells() {
        let row: Vec<&str> = ACTORS
            .iter()
            .map(|a| {
                match decide(
                    *a,
                    action,
                    rel.unwrap_or(Relation::Owner),
                    vis.unwrap_or(Visibility::Private),
                ) {
                    Decision::Allow => "allow",
                    Decision::Deny => "403",
                    Decision::Hide => "404",
                    Decision::Unauthenticated => "401",
                }
            })
            .collect();
        let rel = match rel {
            None => "",
            Some(Relation::Owner) => "own",
            Some(Relation::Other) => "other",
        };
        let vis = match vis {
            None => "",
            Some(Visibility::Public) => "public",
            Some(Visibility::Private) => "private",
        };
        s.push_str(&format!(
            "| {} | {} | `{}` | {} | {rel} | {vis} | {} |\n",
            action.name(),
            action.endpoint(),
            action.scope(),
            if action.sensitive() { "yes" } else { "" },
            row.join(" | ")
        ));
    }
    s.push_str(
        "\nLists are filtered in SQL by the scope the `resource.read` rows give: admins and managers see every \
         resource, users their own and the public ones. Secret lists show the caller's own secrets, by name, \
         to every role. Business rules come after the policy: nobody changes \
         their own role or disables their own account, and the last active admin cannot be demoted or \
         disabled (409).\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_is_never_allowed_where_reading_is_not() {
        for actor in ACTORS {
            for rel in [Relation::Owner, Relation::Other] {
                for vis in [Visibility::Public, Visibility::Private] {
                    let read = decide(actor, Action::ResourceRead, rel, vis);
                    for write in [Action::ResourceUpdate, Action::ResourceDelete] {
                        let w = decide(actor, write, rel, vis);
                        if read != Decision::Allow {
                            assert_eq!(w, read, "{actor:?} {write:?} {rel:?} {vis:?}");
                        } else {
                            assert_ne!(
                                w,
                                Decision::Hide,
                                "readable objects are never hidden on write"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn no_role_reads_another_users_secret_v8_2_2() {
        for actor in ACTORS {
            for vis in [Visibility::Public, Visibility::Private] {
                assert_ne!(
                    decide(actor, Action::SecretRead, Relation::Other, vis),
                    Decision::Allow,
                    "{actor:?}"
                );
            }
        }
        assert_eq!(
            decide(
                Actor::Admin,
                Action::SecretDelete,
                Relation::Other,
                Visibility::Private
            ),
            Decision::Allow
        );
    }

    #[test]
    fn list_scopes_follow_the_read_rows() {
        assert_eq!(read_scope(Actor::Admin), ReadScope::All);
        assert_eq!(read_scope(Actor::Manager), ReadScope::All);
        assert_eq!(read_scope(Actor::User), ReadScope::OwnOrPublic);
    }

    #[test]
    fn the_generated_documentation_is_up_to_date() {
        let on_disk = std::fs::read_to_string("docs/authorization.md").unwrap_or_default();
        assert!(
            on_disk == markdown(),
            "docs/authorization.md is stale: run `cargo run -- policy > docs/authorization.md`"
        );
    }
}
