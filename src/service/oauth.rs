//! The OAuth 2.1 authorization server: registered clients, the authorization code with PKCE
//! (RFC 6749 §4.1, RFC 7636, RFC 9207), client credentials (§4.4), and introspection
//! (RFC 7662). Codes, consent tickets and client secrets carry 256 random bits and are stored
//! as SHA-256 hashes only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::audit::{self, Event, RequestMeta};
use super::auth::{SignedIn, TokenPair, check_password, open_session, pair, subject};
use crate::auth::token::Subject;
use crate::auth::{random_token, sha256_hex};
use crate::authz::{Action, Authorized};
use crate::config::Config;
use crate::crypto::data::DataKeyring;
use crate::db::clients::{self, Grant};
use crate::db::sessions::NewSession;
use crate::db::{sessions, users};
use crate::domain::client::{Client, ClientKind, GrantType, NewClient, RedirectUri, Scopes};
use crate::domain::{ClientId, Role, SessionId, SignInMethod, Timestamp, UserId};
use crate::error::{AppError, OAuthCode, Result};
use crate::service::context::{Guards, Identity, Sinks, Store};

/// How long an authorization code may be redeemed (RFC 6749 §4.1.2 advises at most ten minutes).
pub const CODE_TTL_S: u64 = 60;
/// How long a signed-in user has to approve or deny a consent.
pub const TICKET_TTL_S: u64 = 300;
/// The length of a code, a ticket and a client secret: 32 random bytes in base64url.
const TOKEN_LEN: usize = 43;
/// The longest `state` carried through the flow.
pub const MAX_STATE_LEN: usize = 512;

fn refuse(error: OAuthCode, description: &'static str) -> AppError {
    AppError::oauth(error, description)
}

/// The security console's client id: fixed, so that the page (`console/console.js`) names it
/// without asking, and the same on every deployment.
pub const CONSOLE_CLIENT_ID: &str = "c0a5c01e-0000-4000-8000-000000000001";
/// The console's name, on the sign-in page and in the client list.
pub const CONSOLE_CLIENT_NAME: &str = "imangor security console";

pub fn console_client_id() -> ClientId {
    CONSOLE_CLIENT_ID
        .parse()
        .expect("CONSOLE_CLIENT_ID is a hyphenated UUID")
}

/// The console's redirect URI, `{IMANGOR_PUBLIC_URL}/console`, or why it cannot be registered
/// (a public URL neither https nor http on a loopback address literal or `localhost`).
pub fn console_redirect_uri(config: &Config) -> std::result::Result<RedirectUri, String> {
    RedirectUri::parse_own(&format!("{}/console", config.public_url))
}

/// What became of the console's client at start.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsoleClient {
    /// Registered as it should be (created, brought up to date, or already so).
    Registered,
    /// The public URL gives no acceptable redirect URI: the console cannot sign in, and a
    /// client left by an earlier start was removed.
    Absent { why: String },
}

/// Registers the console as a first-party public client (the code flow with PKCE, then
/// refresh tokens; every scope, the role deciding), or brings its row up to date: run by every
/// replica at start, idempotent (one upsert). Its redirect URI follows `IMANGOR_PUBLIC_URL`;
/// where that gives none, an earlier row is removed (its refresh tokens then stop working).
pub async fn ensure_console_client(store: &Store, config: &Config) -> Result<ConsoleClient> {
    let id = console_client_id();
    let redirect = match console_redirect_uri(config) {
        Ok(r) => r,
        Err(why) => {
            let mut tx = store.db.begin_write().await?;
            clients::delete(&mut tx, id).await?;
            store.commit(tx).await?;
            return Ok(ConsoleClient::Absent { why });
        }
    };
    let console = Client {
        id,
        name: CONSOLE_CLIENT_NAME.to_owned(),
        kind: ClientKind::Public,
        redirect_uris: vec![redirect],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: Scopes::all(),
        first_party: true,
        created_at: Timestamp::now(),
    };
    let current = clients::find(&store.db, id).await?;
    let same = current.as_ref().is_some_and(|(c, secret)| {
        secret.is_none()
            && c.kind == console.kind
            && c.name == console.name
            && c.redirect_uris == console.redirect_uris
            && c.grant_types == console.grant_types
            && c.scopes == console.scopes
            && c.first_party
    });
    if !same {
        let mut tx = store.db.begin_write().await?;
        clients::upsert_public(&mut tx, &console).await?;
        store.commit(tx).await?;
        tracing::info!(
            client_id = CONSOLE_CLIENT_ID,
            redirect_uri = console.redirect_uris[0].as_str(),
            "the console's OAuth client was registered"
        );
    }
    Ok(ConsoleClient::Registered)
}

