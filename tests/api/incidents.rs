//! Incidents (ASVS V16.3.2, V16.3.3; API6): each detector driven over HTTP, with its level, its
//! dedup count, the metric, and the containment effect; reports and their workflow; containment
//! actions by role; alerts to a webhook, signed.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn sealed(app: &TestApp) {
    imangor::audit::seal_and_detect(&app.state).await.unwrap();
}

/// Incidents of `kind`, as an admin sees them (`admin`: an admin's access token, taken before
/// any containment could block the test's address).
async fn incidents_of(app: &TestApp, admin: &Tokens, kind: &str) -> Vec<Value> {
    sealed(app).await;
    let page: Value = app
        .get("/api/v1/incidents?limit=100", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == kind)
        .cloned()
        .collect()
}

fn metric(app: &TestApp, level: &str, kind: &str) -> u64 {
    let text = app.state.metrics.render(&imangor::metrics::Gauges {
        active_sessions: None,
        hash_queue_depth: 0,
        hashing: Default::default(),
    });
    let series = format!("security_incidents_total{{level=\"{level}\",type=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0)
}

async fn wrong_login(app: &TestApp, email: &str) -> StatusCode {
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
        (&found[0]["level"], &found[0]["subject"], &found[0]["count"]),
        (&json!("high"), &json!(a.id), &json!(1))
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
        let page: Value = app
            .get("/api/v1/incidents?limit=100", &admin.access)
            .await
            .json()
            .await
            .unwrap();
        let found: Vec<Value> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "brute_force")
            .cloned()
            .collect();
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
    let found: Vec<_> = imangor::db::incidents::list(&app.state.db, None, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.kind == "credential_stuffing")
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].level.as_str(), found[0].subject.as_deref()),
        ("high", Some("127.0.0.1"))
    );
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
        (&found[0]["level"], &found[0]["subject"]),
        (&json!("high"), &json!(a.id))
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
    let res = app
        .post_json(
            "/api/v1/resources",
            Some(&owner.access),
            &json!({"title": "private", "content": "", "is_public": false}),
        )
        .await;
    let rid = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
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
        (&found[0]["level"], &found[0]["subject"]),
        (&json!("medium"), &json!(prober.id))
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
    let mut found = Vec::new();
    for _ in 0..50 {
        found = incidents_of(&app, &admin, "forged_tokens").await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        (&found[0]["level"], &found[0]["subject"]),
        (&json!("high"), &json!("127.0.0.1"))
    );
}

#[tokio::test]
async fn making_an_account_admin_is_an_incident_to_review() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (u, _) = app.user_with_role("promoted@example.com", "admin").await;
    let found = incidents_of(&app, &admin, "role_escalation").await;
    assert_eq!(
        (&found[0]["level"], &found[0]["subject"]),
        (&json!("high"), &json!(u.id))
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
    match &app.state.db {
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
        (&found[0]["level"], &found[0]["subject"]),
        (&json!("critical"), &json!(format!("secret:{id}")))
    );
}

#[tokio::test]
async fn reports_follow_the_workflow_with_notes_and_roles_v8_2_1() {
    let app = TestApp::spawn().await;
    let (_, u) = app.user_with_role("reporter@example.com", "user").await;
    let (_, m) = app.user_with_role("manager@example.com", "manager").await;
    let text = "<script>alert(1)</script>\nsecond line";
    let res = app
        .post_json(
            "/api/v1/incidents",
            Some(&u.access),
            &json!({"description": text, "level": "low"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let made: Value = res.json().await.unwrap();
    assert_eq!(
        (&made["kind"], &made["status"], &made["description"]),
        (&json!("user_report"), &json!("open"), &json!(text))
    );
    let id = made["id"].as_str().unwrap();
    invalid_fields(
        app.post_json(
            "/api/v1/incidents",
            Some(&u.access),
            &json!({"description": " ", "level": "severe"}),
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
    let v: Value = app
        .patch_json(
            &path,
            &m.access,
            &json!({"status": "contained", "note": "isolated the host"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "contained");
    let v: Value = app
        .patch_json(
            &path,
            &m.access,
            &json!({"status": "resolved", "note": "rotated the key"}),
        )
        .await
        .json()
        .await
        .unwrap();
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
        let res = app
            .post_json(
                "/api/v1/incidents",
                Some(&u.access),
                &json!({"description": format!("r{i}")}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let res = app
        .post_json(
            "/api/v1/incidents",
            Some(&u.access),
            &json!({"description": "one too many", "level": "critical"}),
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

#[tokio::test]
async fn alerts_reach_the_webhook_signed_and_retried() {
    use axum::routing::post;
    /// (signature header, body) of each delivery.
    type Deliveries = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let got: Deliveries = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let receiver = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (g, c) = (g.clone(), c.clone());
                async move {
                    // The first delivery fails: the sender must retry.
                    if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let sig = headers["x-imangor-signature"].to_str().unwrap().to_owned();
                    g.lock().unwrap().push((sig, body.to_vec()));
                    StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    let secret = "webhook-secret-for-tests-0123456789";
    let app = TestApp::spawn_with(&[
        ("IMANGOR_ALERT_WEBHOOK_URL", &url),
        ("IMANGOR_ALERT_WEBHOOK_SECRET", secret),
        ("IMANGOR_ALERT_MIN_LEVEL", "high"),
    ])
    .await;
    let (_, u) = app.user_with_role("r@example.com", "user").await;
    // Below the level: no alert. At the level: one.
    app.post_json(
        "/api/v1/incidents",
        Some(&u.access),
        &json!({"description": "low one", "level": "low"}),
    )
    .await;
    app.post_json(
        "/api/v1/incidents",
        Some(&u.access),
        &json!({"description": "laptop stolen", "level": "critical"}),
    )
    .await;
    for _ in 0..60 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one alert, delivered on the retry");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
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
        &imangor::alerts::signature(secret.as_bytes(), t, body),
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
