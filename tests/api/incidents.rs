//! Incidents (ASVS V16.3.2, V16.3.3; API6): each detector driven over HTTP, with its level, its
//! dedup count, the metric, and the containment effect; reports and their workflow; containment
//! actions by role; alerts to a webhook, signed.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn sealed(app: &TestApp) {
    imangor::service::audit::seal::seal_and_detect(&app.state.trail)
        .await
        .unwrap();
}

/// Incidents of `kind`, as an admin sees them (`admin`: an admin's access token, taken before
/// any containment could block the test's address).
pub async fn incidents_of(app: &TestApp, admin: &Tokens, kind: &str) -> Vec<Value> {
    sealed(app).await;
    listed_of(app, admin, kind).await
}

/// Incidents of `kind` in the admin's list as it stands (no sealing pass is run).
pub async fn listed_of(app: &TestApp, admin: &Tokens, kind: &str) -> Vec<Value> {
    let res = app.get("/api/v1/incidents?limit=100", &admin.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == kind)
        .cloned()
        .collect()
}

/// Incidents of `kind` once a sealing pass found one (polled for up to 2.5 s: the events of
/// refused tokens are written off the request path).
async fn awaited_incidents(app: &TestApp, admin: &Tokens, kind: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..50 {
        found = incidents_of(app, admin, kind).await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    found
}

/// Incidents of `kind`, read straight from the database (newest first).
async fn stored_of(app: &TestApp, kind: &str) -> Vec<imangor::domain::incident::Incident> {
    imangor::db::incidents::list(&app.state.store.db, Default::default(), None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.kind.as_str() == kind)
        .collect()
}

fn metric(app: &TestApp, level: &str, kind: &str) -> u64 {
    let series = format!("security_incidents_total{{level=\"{level}\",type=\"{kind}\"}}");
    series_value(&app.state, &series).map_or(0, |v| v as u64)
}

/// A refresh grant refused with 400 `invalid_grant`.
async fn refused_refresh(app: &TestApp, refresh: &str) {
    oauth_error(
        app.refresh(refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

pub(crate) async fn wrong_login(app: &TestApp, email: &str) -> StatusCode {
    app.token(&[
        ("grant_type", "password"),
        ("username", email),
        ("password", "definitely not it"),
    ])
    .await
    .status()
}

#[tokio::test]
async fn brute_force_on_one_account_is_one_incident_with_a_count() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let a = app.register("victim@example.com").await;
    for _ in 0..10 {
        assert_eq!(wrong_login(&app, &a.email).await, StatusCode::BAD_REQUEST);
    }
    let found = incidents_of(&app, &admin, "brute_force").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            &found[0]["level"],
            &found[0]["subject"],
            &found[0]["count"],
            &found[0]["affected_systems"],
            &found[0]["requested_level"]
        ),
        (
            &json!("high"),
            &json!(a.id),
            &json!(1),
            &json!(["auth"]),
            &Value::Null
        )
    );
    for _ in 0..2 {
        wrong_login(&app, &a.email).await;
    }
    let found = incidents_of(&app, &admin, "brute_force").await;
    assert_eq!(found.len(), 1, "raised again, not opened twice");
    assert_eq!(found[0]["count"], 3);
    assert_eq!(metric(&app, "high", "brute_force"), 3);
}

/// The (account, address) lock refuses guesses 6 to 10 from one address; each refusal is still a
/// guess and counts toward the brute-force detector (ASVS V16.3.1, issue 16 item 7). The server
/// keeps its default lock threshold (5) and nothing but its own sealer runs the detector.
#[tokio::test]
async fn guesses_refused_by_the_pair_lock_still_raise_brute_force_v16_3_1() {
    let app = TestApp::spawn_with(&[("IMANGOR_LOGIN_LOCK_AFTER", "5")]).await;
    let admin = app.admin_tokens().await;
    let a = app.register("victim@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(wrong_login(&app, &a.email).await);
    }
    let (wrong, locked) = statuses.split_at(5);
    assert!(
        wrong.iter().all(|s| *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
    assert!(
        locked.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(2);
    let found = loop {
        let found = listed_of(&app, &admin, "brute_force").await;
        if !found.is_empty() || std::time::Instant::now() >= deadline {
            break found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        found.len(),
        1,
        "one brute-force incident within 2 s: {found:?}"
    );
    assert_eq!(
        (&found[0]["level"], &found[0]["subject"], &found[0]["count"]),
        (&json!("high"), &json!(a.id), &json!(1))
    );
    // Each refusal is in the trail, with the account it was aimed at.
    let refused = events(&app)
        .await
        .into_iter()
        .filter(|e| {
            e.action == "auth.login"
                && e.outcome == "throttled"
                && e.actor_id.as_deref() == Some(a.id.as_str())
        })
        .count();
    assert_eq!(refused, 5);
}

#[tokio::test]
async fn credential_stuffing_blocks_the_address() {
    let app = TestApp::spawn().await;
    for i in 0..10 {
        wrong_login(&app, &format!("nobody{i}@example.com")).await;
    }
    sealed(&app).await;
    // Read from the database: the address the test calls from is blocked now, admins included.
    let found = stored_of(&app, "credential_stuffing").await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].level.as_str(), found[0].subject.as_deref()),
        ("high", Some("127.0.0.1"))
    );
    assert_eq!(found[0].affected_systems, ["auth", "network"]);
    assert_eq!(metric(&app, "high", "credential_stuffing"), 1);
    // Contained automatically: this address is refused at the door; probes still answer.
    let res = app.get_anon("/api/v1/users/me").await;
    let p = problem(res, StatusCode::FORBIDDEN).await;
    assert_eq!(p["type"], "urn:imangor:problem:address_blocked");
    assert_eq!(app.get_anon("/healthz").await.status(), StatusCode::OK);
    assert!(
        events(&app)
            .await
            .iter()
            .any(|e| e.action == "containment.block_address"
                && e.target.as_deref() == Some("127.0.0.1/32"))
    );
}

#[tokio::test]
async fn refresh_reuse_opens_an_incident_and_can_revoke_every_session() {
    let app = TestApp::spawn_with(&[("IMANGOR_CONTAIN_REFRESH_REUSE", "all")]).await;
    let admin = app.admin_tokens().await;
    let a = app.register("reuse@example.com").await;
    let other_session = app.login(&a).await;
    let t = app.login(&a).await;
    assert_eq!(app.refresh(&t.refresh).await.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST,
        "reuse"
    );
    let found = incidents_of(&app, &admin, "refresh_reuse").await;
    assert_eq!(
        found.len(),
        1,
        "one incident, not one per detection: {found:?}"
    );
    assert_eq!(
        (
            &found[0]["level"],
            &found[0]["subject"],
            &found[0]["affected_systems"]
        ),
        (&json!("high"), &json!(a.id), &json!(["auth", "sessions"]))
    );
    invalid_token(app.get("/api/v1/users/me", &other_session.access).await).await;
}

#[tokio::test]
async fn authorization_probing_is_a_medium_incident() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (prober, t) = app.user_with_role("prober@example.com", "user").await;
    // Ids that do not exist are not refusals of the policy; another's private resource is.
    let (_, owner) = app.user_with_role("owner@example.com", "user").await;
    let rid = app.resource(&owner.access, false).await;
    for _ in 0..20 {
        assert_eq!(
            app.get(&format!("/api/v1/resources/{rid}"), &t.access)
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
    }
    let found = incidents_of(&app, &admin, "authz_probing").await;
    assert_eq!(
        found.len(),
        1,
        "one incident, not one per detection: {found:?}"
    );
    assert_eq!(
        (
            &found[0]["level"],
            &found[0]["subject"],
            &found[0]["affected_systems"]
        ),
        (&json!("medium"), &json!(prober.id), &json!(["authz"]))
    );
    assert_eq!(metric(&app, "medium", "authz_probing"), 1);
}

#[tokio::test]
async fn forged_tokens_at_volume_are_an_incident() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let forged =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Im5vcGUifQ.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    for _ in 0..50 {
        invalid_token(app.get("/api/v1/users/me", forged).await).await;
    }
    // The event is written off the request path.
    let found = awaited_incidents(&app, &admin, "forged_tokens").await;
    assert_eq!(
        found.len(),
        1,
        "one incident, not one per detection: {found:?}"
    );
    assert_eq!(
        (
            &found[0]["level"],
            &found[0]["subject"],
            &found[0]["affected_systems"]
        ),
        (
            &json!("high"),
            &json!("127.0.0.1"),
            &json!(["auth", "tokens"])
        )
    );
}

#[tokio::test]
async fn making_an_account_admin_is_an_incident_to_review() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (u, _) = app.user_with_role("promoted@example.com", "admin").await;
    let found = incidents_of(&app, &admin, "role_escalation").await;
    assert_eq!(
        found.len(),
        1,
        "one incident, not one per detection: {found:?}"
    );
    assert_eq!(
        (
            &found[0]["level"],
            &found[0]["subject"],
            &found[0]["affected_systems"]
        ),
        (&json!("high"), &json!(u.id), &json!(["users", "authz"]))
    );
}

