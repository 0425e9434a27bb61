//! Accounts: registration, the caller's own profile, and account administration.

use super::audit::{self, Event, RequestMeta};
use crate::auth::password::Verdict;
use crate::authz::{self, Action, Authorized, Principal};
use crate::config::Config;
use crate::config::Registration;
use crate::db::users::NewUser;
use crate::db::{Tx, sessions, users};
use crate::domain::{ClientId, Email, FullName, Password, Role, Timestamp, User, UserId};
use crate::error::{AppError, Result, ResultExt, ValidationError};
use crate::limits::login::Gate;
use crate::service::context::{Guards, Identity, Sinks, Store};

/// What an account's quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    Resources,
    Secrets,
}

/// Opens the write transaction of a create of one more `what` for `owner`, or refuses it (403
/// `quota_exceeded`) when the account holds its quota already. The account's quota lock is held
/// until the returned transaction ends (`users::holdings_for_create`), so concurrent creates of
/// one account never overshoot it.
pub async fn begin_create(
    store: &Store,
    config: &Config,
    owner: UserId,
    what: Owned,
) -> Result<Tx> {
    let mut tx = store.db.begin_write().await?;
    let held = users::holdings_for_create(&mut tx, owner).await?;
    let (held, limit, what, var) = match what {
        Owned::Resources => (
            held.resources,
            config.quota_resources,
            "resources",
            "IMANGOR_QUOTA_RESOURCES",
        ),
        Owned::Secrets => (
            held.secrets,
            config.quota_secrets,
            "secrets",
            "IMANGOR_QUOTA_SECRETS",
        ),
    };
    // Never negative: `holdings_for_create` counts the rows when a kept count drifted below 0.
    if u64::try_from(held).unwrap_or(u64::MAX) >= limit {
        // Committed: a drifted count repaired while reading stays repaired.
        store.commit(tx).await?;
        return Err(AppError::QuotaExceeded { what, limit, var });
    }
    Ok(tx)
}

/// A new account, every field already parsed.
pub struct NewAccount {
    pub email: Email,
    pub full_name: FullName,
    pub password: Password,
}

/// A change of the caller's own profile.
pub struct ProfileChange {
    pub full_name: Option<FullName>,
    /// (current password as typed, new password that passed the policy)
    pub password: Option<(String, Password)>,
}

/// What an admin or manager changes on another account.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// Self-service registration (when open) or creation by an admin. New accounts are always `user`.
#[tracing::instrument(skip_all)]
pub async fn register(
    store: &Store,
    identity: &Identity,
    config: &Config,
    caller: Option<&Principal>,
    new: NewAccount,
    meta: &RequestMeta,
) -> Result<User> {
    let action = match config.registration {
        Registration::Open => Action::AccountRegister,
        Registration::AdminOnly => Action::AccountCreate,
    };
    authz::authorize_plain(caller, action)?;
    let hash = identity.hasher.hash(new.password.expose()).await?;
    // The account and its event are written in one transaction: both or neither.
    let mut tx = store.db.begin().await?;
    let user = insert(&mut tx, &new.email, &new.full_name, &hash, Role::User).await?;
    let actor = caller.map(|c| c.user_id()).unwrap_or(user.id);
    Event::new(audit::Action::UserRegister, audit::Outcome::Success)
        .actor(actor)
        .target(user.id)
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(user)
}

async fn insert(
    tx: &mut Tx,
    email: &Email,
    full_name: &FullName,
    hash: &str,
    role: Role,
) -> Result<User> {
    let now = Timestamp::now();
    let id = UserId::new();
    users::insert(
        tx,
        &NewUser {
            id,
            email: email.as_str(),
            full_name: full_name.as_str(),
            password_hash: hash,
            role,
            now,
        },
    )
    .await
    .on_unique("email")?;
    Ok(User {
        id,
        email: email.as_str().to_owned(),
        full_name: full_name.as_str().to_owned(),
        role,
        disabled: false,
        created_at: now,
    })
}

pub async fn me(store: &Store, who: &Principal) -> Result<User> {
    authz::authorize_plain(Some(who), Action::AccountReadSelf)?;
    let mut tx = store.db.begin().await?;
    let u = users::find(&mut tx, who.user_id())
        .await?
        .ok_or(AppError::NotFound)?;
    store.commit(tx).await?;
    Ok(u)
}