/// A client just registered, with its secret (shown this once; none for a public client).
pub struct Registered {
    pub client: Client,
    pub secret: Option<String>,
}

/// The service account of a client allowed the client-credentials grant: its tokens act as
/// this account (role `user`, owning what it creates), whose id is the client's.
pub fn service_account(client: ClientId) -> UserId {
    UserId::from_uuid(client.as_uuid())
}

fn service_email(client: ClientId) -> String {
    format!("client-{client}@clients.invalid")
}

/// Who changed the registry: the admin's id, or `operator` (the command line).
fn actor(grant: &Authorized<()>) -> String {
    grant
        .by()
        .map_or_else(|| "operator".to_owned(), |u| u.to_string())
}

/// The operator's grant to manage clients (`imangor client`): the command line acts as the
/// system, outside the HTTP policy.
pub fn as_operator() -> Authorized<()> {
    crate::authz::as_operator(Action::ClientManage, crate::authz::Sealed::new(()))
}

/// Registers a client. A confidential client gets a secret, returned once and stored as its
/// hash; one allowed the client-credentials grant also gets its service account (a `user`
/// whose password no one knows: 256 random bits, hashed and forgotten).
pub async fn create_client(
    store: &Store,
    identity: &Identity,
    grant: &Authorized<()>,
    new: NewClient,
    meta: &RequestMeta,
) -> Result<Registered> {
    grant.require(Action::ClientManage)?;
    let now = Timestamp::now();
    let client = Client {
        id: ClientId::new(),
        name: new.name,
        kind: new.kind,
        redirect_uris: new.redirect_uris,
        grant_types: new.grant_types,
        scopes: new.scopes,
        first_party: new.first_party,
        created_at: now,
    };
    let secret = match client.kind {
        ClientKind::Confidential => Some(random_token(32)?),
        ClientKind::Public => None,
    };
    let account_hash = if client.allows(GrantType::ClientCredentials) {
        Some(identity.hasher.hash(&random_token(32)?).await?)
    } else {
        None
    };
    let mut tx = store.db.begin().await?;
    clients::insert(
        &mut tx,
        &client,
        secret.as_deref().map(sha256_hex).as_deref(),
    )
    .await?;
    if let Some(hash) = &account_hash {
        users::insert(
            &mut tx,
            &users::NewUser {
                id: service_account(client.id),
                email: &service_email(client.id),
                full_name: &client.name,
                password_hash: hash,
                role: Role::User,
                now,
            },
        )
        .await?;
    }
    Event::new(audit::Action::ClientCreate, audit::Outcome::Success)
        .actor(actor(grant))
        .target(format!("client:{}", client.id))
        .detail(format!(
            "{} client {:?}, grants {}, scopes {}{}",
            client.kind,
            client.name,
            client
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            client.scopes,
            if client.first_party {
                ", first party"
            } else {
                ""
            }
        ))
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(Registered { client, secret })
}

pub async fn list_clients(store: &Store, grant: &Authorized<()>) -> Result<Vec<Client>> {
    grant.require(Action::ClientManage)?;
    Ok(clients::list(&store.db).await?)
}

/// Deletes a client: every session issued to it ends (its refresh and access tokens stop
/// working at once), its unredeemed codes go, and its service account is disabled (what it
/// created stays, attributed).
pub async fn delete_client(
    store: &Store,
    grant: &Authorized<()>,
    id: ClientId,
    meta: &RequestMeta,
) -> Result<()> {
    grant.require(Action::ClientManage)?;
    if id == console_client_id() {
        return Err(AppError::Refused(
            "the console's client is built in and cannot be deleted",
        ));
    }
    let now = Timestamp::now();
    let mut tx = store.db.begin().await?;
    if !clients::delete(&mut tx, id).await? {
        return Err(AppError::NotFound);
    }
    let ended = sessions::revoke_client(&mut tx, id, "client deleted", now).await?;
    let account = users::disable_service_account(&mut tx, service_account(id), now).await?;
    Event::new(audit::Action::ClientDelete, audit::Outcome::Success)
        .actor(actor(grant))
        .target(format!("client:{id}"))
        .detail(format!(
            "{ended} session(s) ended{}",
            if account {
                "; its service account disabled"
            } else {
                ""
            }
        ))
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(())
}

