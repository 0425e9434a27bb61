//! Authorization: who is calling (`Principal`), and the only way to get at a user's data: asking
//! the policy table (`policy::decide`). The database layer hands objects out `Sealed`; only
//! `authorize` opens a seal, and only with the policy's `Allow`. Writes take the resulting
//! `Authorized` value, so a write that skipped the policy does not compile.

pub mod policy;

pub use policy::{Action, Actor, Decision, Denial, ReadScope, Relation, Visibility};

use crate::domain::client::Scopes;
use crate::domain::{ClientId, Resource, Role, SessionId, Timestamp, User, UserId};
use crate::error::{AppError, Result};

/// The authenticated caller, with the role read from the database at this request (never from the token).
#[derive(Debug, Clone)]
pub struct Principal {
    user_id: UserId,
    role: Role,
    /// `None` for an old stack's token (`auth::legacy`), which belongs to no session here.
    session: Option<SessionId>,
    token_expires_at: Timestamp,
    /// The OAuth client the token was issued to (none: the password grant).
    client: Option<ClientId>,
    /// The scopes the token is narrowed to (none: the whole role).
    scopes: Option<Scopes>,
    /// How the user signed in: with a second factor, and when.
    mfa: bool,
    auth_time: Option<Timestamp>,
    /// Sensitive operations need a recent second factor: the account has one, or its role
    /// must (IMANGOR_MFA_REQUIRED_ROLES).
    step_up: bool,
}

/// How recent a second factor must be for a sensitive operation (RFC 9470 `max_age`).
pub const STEP_UP_MAX_AGE_S: u64 = 900;

impl Principal {
    /// Only `service::auth::authenticate` makes one, after verifying a token and the account's state.
    pub(crate) fn new(
        user_id: UserId,
        role: Role,
        session: SessionId,
        token_expires_at: Timestamp,
        client: Option<ClientId>,
        scopes: Option<Scopes>,
    ) -> Self {
        Self {
            user_id,
            role,
            session: Some(session),
            token_expires_at,
            client,
            scopes,
            mfa: false,
            auth_time: None,
            step_up: false,
        }
    }

    /// How the user behind the token signed in, and whether sensitive operations need a
    /// recent second factor from this account.
    pub(crate) fn signed_in(
        mut self,
        mfa: bool,
        auth_time: Option<Timestamp>,
        step_up: bool,
    ) -> Self {
        self.mfa = mfa;
        self.auth_time = auth_time;
        self.step_up = step_up;
        self
    }

    /// A sensitive operation may go on: no second factor is asked of this account, or the
    /// token's user passed one within `STEP_UP_MAX_AGE_S` (RFC 9470).
    fn stepped_up(&self, now: Timestamp) -> bool {
        !self.step_up
            || (self.mfa
                && self
                    .auth_time
                    .is_some_and(|t| t.plus_seconds(STEP_UP_MAX_AGE_S).micros() >= now.micros()))
    }

    /// The token's user passed a second factor within `STEP_UP_MAX_AGE_S` (whatever the
    /// account's rules): what adding a second factor to an account that has one asks.
    pub fn passed_second_factor_recently(&self) -> bool {
        self.mfa
            && self.auth_time.is_some_and(|t| {
                t.plus_seconds(STEP_UP_MAX_AGE_S).micros() >= Timestamp::now().micros()
            })
    }

    /// The caller behind an old stack's access token (`service::auth`, after mapping its user
    /// id to the imported account and reading that account's state).
    pub(crate) fn legacy(user_id: UserId, role: Role, token_expires_at: Timestamp) -> Self {
        Self {
            user_id,
            role,
            session: None,
            token_expires_at,
            client: None,
            scopes: None,
            mfa: false,
            auth_time: None,
            step_up: false,
        }
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }
    pub fn token_expires_at(&self) -> Timestamp {
        self.token_expires_at
    }
    pub fn client(&self) -> Option<ClientId> {
        self.client
    }
    /// The scopes the token is narrowed to; `None`: the whole role (the password grant).
    pub fn scopes(&self) -> Option<Scopes> {
        self.scopes
    }

