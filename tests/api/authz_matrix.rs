//! The authorization matrix (ASVS V8.2.1, V8.2.2; API1, API5): for every endpoint x actor x
//! relation x visibility of the policy table, a real request, and the exact status the table
//! says. An operation of the OpenAPI document that the matrix does not exercise fails the test.

use std::collections::BTreeSet;

use imangor::authz::policy::{self, ACTORS, Action, Actor, Decision, Relation, Visibility};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// Operations outside the policy: authentication itself and the probes.
const NOT_POLICED: &[&str] = &[
    "POST /api/v1/token",
    "POST /api/v1/token/revoke",
    // Clients authenticate there with their own credentials, not a bearer token.
    "POST /api/v1/token/introspect",
    "GET /.well-known/oauth-authorization-server",
    "GET /.well-known/oauth-protected-resource",
    "GET /healthz",
    "GET /readyz",
    "GET /.well-known/jwks.json",
    "GET /.well-known/imangor-audit-keys",
];

struct World {
    app: TestApp,
    /// Tokens by actor (none for anonymous) and each actor's account id.
    tokens: Vec<(Actor, Option<Tokens>, String)>,
    /// A plain user who owns the "other" objects.
    stranger: (Account, Tokens),
    seq: std::cell::Cell<u32>,
    /// Operations exercised besides the one `perform` returns.
    extra: std::cell::RefCell<BTreeSet<&'static str>>,
}

impl World {
    async fn new(extra: &[(&str, &str)]) -> World {
        let app = TestApp::spawn_with(extra).await;
        let (u, ut) = app.user_with_role("m-user@example.com", "user").await;
        let (m, mt) = app.user_with_role("m-manager@example.com", "manager").await;
        let admin = app.admin_tokens().await;
        let admin_id = app.admin.id.clone();
        let stranger = app.user_with_role("m-stranger@example.com", "user").await;
        World {
            tokens: vec![
                (Actor::Anonymous, None, String::new()),
                (Actor::User, Some(ut), u.id),
                (Actor::Manager, Some(mt), m.id),
                (Actor::Admin, Some(admin), admin_id),
            ],
            app,
            stranger,
            seq: std::cell::Cell::new(0),
            extra: Default::default(),
        }
    }

    fn who(&self, actor: Actor) -> (Option<&str>, &str) {
        let (_, t, id) = self.tokens.iter().find(|(a, _, _)| *a == actor).unwrap();
        (t.as_ref().map(|t| t.access.as_str()), id.as_str())
    }

