//! Recurrence and runbooks (issue 22, items 3 and 5): a detector firing again for the subject of
//! an incident resolved within IMANGOR_INCIDENT_RECURRENCE_DAYS opens a recurrence linked to it
//! and one level higher (at most critical); an unresolved incident is only raised again; every
//! incident carries its kind's five response steps.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::incidents::listed_of;

async fn sealed(app: &TestApp) {
    imangor::service::audit::seal::seal_and_detect(&app.state.trail)
        .await
        .unwrap();
}

/// The admin's view of one incident (asserting the 200).
async fn shown(app: &TestApp, admin: &Tokens, id: &str) -> Value {
    let res = app
        .get(&format!("/api/v1/incidents/{id}"), &admin.access)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// Resolves incident `id` through the API, and answers its view.
async fn resolve(app: &TestApp, admin: &Tokens, id: &str) -> Value {
    let res = app
        .patch_json(
            &format!("/api/v1/incidents/{id}"),
            &admin.access,
            &json!({"status": "resolved", "note": "handled"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The one open incident of `kind` (asserting there is exactly one).
async fn open_of(app: &TestApp, admin: &Tokens, kind: &str) -> Value {
    let open: Vec<Value> = listed_of(app, admin, kind)
        .await
        .into_iter()
        .filter(|i| i["status"] == "open")
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    open[0].clone()
}

/// Moves an incident's resolution `days` into the past (the window counts from it).
async fn resolved_days_ago(app: &TestApp, id: &str, days: i64) {
    let at = imangor::domain::Timestamp::now().micros() - days * 86_400_000_000;
    let sql = "update incidents set resolved_at = $1 where id = $2";
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => sqlx::query(sql)
            .bind(at)
            .bind(id)
            .execute(p)
            .await
            .map(drop),
        imangor::db::Db::Postgres(p) => sqlx::query(sql)
            .bind(at)
            .bind(id)
            .execute(p)
            .await
            .map(drop),
    }
    .unwrap();
}

fn ids(chain: &Value) -> Vec<&str> {
    chain
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_detector_firing_again_within_the_window_opens_a_linked_recurrence_one_level_higher() {
    // Arrange: authorization probing (medium) by one account, detected, then resolved.
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (prober, t) = app.user_with_role("prober@example.com", "user").await;
    let (_, owner) = app.user_with_role("owner@example.com", "user").await;
    let rid = app.resource(&owner.access, false).await;
    let probe = async || {
        let res = app
            .get(&format!("/api/v1/resources/{rid}"), &t.access)
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    };
    for _ in 0..20 {
        probe().await;
    }
    sealed(&app).await;
    let first = open_of(&app, &admin, "authz_probing").await;
    assert_eq!(
        (&first["level"], &first["recurrence_of"]),
        (&json!("medium"), &Value::Null)
    );
    let first_id = first["id"].as_str().unwrap().to_owned();
    let resolved = resolve(&app, &admin, &first_id).await;
    assert!(resolved["resolved_at"].is_string(), "{resolved}");

    // Act: the same account probes again.
    probe().await;
    sealed(&app).await;

    // Assert: a new incident, linked to the resolved one, one level higher.
    let again = open_of(&app, &admin, "authz_probing").await;
    assert_ne!(again["id"], first["id"]);
    assert_eq!(
        (&again["level"], &again["subject"], &again["recurrence_of"]),
        (&json!("high"), &json!(prober.id), &json!(first_id))
    );
    let again_id = again["id"].as_str().unwrap();
    let shown_again = shown(&app, &admin, again_id).await;
    // The chain reads the same from either end, oldest first.
    assert_eq!(
        ids(&shown_again["recurrences"]),
        [first_id.as_str(), again_id]
    );
    let shown_first = shown(&app, &admin, &first_id).await;
    assert_eq!(
        ids(&shown_first["recurrences"]),
        [first_id.as_str(), again_id]
    );
    assert_eq!(shown_first["recurrences"][0]["status"], "resolved");
    assert_eq!(
        shown_first["recurrences"][1]["recurrence_of"],
        json!(first_id)
    );
    // The history says why it opened where it did: a note without author, and the opening event.
    let note = &shown_again["notes"][0];
    assert_eq!(note["author_id"], Value::Null);
    assert!(
        note["note"]
            .as_str()
            .unwrap()
            .starts_with(&format!("recurrence of incident {first_id} (resolved ")),
        "{note}"
    );
    assert!(
        note["note"]
            .as_str()
            .unwrap()
            .ends_with("raised from medium to high"),
        "{note}"
    );
    let opened = events(&app)
        .await
        .into_iter()
        .find(|e| {
            e.action == "incident.open"
                && e.target.as_deref() == Some(&format!("incident:{again_id}"))
        })
        .expect("the recurrence's opening is recorded");
    assert_eq!(
        opened.detail.as_deref(),
        Some(format!("authz_probing (high), recurrence of incident:{first_id}").as_str())
    );
    assert_eq!(
        app.metric("security_incidents_total{level=\"high\",type=\"authz_probing\"}"),
        1
    );
}

/// An account made admin (a `role_escalation` incident), and that incident.
async fn escalated(app: &TestApp, admin: &Tokens) -> (Account, Value) {
    let (a, _) = app.user_with_role("promoted@example.com", "admin").await;
    sealed(app).await;
    let first = open_of(app, admin, "role_escalation").await;
    (a, first)
}

/// `account` demoted and made admin again, and the open `role_escalation` incident after it.
async fn escalated_again(app: &TestApp, admin: &Tokens, account: &Account) -> Value {
    app.set_role(&account.id, "user").await;
    app.set_role(&account.id, "admin").await;
    sealed(app).await;
    open_of(app, admin, "role_escalation").await
}

/// An incident's level and the incident it recurs of.
fn link(i: &Value) -> (&Value, &Value) {
    (&i["level"], &i["recurrence_of"])
}

/// The id of an incident's view.
fn id(i: &Value) -> &str {
    i["id"].as_str().unwrap()
}

#[tokio::test]
async fn an_open_recurrence_is_raised_again_and_recurrences_stop_at_critical() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (a, first) = escalated(&app, &admin).await;
    assert_eq!(link(&first), (&json!("high"), &Value::Null));
    resolve(&app, &admin, id(&first)).await;

    // Made admin again: a recurrence, high -> critical.
    let second = escalated_again(&app, &admin, &a).await;
    assert_eq!(link(&second), (&json!("critical"), &first["id"]));

    // While it is open, the same again only raises it: no third incident, no new link.
    let raised = escalated_again(&app, &admin, &a).await;
    assert_eq!(
        (&raised["id"], &raised["count"]),
        (&second["id"], &json!(2))
    );
    assert_eq!(link(&raised), (&json!("critical"), &first["id"]));
    assert_eq!(listed_of(&app, &admin, "role_escalation").await.len(), 2);

    // Resolved and back once more: linked to the one resolved last, and still critical.
    resolve(&app, &admin, id(&second)).await;
    let third = escalated_again(&app, &admin, &a).await;
    assert_eq!(link(&third), (&json!("critical"), &second["id"]));
    let chain = &shown(&app, &admin, id(&third)).await["recurrences"];
    assert_eq!(ids(chain), [id(&first), id(&second), id(&third)]);
    let levels: Vec<&str> = chain
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["high", "critical", "critical"]);
}

#[tokio::test]
async fn an_incident_resolved_before_the_window_is_not_recurred_one_inside_it_is() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (a, first) = escalated(&app, &admin).await;
    resolve(&app, &admin, id(&first)).await;
    // Resolved 31 days ago: outside the default window of 30.
    resolved_days_ago(&app, id(&first), 31).await;

    let second = escalated_again(&app, &admin, &a).await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(link(&second), (&json!("high"), &Value::Null));
    assert_eq!(
        ids(&shown(&app, &admin, id(&second)).await["recurrences"]),
        [id(&second)]
    );

    // Resolved 29 days ago: inside it; the link goes to that one, not the older one.
    resolve(&app, &admin, id(&second)).await;
    resolved_days_ago(&app, id(&second), 29).await;
    let third = escalated_again(&app, &admin, &a).await;
    assert_eq!(link(&third), (&json!("critical"), &second["id"]));
}

#[tokio::test]
async fn a_recurrence_window_of_zero_days_links_nothing() {
    let app = TestApp::spawn_with(&[("IMANGOR_INCIDENT_RECURRENCE_DAYS", "0")]).await;
    let admin = app.admin_tokens().await;
    let (a, first) = escalated(&app, &admin).await;
    resolve(&app, &admin, id(&first)).await;
    let second = escalated_again(&app, &admin, &a).await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(link(&second), (&json!("high"), &Value::Null));
}

#[tokio::test]
async fn every_kind_of_incident_carries_its_five_response_steps() {
    use imangor::db::incidents::{NewIncident, open};
    use imangor::domain::incident::{Kind, Level};
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    // One stored incident of each kind (most detectors take minutes or a broken deployment to
    // fire; what is under test is what the API answers for each kind).
    let mut stored = Vec::new();
    for kind in Kind::ALL {
        let mut tx = app.state.store.db.begin_write().await.unwrap();
        let i = open(
            &mut tx,
            &NewIncident {
                kind: *kind,
                level: Level::High,
                subject: Some("runbook-test"),
                description: "stored for the runbook test",
                reported_by: None,
                requested_level: None,
                affected_systems: &[],
            },
            None,
            imangor::domain::Timestamp::now(),
            1,
        )
        .await
        .unwrap();
        app.state.store.commit(tx).await.unwrap();
        stored.push((kind.as_str(), i.id));
    }
    let mut texts = std::collections::HashMap::new();
    for (kind, id) in &stored {
        let i = shown(&app, &admin, id).await;
        let steps = i["runbook"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind}: {i}"));
        assert_eq!(
            steps
                .iter()
                .map(|s| s["step"].as_str().unwrap())
                .collect::<Vec<_>>(),
            [
                "detection",
                "containment",
                "investigation",
                "remediation",
                "recovery"
            ],
            "{kind}"
        );
        assert!(
            steps
                .iter()
                .all(|s| s["text"].as_str().is_some_and(|t| t.len() > 40)),
            "{kind}: {steps:?}"
        );
        texts.insert(*kind, steps.clone());
    }
    // Each is its kind's own: what was contained automatically, and how to undo it.
    for (kind, step, says) in [
        ("credential_stuffing", 1, "IMANGOR_CONTAIN_STUFFING_BLOCK"),
        ("refresh_reuse", 1, "IMANGOR_CONTAIN_REFRESH_REUSE"),
        ("role_escalation", 4, "imangor user set-role"),
        ("brute_force", 4, "{\"disabled\": false}"),
    ] {
        let text = texts[kind][step]["text"].as_str().unwrap();
        assert!(text.contains(says), "{kind}: {text}");
    }
    // The OpenAPI document describes them, for clients and the contract fuzzer.
    let doc: Value = app.get_anon("/openapi.json").await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    let view = &schemas["IncidentView"]["properties"];
    for field in ["runbook", "recurrences", "recurrence_of", "resolved_at"] {
        assert!(view[field].is_object(), "{field}: {view}");
    }
    assert_eq!(
        schemas["RunbookStep"]["properties"]["step"]["pattern"],
        "^(detection|containment|investigation|remediation|recovery)$"
    );
    assert!(schemas["ChainLink"]["properties"]["recurrence_of"].is_object());
    // The list stays light: no runbook or chain in it.
    let listed = listed_of(&app, &admin, "brute_force").await;
    assert!(listed[0].get("runbook").is_none() && listed[0].get("recurrences").is_none());
    assert_eq!(listed[0]["recurrence_of"], Value::Null);
}