    pub fn actor(&self) -> Actor {
        match self.role {
            Role::Admin => Actor::Admin,
            Role::Manager => Actor::Manager,
            Role::User => Actor::User,
        }
    }
}

fn actor_of(who: Option<&Principal>) -> Actor {
    who.map(Principal::actor).unwrap_or(Actor::Anonymous)
}

/// An object as the database returns it, closed until the policy allows an action on it.
#[derive(Debug, Clone)]
pub struct Sealed<T>(T);

impl<T> Sealed<T> {
    /// Only the database layer seals what it reads.
    pub(crate) fn new(object: T) -> Self {
        Self(object)
    }
}

/// What the policy needs to know about an object.
pub trait Guarded {
    /// The account that owns the object (for an account: the account itself).
    fn owner(&self) -> UserId;
    fn visibility(&self) -> Visibility;
    /// How the object is named in security events.
    fn target(&self) -> String;
}

impl Guarded for User {
    /// An account is its own owner: "own" means the caller's own account.
    fn owner(&self) -> UserId {
        self.id
    }
    fn visibility(&self) -> Visibility {
        Visibility::Private
    }
    fn target(&self) -> String {
        format!("user:{}", self.id)
    }
}

impl Guarded for Resource {
    fn owner(&self) -> UserId {
        self.owner_id
    }
    fn visibility(&self) -> Visibility {
        if self.is_public {
            Visibility::Public
        } else {
            Visibility::Private
        }
    }
    fn target(&self) -> String {
        format!("resource:{}", self.id)
    }
}

/// Proof that the policy allowed `action` on `object` for the caller. Only `authorize` makes one.
#[derive(Debug)]
pub struct Authorized<T> {
    action: Action,
    by: Option<UserId>,
    object: T,
}

impl<T> Authorized<T> {
    pub fn action(&self) -> Action {
        self.action
    }
    pub fn object(&self) -> &T {
        &self.object
    }
    pub fn into_object(self) -> T {
        self.object
    }
    /// The account that was allowed (none for anonymous registration).
    pub fn by(&self) -> Option<UserId> {
        self.by
    }
    /// Fails unless this proof is for `action` (a write checks it holds the right proof).
    pub fn require(&self, action: Action) -> Result<()> {
        self.require_any(&[action])
    }
    pub fn require_any(&self, actions: &[Action]) -> Result<()> {
        if actions.contains(&self.action) {
            Ok(())
        } else {
            Err(AppError::Internal(anyhow::anyhow!(
                "authorization for {} used for {actions:?}",
                self.action
            )))
        }
    }
}

fn verdict<T>(
    decision: Decision,
    action: Action,
    who: Option<&Principal>,
    target: Option<String>,
    object: T,
) -> Result<Authorized<T>> {
    match decision {
        // The role allows it; a token narrowed to scopes must also hold the action's.
        Decision::Allow => match who.and_then(|p| p.scopes) {
            Some(scopes) if !scopes.contains(action.scope()) => Err(AppError::Denied(Denial {
                decision: Decision::Deny,
                action,
                actor: who.map(|p| p.user_id),
                target,
                missing_scope: Some(action.scope()),
            })),
            _ if action.sensitive() && who.is_some_and(|p| !p.stepped_up(Timestamp::now())) => {
                Err(AppError::StepUpRequired {
                    max_age_s: STEP_UP_MAX_AGE_S,
                })
            }
            _ => Ok(Authorized {
                action,
                by: who.map(|p| p.user_id),
                object,
            }),
        },
        Decision::Unauthenticated => Err(AppError::unauthenticated()),
        Decision::Deny | Decision::Hide => Err(AppError::Denied(Denial {
            decision,
            action,
            actor: who.map(|p| p.user_id),
            target,
            missing_scope: None,
        })),
    }
}