#[tokio::test]
async fn a_secret_that_fails_to_open_is_a_critical_incident_v11_3_2() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (_, t) = app.user_with_role("s@example.com", "user").await;
    let res = app
        .post_json(
            "/api/v1/secrets",
            Some(&t.access),
            &json!({"name": "n", "value": "v"}),
        )
        .await;
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sql = format!("update secrets set key_id = 'gone' where id = '{id}'");
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => sqlx::query(&sql).execute(p).await.map(drop),
        imangor::db::Db::Postgres(p) => sqlx::query(&sql).execute(p).await.map(drop),
    }
    .unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/secrets/{id}"), &t.access)
            .await
            .status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let found = incidents_of(&app, &admin, "data_integrity").await;
    assert_eq!(
        found.len(),
        1,
        "one incident, not one per detection: {found:?}"
    );
    assert_eq!(
        (
            &found[0]["level"],
            &found[0]["subject"],
            &found[0]["affected_systems"]
        ),
        (
            &json!("critical"),
            &json!(format!("secret:{id}")),
            &json!(["secrets", "keys"])
        )
    );
}

#[tokio::test]
async fn reports_follow_the_workflow_with_notes_and_roles_v8_2_1() {
    let app = TestApp::spawn().await;
    let (_, u) = app.user_with_role("reporter@example.com", "user").await;
    let (_, m) = app.user_with_role("manager@example.com", "manager").await;
    let text = "<script>alert(1)</script>\nsecond line";
    let made = reported(
        &app,
        &u.access,
        json!({"description": text, "level": "low"}),
    )
    .await;
    assert_eq!(
        (&made["kind"], &made["status"], &made["description"]),
        (&json!("user_report"), &json!("open"), &json!(text))
    );
    let id = made["id"].as_str().unwrap();
    invalid_fields(
        report(
            &app,
            &u.access,
            json!({"description": " ", "level": "severe"}),
        )
        .await,
        &["description", "level"],
    )
    .await;
    problem(
        app.get("/api/v1/incidents", &u.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    let page: Value = app
        .get("/api/v1/incidents?level=low&status=open", &m.access)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id)
    );
    let none: Value = app
        .get("/api/v1/incidents?level=critical", &m.access)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        none["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["level"] == "critical")
    );
    invalid_fields(
        app.get("/api/v1/incidents?status=closed", &m.access).await,
        &["status"],
    )
    .await;

    let path = format!("/api/v1/incidents/{id}");
    let res = app
        .patch_json(
            &path,
            &u.access,
            &json!({"status": "contained", "note": "mine"}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN).await;
    let v = patched(
        &app,
        &path,
        &m.access,
        json!({"status": "contained", "note": "isolated the host"}),
    )
    .await;
    assert_eq!(v["status"], "contained");
    let v = patched(
        &app,
        &path,
        &m.access,
        json!({"status": "resolved", "note": "rotated the key"}),
    )
    .await;
    assert_eq!(v["status"], "resolved");
    let notes = v["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(
        (&notes[1]["note"], &notes[1]["status"]),
        (&json!("rotated the key"), &json!("resolved"))
    );
    assert!(notes[0]["author_id"].is_string());
    let res = app
        .patch_json(
            &path,
            &m.access,
            &json!({"status": "open", "note": "again"}),
        )
        .await;
    problem(res, StatusCode::CONFLICT).await;
    let kinds: Vec<String> = events(&app).await.into_iter().map(|e| e.action).collect();
    assert!(kinds.contains(&"incident.report".into()) && kinds.contains(&"incident.update".into()));
    // One account may have at most five unresolved reports (API6): the sixth is refused.
    for i in 0..5 {
        reported(&app, &u.access, json!({"description": format!("r{i}")})).await;
    }
    let res = report(
        &app,
        &u.access,
        json!({"description": "one too many", "level": "critical"}),
    )
    .await;
    problem(res, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn containment_actions_follow_the_roles() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (victim, vt) = app.user_with_role("v@example.com", "user").await;
    let (_, m) = app.user_with_role("m@example.com", "manager").await;
    let contain = |token: String, body: Value| {
        let app = &app;
        async move {
            app.post_json("/api/v1/containment", Some(&token), &body)
                .await
        }
    };
    let res = contain(
        m.access.clone(),
        json!({"action": "revoke_sessions", "user_id": victim.id}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["sessions_revoked"], 1);
    invalid_token(app.get("/api/v1/users/me", &vt.access).await).await;
    let res = contain(
        m.access.clone(),
        json!({"action": "revoke_sessions", "user_id": app.admin.id}),
    )
    .await;
    problem(res, StatusCode::FORBIDDEN).await;
    // Nobody contains their own account or address (a lock-out of oneself).
    let res = contain(
        admin.access.clone(),
        json!({"action": "revoke_sessions", "user_id": app.admin.id}),
    )
    .await;
    problem(res, StatusCode::CONFLICT).await;
    let res = contain(
        m.access.clone(),
        json!({"action": "block_address", "cidr": "127.0.0.0/8"}),
    )
    .await;
    problem(res, StatusCode::CONFLICT).await;
    let res = contain(
        m.access.clone(),
        json!({"action": "block_address", "cidr": "not-an-ip"}),
    )
    .await;
    invalid_fields(res, &["cidr"]).await;
    let res = contain(admin.access.clone(), json!({"action": "block_address", "cidr": "203.0.113.0/24", "seconds": 600, "reason": "scanner"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.json::<Value>().await.unwrap()["blocked_until"].is_string());
    let res = contain(
        admin.access.clone(),
        json!({"action": "disable_user", "user_id": victim.id}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.token(&[
            ("grant_type", "password"),
            ("username", &victim.email),
            ("password", PASSWORD)
        ])
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
    let (_, u) = app.user_with_role("u@example.com", "user").await;
    let res = contain(
        u.access.clone(),
        json!({"action": "block_address", "cidr": "198.51.100.1"}),
    )
    .await;
    problem(res, StatusCode::FORBIDDEN).await;
}

/// A plain user asking for containment is refused by the policy before any account is looked
/// up: the same answer for an account that exists and one that does not (ASVS V8.2.1, V6.3.8;
/// issue 16 item 11).
#[tokio::test]
async fn containment_tells_a_plain_user_nothing_about_which_accounts_exist_v8_2_1() {
    let app = TestApp::spawn().await;
    let (other, _) = app.user_with_role("other@example.com", "user").await;
    let (_, u) = app.user_with_role("plain@example.com", "user").await;
    let nobody = uuid::Uuid::now_v7().to_string();
    for action in ["revoke_sessions", "disable_user"] {
        let mut answers = Vec::new();
        for id in [other.id.as_str(), app.admin.id.as_str(), nobody.as_str()] {
            let res = app
                .post_json(
                    "/api/v1/containment",
                    Some(&u.access),
                    &json!({"action": action, "user_id": id}),
                )
                .await;
            answers.push(problem(res, StatusCode::FORBIDDEN).await);
        }
        assert_eq!(answers[0], answers[1], "{action}: a user and an admin");
        assert_eq!(answers[0], answers[2], "{action}: an account and none");
        assert_eq!(answers[0]["type"], "urn:imangor:problem:forbidden");
    }
    // The accounts are untouched.
    let admin = app.admin_tokens().await;
    assert_eq!(
        app.get("/api/v1/users/me", &admin.access).await.status(),
        StatusCode::OK
    );
}

/// Every field of a containment body is checked against its documented schema whatever the
/// action, before the policy, a lookup or a business rule runs (ASVS V2.2.1; issue 16 item 15):
/// containing one's own account with `seconds: 0` is a 422 naming `seconds`, not the 409 of
/// the rule.
#[tokio::test]
async fn containment_bodies_are_validated_whole_before_any_rule_v2_2_1() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (_, m) = app.user_with_role("m@example.com", "manager").await;
    let (_, u) = app.user_with_role("u@example.com", "user").await;
    let nobody = uuid::Uuid::now_v7().to_string();
    let long = "r".repeat(201);
    let cases: Vec<(&Tokens, Value, &[&str])> = vec![
        // The rule would say 409 (one's own account).
        (
            &admin,
            json!({"action": "revoke_sessions", "user_id": app.admin.id, "seconds": 0}),
            &["seconds"],
        ),
        (
            &admin,
            json!({"action": "disable_user", "user_id": app.admin.id, "seconds": 2_592_001}),
            &["seconds"],
        ),
        // The lookup would say 404.
        (
            &admin,
            json!({"action": "revoke_sessions", "user_id": nobody, "reason": long}),
            &["reason"],
        ),
        (
            &m,
            json!({"action": "disable_user", "user_id": nobody, "cidr": "not-a-net"}),
            &["cidr"],
        ),
        (
            &m,
            json!({"action": "revoke_sessions", "seconds": 0}),
            &["user_id", "seconds"],
        ),
        // The rule would say 409 (the caller's own address).
        (
            &m,
            json!({"action": "block_address", "cidr": "127.0.0.0/8", "reason": "two\nlines"}),
            &["reason"],
        ),
        (
            &admin,
            json!({"action": "shutdown", "seconds": 0}),
            &["action", "seconds"],
        ),
        // The policy would say 403.
        (
            &u,
            json!({"action": "revoke_sessions", "user_id": app.admin.id, "seconds": 0}),
            &["seconds"],
        ),
    ];
    for (who, body, fields) in cases {
        let res = app
            .post_json("/api/v1/containment", Some(&who.access), &body)
            .await;
        let p = invalid_fields(res, fields).await;
        assert_eq!(p["type"], "urn:imangor:problem:invalid", "{body}");
    }
    // Nothing was contained.
    assert_eq!(
        app.get("/api/v1/users/me", &admin.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/users/me", &m.access).await.status(),
        StatusCode::OK
    );
}

/// (signature header, body) of each delivery a webhook receiver accepted.
type Deliveries = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver on a port of its own: it answers 503 to the first `fail_first` calls and
/// 204 to the next, or (`hang`) never answers at all. `calls` counts every call that arrived.
struct Hook {
    url: String,
    got: Deliveries,
    calls: Arc<std::sync::atomic::AtomicU32>,
}

const HOOK_SECRET: &str = "webhook-secret-for-tests-0123456789";

async fn hook(fail_first: u32, hang: bool) -> Hook {
    use axum::routing::post;
    let got: Deliveries = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let receiver = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (g, c) = (g.clone(), c.clone());
                async move {
                    let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    if n < fail_first {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let sig = headers["x-imangor-signature"].to_str().unwrap().to_owned();
                    g.lock().unwrap().push((sig, body.to_vec()));
                    StatusCode::NO_CONTENT
                }
            },
        ),
    );
    Hook {
        url: serve_hook(receiver).await,
        got,
        calls,
    }
}

/// Serves `receiver` on a port of its own; its URL.
async fn serve_hook(receiver: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    url
}

impl Hook {
    /// The bodies delivered so far, once there are at least `n` (waits up to 6 s).
    async fn bodies(&self, n: usize) -> Vec<Value> {
        for _ in 0..60 {
            if self.got.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }

    /// The bodies delivered once `n` are, after 300 ms more in which a further one could come.
    async fn settled(&self, n: usize) -> Vec<Value> {
        self.bodies(n).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        self.bodies(n).await
    }

    fn calls(&self) -> u32 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits (up to 2 s) until the webhook has had its first call: the sender holds that alert.
    async fn first_call(&self) {
        for _ in 0..100 {
            if self.calls() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(self.calls(), 1);
    }
}

async fn alerting_app(hook: &Hook, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("IMANGOR_ALERT_WEBHOOK_URL", hook.url.as_str()),
        ("IMANGOR_ALERT_WEBHOOK_SECRET", HOOK_SECRET),
        ("IMANGOR_ALERT_MIN_LEVEL", "high"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(&vars).await
}

async fn report(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post_json("/api/v1/incidents", Some(token), &body).await
}

/// A report that must be stored (201): the incident it made.
async fn reported(app: &TestApp, token: &str, body: Value) -> Value {
    let res = report(app, token, body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// The path of an incident.
fn incident_path(incident: &Value) -> String {
    format!("/api/v1/incidents/{}", incident["id"].as_str().unwrap())
}

/// A PATCH of an incident that must be accepted (200): the incident after it.
async fn patched(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let res = app.patch_json(path, token, &body).await;
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    res.json().await.unwrap()
}

#[tokio::test]
async fn alerts_reach_the_webhook_signed_and_retried() {
    // The first delivery fails: the sender must retry.
    let hook = hook(1, false).await;
    let app = alerting_app(&hook, &[]).await;
    let (_, m) = app.user_with_role("r@example.com", "manager").await;
    // Below the level: no alert. At the level: one.
    report(
        &app,
        &m.access,
        json!({"description": "low one", "level": "low"}),
    )
    .await;
    report(
        &app,
        &m.access,
        json!({"description": "laptop stolen", "level": "critical"}),
    )
    .await;
    hook.bodies(1).await;
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one alert, delivered on the retry");
    assert_eq!(hook.calls(), 2);
    let (sig, body) = &got[0];
    let t: i64 = sig
        .strip_prefix("t=")
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        sig,
        &imangor::infra::alerts::signature(HOOK_SECRET.as_bytes(), t, body),
        "HMAC-SHA256 over t.body"
    );
    let v: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        (
            &v["event"],
            &v["incident"]["level"],
            &v["incident"]["description"]
        ),
        (
            &json!("incident.opened"),
            &json!("critical"),
            &json!("laptop stolen")
        )
    );
}

/// Issue 16 item 10 (API6, ASVS V2.4.1): a plain user cannot page the on-call. Their report
/// above `medium` is stored as `medium` with `requested_level` kept for triage and alerts no one;
/// a manager's report keeps its level; an admin raising the user's report alerts then.
#[tokio::test]
async fn a_plain_users_critical_report_waits_for_triage_and_pages_no_one() {
    let hook = hook(0, false).await;
    let app = alerting_app(&hook, &[]).await;
    let admin = app.admin_tokens().await;
    let (_, u) = app.user_with_role("plain@example.com", "user").await;
    let (_, m) = app.user_with_role("boss@example.com", "manager").await;

    let mine = reported(
        &app,
        &u.access,
        json!({"description": "the pager, from anyone", "level": "critical"}),
    )
    .await;
    assert_eq!(
        (&mine["level"], &mine["requested_level"], &mine["kind"]),
        (&json!("medium"), &json!("critical"), &json!("user_report"))
    );
    // At or below medium, nothing is held back.
    let res = report(
        &app,
        &u.access,
        json!({"description": "meh", "level": "low"}),
    )
    .await;
    let low: Value = res.json().await.unwrap();
    assert_eq!(
        (&low["level"], &low["requested_level"]),
        (&json!("low"), &Value::Null)
    );
    // A manager's report keeps its level, and alerts.
    let theirs = reported(
        &app,
        &m.access,
        json!({"description": "manager says critical", "level": "critical"}),
    )
    .await;
    assert_eq!(
        (&theirs["level"], &theirs["requested_level"]),
        (&json!("critical"), &Value::Null)
    );
    // The queue is first in, first out: had the user's report alerted, it would come first.
    let got = hook.bodies(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (&got[0]["event"], &got[0]["incident"]["id"]),
        (&json!("incident.opened"), &theirs["id"])
    );
    // Triage sees what was asked, and the audit trail says so.
    let path = incident_path(&mine);
    let seen: Value = app.get(&path, &m.access).await.json().await.unwrap();
    assert_eq!(
        (&seen["level"], &seen["requested_level"]),
        (&json!("medium"), &json!("critical"))
    );
    assert!(
        events(&app)
            .await
            .iter()
            .any(|e| e.action == "incident.report"
                && e.detail.as_deref() == Some("level medium (asked critical, kept for triage)"))
    );
    // A plain user cannot raise it; a bad level is a 422.
    let res = app
        .patch_json(
            &path,
            &u.access,
            &json!({"status": "open", "note": "please", "level": "critical"}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN).await;
    let res = app
        .patch_json(
            &path,
            &admin.access,
            &json!({"status": "open", "note": "x", "level": "severe"}),
        )
        .await;
    invalid_fields(res, &["level"]).await;
    // The admin raises it: stored, and now it alerts.
    let raised = patched(
        &app,
        &path,
        &admin.access,
        json!({"status": "open", "note": "confirmed: the pager is right", "level": "critical"}),
    )
    .await;
    assert_eq!(
        (
            &raised["level"],
            &raised["requested_level"],
            &raised["status"]
        ),
        (&json!("critical"), &json!("critical"), &json!("open"))
    );
    let got = hook.bodies(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (
            &got[1]["event"],
            &got[1]["incident"]["id"],
            &got[1]["incident"]["level"]
        ),
        (
            &json!("incident.escalated"),
            &mine["id"],
            &json!("critical")
        )
    );
    assert!(
        events(&app)
            .await
            .iter()
            .any(|e| e.action == "incident.update"
                && e.detail.as_deref() == Some("open -> open; level medium -> critical"))
    );
    // A manager may lower a level too; that pages no one.
    let res = app
        .patch_json(
            &path,
            &m.access,
            &json!({"status": "contained", "note": "handled", "level": "high"}),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["level"], "high");
    assert_eq!(hook.settled(2).await.len(), 2, "no third alert");
}

/// Issue 16 item 10 (API4, ASVS V2.4.1): reports are limited per account, whatever the role:
/// past the budget a report is 429 with Retry-After, and another account is not affected.
#[tokio::test]
async fn reports_past_the_per_account_budget_are_refused_with_429() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_REPORT", "3/3600")]).await;
    let (_, u) = app.user_with_role("flood@example.com", "user").await;
    let (_, other) = app.user_with_role("other@example.com", "user").await;
    for i in 0..3 {
        reported(&app, &u.access, json!({"description": format!("r{i}")})).await;
    }
    // The fourth: within the five unresolved reports an account may have, but past the budget.
    let res = report(&app, &u.access, json!({"description": "r3"})).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1200).contains(&retry), "Retry-After: {retry}");
    let p = problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(p["type"], "urn:imangor:problem:rate_limited");
    let res = report(&app, &other.access, json!({"description": "mine"})).await;
    assert_eq!(res.status(), StatusCode::CREATED, "per account");
    // The first account's three and the other's one: the refused report was not stored.
    assert_eq!(stored_of(&app, "user_report").await.len(), 4);
    let m = crate::metrics::scrape(&app).await;
    assert_eq!(
        crate::metrics::value(&m, r#"throttled_requests_total{limit="report"}"#),
        1.0
    );
}

/// Issue 16 item 10 (ASVS V16.3.3): an alert the queue cannot take is counted, on the scrape
/// listener, and logged; none is lost silently. A webhook that never answers holds the sender on
/// the first alert; a queue of one holds the second; the third is shed.
#[tokio::test]
async fn alerts_the_queue_sheds_are_counted_on_the_scrape_listener() {
    let hook = hook(0, true).await;
    let app = alerting_app(&hook, &[("IMANGOR_ALERT_QUEUE", "1")]).await;
    let before = crate::metrics::scrape(&app).await;
    for reason in ["queue_full", "undelivered"] {
        let series = format!("security_alerts_dropped_total{{reason=\"{reason}\"}}");
        assert_eq!(before.get(&series), Some(&0.0), "{series} is exported");
    }
    let (_, m) = app.user_with_role("pager@example.com", "manager").await;
    let critical = |d: &str| json!({"description": d, "level": "critical"});
    assert_eq!(
        report(&app, &m.access, critical("one")).await.status(),
        StatusCode::CREATED
    );
    // The sender has taken the first alert once the webhook has its call.
    hook.first_call().await;
    for d in ["two", "three"] {
        assert_eq!(
            report(&app, &m.access, critical(d)).await.status(),
            StatusCode::CREATED,
            "a full queue never refuses or slows the request"
        );
    }
    let after = crate::metrics::scrape(&app).await;
    assert_eq!(
        crate::metrics::value(
            &after,
            r#"security_alerts_dropped_total{reason="queue_full"}"#
        ),
        1.0
    );
}

/// Issue 16 item 14: `affected_systems` on incidents: reports and updates set it (validated),
/// the list filters on one name exactly (`auth` is not `oauth`, and `_` is no wildcard).
#[tokio::test]
async fn affected_systems_are_validated_updated_and_filtered_exactly() {
    let app = TestApp::spawn().await;
    let (_, u) = app.user_with_role("sys@example.com", "user").await;
    let (_, m) = app
        .user_with_role("sys-manager@example.com", "manager")
        .await;
    let mut ids = Vec::new();
    for (d, systems) in [
        ("r1", json!(["auth", "secrets"])),
        ("r2", json!(["oauth", "auth2"])),
        ("r3", json!(["a-th"])),
    ] {
        let v = reported(
            &app,
            &u.access,
            json!({"description": d, "affected_systems": systems}),
        )
        .await;
        assert_eq!(v["affected_systems"], systems);
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let first = format!("/api/v1/incidents/{}", ids[0]);
    let res = report(&app, &u.access, json!({"description": "none"})).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["affected_systems"],
        json!([])
    );

    let filtered = |q: &'static str| {
        let app = &app;
        let token = m.access.clone();
        async move {
            let res = app.get(&format!("/api/v1/incidents?{q}"), &token).await;
            assert_eq!(res.status(), StatusCode::OK, "{q}");
            let page: Value = res.json().await.unwrap();
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(filtered("affected_system=auth").await, [ids[0].clone()]);
    assert_eq!(filtered("affected_system=secrets").await, [ids[0].clone()]);
    assert_eq!(filtered("affected_system=oauth").await, [ids[1].clone()]);
    assert_eq!(filtered("affected_system=a-th").await, [ids[2].clone()]);
    assert!(filtered("affected_system=uth").await.is_empty());
    assert!(
        filtered("affected_system=a_th").await.is_empty(),
        "`_` is a letter here"
    );
    assert_eq!(
        filtered("affected_system=auth&status=open&level=medium").await,
        [ids[0].clone()]
    );
    invalid_fields(
        app.get("/api/v1/incidents?affected_system=Auth", &m.access)
            .await,
        &["affected_system"],
    )
    .await;
    invalid_fields(
        app.get(
            "/api/v1/incidents?affected_system=auth&affected_system=audit",
            &m.access,
        )
        .await,
        &["affected_system"],
    )
    .await;

    // Validation: at most 16 names, each [a-z0-9_-]{1,32}, none twice; 422 with the errors.
    let seventeen: Vec<String> = (0..17).map(|i| format!("s{i}")).collect();
    let bad = [
        (json!(seventeen), vec!["affected_systems"]),
        (
            json!(["ok", "", "Auth", "x".repeat(33), "a b", "ok"]),
            vec![
                "affected_systems[1]",
                "affected_systems[2]",
                "affected_systems[3]",
                "affected_systems[4]",
                "affected_systems[5]",
            ],
        ),
    ];
    for (systems, fields) in &bad {
        let res = report(
            &app,
            &u.access,
            json!({"description": "x", "affected_systems": systems}),
        )
        .await;
        invalid_fields(res, fields).await;
        let res = app
            .patch_json(
                &first,
                &m.access,
                &json!({"status": "open", "note": "x", "affected_systems": systems}),
            )
            .await;
        invalid_fields(res, fields).await;
    }
    let sixteen: Vec<String> = (0..16).map(|i| format!("{}-{i}", "y".repeat(28))).collect();
    let res = report(
        &app,
        &u.access,
        json!({"description": "sixteen", "affected_systems": sixteen}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED, "16 names of 32 are fine");

    // The schema says the same, so that clients and the contract fuzzer know the rule.
    let doc: Value = app.get_anon("/openapi.json").await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SystemName"]["pattern"], "^[a-z0-9_-]{1,32}$",
        "{}",
        schemas["SystemName"]
    );
    for input in ["ReportInput", "UpdateInput"] {
        let field = &schemas[input]["properties"]["affected_systems"];
        assert_eq!(field["maxItems"], 16, "{input}: {field}");
        assert!(
            field
                .to_string()
                .contains("#/components/schemas/SystemName"),
            "{field}"
        );
    }

    // An update replaces the list.
    let v = patched(
        &app,
        &first,
        &m.access,
        json!({"status": "contained", "note": "moved", "affected_systems": ["audit"]}),
    )
    .await;
    assert_eq!(
        (&v["affected_systems"], &v["status"]),
        (&json!(["audit"]), &json!("contained"))
    );
    assert!(filtered("affected_system=auth").await.is_empty());
    assert_eq!(filtered("affected_system=audit").await, [ids[0].clone()]);
    // Without the field, the list stays as it was.
    let v = patched(
        &app,
        &first,
        &m.access,
        json!({"status": "resolved", "note": "done"}),
    )
    .await;
    assert_eq!(v["affected_systems"], json!(["audit"]));
}

/// `security_alerts_dropped_total{reason}` read from the server's state (works after it stopped).
fn alerts_dropped(state: &imangor::state::AppState, reason: &str) -> f64 {
    let series = format!("security_alerts_dropped_total{{reason=\"{reason}\"}}");
    series_value(state, &series).unwrap_or(-1.0)
}

/// A webhook receiver that holds every call until `open` is sent `true`, then answers 204.
async fn gated_hook() -> (Hook, tokio::sync::watch::Sender<bool>) {
    use axum::routing::post;
    let (open, gate) = tokio::sync::watch::channel(false);
    let got: Deliveries = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let receiver = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (g, c, mut gate) = (g.clone(), c.clone(), gate.clone());
                async move {
                    c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = gate.wait_for(|o| *o).await;
                    let sig = headers["x-imangor-signature"].to_str().unwrap().to_owned();
                    g.lock().unwrap().push((sig, body.to_vec()));
                    StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let url = serve_hook(receiver).await;
    (Hook { url, got, calls }, open)
}

/// A new session of `a`, refreshed once, whose spent refresh token is then presented again.
async fn reuse_once(app: &TestApp, a: &Account) {
    let t = app.login(a).await;
    assert_eq!(app.refresh(&t.refresh).await.status(), StatusCode::OK);
    refused_refresh(app, &t.refresh).await;
}

/// Issue 16 review item 1 (ASVS V16.3.3): replaying a spent refresh token is refused each time,
/// but only the first replay (which revokes the live family) is recorded: one incident, one page.
#[tokio::test]
async fn replaying_a_spent_refresh_token_ten_times_pages_once() {
    let hook = hook(0, false).await;
    let app = alerting_app(&hook, &[]).await;
    let admin = app.admin_tokens().await;
    let a = app.register("replayer@example.com").await;
    let t = app.login(&a).await;
    assert_eq!(app.refresh(&t.refresh).await.status(), StatusCode::OK);
    for _ in 0..10 {
        refused_refresh(&app, &t.refresh).await;
    }
    let found = incidents_of(&app, &admin, "refresh_reuse").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (&found[0]["count"], &found[0]["level"]),
        (&json!(1), &json!("high"))
    );
    let got = hook.settled(1).await;
    assert_eq!(got.len(), 1, "one page: {got:?}");
    assert_eq!(
        (&got[0]["event"], &got[0]["incident"]["id"]),
        (&json!("incident.opened"), &found[0]["id"])
    );
    let m = crate::metrics::scrape(&app).await;
    assert_eq!(
        crate::metrics::value(
            &m,
            r#"security_events_skipped_total{action="auth.refresh_reuse"}"#
        ),
        9.0,
        "the replays on the revoked family are counted, not recorded"
    );
}

/// Issue 16 review item 1: an incident raised again pages only as its count reaches 10, 100,
/// 1000, ...: ten reuses (ten live sessions of one account) are one opening and one re-raise.
#[tokio::test]
async fn a_re_raised_incident_pages_again_only_at_ten_occurrences() {
    use imangor::service::incidents::raise_alerts;
    assert!(!raise_alerts(9, 1) && raise_alerts(10, 1) && !raise_alerts(11, 1));
    assert!(raise_alerts(12, 5) && raise_alerts(100, 1) && !raise_alerts(150, 40));
    assert!(raise_alerts(1000, 1) && !raise_alerts(1001, 1));
    let hook = hook(0, false).await;
    let app = alerting_app(&hook, &[]).await;
    let admin = app.admin_tokens().await;
    let a = app.register("ten-sessions@example.com").await;
    for _ in 0..10 {
        reuse_once(&app, &a).await;
        sealed(&app).await;
    }
    let found = incidents_of(&app, &admin, "refresh_reuse").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["count"], 10);
    let got = hook.settled(2).await;
    let seen: Vec<(&Value, &Value)> = got
        .iter()
        .map(|b| (&b["event"], &b["incident"]["count"]))
        .collect();
    assert_eq!(
        seen,
        [
            (&json!("incident.opened"), &json!(1)),
            (&json!("incident.raised"), &json!(10))
        ]
    );
}

/// Issue 16 review item 2 (ASVS V16.3.3): a full queue drops a queued re-raise before an
/// urgent (opened, escalated, critical) alert. The webhook holds the first alert; a queue of one
/// holds a re-raise; a new incident's opening takes its place and is delivered on recovery.
#[tokio::test]
async fn an_urgent_alert_takes_the_place_of_a_queued_re_raise() {
    let (hook, open) = gated_hook().await;
    let app = alerting_app(&hook, &[("IMANGOR_ALERT_QUEUE", "1")]).await;
    let a = app.register("flooded@example.com").await;
    let b = app.register("victim@example.com").await;
    // The opening of A's incident: the sender takes it and waits on the webhook.
    reuse_once(&app, &a).await;
    sealed(&app).await;
    hook.first_call().await;
    // Its tenth occurrence: a re-raise, queued (the queue is full).
    for _ in 0..9 {
        reuse_once(&app, &a).await;
    }
    sealed(&app).await;
    // B's new incident: urgent, it displaces the re-raise.
    reuse_once(&app, &b).await;
    sealed(&app).await;
    open.send(true).unwrap();
    let got = hook.settled(2).await;
    let seen: Vec<(&Value, &Value)> = got
        .iter()
        .map(|v| (&v["event"], &v["incident"]["subject"]))
        .collect();
    assert_eq!(
        seen,
        [
            (&json!("incident.opened"), &json!(a.id)),
            (&json!("incident.opened"), &json!(b.id))
        ]
    );
    // The re-raise was the one dropped, and counted for it.
    assert_eq!(alerts_dropped(&app.state, "displaced"), 1.0);
    assert_eq!(alerts_dropped(&app.state, "queue_full"), 0.0);
}

/// Issue 16 review item 3 (API6): with IMANGOR_ALERT_MIN_LEVEL=medium a plain user's report is
/// stored one level below it (`low`, the level asked kept) and pages no one; a manager's does.
#[tokio::test]
async fn a_plain_users_report_stays_below_a_medium_alert_level() {
    use imangor::service::incidents::user_report_max_level;
    let caps: Vec<&str> = ["low", "medium", "high", "critical"]
        .iter()
        .map(|l| user_report_max_level(l.parse().unwrap()).as_str())
        .collect();
    assert_eq!(caps, ["low", "low", "medium", "medium"]);
    let hook = hook(0, false).await;
    let app = alerting_app(&hook, &[("IMANGOR_ALERT_MIN_LEVEL", "medium")]).await;
    let (_, u) = app.user_with_role("plain-medium@example.com", "user").await;
    let (_, m) = app
        .user_with_role("boss-medium@example.com", "manager")
        .await;
    for asked in ["medium", "critical"] {
        let v = reported(
            &app,
            &u.access,
            json!({"description": "mine", "level": asked}),
        )
        .await;
        assert_eq!(
            (&v["level"], &v["requested_level"]),
            (&json!("low"), &json!(asked))
        );
    }
    let res = report(
        &app,
        &m.access,
        json!({"description": "theirs", "level": "medium"}),
    )
    .await;
    let theirs: Value = res.json().await.unwrap();
    assert_eq!(theirs["level"], "medium");
    let got = hook.settled(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["incident"]["id"], theirs["id"]);
}

/// Issue 16 review item 4: a manager toggling a level pages once per level reached, and a
/// PATCH that resolves an incident never pages.
#[tokio::test]
async fn escalation_pages_once_per_level_and_never_on_resolution() {
    let hook = hook(0, false).await;
    let app = alerting_app(&hook, &[]).await;
    let (_, m) = app.user_with_role("toggler@example.com", "manager").await;
    let new = |d: &'static str| {
        let (app, m) = (&app, &m);
        async move {
            incident_path(
                &reported(app, &m.access, json!({"description": d, "level": "low"})).await,
            )
        }
    };
    let triage =
        |status: &str, level: &str| json!({"status": status, "note": "triage", "level": level});
    let one = new("toggled").await;
    for level in ["critical", "low", "critical", "low", "high", "critical"] {
        patched(&app, &one, &m.access, triage("open", level)).await;
    }
    let closed = new("closed at critical").await;
    patched(&app, &closed, &m.access, triage("resolved", "critical")).await;
    let two = new("high, then critical").await;
    for level in ["high", "low", "high", "low", "critical"] {
        patched(&app, &two, &m.access, triage("contained", level)).await;
    }
    let got = hook.settled(3).await;
    let seen: Vec<(&Value, &Value)> = got
        .iter()
        .map(|v| (&v["incident"]["description"], &v["incident"]["level"]))
        .collect();
    assert_eq!(
        seen,
        [
            (&json!("toggled"), &json!("critical")),
            (&json!("high, then critical"), &json!("high")),
            (&json!("high, then critical"), &json!("critical"))
        ]
    );
    assert!(got.iter().all(|v| v["event"] == "incident.escalated"));
    // The page is in the incident's history, as a note of the server's own.
    let v: Value = app.get(&one, &m.access).await.json().await.unwrap();
    let system: Vec<&Value> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["author_id"].is_null())
        .map(|n| &n["note"])
        .collect();
    assert_eq!(
        system,
        [&json!("the on-call was paged: escalated to critical")]
    );
}

/// Issue 16 review item 5 (ASVS V16.3.3): at shutdown the sender is given the drain deadline;
/// what it could not deliver by then is counted (`shutdown`), and an alert sent after it
/// stopped is counted as `closed`, not as a full queue.
#[tokio::test]
async fn alerts_left_at_shutdown_are_counted() {
    let hook = hook(0, true).await;
    let app = alerting_app(
        &hook,
        &[
            ("IMANGOR_ALERT_QUEUE", "4"),
            ("IMANGOR_SHUTDOWN_TIMEOUT", "1"),
        ],
    )
    .await;
    let (_, m) = app.user_with_role("last@example.com", "manager").await;
    for d in ["one", "two", "three"] {
        reported(
            &app,
            &m.access,
            json!({"description": d, "level": "critical"}),
        )
        .await;
    }
    let incident = imangor::db::incidents::list(&app.state.store.db, Default::default(), None, 1)
        .await
        .unwrap()
        .remove(0);
    let state = app.state.clone();
    drop(app);
    for _ in 0..100 {
        if alerts_dropped(&state, "shutdown") > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(alerts_dropped(&state, "shutdown"), 3.0);
    state
        .sinks
        .alerts
        .send(&incident, imangor::infra::alerts::Alert::Opened);
    assert_eq!(alerts_dropped(&state, "closed"), 1.0);
    assert_eq!(alerts_dropped(&state, "queue_full"), 0.0);
}

/// Issue 16 review item 6 (API4): the cap of five unresolved reports per account is counted in
/// the write transaction: ten parallel reports store exactly five.
#[tokio::test]
async fn ten_parallel_reports_store_exactly_five() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_REPORT", "100/3600")]).await;
    let (_, u) = app.user_with_role("parallel@example.com", "user").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (c, url, token) = (
            app.client.clone(),
            app.url("/api/v1/incidents"),
            u.access.clone(),
        );
        set.spawn(async move {
            c.post(url)
                .bearer_auth(token)
                .json(&json!({"description": format!("parallel {i}")}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let mut statuses = set.join_all().await;
    statuses.sort();
    assert_eq!(
        statuses,
        [
            [StatusCode::CREATED; 5].as_slice(),
            [StatusCode::CONFLICT; 5].as_slice()
        ]
        .concat()
    );
    assert_eq!(stored_of(&app, "user_report").await.len(), 5);
}

/// Issue 16 second review item 1 (ASVS V7.4.1, V10.4.5): a thief who refreshes first with the
/// victim's token, then revokes the session with the new one, still raises `refresh_reuse` when
/// the victim presents the spent token: the token was spent while the session was live, which is
/// what counts, not the session's state; the session keeps the thief's sign-out as its reason.
#[tokio::test]
async fn a_thief_who_revokes_the_session_first_still_raises_refresh_reuse() {
    let hook = hook(0, false).await;
    let app = alerting_app(&hook, &[]).await;
    let admin = app.admin_tokens().await;
    let victim = app.register("robbed@example.com").await;
    let t = app.login(&victim).await;
    // The thief spends the victim's refresh token, then ends the session with the new one.
    let res = app.refresh(&t.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let stolen: Value = res.json().await.unwrap();
    let res = app.revoke(stolen["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The victim presents the spent token; so does the thief, again and again.
    for _ in 0..3 {
        refused_refresh(&app, &t.refresh).await;
    }
    let found = incidents_of(&app, &admin, "refresh_reuse").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (&found[0]["count"], &found[0]["subject"]),
        (&json!(1), &json!(victim.id))
    );
    // The thief's sign-out stays on record: the reuse has its own column.
    let s = sessions_of(&app, &victim.id).await;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].reason.as_deref(), Some("revoked by client"));
    assert!(s[0].reuse_at.is_some_and(|r| r > s[0].revoked_at.unwrap()));
    let got = hook.settled(1).await;
    assert_eq!(got.len(), 1, "one page: {got:?}");
    assert_eq!(got[0]["event"], "incident.opened");
}

/// Issue 16 second review item 2 (ASVS V16.3.3): a full queue of opened high alerts does not
/// hold back a critical one: it takes the place of the newest queued non-critical alert and is
/// sent before the others.
#[tokio::test]
async fn a_critical_alert_passes_a_queue_full_of_opened_high_alerts() {
    let (hook, open) = gated_hook().await;
    let app = alerting_app(&hook, &[("IMANGOR_ALERT_QUEUE", "2")]).await;
    let (_, m) = app.user_with_role("pager@example.com", "manager").await;
    let accounts = [
        app.register("flood-a@example.com").await,
        app.register("flood-b@example.com").await,
        app.register("flood-c@example.com").await,
    ];
    // A's opening is taken by the sender, which waits on the webhook.
    reuse_once(&app, &accounts[0]).await;
    sealed(&app).await;
    hook.first_call().await;
    // B's and C's openings fill the queue.
    for a in &accounts[1..] {
        reuse_once(&app, a).await;
        sealed(&app).await;
    }
    reported(
        &app,
        &m.access,
        json!({"description": "the keys do not open", "level": "critical"}),
    )
    .await;
    open.send(true).unwrap();
    let got = hook.settled(3).await;
    let seen: Vec<(&Value, &Value)> = got
        .iter()
        .map(|v| (&v["incident"]["level"], &v["incident"]["subject"]))
        .collect();
    assert_eq!(
        seen,
        [
            (&json!("high"), &json!(accounts[0].id)),
            (&json!("critical"), &Value::Null),
            (&json!("high"), &json!(accounts[1].id))
        ]
    );
    assert_eq!(alerts_dropped(&app.state, "displaced"), 1.0);
    assert_eq!(alerts_dropped(&app.state, "queue_full"), 0.0);
}

/// Issue 16 second review item 2: invalid tokens from two addresses of one IPv6 /64 count
/// together, toward one incident whose subject is the /64.
#[tokio::test]
async fn forged_tokens_from_one_ipv6_64_count_toward_one_incident() {
    let app = TestApp::spawn_with(&[("IMANGOR_TRUSTED_PROXIES", "127.0.0.0/8, ::1")]).await;
    let admin = app.admin_tokens().await;
    let forged =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Im5vcGUifQ.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    for i in 0..50 {
        let client = format!("2001:db8:1:2::{}", 1 + i % 2);
        let res = app
            .client
            .get(app.url("/api/v1/users/me"))
            .bearer_auth(forged)
            .header("x-forwarded-for", client)
            .send()
            .await
            .unwrap();
        invalid_token(res).await;
    }
    let found = awaited_incidents(&app, &admin, "forged_tokens").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["subject"], "2001:db8:1:2::/64");
}

/// Issue 16 second review item 3: an incident opened at the alert level (paged as opened) and
/// raised to critical by a manager pages `incident.escalated` once; back and forth, not again.
#[tokio::test]
async fn an_incident_opened_at_high_pages_again_when_raised_to_critical() {
    let hook = hook(0, false).await;
    let app = alerting_app(&hook, &[]).await;
    let (_, m) = app.user_with_role("riser@example.com", "manager").await;
    let v = reported(
        &app,
        &m.access,
        json!({"description": "opened high", "level": "high"}),
    )
    .await;
    let path = incident_path(&v);
    for level in ["critical", "high", "critical"] {
        patched(
            &app,
            &path,
            &m.access,
            json!({"status": "open", "note": "triage", "level": level}),
        )
        .await;
    }
    let got = hook.settled(2).await;
    let seen: Vec<(&Value, &Value)> = got
        .iter()
        .map(|v| (&v["event"], &v["incident"]["level"]))
        .collect();
    assert_eq!(
        seen,
        [
            (&json!("incident.opened"), &json!("high")),
            (&json!("incident.escalated"), &json!("critical"))
        ]
    );
}

/// A failed login with a wrong password from `client` (through the trusted proxy).
async fn wrong_login_from(app: &TestApp, email: &str, client: &str) -> StatusCode {
    app.client
        .post(app.url("/api/v1/token"))
        .header("x-forwarded-for", client)
        .form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", "definitely not it"),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

/// Issue 16 second review item 2: credential stuffing from two addresses of one IPv6 /64 is one
/// incident (subject the /64, raised again), and its automatic block covers the /64.
#[tokio::test]
async fn credential_stuffing_from_one_ipv6_64_is_one_incident_and_blocks_the_64() {
    for block in ["0", "900"] {
        let app = TestApp::spawn_with(&[
            ("IMANGOR_TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
            ("IMANGOR_RATE_LIMIT_TOKEN", "100/60"),
            ("IMANGOR_CONTAIN_STUFFING_BLOCK", block),
        ])
        .await;
        for host in ["a", "b"] {
            for i in 0..10 {
                let client = format!("2001:db8:1:2::{host}");
                let got = wrong_login_from(&app, &format!("nobody{i}@example.com"), &client).await;
                if block == "0" || host == "a" {
                    assert_eq!(got, StatusCode::BAD_REQUEST, "{block} {host} {i}");
                } else {
                    assert_eq!(got, StatusCode::FORBIDDEN, "blocked: {host} {i}");
                }
            }
            sealed(&app).await;
        }
        let found = stored_of(&app, "credential_stuffing").await;
        assert_eq!(found.len(), 1, "{block}: {found:?}");
        assert_eq!(
            (found[0].subject.as_deref(), found[0].count),
            (Some("2001:db8:1:2::/64"), if block == "0" { 2 } else { 1 })
        );
        let blocks: Vec<Option<String>> = events(&app)
            .await
            .into_iter()
            .filter(|e| e.action == "containment.block_address")
            .map(|e| e.target)
            .collect();
        if block == "0" {
            assert!(blocks.is_empty(), "{blocks:?}");
        } else {
            assert_eq!(blocks, [Some("2001:db8:1:2::/64".to_owned())]);
        }
    }
}

/// Issue 16 second review item 2: a spray of fresh addresses filling the watch of invalid tokens
/// does not wipe the count of an address about to cross the threshold: the entries with the
/// fewest refusals make room, not the whole watch.
#[test]
fn a_spray_of_addresses_does_not_reset_the_invalid_token_watch() {
    use imangor::limits::blocks::{FORGED_TOKENS, TokenWatch};
    use std::net::{IpAddr, Ipv4Addr};
    let watch = TokenWatch::default();
    let forger = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    for _ in 1..FORGED_TOKENS {
        assert!(!watch.refused(forger));
    }
    for i in 0..20_000u32 {
        assert!(!watch.refused(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))));
    }
    assert!(watch.refused(forger), "the 50th refusal still crosses");
}

/// A session as stored: when and why it ended, and when a reuse was recorded in it.
struct StoredSession {
    revoked_at: Option<i64>,
    reason: Option<String>,
    reuse_at: Option<i64>,
}

/// The sessions of an account, oldest first, read straight from the database.
async fn sessions_of(app: &TestApp, user: &str) -> Vec<StoredSession> {
    use sqlx::Row;
    let sql = "select revoked_at, revoked_reason, reuse_at from sessions where user_id = $1 order by created_at";
    macro_rules! rows {
        ($pool:expr) => {
            sqlx::query(sql)
                .bind(user)
                .fetch_all($pool)
                .await
                .unwrap()
                .iter()
                .map(|r| StoredSession {
                    revoked_at: r.get("revoked_at"),
                    reason: r.get("revoked_reason"),
                    reuse_at: r.get("reuse_at"),
                })
                .collect()
        };
    }
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => rows!(p),
        imangor::db::Db::Postgres(p) => rows!(p),
    }
}

fn reuse_events(events: &[EventRow]) -> usize {
    events
        .iter()
        .filter(|e| e.action == "auth.refresh_reuse")
        .count()
}

/// Issue 16 third review (ASVS V7.4.1, V10.4.5): the refresh token of a session that ended
/// normally (signed out, or its account disabled) is refused every time and never spent, so
/// presenting it twice is no reuse: no event, no incident, no containment of the user's other
/// sessions, and each session keeps the reason it ended with.
#[tokio::test]
async fn a_refresh_token_of_an_ended_session_presented_twice_raises_nothing_v7_4_1_v10_4_5() {
    let app = TestApp::spawn_with(&[("IMANGOR_CONTAIN_REFRESH_REUSE", "all")]).await;
    let admin = app.admin_tokens().await;
    let a = app.register("signed-out@example.com").await;
    let signed_out = app.login(&a).await;
    let kept = app.login(&a).await;
    assert_eq!(
        app.revoke(&signed_out.refresh).await.status(),
        StatusCode::OK
    );
    let b = app.register("disabled@example.com").await;
    let disabled = app.login(&b).await;
    let res = app
        .patch_json(
            &format!("/api/v1/users/{}", b.id),
            &admin.access,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    for token in [&signed_out.refresh, &disabled.refresh] {
        for _ in 0..2 {
            refused_refresh(&app, token).await;
        }
    }
    assert_eq!(reuse_events(&events(&app).await), 0);
    let found = incidents_of(&app, &admin, "refresh_reuse").await;
    assert!(found.is_empty(), "{found:?}");
    // No containment: the account's other session still works and still rotates.
    assert_eq!(
        app.get("/api/v1/users/me", &kept.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.refresh(&kept.refresh).await.status(), StatusCode::OK);
    let s = sessions_of(&app, &a.id).await;
    assert_eq!(
        (s[0].reason.as_deref(), s[0].reuse_at),
        (Some("revoked by client"), None)
    );
    let s = sessions_of(&app, &b.id).await;
    assert_eq!(
        (s[0].reason.as_deref(), s[0].reuse_at),
        (Some("account disabled"), None)
    );
}

/// Issue 16 third review (ASVS V10.4.5): the sessions a reuse contained
/// (IMANGOR_CONTAIN_REFRESH_REUSE=all) end with the containment's reason, and their never-spent
/// refresh tokens presented again and again raise nothing more: one event, one incident. The
/// reused session itself ends with the reason `refresh token reuse`.
#[tokio::test]
async fn a_contained_session_does_not_raise_refresh_reuse_again_v10_4_5() {
    let app = TestApp::spawn_with(&[("IMANGOR_CONTAIN_REFRESH_REUSE", "all")]).await;
    let admin = app.admin_tokens().await;
    let a = app.register("contained@example.com").await;
    let other = app.login(&a).await;
    reuse_once(&app, &a).await;
    let found = incidents_of(&app, &admin, "refresh_reuse").await;
    assert_eq!(found.len(), 1, "{found:?}");
    for _ in 0..3 {
        refused_refresh(&app, &other.refresh).await;
    }
    assert_eq!(reuse_events(&events(&app).await), 1);
    let found = incidents_of(&app, &admin, "refresh_reuse").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["count"], json!(1));
    let s = sessions_of(&app, &a.id).await;
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].reason.as_deref(), s[0].reuse_at.is_some()),
        (Some("refresh token reuse (automatic containment)"), false)
    );
    assert_eq!(
        (s[1].reason.as_deref(), s[1].reuse_at.is_some()),
        (Some("refresh token reuse"), true)
    );
    assert_eq!(s[1].reuse_at, s[1].revoked_at);
}