/// A new secret for a confidential client; the old one stops working at once.
pub async fn rotate_secret(
    store: &Store,
    grant: &Authorized<()>,
    id: ClientId,
    meta: &RequestMeta,
) -> Result<String> {
    grant.require(Action::ClientManage)?;
    let (client, _) = clients::find(&store.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if client.kind == ClientKind::Public {
        return Err(AppError::Refused("a public client has no secret"));
    }
    let secret = random_token(32)?;
    let mut tx = store.db.begin().await?;
    if !clients::set_secret(&mut tx, id, &sha256_hex(&secret), Timestamp::now()).await? {
        return Err(AppError::NotFound);
    }
    Event::new(audit::Action::ClientRotateSecret, audit::Outcome::Success)
        .actor(actor(grant))
        .target(format!("client:{id}"))
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(secret)
}

/// How a client presented itself at the token or introspection endpoint.
#[derive(Clone, Copy)]
pub enum ClientAuth<'a> {
    /// HTTP Basic (`client_secret_basic`): a confidential client.
    Basic { id: &'a str, secret: &'a str },
    /// `client_id` in the form and no secret: a public client.
    Public { id: &'a str },
}

impl ClientAuth<'_> {
    fn id(&self) -> &str {
        match self {
            ClientAuth::Basic { id, .. } | ClientAuth::Public { id } => id,
        }
    }
}

/// The client a request authenticates as: a confidential client by its secret (compared as
/// SHA-256 digests, in constant time), a public client by its id alone. Every failure is the
/// same 401 `invalid_client` and an `oauth.client_auth` event.
pub async fn authenticate_client(
    store: &Store,
    sinks: &Sinks,
    auth: ClientAuth<'_>,
    meta: &RequestMeta,
) -> Result<Client> {
    let id: Option<ClientId> = auth.id().parse().ok();
    let found = match id {
        Some(id) => clients::find(&store.db, id).await?,
        None => None,
    };
    // A presented secret is hashed and compared whether or not the client exists, so that an
    // unknown client and a wrong secret take the same work.
    let presented = match auth {
        ClientAuth::Basic { secret, .. } => Some(sha256_hex(secret)),
        ClientAuth::Public { .. } => None,
    };
    let stored = match &found {
        Some((_, Some(hash))) => hash.as_str(),
        _ => "0000000000000000000000000000000000000000000000000000000000000000",
    };
    let secret_matches = presented.as_deref().is_some_and(|p| {
        aws_lc_rs::constant_time::verify_slices_are_equal(p.as_bytes(), stored.as_bytes()).is_ok()
    });
    let ok = match (&found, auth) {
        (Some((c, Some(_))), ClientAuth::Basic { secret, .. }) => {
            c.kind == ClientKind::Confidential && secret.len() == TOKEN_LEN && secret_matches
        }
        (Some((c, None)), ClientAuth::Public { .. }) => c.kind == ClientKind::Public,
        _ => false,
    };
    match found {
        Some((client, _)) if ok => Ok(client),
        _ => {
            let mut e = Event::new(audit::Action::OAuthClientAuth, audit::Outcome::Failure).detail(
                match auth {
                    ClientAuth::Basic { .. } => "HTTP Basic",
                    ClientAuth::Public { .. } => "client_id without a secret",
                },
            );
            if let Some(id) = id {
                e = e.target(format!("client:{id}"));
            }
            e.emit(&sinks.events, meta).await;
            Err(refuse(
                OAuthCode::InvalidClient,
                "client authentication failed",
            ))
        }
    }
}

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3), as sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct AuthorizeParams<'a> {
    pub response_type: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub state: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub code_challenge_method: Option<&'a str>,
}

/// An authorization request that checked out: what the sign-in page carries on.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client: Client,
    /// The redirect URI as presented (matching a registered one).
    pub redirect_uri: String,
    pub scope: Scopes,
    pub state: Option<String>,
    pub challenge: String,
}

/// Why an authorization request was refused: where the client's redirect URI cannot be trusted
/// (unknown client, unregistered URI), an error page and never a redirect (RFC 6749 §4.1.2.1);
/// otherwise an error sent back to the client at its redirect URI.
#[derive(Debug)]
pub enum AuthorizeError {
    Page(&'static str),
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: &'static str,
        state: Option<String>,
    },
}