/// For a change to the caller's own second factor: from an account that must show one, a
/// token whose user passed it within `STEP_UP_MAX_AGE_S` (RFC 9470).
pub fn require_recent_second_factor(who: &Principal) -> Result<()> {
    if who.stepped_up(Timestamp::now()) {
        Ok(())
    } else {
        Err(AppError::StepUpRequired {
            max_age_s: STEP_UP_MAX_AGE_S,
        })
    }
}

/// Asks the policy about an action that has no object (creating, listing, one's own profile).
pub fn authorize_plain(who: Option<&Principal>, action: Action) -> Result<Authorized<()>> {
    debug_assert_eq!(
        action.shape(),
        policy::Shape::Plain,
        "{action} needs an object"
    );
    verdict(
        decide_for(who, action, Relation::Owner, Visibility::Private),
        action,
        who,
        None,
        (),
    )
}

/// Asks the policy about `action` on a sealed object; opens it when allowed.
pub fn authorize<T: Guarded>(
    who: Option<&Principal>,
    action: Action,
    sealed: Sealed<T>,
) -> Result<Authorized<T>> {
    let object = sealed.0;
    let relation = match who {
        Some(p) if p.user_id == object.owner() => Relation::Owner,
        _ => Relation::Other,
    };
    let target = Some(object.target());
    verdict(
        decide_for(who, action, relation, object.visibility()),
        action,
        who,
        target,
        object,
    )
}

/// Asks the policy about an action that depends on the object itself (disabling staff is not
/// disabling a plain user): `choose` names the action from the object before the decision.
pub fn authorize_by<T: Guarded>(
    who: Option<&Principal>,
    choose: impl FnOnce(&T) -> Action,
    sealed: Sealed<T>,
) -> Result<Authorized<T>> {
    let action = choose(&sealed.0);
    authorize(who, action, sealed)
}

/// Refuses early, before any object is looked up, when the policy allows none of `actions` to
/// this caller on any object: a plain user learns nothing about accounts from a 404 vs a 403.
pub fn authorize_any(who: Option<&Principal>, actions: &[Action]) -> Result<()> {
    let actor = actor_of(who);
    let allowed = actions.iter().any(|a| {
        [Relation::Owner, Relation::Other].iter().any(|r| {
            [Visibility::Public, Visibility::Private]
                .iter()
                .any(|v| policy::decide(actor, *a, *r, *v) == Decision::Allow)
        })
    });
    match (allowed, actor) {
        (true, _) => Ok(()),
        (false, Actor::Anonymous) => Err(AppError::unauthenticated()),
        (false, _) => Err(AppError::Denied(Denial {
            decision: Decision::Deny,
            action: actions[0],
            actor: who.map(|p| p.user_id),
            target: None,
            missing_scope: None,
        })),
    }
}

/// The operator's command line acts as the system: it is not subject to the HTTP policy.
/// Only `service::users::operator` calls this.
pub(crate) fn as_operator<T>(action: Action, sealed: Sealed<T>) -> Authorized<T> {
    Authorized {
        action,
        by: None,
        object: sealed.0,
    }
}

fn decide_for(
    who: Option<&Principal>,
    action: Action,
    relation: Relation,
    visibility: Visibility,
) -> Decision {
    policy::decide(actor_of(who), action, relation, visibility)
}

/// The rows of a list the caller may see, for the SQL filter. Derived from the policy's read rows.
#[derive(Debug, Clone, Copy)]
pub struct ListScope {
    scope: ReadScope,
    viewer: UserId,
}

impl ListScope {
    /// Needs the proof that listing was allowed.
    pub fn of(grant: &Authorized<()>, who: &Principal) -> Result<Self> {
        grant.require(Action::ResourceList)?;
        Ok(Self {
            scope: policy::read_scope(who.actor()),
            viewer: who.user_id,
        })
    }
    pub fn scope(&self) -> ReadScope {
        self.scope
    }
    pub fn viewer(&self) -> UserId {
        self.viewer
    }
}