/// Changes the caller's name and/or password. A password change needs the current password and
/// ends every other session of the account (the caller's own session stays).
#[tracing::instrument(skip_all, fields(user_id = %who.user_id()))]
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn update_me(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    config: &Config,
    who: &Principal,
    change: ProfileChange,
    meta: &RequestMeta,
) -> Result<User> {
    let grant = authz::authorize_plain(Some(who), Action::AccountUpdateSelf)?;
    let now = Timestamp::now();
    let new_hash = match &change.password {
        None => None,
        Some((current, new)) => {
            confirm_current_password(
                store,
                identity,
                guards,
                sinks,
                who,
                current,
                audit::Action::UserPasswordChange,
                meta,
            )
            .await?;
            Some(identity.hasher.hash(new.expose()).await?)
        }
    };
    let mut tx = store.db.begin().await?;
    if let Some(name) = &change.full_name {
        users::set_full_name(&mut tx, &grant, name.as_str(), now).await?;
    }
    if let Some(hash) = &new_hash {
        users::set_password_hash(&mut tx, who.user_id(), hash, now).await?;
        let ended = sessions::revoke_all_of(
            &mut tx,
            who.user_id(),
            who.session(),
            "password changed",
            now,
        )
        .await?;
        Event::new(audit::Action::UserPasswordChange, audit::Outcome::Success)
            .actor(who.user_id())
            .target(who.user_id())
            .detail(format!("{ended} other session(s) ended"))
            .record(&mut tx, meta)
            .await?;
    }
    let user = users::find(&mut tx, who.user_id())
        .await?
        .ok_or(AppError::NotFound)?;
    store.commit(tx).await?;
    if let (Some((current, _)), Some(_)) = (&change.password, &new_hash) {
        forget_bootstrap_password(config, current);
    }
    Ok(user)
}

/// The generated bootstrap password file goes once the password it holds is changed: it opens
/// nothing any more. (Only the replica that wrote it holds it.)
fn forget_bootstrap_password(config: &Config, replaced: &str) {
    let path = config.data_dir.join(BOOTSTRAP_PASSWORD_FILE);
    let Ok(held) = std::fs::read_to_string(&path) else {
        return;
    };
    if held.trim_end() != replaced {
        return;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(
            path = %path.display(),
            "bootstrap admin password file removed: the bootstrap admin changed the password"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "the bootstrap admin changed the password, but its old password file could not be removed: delete it"
        ),
    }
}

/// A page of accounts with their last login (admins and managers), in creation order, optionally
/// only those whose email or name contains `search`; `limit + 1` rows are fetched so the caller
/// knows whether more follow.
pub async fn list(
    store: &Store,
    grant: &Authorized<()>,
    search: Option<&str>,
    after: Option<UserId>,
    limit: u32,
) -> Result<Vec<users::Activity>> {
    grant.require(Action::AccountList)?;
    let mut tx = store.db.begin().await?;
    let page = users::list(&mut tx, grant, search, after, limit + 1).await?;
    store.commit(tx).await?;
    Ok(page)
}

/// Second factors are changed only by their owner in person: with the password grant's tokens
/// or a first-party client's (the console's), never with a token a third-party client holds
/// (a `profile` scope granted to an application does not let it add or remove factors).
pub(crate) async fn in_person(store: &Store, who: &Principal) -> Result<()> {
    let Some(client) = who.client() else {
        return Ok(());
    };
    if client == super::oauth::console_client_id() {
        return Ok(());
    }
    match crate::db::clients::find(&store.db, client).await? {
        Some((c, _)) if c.first_party => Ok(()),
        _ => Err(AppError::Refused(
            "second factors are changed in the console or with the password grant, not through a third-party client's token",
        )),
    }
}

/// The checks before a change to the caller's own second factors: the policy, a token held in
/// person (`in_person`), the current password through its guard.
pub(crate) async fn confirm_own_factor_change(
    (store, identity, guards, sinks): (&Store, &Identity, &Guards, &Sinks),
    who: &Principal,
    current_password: &str,
    action: audit::Action,
    meta: &RequestMeta,
) -> Result<()> {
    authz::authorize_plain(Some(who), Action::AccountUpdateSelf)?;
    in_person(store, who).await?;
    confirm_current_password(
        store,
        identity,
        guards,
        sinks,
        who,
        current_password,
        action,
        meta,
    )
    .await
}

