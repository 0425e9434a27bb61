//! Accounts: registration, the caller's own profile, and account administration.

use super::{Event, RequestMeta};
use crate::auth::password::Verdict;
use crate::authz::Principal;
use crate::config::Registration;
use crate::db::users::{NewUser, User};
use crate::db::{Tx, sessions, users};
use crate::domain::{Email, FullName, Password, Role, Timestamp, UserId};
use crate::error::{AppError, Result, ResultExt};
use crate::state::AppState;

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
    app: &AppState,
    caller: Option<&Principal>,
    new: NewAccount,
    meta: &RequestMeta,
) -> Result<User> {
    if app.config.registration == Registration::AdminOnly {
        caller
            .ok_or_else(AppError::unauthenticated)?
            .require_role(&[Role::Admin])?;
    }
    let hash = app.hasher.hash(new.password.expose()).await?;
    // The account and its event are written in one transaction: both or neither.
    let mut tx = app.db.begin().await?;
    let user = insert(&mut tx, &new.email, &new.full_name, &hash, Role::User).await?;
    let actor = caller.map(|c| c.user_id()).unwrap_or(user.id);
    Event::new("user.register", "success")
        .actor(actor)
        .target(user.id)
        .record(&mut tx, meta)
        .await?;
    tx.commit().await?;
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

pub async fn me(app: &AppState, who: &Principal) -> Result<User> {
    let mut tx = app.db.begin().await?;
    let u = users::find(&mut tx, who.user_id())
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(u)
}

/// Changes the caller's name and/or password. A password change needs the current password and
/// ends every other session of the account (the caller's own session stays).
#[tracing::instrument(skip_all, fields(user_id = %who.user_id()))]
pub async fn update_me(
    app: &AppState,
    who: &Principal,
    change: ProfileChange,
    meta: &RequestMeta,
) -> Result<User> {
    let now = Timestamp::now();
    let new_hash = match &change.password {
        None => None,
        Some((current, new)) => {
            let mut tx = app.db.begin().await?;
            let stored = users::password_hash(&mut tx, who.user_id()).await?;
            tx.commit().await?;
            if app.hasher.verify(current, stored).await? == Verdict::Mismatch {
                let mut tx = app.db.begin().await?;
                Event::new("user.password_change", "failure")
                    .actor(who.user_id())
                    .target(who.user_id())
                    .detail("wrong current password")
                    .record(&mut tx, meta)
                    .await?;
                tx.commit().await?;
                return Err(AppError::WrongPassword);
            }
            Some(app.hasher.hash(new.expose()).await?)
        }
    };
    let mut tx = app.db.begin().await?;
    if let Some(name) = &change.full_name {
        users::set_full_name(&mut tx, who.user_id(), name.as_str(), now).await?;
    }
    if let Some(hash) = &new_hash {
        users::set_password_hash(&mut tx, who.user_id(), hash, now).await?;
        let ended = sessions::revoke_all_of(
            &mut tx,
            who.user_id(),
            Some(who.session()),
            "password changed",
            now,
        )
        .await?;
        Event::new("user.password_change", "success")
            .actor(who.user_id())
            .target(who.user_id())
            .detail(format!("{ended} other session(s) ended"))
            .record(&mut tx, meta)
            .await?;
    }
    let user = users::find(&mut tx, who.user_id())
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(user)
}

/// A page of accounts (admins and managers). `after` is the last id of the previous page.
pub async fn list(
    app: &AppState,
    who: &Principal,
    after: Option<UserId>,
    limit: u32,
) -> Result<(Vec<User>, Option<UserId>)> {
    who.require_role(&[Role::Admin, Role::Manager])?;
    let mut tx = app.db.begin().await?;
    let mut page = users::list(&mut tx, after, limit + 1).await?;
    tx.commit().await?;
    let next = if page.len() > limit as usize {
        page.truncate(limit as usize);
        page.last().map(|u| u.id)
    } else {
        None
    };
    Ok((page, next))
}

/// Role and status changes. Admins change both; managers only disable or enable plain users.
/// Nobody changes their own role or status, and the last active admin stays one.
#[tracing::instrument(skip_all, fields(user_id = %who.user_id(), target = %id))]
pub async fn update(
    app: &AppState,
    who: &Principal,
    id: UserId,
    change: AccountChange,
    meta: &RequestMeta,
) -> Result<User> {
    who.require_role(&[Role::Admin, Role::Manager])?;
    let now = Timestamp::now();
    let mut tx = app.db.begin_write().await?;
    let target = users::find_for_update(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if who.role() == Role::Manager && (change.role.is_some() || target.role != Role::User) {
        Event::new("user.update", "denied")
            .actor(who.user_id())
            .target(id)
            .record(&mut tx, meta)
            .await?;
        tx.commit().await?;
        return Err(AppError::Forbidden);
    }
    let demotes = change.role.is_some_and(|r| r != Role::Admin) && target.role == Role::Admin;
    let disables = change.disabled == Some(true) && !target.disabled;
    if id == who.user_id() && (change.role.is_some_and(|r| r != target.role) || disables) {
        return Err(AppError::Refused(
            "you cannot change the role or status of your own account",
        ));
    }
    if target.role == Role::Admin
        && !target.disabled
        && (demotes || disables)
        && users::count_active_admins(&mut tx).await? <= 1
    {
        return Err(AppError::Refused(
            "the last active admin cannot be demoted or disabled",
        ));
    }
    if let Some(role) = change.role.filter(|r| *r != target.role) {
        users::set_role(&mut tx, id, role, now).await?;
        Event::new("user.role_change", "success")
            .actor(who.user_id())
            .target(id)
            .detail(format!("{} -> {}", target.role, role))
            .record(&mut tx, meta)
            .await?;
    }
    if let Some(disabled) = change.disabled.filter(|d| *d != target.disabled) {
        users::set_disabled(&mut tx, id, disabled, now).await?;
        if disabled {
            sessions::revoke_all_of(&mut tx, id, None, "account disabled", now).await?;
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        Event::new(action, "success")
            .actor(who.user_id())
            .target(id)
            .record(&mut tx, meta)
            .await?;
    }
    let user = users::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(user)
}

/// Creates the first admin when no admin exists. Returns the generated password, if one was made.
pub async fn bootstrap_admin(app: &AppState) -> Result<Option<(String, Option<String>)>> {
    let mut tx = app.db.begin().await?;
    let exists = users::any_admin(&mut tx).await?;
    tx.commit().await?;
    if exists {
        return Ok(None);
    }
    let email = app
        .config
        .bootstrap_admin_email
        .clone()
        .unwrap_or_else(|| "admin@imangor.local".to_owned());
    let email = Email::parse(&email)?;
    let (password, generated) = match &app.config.bootstrap_admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (crate::auth::random_token(18)?, true),
    };
    let checked = Password::parse(
        &password,
        &app.config.password_policy,
        "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD",
        Some(email.as_str()),
    )?;
    let hash = app.hasher.hash(checked.expose()).await?;
    let name = FullName::parse("Administrator")?;
    let mut tx = app.db.begin().await?;
    match insert(&mut tx, &email, &name, &hash, Role::Admin).await {
        Ok(u) => {
            Event::new("user.bootstrap_admin", "success")
                .target(u.id)
                .record(&mut tx, &RequestMeta::default())
                .await?;
            tx.commit().await?;
            Ok(Some((u.email, generated.then_some(password))))
        }
        // Another replica created it first.
        Err(AppError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Operator commands (`imangor user ...`): they act as the system, not as a user.
pub mod operator {
    use super::*;

    pub async fn create(app: &AppState, new: NewAccount, role: Role) -> Result<User> {
        let hash = app.hasher.hash(new.password.expose()).await?;
        let mut tx = app.db.begin().await?;
        let user = insert(&mut tx, &new.email, &new.full_name, &hash, role).await?;
        Event::new("user.create", "success")
            .actor("operator")
            .target(user.id)
            .detail(format!("role {role}"))
            .record(&mut tx, &RequestMeta::default())
            .await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn find_by_email(app: &AppState, email: &Email) -> Result<User> {
        Ok(users::find_credentials(&app.db, email.as_str())
            .await?
            .ok_or(AppError::NotFound)?
            .0)
    }

    pub async fn set_role(app: &AppState, email: &Email, role: Role) -> Result<User> {
        let user = find_by_email(app, email).await?;
        let mut tx = app.db.begin_write().await?;
        if user.role == Role::Admin
            && role != Role::Admin
            && !user.disabled
            && users::count_active_admins(&mut tx).await? <= 1
        {
            return Err(AppError::Refused(
                "the last active admin cannot be demoted or disabled",
            ));
        }
        users::set_role(&mut tx, user.id, role, Timestamp::now()).await?;
        Event::new("user.role_change", "success")
            .actor("operator")
            .target(user.id)
            .detail(format!("{} -> {role}", user.role))
            .record(&mut tx, &RequestMeta::default())
            .await?;
        tx.commit().await?;
        Ok(User { role, ..user })
    }

    pub async fn disable(app: &AppState, email: &Email) -> Result<User> {
        let user = find_by_email(app, email).await?;
        let now = Timestamp::now();
        let mut tx = app.db.begin_write().await?;
        if user.role == Role::Admin
            && !user.disabled
            && users::count_active_admins(&mut tx).await? <= 1
        {
            return Err(AppError::Refused(
                "the last active admin cannot be demoted or disabled",
            ));
        }
        users::set_disabled(&mut tx, user.id, true, now).await?;
        sessions::revoke_all_of(&mut tx, user.id, None, "account disabled", now).await?;
        Event::new("user.disable", "success")
            .actor("operator")
            .target(user.id)
            .record(&mut tx, &RequestMeta::default())
            .await?;
        tx.commit().await?;
        Ok(User {
            disabled: true,
            ..user
        })
    }
}
