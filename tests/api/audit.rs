//! The audit trail (ASVS V16.2.1, V16.3.1, V16.4.2): every security event sealed into a hash
//! chain with signed checkpoints; an edited, deleted, swapped or rewritten row is found, by the
//! API's chain check and by `imangor audit verify`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn seal(app: &TestApp) {
    imangor::audit::seal_and_detect(&app.state).await.unwrap();
}

async fn exec(app: &TestApp, sql: &str) {
    match &app.state.db {
        imangor::db::Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
        imangor::db::Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
    }
    .unwrap();
}

async fn check(app: &TestApp) -> imangor::audit::ChainReport {
    imangor::audit::verify(&app.state.db, &app.state.keys)
        .await
        .unwrap()
}

/// An app with a dozen sealed events: failed and successful logins, registrations.
async fn with_events() -> TestApp {
    let app = TestApp::spawn().await;
    for i in 0..4 {
        let a = app.register(&format!("ev{i}@example.com")).await;
        app.token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", "wrong wrong wrong"),
        ])
        .await;
        app.login(&a).await;
    }
    seal(&app).await;
    app
}

#[tokio::test]
async fn every_event_is_sealed_and_admins_read_the_trail_with_its_chain_check_v16_2_1_v16_3_1() {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    seal(&app).await;
    let page: Value = app
        .get("/api/v1/audit?limit=5", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["chain"]["verified"], true, "{page}");
    assert!(page["chain"]["rows"].as_u64().unwrap() >= 13);
    assert!(
        page["chain"]["checkpoints"].as_u64().unwrap() >= 1,
        "a signed checkpoint"
    );
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let seqs: Vec<i64> = items.iter().map(|i| i["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] == w[1] + 1),
        "newest first: {seqs:?}"
    );
    let login = items.iter().find(|i| i["action"] == "auth.login").unwrap();
    // When (UTC), where, who, what, and the outcome.
    assert!(login["at"].as_str().unwrap().ends_with('Z'), "{login}");
    assert_eq!(login["ip"], "127.0.0.1");
    assert!(
        login["request_id"].is_string()
            && login["outcome"].is_string()
            && login["hash"].is_string()
    );
    // Both outcomes of authentication are in the trail.
    let all = imangor::audit::verify(&app.state.db, &app.state.keys)
        .await
        .unwrap();
    assert!(all.verified);
    let next: Value = app
        .get(
            &format!(
                "/api/v1/audit?limit=5&cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
            &admin.access,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["items"][0]["seq"].as_i64().unwrap(), seqs[4] - 1);

    let (_, m) = app.user_with_role("mgr@example.com", "manager").await;
    problem(
        app.get("/api/v1/audit", &m.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let res = app.get_anon("/api/v1/audit").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // No route changes the trail (API5): other verbs are 405.
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
        reqwest::Method::POST,
    ] {
        let res = app
            .client
            .request(method.clone(), app.url("/api/v1/audit"))
            .bearer_auth(&admin.access)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
}

#[tokio::test]
async fn an_edited_row_is_found_v16_4_2() {
    let app = with_events().await;
    exec(
        &app,
        "update security_events set detail = 'nothing happened' where seq = 3",
    )
    .await;
    let r = check(&app).await;
    let p = r.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (3, "edited"));
    let admin = app.admin_tokens().await;
    let page: Value = app
        .get("/api/v1/audit", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["chain"]["verified"], false);
    assert_eq!(page["chain"]["first_problem"]["seq"], 3);
}

#[tokio::test]
async fn a_deleted_row_is_found_v16_4_2() {
    let app = with_events().await;
    exec(&app, "delete from security_events where seq = 5").await;
    let p = check(&app).await.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (5, "deleted"));
    // The newest rows removed too: the signed checkpoint still names them.
    let app = with_events().await;
    exec(&app, "delete from security_events where seq >= 10").await;
    let p = check(&app).await.first_problem.unwrap();
    assert!(matches!(p.kind, "checkpoint" | "deleted"), "{p:?}");
}

#[tokio::test]
async fn swapped_rows_are_found_v16_4_2() {
    let app = with_events().await;
    exec(&app, "update security_events set seq = -1 where seq = 4").await;
    exec(&app, "update security_events set seq = 4 where seq = 5").await;
    exec(&app, "update security_events set seq = 5 where seq = -1").await;
    let p = check(&app).await.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (4, "reordered"));
}

#[tokio::test]
async fn a_whole_rewritten_chain_fails_its_signed_checkpoint_v16_4_2() {
    let app = with_events().await;
    // The attacker edits row 2 and recomputes every hash after it, as the algorithm is public.
    exec(
        &app,
        "update security_events set detail = 'rewritten' where seq = 2",
    )
    .await;
    let rows: Vec<imangor::db::audit::AuditRow> =
        imangor::db::audit::sealed_after(&app.state.db, 0, 10_000)
            .await
            .unwrap();
    let mut prev = imangor::audit::GENESIS.to_owned();
    for r in rows {
        let seq = r.seq.unwrap();
        let hash = imangor::audit::chain_hash(&prev, seq, &r);
        let sql = format!(
            "update security_events set prev_hash = '{prev}', hash = '{hash}' where seq = {seq}"
        );
        exec(&app, &sql).await;
        prev = hash;
    }
    let r = check(&app).await;
    let p = r.first_problem.expect("caught");
    assert_eq!(p.kind, "checkpoint", "{p:?}");
    // A forged checkpoint does not help: its signature needs a key the database does not hold.
    let cp_sql = "update audit_checkpoints set hash = (select hash from security_events e where e.seq = audit_checkpoints.seq)";
    exec(&app, cp_sql).await;
    let p = check(&app).await.first_problem.expect("caught");
    assert_eq!(p.kind, "checkpoint");
    assert!(p.message.contains("signature"), "{p:?}");
}

#[tokio::test]
async fn the_binary_seals_everything_by_a_clean_stop_verifies_and_exports_v16_4_2() {
    use crate::process::{Server, base_env, command};
    let dir = tempfile::tempdir().unwrap();
    let envs = base_env(dir.path()).await;
    let s = Server::start(&envs).await;
    let c = reqwest::Client::new();
    for i in 0..5 {
        let res = c
            .post(s.url("/api/v1/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", &format!("nobody{i}@example.com")),
                ("password", "x"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    // Stopped at once: the events of the last requests are sealed on the way out.
    s.stop().await;
    let run = |args: &'static [&'static str]| {
        let envs = envs.clone();
        async move { command(&envs).args(args).output().await.unwrap() }
    };
    let out = run(&["audit", "verify"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("0 rows not sealed yet") && text.contains("intact"),
        "{text}"
    );
    let out = run(&["audit", "export"]).await;
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .filter(|l| l["action"] == "auth.login" && l["outcome"] == "failure")
            .count()
            == 5
    );
    assert!(
        lines
            .windows(2)
            .all(|w| w[1]["seq"].as_i64() == w[0]["seq"].as_i64().map(|s| s + 1))
    );

    // An edit is reported with the row, and the exit status says so.
    let url = envs
        .iter()
        .find(|(k, _)| *k == "IMANGOR_DATABASE_URL")
        .unwrap()
        .1
        .clone();
    crate::keys::sql(
        &url,
        "update security_events set detail = 'nothing to see' where seq = 2",
    )
    .await;
    let out = run(&["audit", "verify"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success());
    assert!(text.contains("BROKEN at row 2 (edited)"), "{text}");
}

#[tokio::test]
async fn a_rewrite_that_also_deletes_the_checkpoints_is_found_v16_4_2() {
    let app = with_events().await;
    exec(&app, "delete from audit_checkpoints").await;
    let p = check(&app).await.first_problem.expect("caught");
    assert_eq!(p.kind, "checkpoint", "{p:?}");
    // The newest rows cut off together with their checkpoints: the head is no longer signed.
    let app = with_events().await;
    let last: i64 = imangor::db::audit::checkpoints(&app.state.db)
        .await
        .unwrap()
        .last()
        .unwrap()
        .seq;
    exec(
        &app,
        &format!("delete from audit_checkpoints where seq = {last}"),
    )
    .await;
    let p = check(&app).await.first_problem.expect("caught");
    assert_eq!(p.kind, "checkpoint", "{p:?}");
}