/// Checks the caller's current password before a sensitive change of its own account (a new
/// password, a second factor). Guessing it with a stolen access token is throttled like a
/// login (per account and address) and each refusal and wrong guess is an `action` event.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub(crate) async fn confirm_current_password(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    who: &Principal,
    current: &str,
    action: audit::Action,
    meta: &RequestMeta,
) -> Result<()> {
    let guard_key = format!("password-change:{}", who.user_id());
    let ip = super::auth::client(meta);
    match guards.logins.begin(&guard_key, ip).await {
        Gate::Locked { retry_after_s, .. } | Gate::Capped { retry_after_s, .. } => {
            // A refused guess is still a guess: recorded like a refused login, and capped the
            // same way (ASVS V16.3.1).
            let id = who.user_id();
            if let Some(note) = super::refusal_recorded(guards, sinks, action, &id.to_string()) {
                Event::new(action, audit::Outcome::Throttled)
                    .actor(id)
                    .target(id)
                    .detail(format!(
                        "too many wrong current passwords; refused for {retry_after_s} s{note}"
                    ))
                    .emit(&sinks.events, meta)
                    .await;
            }
            return Err(AppError::RateLimited { retry_after_s });
        }
        Gate::Open { delay } if !delay.is_zero() => tokio::time::sleep(delay).await,
        Gate::Open { .. } => {}
    }
    let mut tx = store.db.begin().await?;
    let stored = users::password_hash(&mut tx, who.user_id()).await?;
    store.commit(tx).await?;
    if identity.hasher.verify(current, stored).await? == Verdict::Mismatch {
        Event::new(action, audit::Outcome::Failure)
            .actor(who.user_id())
            .target(who.user_id())
            .detail("wrong current password")
            .emit(&sinks.events, meta)
            .await;
        return Err(AppError::WrongPassword);
    }
    guards.logins.succeeded(&guard_key, ip).await;
    Ok(())
}