/// Checks an authorization request.
pub async fn authorization_request(
    store: &Store,
    p: &AuthorizeParams<'_>,
) -> std::result::Result<AuthRequest, AuthorizeError> {
    let Some(id) = p.client_id.and_then(|c| c.parse::<ClientId>().ok()) else {
        return Err(AuthorizeError::Page("the client is unknown"));
    };
    let client = match clients::find(&store.db, id).await {
        Ok(Some((c, _))) => c,
        Ok(None) => return Err(AuthorizeError::Page("the client is unknown")),
        Err(e) => {
            tracing::error!(error = %e, "reading a client failed");
            return Err(AuthorizeError::Page(
                "the server could not read the client; try again later",
            ));
        }
    };
    let redirect_uri = match p.redirect_uri {
        Some(r) => match client.redirect_uri(r) {
            Some(_) => r.to_owned(),
            None => {
                return Err(AuthorizeError::Page(
                    "the redirect URI is not registered for this client",
                ));
            }
        },
        // Required (OAuth 2.1): the token request must then name the same URI.
        None => return Err(AuthorizeError::Page("the redirect URI is missing")),
    };
    let state = p.state.map(str::to_owned);
    let back = |error, description| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description,
        state: state.clone().filter(|s| s.len() <= MAX_STATE_LEN),
    };
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(back("invalid_request", "state is too long"));
    }
    match p.response_type {
        Some("code") => {}
        None => return Err(back("invalid_request", "response_type is required")),
        Some(_) => {
            return Err(back(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(back(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        ));
    }
    let Some(challenge) = p.code_challenge else {
        return Err(back(
            "invalid_request",
            "code_challenge is required (PKCE, RFC 7636)",
        ));
    };
    if p.code_challenge_method != Some("S256") {
        return Err(back(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    // BASE64URL(SHA-256(verifier)): 43 characters of the base64url alphabet.
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return Err(back(
            "invalid_request",
            "code_challenge is not a base64url SHA-256 digest",
        ));
    }
    let scope = match p.scope {
        None => client.scopes,
        Some(s) => match Scopes::parse(s) {
            Ok(s) if s.is_subset_of(client.scopes) => s,
            _ => {
                return Err(back(
                    "invalid_scope",
                    "a requested scope is unknown or not allowed to this client",
                ));
            }
        },
    };
    Ok(AuthRequest {
        client,
        redirect_uri,
        scope,
        state,
        challenge: challenge.to_owned(),
    })
}

/// A refusal at the authorization endpoint that goes to no client (an error page): an unknown
/// client, an unregistered redirect URI, a form not bound to this browser, a spent or foreign
/// consent ticket. Recorded as an `oauth.authorize` failure (phishing and redirect probing).
pub async fn refused_page(sinks: &Sinks, client_id: Option<&str>, why: &str, meta: &RequestMeta) {
    let mut e = Event::new(audit::Action::OAuthAuthorize, audit::Outcome::Failure).detail(why);
    if let Some(id) = client_id.and_then(|c| c.parse::<ClientId>().ok()) {
        e = e.target(format!("client:{id}"));
    }
    e.emit(&sinks.events, meta).await;
}

/// What the sign-in page does next.
pub enum SignInNext {
    /// Send the browser back to the client with this URL (a code, or an error).
    Redirect(String),
    /// Ask the user to approve the client: the ticket the consent form carries.
    Consent { ticket: String },
    /// Ask for the second factor: the token the form carries with the code.
    SecondFactor { mfa_token: String },
}

/// The client's answer URL (RFC 6749 §4.1.2): its redirect URI with `params`, `state` when the
/// request had one, and `iss` (RFC 9207).
pub fn answer_url(
    identity: &Identity,
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
) -> String {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    if let Some(s) = state {
        all.push(("state", s));
    }
    all.push(("iss", identity.tokens.issuer()));
    RedirectUri::with_params(redirect_uri, &all)
}

/// The sign-in form: the password through the login guard (the same limits, lock, slow-down
/// and events as the password grant), then a code for a first-party client, or a consent
/// ticket bound to this browser (`binding`: the hash of its cookie) for any other.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn sign_in(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    req: &AuthRequest,
    username: &str,
    password: &str,
    binding: &str,
    meta: &RequestMeta,
) -> Result<SignInNext> {
    let SignedIn {
        user,
        new_hash,
        second_factor,
        password_ok,
    } = check_password(store, identity, guards, sinks, username, password, meta).await?;
    let now = Timestamp::now();
    let mut tx = store.db.begin().await?;
    if let Some(h) = &new_hash {
        users::set_password_hash(&mut tx, user.id, h, now).await?;
    }
    // An account with a second factor goes on only with it (the same rule as the password grant).
    if second_factor {
        let mfa_token = super::mfa::challenge(
            &mut tx,
            user.id,
            now,
            crate::db::mfa::Purpose::Page { binding },
            password_ok,
            meta,
        )
        .await?;
        store.commit(tx).await?;
        return Ok(SignInNext::SecondFactor { mfa_token });
    }
    Event::new(audit::Action::AuthLogin, audit::Outcome::Success)
        .actor(user.id)
        .target(format!("client:{}", req.client.id))
        .detail(if new_hash.is_some() {
            "sign-in page; password hash upgraded to argon2id"
        } else {
            "sign-in page"
        })
        .record(&mut tx, meta)
        .await?;
    let next = signed_in(
        &mut tx,
        identity,
        req,
        user.id,
        SignInMethod::Password,
        binding,
        meta,
    )
    .await?;
    store.commit(tx).await?;
    Ok(next)
}

/// The sign-in page's second step: the `mfa_token` of a right password and a TOTP or recovery
/// code (`mfa::pass`: the login guard, five wrong codes end the token); then as `sign_in`.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn second_factor(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    keys: &DataKeyring,
    req: &AuthRequest,
    mfa_token: &str,
    factor: super::mfa::Factor<'_>,
    binding: &str,
    meta: &RequestMeta,
) -> Result<SignInNext> {
    let purpose = crate::db::mfa::Purpose::Page { binding };
    let factor_method = factor.method();
    let (user, how) =
        super::mfa::pass(store, guards, sinks, keys, mfa_token, purpose, factor, meta).await?;
    let mut tx = store.db.begin().await?;
    Event::new(audit::Action::AuthLogin, audit::Outcome::Success)
        .actor(user.id)
        .target(format!("client:{}", req.client.id))
        .detail(format!("sign-in page; {how}"))
        .record(&mut tx, meta)
        .await?;
    let next = signed_in(
        &mut tx,
        identity,
        req,
        user.id,
        factor_method,
        binding,
        meta,
    )
    .await?;
    store.commit(tx).await?;
    Ok(next)
}

/// A passkey alone on the sign-in page: its answer to a challenge issued to this browser's page,
/// with user verification (WebAuthn §7.2). Nothing typed, nothing to guess: the login guard is
/// not consulted (a lock set off by wrong passwords does not keep the passkey's holder out), and
/// a sign-in clears the account's failures and remembers the address, as a password's does.
/// A refused answer is recorded and answered `invalid_grant`.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn passkey_sign_in(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    config: &Config,
    sinks: &Sinks,
    req: &AuthRequest,
    answer: &super::passkeys::Answer,
    binding: &str,
    meta: &RequestMeta,
) -> Result<SignInNext> {
    let ceremony = crate::db::passkeys::Ceremony::SignIn { binding };
    let challenge =
        super::passkeys::spend_challenge(store, &answer.client_data_json, ceremony).await?;
    let rp = super::passkeys::relying_party(config);
    let mut tx = store.db.begin_write().await?;
    let checked =
        super::passkeys::check(&mut tx, &rp, answer, challenge.as_deref(), ceremony).await?;
    let user = match checked {
        Ok((passkey, _)) => users::find(&mut tx, passkey.user)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(super::passkeys::Refusal {
                owner: Some(passkey.user),
                why: "a disabled or deleted account".to_owned(),
            }),
        Err(refusal) => Err(refusal),
    };
    let user = match user {
        Ok(u) => u,
        Err(refusal) => {
            drop(tx);
            // Named after the passkey's owner when it is one of ours (a cloned authenticator
            // or a replay is that account's event), at warning severity.
            let mut event = Event::new(audit::Action::AuthLogin, audit::Outcome::Failure)
                .target(format!("client:{}", req.client.id))
                .detail(format!("sign-in page; passkey refused: {}", refusal.why));
            if let Some(owner) = refusal.owner {
                event = event.actor(owner).warning();
            }
            event.emit(&sinks.events, meta).await;
            return Err(AppError::oauth(
                OAuthCode::InvalidGrant,
                "the passkey was not accepted",
            ));
        }
    };
    Event::new(audit::Action::AuthLogin, audit::Outcome::Success)
        .actor(user.id)
        .target(format!("client:{}", req.client.id))
        .detail("sign-in page; passkey")
        .record(&mut tx, meta)
        .await?;
    let next = signed_in(
        &mut tx,
        identity,
        req,
        user.id,
        SignInMethod::Passkey,
        binding,
        meta,
    )
    .await?;
    store.commit(tx).await?;
    guards
        .logins
        .succeeded(&user.email, super::auth::client(meta))
        .await;
    Ok(next)
}

/// After the sign-in: a code for a first-party client, or a consent ticket bound to this
/// browser for any other.
async fn signed_in(
    tx: &mut crate::db::Tx,
    identity: &Identity,
    req: &AuthRequest,
    user: UserId,
    method: SignInMethod,
    binding: &str,
    meta: &RequestMeta,
) -> Result<SignInNext> {
    let now = Timestamp::now();
    let grant = Grant {
        client: req.client.id,
        user,
        redirect_uri: req.redirect_uri.clone(),
        challenge: req.challenge.clone(),
        scope: req.scope,
        auth_time: now,
        method,
    };
    Ok(if req.client.first_party {
        let code = issue_code(tx, &grant, meta).await?;
        SignInNext::Redirect(answer_url(
            identity,
            &req.redirect_uri,
            &[("code", &code)],
            req.state.as_deref(),
        ))
    } else {
        let ticket = random_token(32)?;
        clients::insert_ticket(
            tx,
            &sha256_hex(&ticket),
            binding,
            &grant,
            req.state.as_deref(),
            now.plus_seconds(TICKET_TTL_S),
        )
        .await?;
        SignInNext::Consent { ticket }
    })
}

async fn issue_code(tx: &mut crate::db::Tx, grant: &Grant, meta: &RequestMeta) -> Result<String> {
    let code = random_token(32)?;
    clients::insert_code(
        tx,
        &sha256_hex(&code),
        grant,
        grant
            .auth_time
            .max(Timestamp::now())
            .plus_seconds(CODE_TTL_S),
    )
    .await?;
    Event::new(audit::Action::OAuthAuthorize, audit::Outcome::Success)
        .actor(grant.user)
        .target(format!("client:{}", grant.client))
        .detail(format!("code issued; scope {}", grant.scope))
        .record(tx, meta)
        .await?;
    Ok(code)
}

/// The consent form's answer: the ticket is taken (single use, bound to the browser that
/// signed in, short lived); approval issues the code, denial answers `access_denied`. A ticket
/// that is unknown, expired, spent or bound to another browser is `None`: the page says to
/// start again.
pub async fn consent(
    store: &Store,
    identity: &Identity,
    ticket: &str,
    binding: &str,
    approve: bool,
    meta: &RequestMeta,
) -> Result<Option<String>> {
    if ticket.len() != TOKEN_LEN {
        return Ok(None);
    }
    let now = Timestamp::now();
    let mut tx = store.db.begin().await?;
    let Some((grant, state)) =
        clients::take_ticket(&mut tx, &sha256_hex(ticket), binding, now).await?
    else {
        return Ok(None);
    };
    // In the transaction (no second connection while it holds the write lock).
    let client_gone = !clients::exists(&mut tx, grant.client).await?;
    let user_ok = users::find(&mut tx, grant.user)
        .await?
        .is_some_and(|u| !u.disabled);
    if client_gone || !user_ok {
        store.commit(tx).await?;
        return Ok(None);
    }
    let url = if approve {
        let code = issue_code(&mut tx, &grant, meta).await?;
        answer_url(
            identity,
            &grant.redirect_uri,
            &[("code", &code)],
            state.as_deref(),
        )
    } else {
        Event::new(audit::Action::OAuthAuthorize, audit::Outcome::Denied)
            .actor(grant.user)
            .target(format!("client:{}", grant.client))
            .detail("the user denied the consent")
            .record(&mut tx, meta)
            .await?;
        answer_url(
            identity,
            &grant.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user denied the request"),
            ],
            state.as_deref(),
        )
    };
    store.commit(tx).await?;
    Ok(Some(url))
}