    fn fresh(&self) -> u32 {
        self.seq.set(self.seq.get() + 1);
        self.seq.get()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> StatusCode {
        let mut r = self.app.client.request(method, self.app.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap().status()
    }

    /// A resource owned by `owner_token`'s account.
    async fn resource(&self, owner_token: &str, public: bool) -> String {
        self.app.resource(owner_token, public).await
    }

    /// A secret owned by `owner_token`'s account.
    async fn secret(&self, owner_token: &str) -> String {
        let body = json!({"name": format!("s{}", self.fresh()), "value": "v"});
        self.app
            .created("/api/v1/secrets", owner_token, &body)
            .await
    }

    /// An incident reported by a fresh account (one account may have only a few open reports).
    async fn incident(&self) -> String {
        let (_, reporter) = self
            .app
            .user_with_role(&format!("reporter{}@example.com", self.fresh()), "user")
            .await;
        let res = self
            .app
            .post_json(
                "/api/v1/incidents",
                Some(&reporter.access),
                &json!({"description": "something odd"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn client_body(&self) -> Value {
        json!({"name": format!("client {}", self.fresh()), "type": "confidential",
               "grant_types": ["client_credentials"], "scopes": ["resources:read"]})
    }

    /// A confidential client registered by the admin, to act on.
    async fn oauth_client(&self) -> String {
        let admin = self.who(Actor::Admin).0.unwrap();
        let res = self
            .app
            .post_json("/api/v1/clients", Some(admin), &self.client_body())
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json::<Value>().await.unwrap()["client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A fresh account with `role`, to act on.
    async fn account(&self, role: &str) -> String {
        let (a, _) = self
            .app
            .user_with_role(&format!("target{}@example.com", self.fresh()), role)
            .await;
        a.id
    }

    /// Performs `action` as `actor` on an object in `relation` with `visibility`; returns the
    /// status and the operation ("METHOD /template") it exercised.
    async fn perform(
        &self,
        actor: Actor,
        action: Action,
        relation: Option<Relation>,
        vis: Option<Visibility>,
    ) -> (StatusCode, &'static str) {
        let (token, my_id) = self.who(actor);
        let own = relation == Some(Relation::Owner);
        let n = self.fresh();
        match action {
            Action::AccountRegister | Action::AccountCreate => {
                let body = json!({"email": format!("new{n}@example.com"), "password": PASSWORD, "full_name": "New"});
                (
                    self.send(Method::POST, "/api/v1/users", token, Some(body))
                        .await,
                    "POST /api/v1/users",
                )
            }
            Action::AccountReadSelf => {
                let me = self.send(Method::GET, "/api/v1/users/me", token, None).await;
                let mfa = self.send(Method::GET, "/api/v1/users/me/mfa", token, None).await;
                assert_eq!(me, mfa, "the account and its second factors go together");
                self.extra.borrow_mut().insert("GET /api/v1/users/me/mfa");
                (me, "GET /api/v1/users/me")
            }
            Action::AccountUpdateSelf => {
                let me = self
                    .send(Method::PATCH, "/api/v1/users/me", token, Some(json!({"full_name": "Same"})))
                    .await;
                // Changes to one's own second factor: past the policy, each is refused by its
                // own checks (a wrong current password, no enrolment); never by the policy alone.
                let wrong = json!({"current_password": "not the password", "code": "123456"});
                for (method, path, body) in [
                    (Method::POST, "/api/v1/users/me/mfa/totp", json!({"current_password": "not the password"})),
                    (Method::POST, "/api/v1/users/me/mfa/totp/confirm", json!({"code": "123456"})),
                    (Method::DELETE, "/api/v1/users/me/mfa/totp", wrong.clone()),
                    (Method::POST, "/api/v1/users/me/mfa/recovery-codes", wrong),
                    (Method::POST, "/api/v1/users/me/passkeys/options", json!({"current_password": "not the password"})),
                    (Method::POST, "/api/v1/users/me/passkeys", passkey_body()),
                    (Method::DELETE, NO_PASSKEY, json!({"current_password": "not the password"})),
                ] {
                    let op = match (method.as_str(), path) {
                        ("POST", "/api/v1/users/me/passkeys/options") => "POST /api/v1/users/me/passkeys/options",
                        ("POST", "/api/v1/users/me/passkeys") => "POST /api/v1/users/me/passkeys",
                        ("DELETE", NO_PASSKEY) => "DELETE /api/v1/users/me/passkeys/{id}",
                        ("POST", "/api/v1/users/me/mfa/totp") => "POST /api/v1/users/me/mfa/totp",
                        ("POST", "/api/v1/users/me/mfa/totp/confirm") => "POST /api/v1/users/me/mfa/totp/confirm",
                        ("DELETE", _) => "DELETE /api/v1/users/me/mfa/totp",
                        _ => "POST /api/v1/users/me/mfa/recovery-codes",
                    };
                    let got = self.send(method, path, token, Some(body)).await;
                    assert_eq!(got == StatusCode::UNAUTHORIZED, me == StatusCode::UNAUTHORIZED, "{op}: {got}");
                    assert_ne!(got, StatusCode::OK, "{op}");
                    self.extra.borrow_mut().insert(op);
                }
                (me, "PATCH /api/v1/users/me")
            }
            Action::AccountList => (
                self.send(Method::GET, "/api/v1/users", token, None).await,
                "GET /api/v1/users",
            ),
            Action::AccountSetRole | Action::AccountDisableUser | Action::AccountDisableStaff => {
                let (target, target_role) = match (own, action) {
                    (true, _) => (my_id.to_owned(), role_of(actor)),
                    (false, Action::AccountDisableStaff) => {
                        (self.account("manager").await, "manager")
                    }
                    (false, _) => (self.account("user").await, "user"),
                };
                // Changes that change nothing, so the matrix measures the policy, not the business rules.
                let body = if action == Action::AccountSetRole {
                    json!({"role": target_role})
                } else {
                    json!({"disabled": false})
                };
                (
                    self.send(
                        Method::PATCH,
                        &format!("/api/v1/users/{target}"),
                        token,
                        Some(body),
                    )
                    .await,
                    "PATCH /api/v1/users/{id}",
                )
            }
            Action::ResourceCreate => {
                let body = json!({"title": "t", "content": "c", "is_public": false});
                (
                    self.send(Method::POST, "/api/v1/resources", token, Some(body))
                        .await,
                    "POST /api/v1/resources",
                )
            }
            Action::ResourceList => (
                self.send(Method::GET, "/api/v1/resources", token, None)
                    .await,
                "GET /api/v1/resources",
            ),
            Action::ResourceRead | Action::ResourceUpdate | Action::ResourceDelete => {
                let owner = if own {
                    token.unwrap()
                } else {
                    self.stranger.1.access.as_str()
                };
                let id = self.resource(owner, vis == Some(Visibility::Public)).await;
                let path = format!("/api/v1/resources/{id}");
                match action {
                    Action::ResourceRead => (
                        self.send(Method::GET, &path, token, None).await,
                        "GET /api/v1/resources/{id}",
                    ),
                    Action::ResourceUpdate => {
                        let body = json!({"title": "u", "content": "u", "is_public": vis == Some(Visibility::Public)});
                        (
                            self.send(Method::PUT, &path, token, Some(body)).await,
                            "PUT /api/v1/resources/{id}",
                        )
                    }
                    _ => (
                        self.send(Method::DELETE, &path, token, None).await,
                        "DELETE /api/v1/resources/{id}",
                    ),
                }
            }
            Action::IncidentReport => (
                self.send(
                    Method::POST,
                    "/api/v1/incidents",
                    token,
                    Some(json!({"description": format!("report {n}"), "level": "low"})),
                )
                .await,
                "POST /api/v1/incidents",
            ),
            Action::IncidentList => {
                let list = self.send(Method::GET, "/api/v1/incidents", token, None).await;
                let one = format!("/api/v1/incidents/{}", self.incident().await);
                assert_eq!(self.send(Method::GET, &one, token, None).await, list, "list and read go together");
                self.extra.borrow_mut().insert("GET /api/v1/incidents/{id}");
                (list, "GET /api/v1/incidents")
            }
            Action::IncidentUpdate => {
                let path = format!("/api/v1/incidents/{}", self.incident().await);
                (
                    self.send(
                        Method::PATCH,
                        &path,
                        token,
                        Some(json!({"status": "contained", "note": "looking"})),
                    )
                    .await,
                    "PATCH /api/v1/incidents/{id}",
                )
            }
            Action::IncidentEvidence => {
                let path = format!("/api/v1/incidents/{}/evidence", self.incident().await);
                (
                    self.send(Method::GET, &path, token, None).await,
                    "GET /api/v1/incidents/{id}/evidence",
                )
            }
            Action::AddressBlock => (
                self.send(
                    Method::POST,
                    "/api/v1/containment",
                    token,
                    Some(json!({"action": "block_address", "cidr": format!("198.51.100.{}", n % 250), "seconds": 60})),
                )
                .await,
                "POST /api/v1/containment",
            ),
            Action::AddressUnblock => {
                // A block in force (the admin's), then the caller lifts it.
                let cidr = format!("198.51.100.{}", n % 250);
                let admin = self.who(Actor::Admin).0;
                let block = json!({"action": "block_address", "cidr": cidr, "seconds": 60});
                let blocked = self
                    .send(Method::POST, "/api/v1/containment", admin, Some(block))
                    .await;
                assert_eq!(blocked, StatusCode::OK);
                let lift = json!({"action": "unblock_address", "cidr": cidr, "reason": "matrix"});
                (
                    self.send(Method::POST, "/api/v1/containment", token, Some(lift))
                        .await,
                    "POST /api/v1/containment",
                )
            }
            Action::AuditRead => (
                self.send(Method::GET, "/api/v1/audit", token, None).await,
                "GET /api/v1/audit",
            ),
            Action::SecuritySummaryRead => (
                self.send(Method::GET, "/api/v1/security/summary", token, None)
                    .await,
                "GET /api/v1/security/summary",
            ),
            Action::AccessReviewRead => (
                self.send(Method::GET, "/api/v1/access-review", token, None)
                    .await,
                "GET /api/v1/access-review",
            ),
            Action::ClientManage => {
                // Registering, listing, rotating and deleting go together.
                let list = self.send(Method::GET, "/api/v1/clients", token, None).await;
                let create = self
                    .send(Method::POST, "/api/v1/clients", token, Some(self.client_body()))
                    .await;
                let id = self.oauth_client().await;
                let rotate = self
                    .send(Method::POST, &format!("/api/v1/clients/{id}/secret"), token, None)
                    .await;
                let delete = self
                    .send(Method::DELETE, &format!("/api/v1/clients/{id}"), token, None)
                    .await;
                for (op, status) in [
                    ("POST /api/v1/clients", create),
                    ("POST /api/v1/clients/{client_id}/secret", rotate),
                    ("DELETE /api/v1/clients/{client_id}", delete),
                ] {
                    assert_eq!(status.is_success(), list.is_success(), "{op}: {status}");
                    assert_eq!(status.as_u16() / 100 == 4, list.as_u16() / 100 == 4, "{op}");
                    self.extra.borrow_mut().insert(op);
                }
                (list, "GET /api/v1/clients")
            }
            Action::SecretCreate => (
                self.send(
                    Method::POST,
                    "/api/v1/secrets",
                    token,
                    Some(json!({"name": format!("n{n}"), "value": "v"})),
                )
                .await,
                "POST /api/v1/secrets",
            ),
            Action::SecretList => (
                self.send(Method::GET, "/api/v1/secrets", token, None).await,
                "GET /api/v1/secrets",
            ),
            Action::SecretRead | Action::SecretDelete => {
                let owner = if own {
                    token.unwrap()
                } else {
                    self.stranger.1.access.as_str()
                };
                let path = format!("/api/v1/secrets/{}", self.secret(owner).await);
                if action == Action::SecretRead {
                    (
                        self.send(Method::GET, &path, token, None).await,
                        "GET /api/v1/secrets/{id}",
                    )
                } else {
                    (
                        self.send(Method::DELETE, &path, token, None).await,
                        "DELETE /api/v1/secrets/{id}",
                    )
                }
            }
        }
    }
}

fn role_of(actor: Actor) -> &'static str {
    match actor {
        Actor::Admin => "admin",
        Actor::Manager => "manager",
        Actor::User | Actor::Anonymous => "user",
    }
}

fn success(action: Action) -> StatusCode {
    match action {
        Action::AccountRegister
        | Action::AccountCreate
        | Action::ResourceCreate
        | Action::SecretCreate
        | Action::IncidentReport => StatusCode::CREATED,
        Action::ResourceDelete | Action::SecretDelete => StatusCode::NO_CONTENT,
        _ => StatusCode::OK,
    }
}

/// Cells that cannot occur: nobody anonymous owns anything, a user's own account is never staff,
/// a manager's or admin's own account is never a plain user's.
fn reachable(actor: Actor, action: Action, relation: Option<Relation>) -> bool {
    let own = relation == Some(Relation::Owner);
    !matches!(
        (actor, action, own),
        (Actor::Anonymous, _, true)
            | (Actor::User, Action::AccountDisableStaff, true)
            | (
                Actor::Manager | Actor::Admin,
                Action::AccountDisableUser,
                true
            )
    )
}

async fn denied_events(app: &TestApp) -> Vec<EventRow> {
    events(app)
        .await
        .into_iter()
        .filter(|e| e.action == "authz.denied")
        .collect()
}

#[tokio::test]
async fn every_cell_of_the_policy_answers_what_the_table_says_v8_2_1_v8_2_2() {
    let open = World::new(&[]).await;
    let closed = World::new(&[("IMANGOR_REGISTRATION", "admin")]).await;
    let mut exercised = BTreeSet::new();
    let mut cells = 0;
    for (action, relation, vis) in policy::cells() {
        // Account creation by admins is what POST /users does when registration is admin-only.
        let world = if action == Action::AccountCreate {
            &closed
        } else {
            &open
        };
        for actor in ACTORS {
            if !reachable(actor, action, relation) {
                continue;
            }
            let decision = policy::decide(
                actor,
                action,
                relation.unwrap_or(Relation::Owner),
                vis.unwrap_or(Visibility::Private),
            );
            let want = match decision {
                Decision::Allow => success(action),
                Decision::Deny => StatusCode::FORBIDDEN,
                Decision::Hide => StatusCode::NOT_FOUND,
                Decision::Unauthenticated => StatusCode::UNAUTHORIZED,
            };
            let before = denied_events(&world.app).await.len();
            let (got, op) = world.perform(actor, action, relation, vis).await;
            assert_eq!(
                got,
                want,
                "{actor:?} {} relation={relation:?} visibility={vis:?}",
                action.name()
            );
            exercised.insert(op);
            cells += 1;
            // Every refusal of the policy is a security event naming actor, action and target.
            let denied = denied_events(&world.app).await;
            // Reading one incident goes with listing them, and the four client operations go
            // together: a refusal of each is an event.
            let requests = match action {
                Action::IncidentList => 2,
                Action::ClientManage => 4,
                _ => 1,
            };
            if matches!(decision, Decision::Deny | Decision::Hide) {
                assert_eq!(
                    denied.len(),
                    before + requests,
                    "{actor:?} {} recorded",
                    action.name()
                );
                let e = denied.last().unwrap();
                assert_eq!(e.actor_id.as_deref(), Some(world.who(actor).1));
            } else {
                assert_eq!(
                    denied.len(),
                    before,
                    "{actor:?} {} is no denial",
                    action.name()
                );
            }
        }
    }
    assert!(cells >= 80, "{cells} cells");

    // Every operation of the API is either in the matrix or explicitly outside the policy.
    let doc: Value = open
        .app
        .get_anon("/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let op = format!("{} {path}", method.to_uppercase());
            assert!(
                exercised.contains(op.as_str())
                    || open.extra.borrow().contains(op.as_str())
                    || NOT_POLICED.contains(&op.as_str()),
                "{op} is not in the authorization matrix"
            );
        }
    }
}

#[tokio::test]
async fn a_denial_event_names_the_action_and_the_target() {
    let app = TestApp::spawn().await;
    let (_, owner) = app.user_with_role("owner@example.com", "user").await;
    let (intruder, it) = app.user_with_role("intruder@example.com", "user").await;
    let res = app
        .post_json(
            "/api/v1/resources",
            Some(&owner.access),
            &json!({"title": "secret plan", "content": "x", "is_public": false}),
        )
        .await;
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get(&format!("/api/v1/resources/{id}"), &it.access)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let rows: Vec<_> = denied_events(&app)
        .await
        .into_iter()
        .map(|e| {
            (
                e.actor_id.unwrap_or_default(),
                e.target.unwrap_or_default(),
                e.detail.unwrap_or_default(),
                e.outcome,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [(
            intruder.id,
            format!("resource:{id}"),
            "resource.read".to_owned(),
            "hidden".to_owned()
        )]
    );
}

/// Which object a row of the hand-written table acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// No object (a collection, the caller's own profile, a probe).
    Nothing,
    /// Registration when it is admin-only (`IMANGOR_REGISTRATION=admin`).
    Closed,
    /// The caller's own object; for accounts, the caller's own account.
    Own,
    OwnPublic,
    OwnPrivate,
    /// Another account's object (a plain user's).
    Other,
    OtherPublic,
    OtherPrivate,
    /// `PATCH /users/{id}` with `disabled` on another manager's account.
    OtherStaff,
}

/// Expected statuses for anonymous, user, manager and admin.
type Want = [u16; 4];

/// The contract's rows (`../shared/API.md`), written by hand from its text, independently of
/// `policy::decide`: the role columns ("any role", "admin, manager", "owner only", "owner,
/// admin"), the resource rules (read = admin, manager, owner or public; write = admin or owner;
/// readable but not writable 403; not readable 404), and 401 for no token. The rows the
/// contract leaves to the project (containment, the security summary, the access review) follow
/// README.md and docs/security-operations.md. PATCH /users/{id} sends changes that change
/// nothing (the same role, `disabled: false`), so the policy answers and no business rule does.
#[rustfmt::skip]
const CONTRACT: &[(&str, On, &str, Want)] = &[
    // Identity.
    ("POST /api/v1/users", On::Nothing, "role", [201, 201, 201, 201]),
    ("POST /api/v1/users", On::Closed, "role", [401, 403, 403, 201]),
    ("POST /api/v1/token", On::Nothing, "", [200, 200, 200, 200]),
    ("POST /api/v1/token/revoke", On::Nothing, "", [200, 200, 200, 200]),
    ("GET /api/v1/users/me", On::Nothing, "", [401, 200, 200, 200]),
    ("PATCH /api/v1/users/me", On::Nothing, "", [401, 200, 200, 200]),
    ("GET /api/v1/users", On::Nothing, "", [401, 403, 200, 200]),
    ("PATCH /api/v1/users/{id}", On::Own, "role", [401, 403, 403, 200]),
    ("PATCH /api/v1/users/{id}", On::Other, "role", [401, 403, 403, 200]),
    ("PATCH /api/v1/users/{id}", On::Own, "disabled", [401, 403, 403, 200]),
    ("PATCH /api/v1/users/{id}", On::Other, "disabled", [401, 403, 200, 200]),
    ("PATCH /api/v1/users/{id}", On::OtherStaff, "disabled", [401, 403, 403, 200]),
    ("GET /.well-known/jwks.json", On::Nothing, "", [200, 200, 200, 200]),
    ("GET /.well-known/imangor-audit-keys", On::Nothing, "", [200, 200, 200, 200]),
    // Resources.
    ("POST /api/v1/resources", On::Nothing, "", [401, 201, 201, 201]),
    ("GET /api/v1/resources", On::Nothing, "", [401, 200, 200, 200]),
    ("GET /api/v1/resources/{id}", On::OwnPublic, "", [401, 200, 200, 200]),
    ("GET /api/v1/resources/{id}", On::OwnPrivate, "", [401, 200, 200, 200]),
    ("GET /api/v1/resources/{id}", On::OtherPublic, "", [401, 200, 200, 200]),
    ("GET /api/v1/resources/{id}", On::OtherPrivate, "", [401, 404, 200, 200]),
    ("PUT /api/v1/resources/{id}", On::OwnPublic, "", [401, 200, 200, 200]),
    ("PUT /api/v1/resources/{id}", On::OwnPrivate, "", [401, 200, 200, 200]),
    ("PUT /api/v1/resources/{id}", On::OtherPublic, "", [401, 403, 403, 200]),
    ("PUT /api/v1/resources/{id}", On::OtherPrivate, "", [401, 404, 403, 200]),
    ("DELETE /api/v1/resources/{id}", On::OwnPublic, "", [401, 204, 204, 204]),
    ("DELETE /api/v1/resources/{id}", On::OwnPrivate, "", [401, 204, 204, 204]),
    ("DELETE /api/v1/resources/{id}", On::OtherPublic, "", [401, 403, 403, 204]),
    ("DELETE /api/v1/resources/{id}", On::OtherPrivate, "", [401, 404, 403, 204]),
    // Sensitive data.
    ("POST /api/v1/secrets", On::Nothing, "", [401, 201, 201, 201]),
    ("GET /api/v1/secrets", On::Nothing, "", [401, 200, 200, 200]),
    ("GET /api/v1/secrets/{id}", On::Own, "", [401, 200, 200, 200]),
    ("GET /api/v1/secrets/{id}", On::Other, "", [401, 404, 404, 404]),
    ("DELETE /api/v1/secrets/{id}", On::Own, "", [401, 204, 204, 204]),
    ("DELETE /api/v1/secrets/{id}", On::Other, "", [401, 404, 404, 204]),
    // Security operations.
    ("POST /api/v1/incidents", On::Nothing, "", [401, 201, 201, 201]),
    ("GET /api/v1/incidents", On::Nothing, "", [401, 403, 200, 200]),
    ("GET /api/v1/incidents/{id}", On::Nothing, "", [401, 403, 200, 200]),
    ("PATCH /api/v1/incidents/{id}", On::Nothing, "", [401, 403, 200, 200]),
    ("GET /api/v1/incidents/{id}/evidence", On::Nothing, "", [401, 403, 403, 200]),
    ("GET /api/v1/audit", On::Nothing, "", [401, 403, 403, 200]),
    ("GET /healthz", On::Nothing, "", [200, 200, 200, 200]),
    ("GET /readyz", On::Nothing, "", [200, 200, 200, 200]),
    // The project's own rows.
    ("POST /api/v1/containment", On::Nothing, "block_address", [401, 403, 200, 200]),
    // Lifting a block is the admins' alone; none in force here: 404 for them.
    ("POST /api/v1/containment", On::Nothing, "unblock_address", [401, 403, 403, 404]),
    ("GET /api/v1/security/summary", On::Nothing, "", [401, 403, 200, 200]),
    ("GET /api/v1/access-review", On::Nothing, "", [401, 403, 403, 200]),
    // Multi-factor authentication (refused past the policy by their own checks here: a wrong
    // current password, no enrolment started).
    ("GET /api/v1/users/me/mfa", On::Nothing, "", [401, 200, 200, 200]),
    ("POST /api/v1/users/me/mfa/totp", On::Nothing, "", [401, 403, 403, 403]),
    ("POST /api/v1/users/me/mfa/totp/confirm", On::Nothing, "", [401, 409, 409, 409]),
    ("DELETE /api/v1/users/me/mfa/totp", On::Nothing, "", [401, 403, 403, 403]),
    ("POST /api/v1/users/me/mfa/recovery-codes", On::Nothing, "", [401, 403, 403, 403]),
    ("POST /api/v1/users/me/passkeys/options", On::Nothing, "", [401, 403, 403, 403]),
    ("POST /api/v1/users/me/passkeys", On::Nothing, "", [401, 422, 422, 422]),
    ("DELETE /api/v1/users/me/passkeys/{id}", On::Nothing, "", [401, 403, 403, 403]),
    // Clients and OAuth flows.
    ("POST /api/v1/clients", On::Nothing, "", [401, 403, 403, 201]),
    ("GET /api/v1/clients", On::Nothing, "", [401, 403, 403, 200]),
    ("POST /api/v1/clients/{client_id}/secret", On::Other, "", [401, 403, 403, 200]),
    ("DELETE /api/v1/clients/{client_id}", On::Other, "", [401, 403, 403, 204]),
    // Without HTTP Basic credentials of a confidential client, whoever the bearer.
    ("POST /api/v1/token/introspect", On::Nothing, "", [401, 401, 401, 401]),
    ("GET /.well-known/oauth-authorization-server", On::Nothing, "", [200, 200, 200, 200]),
    ("GET /.well-known/oauth-protected-resource", On::Nothing, "", [200, 200, 200, 200]),
];

const ACTORS_IN_ORDER: [Actor; 4] = [Actor::Anonymous, Actor::User, Actor::Manager, Actor::Admin];

impl World {
    /// Performs one row of the hand-written table as `actor`, with requests written out here (not
    /// `perform`, whose cases follow the policy's actions).
    async fn contract_row(&self, actor: Actor, op: &str, on: On, variant: &str) -> StatusCode {
        let (token, my_id) = self.who(actor);
        let n = self.fresh();
        // Anonymous owns nothing: its "own" object is another's (the answer is 401 either way).
        let own_token = |public| async move {
            let owner = token.unwrap_or(self.stranger.1.access.as_str());
            self.resource(owner, public).await
        };
        let (method, path) = op.split_once(' ').unwrap();
        let method: Method = method.parse().unwrap();
        match (op, on) {
            ("POST /api/v1/users", _) => {
                let body = json!({"email": format!("hand{n}@example.com"), "password": PASSWORD, "full_name": "New"});
                self.send(method, path, token, Some(body)).await
            }
            ("POST /api/v1/token", _) => {
                let s = &self.stranger.0;
                let mut r = self.app.client.post(self.app.url(path)).form(&[
                    ("grant_type", "password"),
                    ("username", s.email.as_str()),
                    ("password", s.password.as_str()),
                ]);
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                r.send().await.unwrap().status()
            }
            ("POST /api/v1/token/revoke", _) => {
                let mut r = self
                    .app
                    .client
                    .post(self.app.url(path))
                    .form(&[("token", format!("not-a-token-{n}"))]);
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                r.send().await.unwrap().status()
            }
            ("PATCH /api/v1/users/me", _) => {
                self.send(method, path, token, Some(json!({"full_name": "Same"})))
                    .await
            }
            ("PATCH /api/v1/users/{id}", _) => {
                let (target, role) = match on {
                    On::Own if token.is_some() => (my_id.to_owned(), role_of(actor)),
                    On::OtherStaff => (self.account("manager").await, "manager"),
                    _ => (self.account("user").await, "user"),
                };
                let body = if variant == "role" {
                    json!({"role": role})
                } else {
                    json!({"disabled": false})
                };
                self.send(
                    method,
                    &format!("/api/v1/users/{target}"),
                    token,
                    Some(body),
                )
                .await
            }
            ("POST /api/v1/resources", _) => {
                let body = json!({"title": "t", "content": "c", "is_public": false});
                self.send(method, path, token, Some(body)).await
            }
            (_, On::OwnPublic | On::OwnPrivate | On::OtherPublic | On::OtherPrivate)
                if path.starts_with("/api/v1/resources/") =>
            {
                let public = matches!(on, On::OwnPublic | On::OtherPublic);
                let id = if matches!(on, On::OwnPublic | On::OwnPrivate) {
                    own_token(public).await
                } else {
                    self.resource(&self.stranger.1.access, public).await
                };
                let body = (method == Method::PUT)
                    .then(|| json!({"title": "u", "content": "u", "is_public": public}));
                self.send(method, &format!("/api/v1/resources/{id}"), token, body)
                    .await
            }
            ("POST /api/v1/secrets", _) => {
                let body = json!({"name": format!("hand{n}"), "value": "v"});
                self.send(method, path, token, Some(body)).await
            }
            (_, On::Own | On::Other) if path.starts_with("/api/v1/secrets/") => {
                let owner = match (on, token) {
                    (On::Own, Some(t)) => t,
                    _ => self.stranger.1.access.as_str(),
                };
                let id = self.secret(owner).await;
                self.send(method, &format!("/api/v1/secrets/{id}"), token, None)
                    .await
            }
            ("POST /api/v1/incidents", _) => {
                let body = json!({"description": format!("hand report {n}"), "level": "low"});
                self.send(method, path, token, Some(body)).await
            }
            ("GET /api/v1/incidents/{id}", _) => {
                let id = self.incident().await;
                self.send(method, &format!("/api/v1/incidents/{id}"), token, None)
                    .await
            }
            ("GET /api/v1/incidents/{id}/evidence", _) => {
                let id = self.incident().await;
                self.send(
                    method,
                    &format!("/api/v1/incidents/{id}/evidence"),
                    token,
                    None,
                )
                .await
            }
            ("PATCH /api/v1/incidents/{id}", _) => {
                let id = self.incident().await;
                let body = json!({"status": "contained", "note": "looking"});
                self.send(
                    method,
                    &format!("/api/v1/incidents/{id}"),
                    token,
                    Some(body),
                )
                .await
            }
            ("POST /api/v1/containment", _) => {
                let body = json!({"action": variant, "cidr": format!("203.0.113.{}", n % 250), "seconds": 60});
                self.send(method, path, token, Some(body)).await
            }
            (_, On::Nothing) if path.starts_with("/api/v1/users/me/passkeys") => {
                let body = match path {
                    "/api/v1/users/me/passkeys/options" => {
                        json!({"current_password": "not the password"})
                    }
                    _ if method == Method::DELETE => {
                        json!({"current_password": "not the password"})
                    }
                    _ => passkey_body(),
                };
                let path = path.replace("/{id}", &NO_PASSKEY["/api/v1/users/me/passkeys".len()..]);
                self.send(method, &path, token, Some(body)).await
            }
            (_, On::Nothing) if path.starts_with("/api/v1/users/me/mfa/") => {
                let body = match path {
                    "/api/v1/users/me/mfa/totp/confirm" => json!({"code": "123456"}),
                    "/api/v1/users/me/mfa/totp" if method == Method::POST => {
                        json!({"current_password": "not the password"})
                    }
                    _ => json!({"current_password": "not the password", "code": "123456"}),
                };
                self.send(method, path, token, Some(body)).await
            }
            ("POST /api/v1/clients", _) => {
                self.send(method, path, token, Some(self.client_body()))
                    .await
            }
            (_, On::Other) if path.starts_with("/api/v1/clients/") => {
                let id = self.oauth_client().await;
                self.send(method, &path.replace("{client_id}", &id), token, None)
                    .await
            }
            ("POST /api/v1/token/introspect", _) => {
                let mut r = self
                    .app
                    .client
                    .post(self.app.url(path))
                    .form(&[("token", format!("not-a-token-{n}"))]);
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                r.send().await.unwrap().status()
            }
            (_, On::Nothing) if method == Method::GET => self.send(method, path, token, None).await,
            _ => panic!("no request written for {op} on {on:?}"),
        }
    }
}

/// The hand-written contract table, checked over HTTP for every actor, beside the matrix that
/// takes its expectations from `policy::decide` (V8.2.1, V8.2.2; API1, API5): a wrong row of the
/// policy table cannot pass both. Every operation of the OpenAPI document has a row.
#[tokio::test]
async fn the_contract_table_written_by_hand_holds_over_http_v8_2_1_v8_2_2() {
    let open = World::new(&[]).await;
    let closed = World::new(&[("IMANGOR_REGISTRATION", "admin")]).await;
    let mut failures = Vec::new();
    for &(op, on, variant, want) in CONTRACT {
        let world = if on == On::Closed { &closed } else { &open };
        for (actor, want) in ACTORS_IN_ORDER.into_iter().zip(want) {
            let got = world.contract_row(actor, op, on, variant).await;
            if got.as_u16() != want {
                failures.push(format!(
                    "{op} {on:?} {variant} as {actor:?}: {got}, want {want}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    let doc: Value = open
        .app
        .get_anon("/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let rows: BTreeSet<&str> = CONTRACT.iter().map(|(op, ..)| *op).collect();
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let missing: Vec<_> = documented
        .iter()
        .filter(|op| !rows.contains(op.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "operations without a row in the hand table: {missing:?}"
    );
    // And the table names nothing the server does not document.
    let extra: Vec<_> = rows
        .iter()
        .filter(|op| !documented.contains(**op))
        .collect();
    assert!(
        extra.is_empty(),
        "rows for undocumented operations: {extra:?}"
    );
}

/// A passkey no account has.
const NO_PASSKEY: &str = "/api/v1/users/me/passkeys/0e0e0e0e-0000-4000-8000-000000000000";

/// A registration that answers no challenge: refused by its own check (422), never the policy.
fn passkey_body() -> Value {
    json!({"name": "key", "credential": {"rawId": "AA", "type": "public-key",
        "response": {"clientDataJSON": "e30", "attestationObject": "oA"}}})
}