/// Role and status changes, as the policy allows them: admins change both; managers only
/// disable or enable plain users. Then the business rules: nobody changes their own role or
/// status, and the last active admin stays one (409).
#[tracing::instrument(skip_all, fields(user_id = %who.user_id(), target = %id))]
pub async fn update(
    store: &Store,
    who: &Principal,
    id: UserId,
    change: AccountChange,
    meta: &RequestMeta,
) -> Result<User> {
    let mut asked = Vec::new();
    if change.role.is_some() {
        asked.push(Action::AccountSetRole);
    }
    if change.disabled.is_some() {
        asked.extend([Action::AccountDisableUser, Action::AccountDisableStaff]);
    }
    authz::authorize_any(Some(who), &asked)?;
    let now = Timestamp::now();
    let mut tx = store.db.begin_write().await?;
    users::lock_account_changes(&mut tx).await?;
    let sealed = users::find_for_update(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    // One decision for each thing asked; the first refusal ends the request.
    let role_proof = match change.role {
        Some(_) => Some(authz::authorize(
            Some(who),
            Action::AccountSetRole,
            sealed.clone(),
        )?),
        None => None,
    };
    let status_proof = match change.disabled {
        Some(_) => Some(authz::authorize_by(
            Some(who),
            |u: &User| disable_action(u.role),
            sealed,
        )?),
        None => None,
    };
    let Some(before) = role_proof
        .as_ref()
        .or(status_proof.as_ref())
        .map(|p| p.object().clone())
    else {
        return Err(ValidationError::field("body", "give role or disabled").into());
    };
    // A client's service account acts for the client: its role stays `user` and it ends with
    // the client (DELETE /api/v1/clients/{id}), so no one widens or breaks a client here.
    if crate::db::clients::exists(&mut tx, ClientId::from_uuid(id.as_uuid())).await? {
        return Err(AppError::Refused(
            "this is an OAuth client's service account: it changes through its client",
        ));
    }
    let demotes = change.role.is_some_and(|r| r != Role::Admin) && before.role == Role::Admin;
    let disables = change.disabled == Some(true) && !before.disabled;
    if id == who.user_id() && (change.role.is_some_and(|r| r != before.role) || disables) {
        return Err(AppError::Refused(
            "you cannot change the role or status of your own account",
        ));
    }
    if before.role == Role::Admin
        && !before.disabled
        && (demotes || disables)
        && users::count_active_admins(&mut tx).await? <= 1
    {
        return Err(AppError::Refused(
            "the last active admin cannot be demoted or disabled",
        ));
    }
    if let (Some(proof), Some(role)) = (&role_proof, change.role.filter(|r| *r != before.role)) {
        users::set_role(&mut tx, proof, role, now).await?;
        Event::new(audit::Action::UserRoleChange, audit::Outcome::Success)
            .actor(who.user_id())
            .target(id)
            .detail(format!("{} -> {}", before.role, role))
            .record(&mut tx, meta)
            .await?;
    }
    if let (Some(proof), Some(disabled)) = (
        &status_proof,
        change.disabled.filter(|d| *d != before.disabled),
    ) {
        users::set_disabled(&mut tx, proof, disabled, now).await?;
        if disabled {
            sessions::revoke_all_of(&mut tx, id, None, "account disabled", now).await?;
        }
        let action = if disabled {
            audit::Action::UserDisable
        } else {
            audit::Action::UserEnable
        };
        Event::new(action, audit::Outcome::Success)
            .actor(who.user_id())
            .target(id)
            .record(&mut tx, meta)
            .await?;
    }
    let user = users::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    store.commit(tx).await?;
    Ok(user)
}

/// Disabling a plain user and disabling staff are different actions of the policy.
fn disable_action(target_role: Role) -> Action {
    match target_role {
        Role::User => Action::AccountDisableUser,
        Role::Manager | Role::Admin => Action::AccountDisableStaff,
    }
}

/// Where the first admin's password is (no `Debug`: it may hold the password).
pub enum BootstrapPassword {
    /// `IMANGOR_BOOTSTRAP_ADMIN_PASSWORD(_FILE)` gave it.
    Configured,
    /// Generated; development shows it once on stderr.
    Generated(String),
    /// Generated and written to this 0600 file of the data dir (production: never printed, so
    /// it never reaches a log pipeline).
    Written(std::path::PathBuf),
}

/// The file of the data dir that holds a generated bootstrap password in production.
pub const BOOTSTRAP_PASSWORD_FILE: &str = "bootstrap-admin-password";

/// Creates the first admin when no admin exists, and says where its password is.
pub async fn bootstrap_admin(
    store: &Store,
    identity: &Identity,
    config: &Config,
) -> Result<Option<(String, BootstrapPassword)>> {
    let mut tx = store.db.begin().await?;
    let exists = users::any_admin(&mut tx).await?;
    store.commit(tx).await?;
    if exists {
        return Ok(None);
    }
    let email = config
        .bootstrap_admin_email
        .clone()
        .unwrap_or_else(|| "admin@imangor.local".to_owned());
    let email = Email::parse(&email)?;
    let (password, generated) = match &config.bootstrap_admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (crate::auth::random_token(18)?, true),
    };
    let checked = Password::parse(
        &password,
        &config.password_policy,
        "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD",
        Some(email.as_str()),
    )?;
    let hash = identity.hasher.hash(checked.expose()).await?;
    let name = FullName::parse("Administrator")?;
    // Written before the account exists: an admin whose password was lost is never created.
    let file = (generated && config.is_production())
        .then(|| config.data_dir.join(BOOTSTRAP_PASSWORD_FILE));
    if let Some(path) = &file {
        // Refused unless the data dir is this user's alone: another could read or swap the file.
        crate::crypto::files::check_private_dir(&config.data_dir)?;
        crate::crypto::files::replace_private(path, format!("{password}\n").as_bytes())?;
    }
    let mut tx = store.db.begin().await?;
    match insert(&mut tx, &email, &name, &hash, Role::Admin).await {
        Ok(u) => {
            Event::new(audit::Action::UserBootstrapAdmin, audit::Outcome::Success)
                .target(u.id)
                .record(&mut tx, &RequestMeta::default())
                .await?;
            store.commit(tx).await?;
            let where_ = match file {
                Some(path) => BootstrapPassword::Written(path),
                None if generated => BootstrapPassword::Generated(password),
                None => BootstrapPassword::Configured,
            };
            Ok(Some((u.email, where_)))
        }
        // Another replica created it first: this replica's password opens nothing.
        Err(AppError::Conflict(_)) => {
            if let Some(path) = &file {
                let _ = std::fs::remove_file(path);
            }
            Ok(None)
        }
        Err(e) => {
            if let Some(path) = &file {
                let _ = std::fs::remove_file(path);
            }
            Err(e)
        }
    }
}

/// Operator commands (`imangor user ...`): they act as the system, not as a user.
pub mod operator {
    use super::*;