/// What a client presents with `grant_type=authorization_code`.
pub struct Redemption<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub verifier: Option<&'a str>,
}

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.6). The code is spent by the
/// first presentation whatever follows: a wrong client, redirect URI or verifier burns it. A
/// spent code presented again ends the session its first use started and raises a `high`
/// incident (`oauth.code_reuse`).
pub async fn redeem_code(
    store: &Store,
    identity: &Identity,
    sinks: &Sinks,
    config: &Config,
    client: &Client,
    presented: &Redemption<'_>,
    meta: &RequestMeta,
) -> Result<TokenPair> {
    let Redemption {
        code,
        redirect_uri,
        verifier,
    } = *presented;
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(refuse(
            OAuthCode::UnauthorizedClient,
            "this client may not use the authorization code grant",
        ));
    }
    let Some(verifier) = verifier else {
        return Err(refuse(
            OAuthCode::InvalidRequest,
            "code_verifier is required (PKCE, RFC 7636)",
        ));
    };
    let failed = |detail: &'static str| {
        Event::new(audit::Action::OAuthToken, audit::Outcome::Failure)
            .target(format!("client:{}", client.id))
            .detail(detail)
    };
    if code.len() != TOKEN_LEN {
        failed("authorization_code: malformed code")
            .emit(&sinks.events, meta)
            .await;
        return Err(invalid_grant());
    }
    let hash = sha256_hex(code);
    let now = Timestamp::now();
    let mut tx = store.db.begin_write().await?;
    let Some(grant) = clients::redeem_code(&mut tx, &hash, now).await? else {
        let (user, session) = match clients::mark_code_reused(&mut tx, &hash, now).await? {
            clients::Replay::First { user, session } => (user, session),
            clients::Replay::Repeated => {
                // Recorded once already: counted, so that replays cannot flood the trail or
                // page the on-call again.
                drop(tx);
                sinks.metrics.event_skipped(audit::Action::OAuthCodeReuse);
                return Err(invalid_grant());
            }
            clients::Replay::Unknown => {
                drop(tx);
                failed("authorization_code: unknown or expired code")
                    .emit(&sinks.events, meta)
                    .await;
                return Err(invalid_grant());
            }
        };
        let ended = match session {
            Some(s) => sessions::revoke(&mut tx, s, "authorization code reuse", now).await?,
            None => false,
        };
        Event::new(
            audit::Action::OAuthCodeReuse,
            audit::Outcome::SessionRevoked,
        )
        .target(user)
        .detail(format!(
            "a spent authorization code was presented again by client {}; {}",
            client.id,
            if ended {
                "the session its first use started was ended"
            } else {
                "its first use had issued nothing still live"
            }
        ))
        .record(&mut tx, meta)
        .await?;
        store.commit(tx).await?;
        tracing::warn!(target: "security", user = %user, "authorization code reuse");
        return Err(invalid_grant());
    };
    // From here the code is spent whatever the outcome: a failed check commits that too.
    let mismatch = if grant.client != client.id {
        Some("authorization_code: the code was issued to another client")
    } else if redirect_uri != Some(grant.redirect_uri.as_str()) {
        Some("authorization_code: the redirect URI differs from the authorization request's")
    } else if !pkce_matches(verifier, &grant.challenge) {
        Some("authorization_code: the code verifier does not match the challenge")
    } else {
        None
    };
    let user = users::find(&mut tx, grant.user).await?;
    let refusal = match (&user, mismatch) {
        (_, Some(why)) => Some(why),
        (None, None) => Some("authorization_code: the account no longer exists"),
        (Some(u), None) if u.disabled => Some("authorization_code: the account is disabled"),
        _ => None,
    };
    if let Some(why) = refusal {
        failed(why).actor(grant.user).record(&mut tx, meta).await?;
        store.commit(tx).await?;
        return Err(invalid_grant());
    }
    let user = user.ok_or_else(invalid_grant)?;
    let mut scopes = grant.scope.intersect(client.scopes);
    // A role that must have a second factor, signed in without one: enrolment only.
    if !grant.method.is_mfa() && identity.mfa_required_roles.contains(&user.role) {
        scopes = scopes.intersect(super::auth::enrolment_scopes());
    }
    let (session, refresh_token) = open_session(
        &mut tx,
        NewSession {
            id: SessionId::new(),
            user: user.id,
            client: Some(client.id),
            scopes: Some(scopes),
            method: grant.method,
            auth_time: grant.auth_time,
            now,
            expires_at: now.plus_seconds(config.session_max_age),
        },
        client
            .allows(GrantType::RefreshToken)
            .then_some(config.refresh_token_ttl),
    )
    .await?;
    clients::set_code_session(&mut tx, &hash, session.id).await?;
    Event::new(audit::Action::OAuthToken, audit::Outcome::Success)
        .actor(user.id)
        .target(session.id)
        .detail(format!(
            "authorization_code for client {}; scope {scopes}",
            client.id
        ))
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    pair(identity, &subject(&session, user.role), now, refresh_token)
}

