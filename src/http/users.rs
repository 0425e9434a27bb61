//! `/api/v1/users`: registration, the caller's profile, account administration.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::AppJson;
use super::page;
use crate::authz::Principal;
use crate::domain::{Email, FullName, Password, Role, User, UserId};
use crate::error::{AppError, Result, ValidationError};
use crate::service::users::{AccountChange, NewAccount, ProfileChange};
use crate::service::{self, audit::RequestMeta};
use crate::state::AppState;

const LIST: &str = "users";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(me, update_me))
        .routes(routes!(update))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// An email address; compared case-insensitively.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
    )]
    email: String,
    /// 8 to 100 characters (the minimum is configurable), not a common password, not the email.
    #[schema(
        min_length = 8,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    password: String,
    /// 1 to 100 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
    )]
    full_name: String,
}

/// A change of one's own profile: a new name, or a password change (which needs the current
/// password), or both. Documented as two shapes (`one_of`) so that the schema says what the
/// server accepts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    full_name: Option<String>,
    current_password: Option<String>,
    new_password: Option<String>,
}

/// The documented shapes of `UpdateMe`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum UpdateMeDoc {
    Rename(Rename),
    ChangePassword(ChangePassword),
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Rename {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
    )]
    full_name: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ChangePassword {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
    )]
    full_name: Option<String>,
    /// The password in use now.
    current_password: String,
    #[schema(
        min_length = 8,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateUser {
    #[schema(nullable = false)]
    #[serde(default, deserialize_with = "super::extract::present")]
    role: Option<Role>,
    #[schema(nullable = false)]
    #[serde(default, deserialize_with = "super::extract::present")]
    disabled: Option<bool>,
}

/// A profile as its owner sees it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserView {
    id: UserId,
    email: String,
    full_name: String,
    role: Role,
    created_at: String,
}

/// An account as admins and managers see it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountView {
    id: UserId,
    email: String,
    full_name: String,
    role: Role,
    disabled: bool,
    created_at: String,
}

/// An account in the list: as `AccountView`, with its last login.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountListItem {
    id: UserId,
    email: String,
    full_name: String,
    role: Role,
    disabled: bool,
    created_at: String,
    /// The newest session the account opened; null if it never logged in.
    last_login: Option<String>,
    /// The account has a confirmed second factor (required at its sign-in).
    second_factor: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPage {
    items: Vec<AccountListItem>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            full_name: u.full_name,
            role: u.role,
            created_at: u.created_at.rfc3339(),
        }
    }
}

impl From<User> for AccountView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            full_name: u.full_name,
            role: u.role,
            disabled: u.disabled,
            created_at: u.created_at.rfc3339(),
        }
    }
}

/// Register an account (anyone when registration is open; admins only otherwise).
#[utoipa::path(post, path = "/users", tag = "identity", request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 401, description = "a bearer token was sent and is not valid (it is optional: admins send one when registration is admin-only)"),
        (status = 409, description = "email taken"), (status = 422, description = "invalid input")))]
async fn create(
    State(app): State<AppState>,
    who: Option<Principal>,
    meta: RequestMeta,
    AppJson(req): AppJson<CreateUser>,
) -> Result<(StatusCode, Json<UserView>)> {
    let mut errors = ValidationError::default();
    let email = errors.collect(Email::parse(&req.email));
    let full_name = errors.collect(FullName::parse(&req.full_name));
    let password = errors.collect(Password::parse(
        &req.password,
        &app.config.password_policy,
        "password",
        Some(req.email.trim()),
    ));
    let (Some(email), Some(full_name), Some(password)) = (email, full_name, password) else {
        return Err(errors.into());
    };
    let user = service::users::register(
        &app.store,
        &app.identity,
        &app.config,
        who.as_ref(),
        NewAccount {
            email,
            full_name,
            password,
        },
        &meta,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// The caller's profile.
#[utoipa::path(get, path = "/users/me", tag = "identity", security(("bearer" = [])), responses((status = 200, body = UserView)))]
async fn me(State(app): State<AppState>, who: Principal) -> Result<Json<UserView>> {
    Ok(Json(service::users::me(&app.store, &who).await?.into()))
}

/// Change the caller's name or password. A password change needs `current_password` and ends every other session.
#[utoipa::path(patch, path = "/users/me", tag = "identity", security(("bearer" = [])), request_body = UpdateMeDoc,
    responses((status = 200, body = UserView), (status = 403, description = "wrong current password"), (status = 422, description = "invalid input")))]