    pub async fn create(
        store: &Store,
        identity: &Identity,
        new: NewAccount,
        role: Role,
    ) -> Result<User> {
        let hash = identity.hasher.hash(new.password.expose()).await?;
        let mut tx = store.db.begin().await?;
        let user = insert(&mut tx, &new.email, &new.full_name, &hash, role).await?;
        Event::new(audit::Action::UserCreate, audit::Outcome::Success)
            .actor("operator")
            .target(user.id)
            .detail(format!("role {role}"))
            .record(&mut tx, &RequestMeta::default())
            .await?;
        store.commit(tx).await?;
        Ok(user)
    }

    /// The account with this email, opened for `action` as the operator (the command line is not
    /// subject to the HTTP policy; it is the system's own hand).
    async fn open(
        store: &Store,
        tx: &mut Tx,
        email: &Email,
        action: Action,
    ) -> Result<authz::Authorized<User>> {
        let id = users::find_credentials(&store.db, email.as_str())
            .await?
            .ok_or(AppError::NotFound)?
            .0
            .id;
        users::lock_account_changes(tx).await?;
        let sealed = users::find_for_update(tx, id)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok(authz::as_operator(action, sealed))
    }

    pub async fn set_role(store: &Store, email: &Email, role: Role) -> Result<User> {
        let mut tx = store.db.begin_write().await?;
        let proof = open(store, &mut tx, email, Action::AccountSetRole).await?;
        let user = proof.object().clone();
        if user.role == Role::Admin
            && role != Role::Admin
            && !user.disabled
            && users::count_active_admins(&mut tx).await? <= 1
        {
            return Err(AppError::Refused(
                "the last active admin cannot be demoted or disabled",
            ));
        }
        users::set_role(&mut tx, &proof, role, Timestamp::now()).await?;
        Event::new(audit::Action::UserRoleChange, audit::Outcome::Success)
            .actor("operator")
            .target(user.id)
            .detail(format!("{} -> {role}", user.role))
            .record(&mut tx, &RequestMeta::default())
            .await?;
        store.commit(tx).await?;
        Ok(User { role, ..user })
    }

    pub async fn disable(store: &Store, email: &Email) -> Result<User> {
        let now = Timestamp::now();
        let mut tx = store.db.begin_write().await?;
        let proof = open(store, &mut tx, email, Action::AccountDisableStaff).await?;
        let user = proof.object().clone();
        if user.role == Role::Admin
            && !user.disabled
            && users::count_active_admins(&mut tx).await? <= 1
        {
            return Err(AppError::Refused(
                "the last active admin cannot be demoted or disabled",
            ));
        }
        users::set_disabled(&mut tx, &proof, true, now).await?;
        sessions::revoke_all_of(&mut tx, user.id, None, "account disabled", now).await?;
        Event::new(audit::Action::UserDisable, audit::Outcome::Success)
            .actor("operator")
            .target(user.id)
            .record(&mut tx, &RequestMeta::default())
            .await?;
        store.commit(tx).await?;
        Ok(User {
            disabled: true,
            ..user
        })
    }

    /// Removes every second factor of an account (TOTP, its recovery codes, its passkeys) and
    /// ends its sessions: for an owner who lost them all, or an account where someone else
    /// added one (a passkey registered with a stolen password outlives a password change). The
    /// owner signs in with the password alone and enrols again; a role that must have a second
    /// factor gets its enrolment-only token meanwhile.
    pub async fn reset_second_factors(store: &Store, email: &Email) -> Result<(User, u64)> {
        let now = Timestamp::now();
        let mut tx = store.db.begin_write().await?;
        let proof = open(store, &mut tx, email, Action::AccountDisableStaff).await?;
        let user = proof.object().clone();
        let totp = crate::db::mfa::totp(&mut tx, user.id).await?.is_some();
        crate::db::mfa::remove(&mut tx, user.id).await?;
        let passkeys = crate::db::passkeys::delete_all_of(&mut tx, user.id).await?;
        let ended =
            sessions::revoke_all_of(&mut tx, user.id, None, "second factors reset", now).await?;
        tx.auth_changed();
        for (action, what) in [
            (
                audit::Action::MfaTotpRemove,
                format!("TOTP {}", if totp { "removed" } else { "none" }),
            ),
            (
                audit::Action::MfaPasskeyRemove,
                format!("{passkeys} passkey(s) removed"),
            ),
        ] {
            Event::new(action, audit::Outcome::Success)
                .actor("operator")
                .target(user.id)
                .detail(format!(
                    "second factors reset by the operator: {what}; {ended} session(s) ended"
                ))
                .warning()
                .record(&mut tx, &RequestMeta::default())
                .await?;
        }
        store.commit(tx).await?;
        Ok((user, passkeys + u64::from(totp)))
    }
}
