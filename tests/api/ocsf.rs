//! Issue 22, item 4: the audit trail exported for a SIEM as OCSF events
//! (`GET /api/v1/audit?format=ocsf`, `imangor audit export --format ocsf`), each line checked
//! against the attributes the OCSF schema requires of its class, and carrying the chain.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// What the OCSF 1.3.0 schema requires of each class the export uses (`events/*.json` of
/// ocsf-schema: attributes whose `requirement` is `required`, through `extends`), and the
/// activity ids each class defines (99 is Other in every class).
struct ClassRule {
    class_uid: u64,
    category_uid: u64,
    required: &'static [&'static str],
    activities: &'static [u64],
}

/// The base event's required attributes (every class).
const BASE: &[&str] = &[
    "activity_id",
    "category_uid",
    "class_uid",
    "metadata",
    "severity_id",
    "time",
    "type_uid",
];

const CLASSES: &[ClassRule] = &[
    // Authentication: `user` (and at least one of `service`, `dst_endpoint`).
    ClassRule {
        class_uid: 3002,
        category_uid: 3,
        required: &["user"],
        activities: &[1, 2, 3, 4, 5, 6, 99],
    },
    // Account Change: `user`, the account changed.
    ClassRule {
        class_uid: 3001,
        category_uid: 3,
        required: &["user"],
        activities: &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 99],
    },
    // API Activity: `actor`, `api` (with `operation`), `src_endpoint`.
    ClassRule {
        class_uid: 6003,
        category_uid: 6,
        required: &["actor", "api", "src_endpoint"],
        activities: &[1, 2, 3, 4, 99],
    },
    // Detection Finding: `finding_info` (with `uid`).
    ClassRule {
        class_uid: 2004,
        category_uid: 2,
        required: &["finding_info"],
        activities: &[1, 2, 3, 99],
    },
];

/// An object with at least one of `names` set (the schema's `at_least_one` constraints).
fn has_one_of(v: &Value, names: &[&str], what: &str, line: &Value) {
    assert!(
        v.is_object() && names.iter().any(|n| !v[*n].is_null()),
        "{what} needs one of {names:?}: {line}"
    );
}