fn invalid_grant() -> AppError {
    refuse(
        OAuthCode::InvalidGrant,
        "the code is invalid, expired, spent, or was issued to another client or redirect URI",
    )
}

/// RFC 7636 §4.6: BASE64URL(SHA-256(ASCII(verifier))) equals the challenge; the verifier is 43
/// to 128 characters of `[A-Za-z0-9-._~]`.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    well_formed
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            URL_SAFE_NO_PAD.encode(digest).as_bytes(),
            challenge.as_bytes(),
        )
        .is_ok()
}

/// `grant_type=client_credentials` (RFC 6749 §4.4): an access token for the client itself (its
/// `sub` is the client; it acts as the client's service account), narrowed to the requested
/// scopes or all the client's, and no refresh token.
pub async fn client_credentials(
    store: &Store,
    identity: &Identity,
    sinks: &Sinks,
    client: &Client,
    scope: Option<&str>,
    meta: &RequestMeta,
) -> Result<TokenPair> {
    let failed = |detail: &'static str| {
        Event::new(audit::Action::OAuthToken, audit::Outcome::Failure)
            .target(format!("client:{}", client.id))
            .detail(detail)
    };
    if client.kind != ClientKind::Confidential || !client.allows(GrantType::ClientCredentials) {
        failed("client_credentials: not allowed to this client")
            .emit(&sinks.events, meta)
            .await;
        return Err(refuse(
            OAuthCode::UnauthorizedClient,
            "this client may not use the client credentials grant",
        ));
    }
    let scopes = match scope {
        None => client.scopes,
        Some(s) => match Scopes::parse(s) {
            Ok(s) if s.is_subset_of(client.scopes) => s,
            _ => {
                failed("client_credentials: a scope beyond the client's")
                    .emit(&sinks.events, meta)
                    .await;
                return Err(refuse(
                    OAuthCode::InvalidScope,
                    "a requested scope is unknown or not allowed to this client",
                ));
            }
        },
    };
    let now = Timestamp::now();
    let account = service_account(client.id);
    // It reads before it writes: a write transaction from the start (no lock upgrade on SQLite).
    let mut tx = store.db.begin_write().await?;
    let Some(user) = users::find(&mut tx, account).await?.filter(|u| !u.disabled) else {
        drop(tx);
        failed("client_credentials: the client's service account is disabled")
            .emit(&sinks.events, meta)
            .await;
        return Err(refuse(
            OAuthCode::UnauthorizedClient,
            "this client's service account is disabled",
        ));
    };
    // The session lives as long as its one token (pruned after it expires).
    let (session, _) = open_session(
        &mut tx,
        NewSession {
            id: SessionId::new(),
            user: user.id,
            client: Some(client.id),
            scopes: Some(scopes),
            method: SignInMethod::Password,
            auth_time: now,
            now,
            expires_at: now.plus_seconds(identity.tokens.ttl_s),
        },
        None,
    )
    .await?;
    Event::new(audit::Action::OAuthToken, audit::Outcome::Success)
        .actor(user.id)
        .target(session.id)
        .detail(format!("client_credentials; scope {scopes}"))
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    // A service account acts as a `user` whatever its row says (its role is not changed
    // through /users, and a scope never widens a role); no user signed in.
    let to = Subject {
        signed_in: None,
        ..subject(&session, Role::User)
    };
    pair(identity, &to, now, None)
}