async fn update_me(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<UpdateMe>,
) -> Result<Json<UserView>> {
    let mut errors = ValidationError::default();
    let full_name = req
        .full_name
        .as_deref()
        .and_then(|n| errors.collect(FullName::parse(n)));
    // A new password is checked whenever it is given, with or without `current_password`, so
    // that one answer names every field that breaks the schema.
    let new = match req.new_password.as_deref() {
        None => None,
        Some(new) => {
            let email = service::users::me(&app.store, &who).await?.email;
            errors.collect(Password::parse(
                new,
                &app.config.password_policy,
                "new_password",
                Some(&email),
            ))
        }
    };
    let password = match (req.current_password, req.new_password.is_some()) {
        (None, false) => None,
        (None, true) => {
            errors.push("current_password", "is required to change the password");
            None
        }
        (Some(_), false) => {
            errors.push("new_password", "is required with current_password");
            None
        }
        (Some(current), true) => new.map(|p| (current, p)),
    };
    if errors.is_empty() && full_name.is_none() && password.is_none() {
        errors.push(
            "body",
            "give full_name, or current_password and new_password",
        );
    }
    errors.into_result()?;
    let user = service::users::update_me(
        &app.store,
        &app.identity,
        &app.guards,
        &app.sinks,
        &app.config,
        &who,
        ProfileChange {
            full_name,
            password,
        },
        &meta,
    )
    .await?;
    Ok(Json(user.into()))
}

/// The list's query: a search besides `limit` and `cursor`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UserQuery {
    /// Only accounts whose email or full name contains this, ignoring case: 1..=100 characters.
    #[param(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    q: Option<String>,
    /// Items per page, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page (of the same search).
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// Accounts, in creation order, with their last login; `q` searches emails and names (admins
/// and managers).
#[utoipa::path(get, path = "/users", tag = "identity", security(("bearer" = [])), params(UserQuery),
    responses((status = 200, body = AccountPage), (status = 403, description = "not an admin or manager"),
        (status = 422, description = "bad q, limit or cursor")))]
async fn list(
    State(app): State<AppState>,
    who: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<AccountPage>> {
    // The policy first: a refused caller learns nothing from the validation of the query.
    let grant = crate::authz::authorize_plain(Some(&who), crate::authz::Action::AccountList)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map_err(|_| ValidationError::field("query", "is not a valid query string"))?;
    let (search, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| k == "q");
    let mut errors = ValidationError::default();
    let search = match search.as_slice() {
        [] => None,
        [(_, q)] if (1..=100).contains(&q.chars().count()) && !q.chars().any(char::is_control) => {
            Some(q.clone())
        }
        [_] => {
            errors.push(
                "q",
                "must be 1 to 100 characters, without control characters",
            );
            None
        }
        _ => {
            errors.push("q", "is given more than once");
            None
        }
    };
    errors.into_result()?;
    let rest = serde_urlencoded::to_string(&rest).unwrap_or_default();
    let req = page::parse(Some(&rest), &app.cursors, LIST, who.user_id())?;
    let rows = service::users::list(
        &app.store,
        &grant,
        search.as_deref(),
        req.after.map(UserId::from_uuid),
        req.limit,
    )
    .await?;
    let (rows, next_cursor) = page::finish(
        rows,
        req,
        |(u, _, _)| u.id.as_uuid(),
        &app.cursors,
        LIST,
        who.user_id(),
    );
    Ok(Json(AccountPage {
        items: rows
            .into_iter()
            .map(|(u, last, second_factor)| AccountListItem {
                id: u.id,
                email: u.email,
                full_name: u.full_name,
                role: u.role,
                disabled: u.disabled,
                created_at: u.created_at.rfc3339(),
                last_login: last.map(|t| t.rfc3339()),
                second_factor,
            })
            .collect(),
        next_cursor,
    }))
}

/// Change an account's role or status (admin: both; manager: the status of a `user` only).
#[utoipa::path(patch, path = "/users/{id}", tag = "identity", security(("bearer" = [])), request_body = UpdateUser,
    params(("id" = String, Path, description = "the account's id")),
    responses((status = 200, body = AccountView), (status = 403), (status = 404), (status = 409, description = "own account, or the last admin")))]
async fn update(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
    AppJson(req): AppJson<UpdateUser>,
) -> Result<Json<AccountView>> {
    // A path segment that is not an id names no account.
    let id: UserId = id.parse().map_err(|_| AppError::NotFound)?;
    if req.role.is_none() && req.disabled.is_none() {
        return Err(ValidationError::field("body", "give role or disabled").into());
    }
    let user = service::users::update(
        &app.store,
        &who,
        id,
        AccountChange {
            role: req.role,
            disabled: req.disabled,
        },
        &meta,
    )
    .await?;
    Ok(Json(user.into()))
}