/// Asserts that `e` is a valid OCSF event of one of `CLASSES`; returns its class.
fn validate(e: &Value) -> u64 {
    for a in BASE {
        assert!(!e[*a].is_null(), "base attribute {a} missing: {e}");
    }
    let class = e["class_uid"].as_u64().unwrap();
    let rule = CLASSES
        .iter()
        .find(|r| r.class_uid == class)
        .unwrap_or_else(|| panic!("unexpected class {class}: {e}"));
    assert_eq!(e["category_uid"], rule.category_uid, "{e}");
    let activity = e["activity_id"].as_u64().unwrap();
    assert!(rule.activities.contains(&activity), "activity of {e}");
    assert_eq!(e["type_uid"], class * 100 + activity, "{e}");
    assert!(matches!(e["severity_id"].as_u64(), Some(0..=6 | 99)), "{e}");
    // Milliseconds since the epoch, within the last hour.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = e["time"].as_i64().expect("time is an integer");
    assert!(
        now_ms - 3_600_000 < t && t <= now_ms + 1000,
        "time {t}: {e}"
    );
    let m = &e["metadata"];
    assert!(m["version"].as_str().unwrap().starts_with("1."), "{e}");
    assert_eq!(m["version"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(m["product"]["name"], "imangor");
    assert_eq!(m["product"]["vendor_name"], "imangor");
    for a in rule.required {
        assert!(!e[*a].is_null(), "{a} is required of class {class}: {e}");
    }
    match class {
        3001 | 3002 => has_one_of(&e["user"], &["uid", "name", "account"], "user", e),
        _ => {}
    }
    if class == 3002 {
        has_one_of(e, &["service", "dst_endpoint"], "an authentication", e);
    }
    if class == 6003 {
        assert!(e["api"]["operation"].is_string(), "{e}");
        has_one_of(
            &e["actor"],
            &["user", "process", "session", "app_name", "app_uid"],
            "actor",
            e,
        );
        has_one_of(
            &e["src_endpoint"],
            &["ip", "name", "hostname", "uid"],
            "src_endpoint",
            e,
        );
    }
    if class == 2004 {
        assert!(e["finding_info"]["uid"].is_string(), "{e}");
        assert!(e["finding_info"]["title"].is_string(), "{e}");
    } else {
        assert!(
            matches!(e["status_id"].as_u64(), Some(0 | 1 | 2 | 99)),
            "{e}"
        );
    }
    class
}

async fn lines(res: reqwest::Response) -> Vec<Value> {
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = res.text().await.unwrap();
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The one line whose row recorded `action` with `outcome`.
fn line<'a>(all: &'a [Value], action: &str, outcome: &str) -> &'a Value {
    all.iter()
        .find(|e| e["unmapped"]["action"] == action && e["unmapped"]["outcome"] == outcome)
        .unwrap_or_else(|| panic!("no {action} {outcome}"))
}

#[tokio::test]
async fn the_trail_exports_as_ocsf_events_that_carry_the_chain() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    // A failed sign-in, a registration and a sign-in, a role change.
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", ADMIN_EMAIL),
            ("password", "not the password at all"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (_, user) = app.user_with_role("plain@example.com", "user").await;
    let (manager, _) = app.user_with_role("boss@example.com", "manager").await;
    // A resource written by an admin (an owner's own writes are not security events).
    let res = app
        .post_json(
            "/api/v1/resources",
            Some(&user.access),
            &json!({"title": "t", "content": "c", "is_public": false}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .put(app.url(&format!("/api/v1/resources/{id}")))
        .bearer_auth(&admin.access)
        .json(&json!({"title": "t2", "content": "c2", "is_public": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // An incident reported, then contained.
    let res = app
        .post_json(
            "/api/v1/incidents",
            Some(&user.access),
            &json!({"description": "my laptop was stolen", "level": "high"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let incident = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .patch_json(
            &format!("/api/v1/incidents/{incident}"),
            &admin.access,
            &json!({"status": "contained", "note": "sessions revoked", "level": "critical"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // A plain user may not export (the refusal is recorded too), whatever the format.
    for q in ["?format=ocsf", "?format=xml", "?format=jsonl&after=1"] {
        let p = problem(
            app.get(&format!("/api/v1/audit{q}"), &user.access).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(p["type"], "urn:imangor:problem:forbidden", "{p}");
    }
    app.state.sinks.events.flush().await;
    imangor::service::audit::seal::seal_and_detect(&app.state.trail)
        .await
        .unwrap();

    let all = lines(app.get("/api/v1/audit?format=ocsf", &admin.access).await).await;
    let mut classes = BTreeMap::new();
    for e in &all {
        *classes.entry(validate(e)).or_insert(0) += 1;
    }
    assert_eq!(
        classes.keys().copied().collect::<Vec<_>>(),
        [2004, 3001, 3002, 6003],
        "{classes:?}"
    );

    // Each action where the mapping puts it.
    let failed = line(&all, "auth.login", "failure");
    assert_eq!(
        (
            &failed["class_uid"],
            &failed["activity_id"],
            &failed["status_id"]
        ),
        (&json!(3002), &json!(1), &json!(2))
    );
    assert_eq!(failed["user"]["uid"], app.admin.id);
    assert_eq!(failed["src_endpoint"]["ip"], "127.0.0.1");
    let ok = line(&all, "auth.login", "success");
    assert_eq!(
        (&ok["class_uid"], &ok["status_id"]),
        (&json!(3002), &json!(1))
    );
    let role = line(&all, "user.role_change", "success");
    assert_eq!(
        (&role["class_uid"], &role["type_uid"]),
        (&json!(3001), &json!(300199))
    );
    assert_eq!(role["user"]["uid"], manager.id);
    assert_eq!(role["actor"]["user"]["uid"], app.admin.id);
    let register = line(&all, "user.register", "success");
    assert_eq!(
        (&register["class_uid"], &register["activity_id"]),
        (&json!(3001), &json!(1))
    );
    let write = line(&all, "resource.update", "success");
    assert_eq!(
        (&write["class_uid"], &write["type_uid"]),
        (&json!(6003), &json!(600303))
    );
    assert_eq!(write["api"]["operation"], "resource.update");
    assert_eq!(write["resources"][0]["uid"], format!("resource:{id}"));
    assert_eq!(write["actor"]["user"]["uid"], app.admin.id);
    let denied = line(&all, "authz.denied", "denied");
    assert_eq!(
        (&denied["class_uid"], &denied["status_id"]),
        (&json!(6003), &json!(2))
    );
    let report = line(&all, "incident.report", "success");
    assert_eq!(
        (&report["class_uid"], &report["type_uid"]),
        (&json!(2004), &json!(200401))
    );
    assert_eq!(report["finding_info"]["uid"], incident);
    // A plain user's report is stored at medium.
    assert_eq!(report["severity_id"], 3);
    let update = line(&all, "incident.update", "success");
    assert_eq!(
        (
            &update["type_uid"],
            &update["status_id"],
            &update["severity_id"]
        ),
        (&json!(200402), &json!(2), &json!(5))
    );
    assert_eq!(update["finding_info"]["uid"], incident);

    // The chain: consecutive sequence numbers, each row linked to the one before, and the same
    // rows and hashes as the API's page.
    let seqs: Vec<i64> = all
        .iter()
        .map(|e| e["metadata"]["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>());
    for w in all.windows(2) {
        assert_eq!(w[1]["unmapped"]["prev_hash"], w[0]["unmapped"]["hash"]);
    }
    let page: Value = app
        .get("/api/v1/audit?limit=100", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let mut items: Vec<Value> = page["items"].as_array().unwrap().clone();
    items.reverse();
    assert_eq!(items.len(), all.len());
    for (e, item) in all.iter().zip(&items) {
        assert_eq!(e["metadata"]["sequence"], item["seq"]);
        assert_eq!(e["unmapped"]["hash"], item["hash"]);
        assert_eq!(e["unmapped"]["action"], item["action"]);
    }
    // The JSON Lines export is the page's rows, oldest first; `after` resumes either.
    let jsonl = lines(app.get("/api/v1/audit?format=jsonl", &admin.access).await).await;
    assert_eq!(jsonl, items);
    let rest = lines(
        app.get("/api/v1/audit?format=ocsf&after=3", &admin.access)
            .await,
    )
    .await;
    assert_eq!(rest[..], all[3..]);

    // The command writes the same lines (it reads the store alone, beside the running server).
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        (
            "IMANGOR_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("IMANGOR_DATABASE_URL", app.database_url.clone()),
    ];
    let out = crate::process::command(&envs)
        .args(["audit", "export", "--format", "ocsf"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let cli: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(cli.len() >= all.len(), "{err}");
    assert_eq!(cli[..all.len()], all[..]);
    let out = crate::process::command(&envs)
        .args(["audit", "export", "--format", "xml"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jsonl, ocsf"));
}

#[tokio::test]
async fn an_unknown_format_or_a_parameter_of_the_other_answer_is_a_422() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let v = invalid_fields(
        app.get("/api/v1/audit?format=cef", &admin.access).await,
        &["format"],
    )
    .await;
    assert_eq!(v["type"], "urn:imangor:problem:invalid");
    assert_eq!(
        v["errors"][0]["message"], "is not one of jsonl, ocsf",
        "{v}"
    );
    invalid_fields(
        app.get("/api/v1/audit?format=ocsf&format=ocsf", &admin.access)
            .await,
        &["format"],
    )
    .await;
    invalid_fields(
        app.get("/api/v1/audit?format=ocsf&after=-1&limit=5", &admin.access)
            .await,
        &["after", "limit"],
    )
    .await;
    invalid_fields(
        app.get("/api/v1/audit?after=2", &admin.access).await,
        &["after"],
    )
    .await;
    // Without `format`, the page as before.
    let res = app.get("/api/v1/audit?limit=2", &admin.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    assert!(page["items"].is_array() && page["chain"].is_object());
}
