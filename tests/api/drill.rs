//! `imangor drill`: the built binary run against a server that has the drill key, and the drill
//! header itself (only a fresh one signed with the server's key makes traffic drill traffic).

use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::Value;

use imangor::domain::incident::Incident;

use crate::helpers::*;
use crate::process::command;

const DRILL_KEY: &str = "drill key: 0123456789abcdefghijklmnopqrstuvwxyz";
const WEBHOOK_SECRET: &str = "webhook secret 0123456789abcdefghijklmnop";

/// A free port on 127.0.0.1 (bound and let go: the drill's alert receiver takes it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn all_incidents(app: &TestApp, admin: &Tokens) -> Vec<Value> {
    let res = app.get("/api/v1/incidents?limit=100", &admin.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Runs the built `imangor drill` against `app` as its admin, with `env` and `args` added; its
/// output and the JSON it wrote.
async fn drill(
    app: &TestApp,
    env: &[(&str, String)],
    args: &[&str],
) -> (std::process::Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("drill.json");
    let mut vars = vec![
        ("IMANGOR_DRILL_KEY", DRILL_KEY.to_owned()),
        ("IMANGOR_DATA_DIR", dir.path().display().to_string()),
        ("IMANGOR_DRILL_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        ("IMANGOR_DRILL_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
    ];
    vars.extend(env.iter().cloned());
    let out = command(&vars)
        .args(["drill", "--url", &app.url(""), "--json"])
        .arg(&json)
        .args(args)
        .output()
        .await
        .unwrap();
    let doc = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    (out, doc)
}

#[tokio::test]
async fn the_drill_passes_every_scenario_and_leaves_nothing_behind() {
    // Arrange: a server with the drill key, alerting to the receiver the drill will start.
    let port = free_port();
    let hook = format!("http://127.0.0.1:{port}/alerts");
    let app = TestApp::spawn_with(&[
        ("IMANGOR_DRILL_KEY", DRILL_KEY),
        ("IMANGOR_ALERT_WEBHOOK_URL", &hook),
        ("IMANGOR_ALERT_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ])
    .await;
    let metrics = format!("http://{}/metrics", app.metrics_addr.unwrap());

    // Act
    let listen = format!("127.0.0.1:{port}");
    let env = [("IMANGOR_ALERT_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned())];
    let args = [
        "--webhook-listen",
        &listen,
        "--metrics-url",
        &metrics,
        "--timeout",
        "20",
    ];
    let (out, doc) = drill(&app, &env, &args).await;

    // Assert: exit 0, the table, and the JSON of the contract.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "drill failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("scenario") && stdout.contains("detected in"));
    let scenarios = doc["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "brute_force",
            "credential_stuffing",
            "refresh_reuse",
            "authz_probing",
            "forged_tokens",
            "totp_guessing"
        ]
    );
    for s in scenarios {
        let name = s["name"].as_str().unwrap();
        assert_eq!(s["passed"], true, "{s}");
        assert!(s["detected_ms"].is_u64(), "{s}");
        // Containment applies to stuffing (the address blocked) and reuse (the session ended).
        let contains = matches!(name, "credential_stuffing" | "refresh_reuse");
        assert_eq!(s["contained_ms"].is_u64(), contains, "{s}");
        // authz_probing is medium, below the default alert level (high): no alert expected.
        assert_eq!(s["alerted_ms"].is_u64(), name != "authz_probing", "{s}");
    }

    // Nothing left behind: every incident is a resolved drill one, no block, no active account.
    let admin = app.admin_tokens().await;
    let incidents = all_incidents(&app, &admin).await;
    assert_eq!(incidents.len(), 6, "{incidents:?}");
    for i in &incidents {
        assert_eq!(i["status"], "resolved", "{i}");
        assert_eq!(i["drill"], true, "{i}");
        assert!(i["subject"].is_string());
    }
    let now = imangor::domain::Timestamp::now();
    let blocks = imangor::db::incidents::active_blocks(&app.state.store.db, now)
        .await
        .unwrap();
    assert!(blocks.is_empty(), "{blocks:?}");
    let users: Value = app
        .get("/api/v1/users?limit=100", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let drill_accounts: Vec<&Value> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"].as_str().unwrap().starts_with("drill-"))
        .collect();
    assert_eq!(drill_accounts.len(), 4, "{users}");
    for u in drill_accounts {
        assert_eq!(u["disabled"], true, "{u}");
    }
    // The chain still verifies, and the drill's own steps are on the trail (polled: the
    // server's own sealer may hold the newest rows in a pass of its own for a moment).
    let mut trail = Value::Null;
    for _ in 0..40 {
        imangor::service::audit::seal::seal_and_detect(&app.state.trail)
            .await
            .unwrap();
        trail = app
            .get("/api/v1/audit?limit=100", &admin.access)
            .await
            .json()
            .await
            .unwrap();
        if trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "containment.unblock_address")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        trail["chain"]["first_problem"].is_null(),
        "{}",
        trail["chain"]
    );
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"containment.unblock_address"),
        "{actions:?}"
    );
}

/// `n` failed logins on as many accounts, each request carrying `header` (if any); the open
/// credential_stuffing incident, read from the database (an ordinary stuffing blocks the test's
/// own address, the admin's requests included). A login the block refused is 403.
async fn stuffing_with(app: &TestApp, n: usize, header: impl Fn() -> Option<String>) -> Incident {
    for i in 0..n {
        let mut req = app.client.post(app.url("/api/v1/token")).form(&[
            ("grant_type", "password"),
            ("username", &format!("nobody{i}@example.com")),
            ("password", "not the password"),
        ]);
        if let Some(h) = header() {
            req = req.header("x-imangor-drill", h);
        }
        let status = req.send().await.unwrap().status();
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN].contains(&status),
            "{status}"
        );
    }
    imangor::service::audit::seal::seal_and_detect(&app.state.trail)
        .await
        .unwrap();
    let found: Vec<Incident> =
        imangor::db::incidents::list(&app.state.store.db, Default::default(), None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.kind.as_str() == "credential_stuffing" && i.resolved_at.is_none())
            .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

fn signed(key: &str, ts: i64, addr: &str) -> String {
    let addr: IpAddr = addr.parse().unwrap();
    imangor::crypto::drill::sign(key.as_bytes(), ts, addr, "POST", "/api/v1/token").unwrap()
}

fn now() -> i64 {
    imangor::domain::Timestamp::now().unix_seconds()
}

#[tokio::test]
async fn a_signed_fresh_drill_header_gives_the_drill_address_and_labels_the_incident() {
    let app = TestApp::spawn_with(&[("IMANGOR_DRILL_KEY", DRILL_KEY)]).await;
    let i = stuffing_with(&app, 10, || Some(signed(DRILL_KEY, now(), "192.0.2.44"))).await;
    assert_eq!(i.subject.as_deref(), Some("192.0.2.44"));
    assert!(i.drill);
    // The automatic block covers the drill address only: ordinary traffic still gets through.
    assert_eq!(
        app.get_anon("/api/v1/users/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A drill header signed with another key, stale, or naming an address outside the drill range,
/// and any drill header sent to a server without a drill key: ordinary traffic from the client's
/// own address, and its incident is no drill's.
#[tokio::test]
async fn a_forged_stale_or_misplaced_drill_header_is_ordinary_traffic() {
    let other = "another key, 0123456789abcdefghijklmnopqrstuvwxyz";
    let cases: [(&str, Option<&str>, &str, i64, &str); 4] = [
        ("forged", Some(DRILL_KEY), other, 0, "192.0.2.44"),
        ("stale", Some(DRILL_KEY), DRILL_KEY, -120, "192.0.2.44"),
        (
            "outside the range",
            Some(DRILL_KEY),
            DRILL_KEY,
            0,
            "203.0.113.9",
        ),
        ("no key on the server", None, DRILL_KEY, 0, "192.0.2.44"),
    ];
    // A replayed header (one captured on its way): each is accepted once.
    {
        let app = TestApp::spawn_with(&[("IMANGOR_DRILL_KEY", DRILL_KEY)]).await;
        let one = signed(DRILL_KEY, now(), "192.0.2.44");
        let i = stuffing_with(&app, 11, || Some(one.clone())).await;
        assert_eq!(i.subject.as_deref(), Some("127.0.0.1"), "replayed");
        assert!(!i.drill, "replayed");
        // And a blocked real address stays blocked behind a fresh drill header.
        let res = app
            .client
            .post(app.url("/api/v1/token"))
            .header("x-imangor-drill", signed(DRILL_KEY, now(), "192.0.2.45"))
            .form(&[
                ("grant_type", "password"),
                ("username", "x@example.com"),
                ("password", "p"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "the real address is blocked"
        );
    }
    for (case, server_key, key, skew, addr) in cases {
        // A fresh server each: the ordinary stuffing blocks the test's own address.
        let app = match server_key {
            Some(k) => TestApp::spawn_with(&[("IMANGOR_DRILL_KEY", k)]).await,
            None => TestApp::spawn().await,
        };
        let i = stuffing_with(&app, 10, || Some(signed(key, now() + skew, addr))).await;
        assert_eq!(i.subject.as_deref(), Some("127.0.0.1"), "{case}");
        assert!(!i.drill, "{case}");
    }
}

#[tokio::test]
async fn a_resolved_drill_incident_is_never_the_previous_incident_of_a_recurrence() {
    // Arrange: a drill's stuffing incident, resolved, its block lifted.
    let app = TestApp::spawn_with(&[("IMANGOR_DRILL_KEY", DRILL_KEY)]).await;
    let admin = app.admin_tokens().await;
    let first = stuffing_with(&app, 10, || Some(signed(DRILL_KEY, now(), "192.0.2.45"))).await;
    let id = &first.id;
    let body = serde_json::json!({"status": "resolved", "note": "drill over"});
    let res = app
        .patch_json(&format!("/api/v1/incidents/{id}"), &admin.access, &body)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let lift = serde_json::json!({"action": "unblock_address", "cidr": "192.0.2.45/32"});
    let res = app
        .post_json("/api/v1/containment", Some(&admin.access), &lift)
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Act: the drill again, from the same drill address.
    let second = stuffing_with(&app, 1, || Some(signed(DRILL_KEY, now(), "192.0.2.45"))).await;

    // Assert: a new incident at the detector's level, no recurrence.
    assert_ne!(second.id, first.id);
    assert!(second.drill);
    assert_eq!(second.level.as_str(), "high");
    assert_eq!(second.recurrence_of, None, "{second:?}");
}

#[tokio::test]
async fn an_admin_with_a_second_factor_runs_the_drill_with_its_totp_secret() {
    // Arrange: the admin enrolled in TOTP (containment and account changes need a recent one).
    let app = TestApp::spawn_with(&[("IMANGOR_DRILL_KEY", DRILL_KEY)]).await;
    let (authenticator, _) = crate::mfa::enrol(&app, &app.admin.clone()).await;
    let secret = imangor::auth::totp::base32(&authenticator.secret);

    // Act: without the secret, then with it.
    let (refused, _) = drill(&app, &[], &["--timeout", "20"]).await;
    let env = [("IMANGOR_DRILL_ADMIN_TOTP_SECRET", secret)];
    let (out, doc) = drill(&app, &env, &["--timeout", "20"]).await;

    // Assert
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("IMANGOR_DRILL_ADMIN_TOTP_SECRET"));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let scenarios = doc["scenarios"].as_array().unwrap();
    assert!(
        scenarios
            .iter()
            .all(|s| s["passed"] == true && s["alerted_ms"].is_null())
    );
}

#[tokio::test]
async fn lifting_a_block_that_is_not_in_force_is_404() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let lift = serde_json::json!({"action": "unblock_address", "cidr": "198.51.100.0/24"});
    let res = app
        .post_json("/api/v1/containment", Some(&admin.access), &lift)
        .await;
    problem(res, StatusCode::NOT_FOUND).await;
}

#[test]
fn a_short_drill_key_is_refused_at_start() {
    let vars = [("IMANGOR_DRILL_KEY".to_owned(), "too short".to_owned())];
    let raw = imangor::config::RawSettings::gather(None, vars.into_iter()).unwrap();
    let err = imangor::config::Config::from_raw(&raw).unwrap_err();
    assert!(err.to_string().contains("IMANGOR_DRILL_KEY"), "{err}");
}