/// RFC 7662 introspection of an access token, for a confidential client: active only for a
/// token issued to that client whose signature and claims check out and whose session, account
/// and id are still good (the same checks as a request bearing it). A resource server verifies
/// other tokens itself (`/.well-known/jwks.json` for EdDSA keys).
pub async fn introspect(
    store: &Store,
    identity: &Identity,
    client: &Client,
    token: &str,
) -> Result<serde_json::Value> {
    if client.kind != ClientKind::Confidential {
        return Err(refuse(
            OAuthCode::InvalidClient,
            "only a confidential client may introspect",
        ));
    }
    let inactive = serde_json::json!({ "active": false });
    let now = Timestamp::now();
    let Ok(v) = identity.tokens.verify(token, now) else {
        return Ok(inactive);
    };
    // A client learns about the tokens issued to it, not about anyone else's (introspection
    // must not be an oracle for stolen tokens).
    if v.expires_at <= now || v.client != Some(client.id) {
        return Ok(inactive);
    }
    let Some(state) = sessions::auth_state(&store.readers, v.user, v.session, &v.jti, now).await?
    else {
        return Ok(inactive);
    };
    if state.disabled || !state.session_active || state.jti_denied {
        return Ok(inactive);
    }
    let sub = v.user.to_string();
    Ok(serde_json::json!({
        "active": true,
        "scope": v.scopes.unwrap_or_else(Scopes::all).to_string(),
        "client_id": v.client.map(|c| c.to_string()),
        "sub": sub,
        "exp": v.expires_at.unix_seconds(),
        "iat": v.issued_at.unix_seconds(),
        "iss": identity.tokens.issuer(),
        "token_type": "Bearer",
    }))
}
