//! The audit trail (ASVS V16.2.1, V16.3.1, V16.4.2): every security event sealed into a hash
//! chain with signed checkpoints on a schedule; an edited, deleted, swapped or rewritten row is
//! found by `imangor audit verify` and the server's periodic walk, and the API's page checks the
//! rows after the newest checkpoint in time that does not grow with the trail.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A sealing pass: signs the head only when the schedule says so.
async fn seal(app: &TestApp) {
    imangor::service::audit::seal::seal_and_detect(&app.state.trail)
        .await
        .unwrap();
}

/// The last pass of a server that stops: the head is signed.
async fn seal_and_sign(app: &TestApp) {
    imangor::service::audit::seal::seal_and_sign(&app.state.trail)
        .await
        .unwrap();
}

/// The server's periodic walk: of the whole chain, or of the rows since its last walk.
async fn rewalk(app: &TestApp, whole: bool) -> imangor::service::audit::check::ChainReport {
    imangor::service::audit::check::rewalk(&app.state.trail, whole)
        .await
        .unwrap()
}

/// The last sealed row and the newest checkpoint's row.
async fn tail(app: &TestApp) -> (i64, i64) {
    let (head, last) = imangor::db::audit::tail(&app.state.store.db).await.unwrap();
    (head, last.map_or(0, |(seq, _)| seq))
}

async fn checkpoint_count(app: &TestApp) -> usize {
    imangor::db::audit::checkpoints(&app.state.store.db)
        .await
        .unwrap()
        .len()
}

/// The rows `chain`'s page (the 5 newest) hashes: those after the newest checkpoint and, when it
/// shows rows before that checkpoint, those from the checkpoint below them up to it.
async fn page_hashes(app: &TestApp) -> i64 {
    let (head, signed) = tail(app).await;
    let lowest = head - 4;
    if lowest > signed {
        return head - signed;
    }
    let below = imangor::db::audit::checkpoints(&app.state.store.db)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .filter(|&s| s < lowest)
        .max()
        .unwrap_or(0);
    head - below
}

async fn chain(app: &TestApp, admin: &Tokens) -> Value {
    let res = app.get("/api/v1/audit?limit=5", &admin.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    page["chain"].clone()
}

async fn exec(app: &TestApp, sql: &str) {
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
        imangor::db::Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
    }
    .unwrap();
}

async fn check(app: &TestApp) -> imangor::service::audit::check::ChainReport {
    imangor::service::audit::check::verify(
        &app.state.store.db,
        &app.state.keys,
        app.state.config.audit_checkpoints,
    )
    .await
    .unwrap()
}

/// An app with a dozen sealed events (failed and successful logins, registrations), its head
/// signed as a server's stop signs it.
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
    seal_and_sign(&app).await;
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
    // The page hashed the rows after the newest checkpoint and checked that checkpoint, and the
    // rows it shows before it from the checkpoint below them.
    let (head, signed) = tail(&app).await;
    assert_eq!(page["chain"]["since_seq"], signed, "{page}");
    assert_eq!(page["chain"]["unsigned"], head - signed, "{page}");
    assert!(
        head - 4 <= signed,
        "the page shows rows before the checkpoint"
    );
    assert_eq!(page["chain"]["rows"], page_hashes(&app).await, "{page}");
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
    let all = check(&app).await;
    assert!(all.verified);
    assert!(all.rows >= 13);
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
    // Row 3 lies before the newest checkpoint: the server's whole walk finds it, and every page
    // reports it from then on.
    let admin = app.admin_tokens().await;
    let r = rewalk(&app, true).await;
    assert_eq!(
        r.first_problem.map(|p| (p.seq, p.kind)),
        Some((3, "edited"))
    );
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], 3);
    assert_eq!(c["first_problem"]["kind"], "edited");
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
        imangor::db::audit::sealed_after(&app.state.store.db, 0, 10_000)
            .await
            .unwrap();
    let mut prev = imangor::crypto::chain::GENESIS.to_owned();
    for r in rows {
        let seq = r.seq.unwrap();
        let hash = imangor::crypto::chain::chain_hash(&prev, seq, &r);
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
    // Nor does a checkpoint made younger: its time is signed too.
    let app = with_events().await;
    exec(&app, "update audit_checkpoints set at = at + 1").await;
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
    five_failed_logins(&s).await;
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
    // The newest checkpoint removed, after the server verified it: every page says so.
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    // The admin's sign-in events sealed first: a row sealed after the edit would take its place.
    seal(&app).await;
    rewalk(&app, true).await;
    let (_, last) = tail(&app).await;
    exec(
        &app,
        &format!("delete from audit_checkpoints where seq = {last}"),
    )
    .await;
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["kind"], "checkpoint", "{c}");
    assert_eq!(c["first_problem"]["seq"], last, "{c}");
    // The newest rows cut off together with their checkpoints: the server sealed and verified
    // further, and names the first row removed.
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    seal(&app).await;
    rewalk(&app, true).await;
    exec(&app, "delete from security_events where seq >= 10").await;
    exec(&app, "delete from audit_checkpoints where seq >= 10").await;
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["kind"], "deleted", "{c}");
    assert_eq!(c["first_problem"]["seq"], 10, "{c}");
}

/// Issue 16, item 4: a page hashes only the rows after the newest checkpoint (at most
/// `IMANGOR_AUDIT_CHECKPOINT_EVENTS`); rows before it are the periodic walk's, whose finding the
/// page then reports, and `imangor audit verify`'s (V16.4.2).
#[tokio::test]
async fn the_page_hashes_the_rows_after_the_newest_checkpoint_and_the_periodic_walk_the_rest_v16_4_2()
 {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    let whole = rewalk(&app, true).await;
    assert!(whole.verified, "{whole:?}");
    // The login above, sealed but not signed yet (a few rows, younger than a minute).
    seal(&app).await;
    let (head, signed) = tail(&app).await;
    assert!(head > signed, "an unsigned tail: {head} {signed}");
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], true, "{c}");
    assert_eq!(c["since_seq"], signed, "{c}");
    assert_eq!(c["unsigned"], head - signed, "{c}");
    assert_eq!(c["rows"], page_hashes(&app).await, "{c}");
    assert_eq!(c["verified_through"], signed, "{c}");
    assert!(c["full_check_at"].as_str().unwrap().ends_with('Z'), "{c}");

    // A row after the newest checkpoint edited: the very next page says so; put back, it holds.
    let row = imangor::db::audit::sealed_after(&app.state.store.db, head - 1, 1)
        .await
        .unwrap()
        .remove(0);
    exec(
        &app,
        &format!("update security_events set outcome = 'forged' where seq = {head}"),
    )
    .await;
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], head, "{c}");
    assert_eq!(c["first_problem"]["kind"], "edited", "{c}");
    exec(
        &app,
        &format!(
            "update security_events set outcome = '{}' where seq = {head}",
            row.outcome
        ),
    )
    .await;
    assert_eq!(chain(&app, &admin).await["verified"], true);

    // Newer rows signed; one between the checkpoint the server walked to and the newest edited:
    // the page does not hash it (that is what keeps it short), the next periodic walk finds it,
    // and from then on every page reports it.
    for i in 0..3 {
        app.register(&format!("later{i}@example.com")).await;
    }
    seal_and_sign(&app).await;
    let (_, newest) = tail(&app).await;
    assert!(newest > head);
    exec(
        &app,
        &format!("update security_events set detail = 'quiet' where seq = {head}"),
    )
    .await;
    let c = chain(&app, &admin).await;
    assert_eq!(c["since_seq"], newest, "{c}");
    let r = rewalk(&app, false).await;
    assert_eq!(r.since_seq, signed);
    let p = r.first_problem.expect("the periodic walk finds it");
    assert_eq!((p.seq, p.kind), (head, "edited"));
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], head, "{c}");

    // An edit before everything the incremental walk covers: found by a whole walk (the server
    // runs one every hour) and by `imangor audit verify`.
    exec(
        &app,
        "update security_events set detail = 'quiet' where seq = 2",
    )
    .await;
    let p = check(&app).await.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (2, "edited"));
    let p = rewalk(&app, true).await.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (2, "edited"));
    let c = chain(&app, &admin).await;
    assert_eq!(c["first_problem"]["seq"], 2, "{c}");
}

/// Issue 16, item 4: checkpoints on a schedule (`IMANGOR_AUDIT_CHECKPOINT_EVENTS` rows or
/// `IMANGOR_AUDIT_CHECKPOINT_INTERVAL`), not one per sealing pass; never more than N rows
/// unsigned, and a quiet tail is signed once it has waited the interval.
#[tokio::test]
async fn checkpoints_follow_the_schedule_and_leave_at_most_n_rows_unsigned_v16_4_2() {
    // Failed logins on a dozen accounts make events fast; no address block in the way.
    let app = TestApp::spawn_with(&[
        ("IMANGOR_AUDIT_CHECKPOINT_EVENTS", "5"),
        ("IMANGOR_CONTAIN_STUFFING_BLOCK", "0"),
    ])
    .await;
    seal_and_sign(&app).await;
    let (start, _) = tail(&app).await;
    let before = checkpoint_count(&app).await;
    let passes = 12;
    for i in 0..passes {
        let res = app
            .token(&[
                ("grant_type", "password"),
                ("username", &format!("nobody{i}@example.com")),
                ("password", "wrong wrong wrong"),
            ])
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        seal(&app).await;
        let (head, signed) = tail(&app).await;
        assert!(
            head - signed <= 5,
            "at most 5 rows unsigned: {head} {signed}"
        );
    }
    let (head, _) = tail(&app).await;
    let rows = head - start;
    let written = checkpoint_count(&app).await - before;
    assert!(rows >= passes, "{rows}");
    // One checkpoint per 5 rows (the minute's interval does not come due), not one per pass.
    assert!(
        written >= 1 && written < passes as usize,
        "{written} checkpoints for {rows} rows"
    );
    assert!(
        written as i64 <= rows / 5,
        "{written} checkpoints for {rows} rows"
    );
    let r = check(&app).await;
    assert!(r.verified, "{r:?}");
    assert!(r.unsigned < 5, "{r:?}");
}

/// Issue 16, item 4: a tail too short for the count rule is signed once the newest checkpoint is
/// `IMANGOR_AUDIT_CHECKPOINT_INTERVAL` old, by a pass with nothing new to seal.
#[tokio::test]
async fn a_quiet_unsigned_tail_is_signed_when_the_interval_comes_due_v16_4_2() {
    let app = TestApp::spawn_with(&[("IMANGOR_AUDIT_CHECKPOINT_INTERVAL", "3")]).await;
    seal_and_sign(&app).await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", "nobody@example.com"),
            ("password", "wrong wrong wrong"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    seal(&app).await;
    let (head, signed) = tail(&app).await;
    assert!(head > signed, "sealed, not signed yet: {head} {signed}");
    assert!(check(&app).await.verified, "a young tail is normal");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    seal(&app).await;
    let (now_head, now_signed) = tail(&app).await;
    assert_eq!(now_head, now_signed, "the quiet tail is signed");
    assert!(now_head >= head);
}

/// A stopped server's trail, its database URL, and the environment to run `imangor` on it.
async fn stopped_server_with_failed_logins(
    dir: &std::path::Path,
    extra: &[(&'static str, &str)],
) -> (Vec<(&'static str, String)>, String) {
    use crate::process::{Server, base_env};
    let mut envs = base_env(dir).await;
    envs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let s = Server::start(&envs).await;
    five_failed_logins(&s).await;
    s.stop().await;
    let url = envs
        .iter()
        .find(|(k, _)| *k == "IMANGOR_DATABASE_URL")
        .unwrap()
        .1
        .clone();
    (envs, url)
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `imangor audit export --after SEQ` resumes an export: exactly the sealed rows after SEQ, oldest
/// first, one JSON object a line (V16.4.2: the trail leaves for a SIEM without gaps or repeats).
#[tokio::test]
async fn audit_export_after_writes_exactly_the_rows_after_it_v16_4_2() {
    use crate::process::command;
    let dir = tempfile::tempdir().unwrap();
    let (envs, _) = stopped_server_with_failed_logins(dir.path(), &[]).await;
    let export = |after: Option<String>| {
        let envs = envs.clone();
        async move {
            let mut c = command(&envs);
            c.args(["audit", "export"]);
            if let Some(a) = after {
                c.args(["--after", &a]);
            }
            c.output().await.unwrap()
        }
    };
    let all = json_lines(&export(None).await);
    let head = all.len() as i64;
    assert!(head >= 6, "the start and five failed logins: {head}");
    let seqs = |lines: &[Value]| -> Vec<i64> {
        lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect()
    };
    assert_eq!(seqs(&all), (1..=head).collect::<Vec<_>>());
    let after = json_lines(&export(Some("3".to_owned())).await);
    assert_eq!(seqs(&after), (4..=head).collect::<Vec<_>>());
    // The same rows, field for field, as the full export's.
    assert_eq!(after[..], all[3..]);
    let last = export(Some(head.to_string())).await;
    assert!(json_lines(&last).is_empty());
    assert!(String::from_utf8_lossy(&last.stderr).contains("0 rows exported"));
    let one = json_lines(&export(Some((head - 1).to_string())).await);
    assert_eq!(seqs(&one), vec![head]);
}

/// Removing the newest checkpoint of a stopped server's trail (which signs its head when it stops)
/// leaves rows unsigned longer than the schedule allows: `imangor audit verify` says so once the
/// interval (1 s here) and its margin have passed (V16.4.2).
#[tokio::test]
async fn a_removed_newest_checkpoint_leaves_a_stale_unsigned_tail_that_verify_finds_v16_4_2() {
    use crate::process::command;
    let dir = tempfile::tempdir().unwrap();
    let (envs, url) = stopped_server_with_failed_logins(
        dir.path(),
        &[("IMANGOR_AUDIT_CHECKPOINT_INTERVAL", "1")],
    )
    .await;
    let verify = || async {
        command(&envs)
            .args(["audit", "verify"])
            .output()
            .await
            .unwrap()
    };
    let out = verify().await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("0 rows after the newest checkpoint"),
        "{text}"
    );
    crate::keys::sql(
        &url,
        "delete from audit_checkpoints where seq = (select max(seq) from audit_checkpoints)",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let out = verify().await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("(checkpoint)"), "{text}");
    assert!(text.contains("covered by no signed checkpoint"), "{text}");
}

/// Three events sealed and signed, then three more sealed and left unsigned: the chain's
/// (head, newest signed seq), with the tail between them.
async fn unsigned_tail(app: &TestApp) -> (i64, i64) {
    for i in 0..3 {
        app.register(&format!("first{i}@example.com")).await;
    }
    seal_and_sign(app).await;
    for i in 0..3 {
        app.register(&format!("later{i}@example.com")).await;
    }
    seal(app).await;
    let (head, signed) = tail(app).await;
    assert!(head > signed + 1, "an unsigned tail: {head} {signed}");
    (head, signed)
}

/// The attacker's rewrite: every row after `after` (0: all) recomputed from the row at `after`,
/// as the algorithm is public, after `edit` changed one of them.
async fn rewrite_after(app: &TestApp, after: i64, edits: &[&str]) {
    // The background sealer waits until the tampering is done: between two statements it would
    // sign the real chain (a rewrite under a fresh checkpoint reads as an edit, not a forgery).
    let _hold = app.state.trail.chain.hold().await;
    for edit in edits {
        exec(app, edit).await;
    }
    let mut prev = match after {
        0 => imangor::crypto::chain::GENESIS.to_owned(),
        _ => imangor::db::audit::sealed_after(&app.state.store.db, after - 1, 1)
            .await
            .unwrap()
            .remove(0)
            .hash
            .unwrap(),
    };
    for r in imangor::db::audit::sealed_after(&app.state.store.db, after, 10_000)
        .await
        .unwrap()
    {
        let seq = r.seq.unwrap();
        let hash = imangor::crypto::chain::chain_hash(&prev, seq, &r);
        let sql = format!(
            "update security_events set prev_hash = '{prev}', hash = '{hash}' where seq = {seq}"
        );
        exec(app, &sql).await;
        prev = hash;
    }
}

/// Security review H1: a chain rewritten with its checkpoints removed (all of them, or those after
/// an older one) is never signed by the sealer with the real key, in its passes or at a stop: it
/// refuses, and the page and `imangor audit verify` report the tampering (V16.4.2).
#[tokio::test]
async fn the_sealer_never_signs_a_rewritten_chain_whose_checkpoints_were_removed_v16_4_2() {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    rewrite_after(
        &app,
        0,
        &[
            "delete from audit_checkpoints",
            "update security_events set detail = 'rewritten' where seq = 2",
        ],
    )
    .await;
    seal(&app).await;
    seal_and_sign(&app).await;
    assert_eq!(
        checkpoint_count(&app).await,
        0,
        "the rewritten head is not signed"
    );
    let r = check(&app).await;
    assert!(!r.verified, "{r:?}");
    assert_eq!(r.first_problem.unwrap().kind, "checkpoint");
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["kind"], "checkpoint", "{c}");

    // Cut back to an older checkpoint K, the rows after it rewritten: not signed either.
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    let (_, older) = tail(&app).await;
    for i in 0..3 {
        app.register(&format!("later{i}@example.com")).await;
    }
    seal_and_sign(&app).await;
    let (_, newest) = tail(&app).await;
    assert!(newest > older);
    rewrite_after(
        &app,
        older,
        &[
            &format!("delete from audit_checkpoints where seq > {older}"),
            &format!(
                "update security_events set detail = 'rewritten' where seq = {}",
                older + 1
            ),
        ],
    )
    .await;
    seal(&app).await;
    seal_and_sign(&app).await;
    assert_eq!(tail(&app).await.1, older, "nothing signed after K");
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["kind"], "checkpoint", "{c}");
    assert_eq!(c["first_problem"]["seq"], newest, "{c}");
    // `imangor audit verify` remembers nothing: it sees a young, short unsigned tail after K (the
    // SIEM's copy of the checkpoints shows the cut), but never a signature over the rewrite.
    let (head, _) = tail(&app).await;
    assert_eq!(check(&app).await.unsigned, head - older);
}

/// Security review H2: a whole walk over a trail cut back to an older checkpoint does not forget
/// the newer one this server verified: `verified_through` never goes back, and the problem stays
/// (the newest checkpoint removed; then the rows after the older one too).
#[tokio::test]
async fn a_whole_walk_after_a_cut_back_still_reports_it_v16_4_2() {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    let (_, older) = tail(&app).await;
    for i in 0..3 {
        app.register(&format!("later{i}@example.com")).await;
    }
    seal_and_sign(&app).await;
    let (_, newest) = tail(&app).await;
    assert!(newest > older);
    let r = rewalk(&app, true).await;
    assert!(r.verified, "{r:?}");
    assert_eq!(r.verified_through, newest);
    // The newest checkpoint removed: what is left links up to the older one and is young.
    exec(
        &app,
        &format!("delete from audit_checkpoints where seq > {older}"),
    )
    .await;
    for _ in 0..2 {
        let r = rewalk(&app, true).await;
        assert!(!r.verified, "{r:?}");
        assert_eq!(r.verified_through, newest);
        let p = r.first_problem.unwrap();
        assert_eq!((p.seq, p.kind), (newest, "checkpoint"));
    }
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["verified_through"], newest, "{c}");
    assert_eq!(c["first_problem"]["seq"], newest, "{c}");
    assert_eq!(c["first_problem"]["kind"], "checkpoint", "{c}");
    // The rows after the older checkpoint removed too: the first of them is named.
    exec(
        &app,
        &format!("delete from security_events where seq > {older}"),
    )
    .await;
    for _ in 0..2 {
        let r = rewalk(&app, true).await;
        assert!(!r.verified, "{r:?}");
        assert_eq!(r.verified_through, newest);
        let p = r.first_problem.unwrap();
        assert_eq!((p.seq, p.kind), (older + 1, "deleted"));
    }
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["verified_through"], newest, "{c}");
    assert_eq!(c["first_problem"]["seq"], older + 1, "{c}");
    assert_eq!(c["first_problem"]["kind"], "deleted", "{c}");
}

/// Security review H2: rows cut off the end after the newest checkpoint (what is left links up,
/// and every checkpoint stands, so no walk of the rows can tell) are reported by the page and by
/// every walk of this server, whole walks do not lower `verified_through`, and the sealer seals
/// and signs nothing on the shorter chain (V16.4.2).
#[tokio::test]
async fn rows_cut_off_the_unsigned_tail_are_reported_and_never_signed_v16_4_2() {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    for i in 0..3 {
        app.register(&format!("later{i}@example.com")).await;
    }
    seal(&app).await;
    let (head, signed) = tail(&app).await;
    assert!(head > signed + 1, "an unsigned tail: {head} {signed}");
    let r = rewalk(&app, true).await;
    assert!(r.verified, "{r:?}");
    assert_eq!(r.verified_through, signed);
    exec(
        &app,
        &format!("delete from security_events where seq > {signed}"),
    )
    .await;
    // Even what remembers nothing finds it: the chain ends before its signed head.
    let r = check(&app).await;
    assert!(!r.verified, "{r:?}");
    let p = r.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (signed + 1, "deleted"));
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], signed + 1, "{c}");
    assert_eq!(c["first_problem"]["kind"], "deleted", "{c}");
    for whole in [true, false, true] {
        let r = rewalk(&app, whole).await;
        assert!(!r.verified, "{r:?}");
        assert_eq!(r.verified_through, signed, "{r:?}");
        let p = r.first_problem.unwrap();
        assert_eq!((p.seq, p.kind), (signed + 1, "deleted"));
    }
    // Rows are still sealed (the detectors keep running: v16_4_3), but nothing is signed.
    app.register("after@example.com").await;
    seal_and_sign(&app).await;
    let (now_head, now_signed) = tail(&app).await;
    assert_eq!(now_signed, signed, "nothing signed");
    assert!(now_head > signed, "sealed: {now_head}");
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], signed + 1, "{c}");
}

/// Security review H2: a whole walk that finds an edit before the checkpoint the server verified
/// reports it without lowering `verified_through` (V16.4.2).
#[tokio::test]
async fn a_whole_walk_that_finds_an_edit_keeps_verified_through_v16_4_2() {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    let (_, signed) = tail(&app).await;
    assert!(signed > 3);
    let r = rewalk(&app, true).await;
    assert!(r.verified, "{r:?}");
    assert_eq!(r.verified_through, signed);
    exec(
        &app,
        "update security_events set detail = 'quiet' where seq = 3",
    )
    .await;
    let r = rewalk(&app, true).await;
    assert!(!r.verified, "{r:?}");
    assert_eq!(r.verified_through, signed);
    let p = r.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (3, "edited"));
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["verified_through"], signed, "{c}");
    assert_eq!(c["first_problem"]["seq"], 3, "{c}");
}

/// Security review H2: until a server's first whole walk completes, its chain check is pending:
/// `verified` false with no `first_problem` and no `full_check_at`; the walk makes it verified.
#[tokio::test]
async fn the_chain_check_is_pending_until_the_first_whole_walk_v16_4_2() {
    let app = TestApp::spawn_with(&[("IMANGOR_DATA_KEYS", DATA_KEYS)]).await;
    app.register("someone@example.com").await;
    seal_and_sign(&app).await;
    // A second server on the same trail, built but not started: its watcher has not walked yet.
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("IMANGOR_LISTEN", "127.0.0.1:0".to_owned()),
        ("IMANGOR_DATA_DIR", dir.path().display().to_string()),
        ("IMANGOR_DATABASE_URL", app.database_url.clone()),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
        ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()),
    ];
    let raw = imangor::config::RawSettings::gather(
        None,
        vars.into_iter().map(|(k, v)| (k.to_owned(), v)),
    )
    .unwrap();
    let config = imangor::config::Config::from_raw(&raw).unwrap();
    let second = imangor::startup::App::build(config).await.unwrap();
    let fresh = second.state();
    let r = imangor::service::audit::check::check_recent(&fresh.trail)
        .await
        .unwrap();
    assert!(!r.verified, "{r:?}");
    assert!(r.first_problem.is_none(), "{r:?}");
    assert!(r.full_check_at.is_none(), "{r:?}");
    assert_eq!(r.verified_through, 0);
    let w = imangor::service::audit::check::rewalk(&fresh.trail, true)
        .await
        .unwrap();
    assert!(w.verified, "{w:?}");
    let r = imangor::service::audit::check::check_recent(&fresh.trail)
        .await
        .unwrap();
    assert!(r.verified, "{r:?}");
    assert!(r.full_check_at.is_some(), "{r:?}");
    assert_eq!(r.verified_through, tail(&app).await.1);
}

/// Security review H1: a row after the newest checkpoint edited under a running server: the
/// sealer hashes that tail before it signs, refuses, and reports it; no checkpoint covers the row,
/// and the page says so, even once the row is put back, and nothing more is signed (V16.4.2).
#[tokio::test]
async fn the_sealer_never_signs_over_an_edited_unsigned_row_v16_4_2() {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    for i in 0..3 {
        app.register(&format!("later{i}@example.com")).await;
    }
    seal(&app).await;
    assert!(rewalk(&app, true).await.verified);
    let (head, signed) = tail(&app).await;
    assert!(head > signed + 1, "an unsigned tail: {head} {signed}");
    let edited = signed + 1;
    let row = imangor::db::audit::sealed_after(&app.state.store.db, signed, 1)
        .await
        .unwrap()
        .remove(0);
    exec(
        &app,
        &format!("update security_events set outcome = 'forged' where seq = {edited}"),
    )
    .await;
    // New rows are sealed on top (the head's hash is as sealed), but never signed.
    app.register("after@example.com").await;
    seal(&app).await;
    seal_and_sign(&app).await;
    let (now_head, now_signed) = tail(&app).await;
    assert_eq!(now_signed, signed, "no checkpoint covers row {edited}");
    assert!(now_head > head);
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], edited, "{c}");
    assert_eq!(c["first_problem"]["kind"], "edited", "{c}");
    // Put back, the row hashes again; what the sealer found stays reported. The rows sealed
    // since (no signature on them) follow the signed head: even what remembers nothing says so.
    exec(
        &app,
        &format!(
            "update security_events set outcome = '{}' where seq = {edited}",
            row.outcome
        ),
    )
    .await;
    seal(&app).await;
    let r = check(&app).await;
    assert!(!r.verified, "{r:?}");
    assert_eq!(r.first_problem.unwrap().kind, "checkpoint");
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], edited, "{c}");
    assert_eq!(c["first_problem"]["kind"], "edited", "{c}");
    // And this server signs nothing more until it restarts; new rows are still sealed.
    app.register("later@example.com").await;
    seal_and_sign(&app).await;
    let (last_head, last_signed) = tail(&app).await;
    assert_eq!(last_signed, signed);
    assert!(last_head > now_head);
}

/// Security review H1: the unsigned tail rewritten consistently (an edit, every hash after it
/// recomputed: it links up) is not signed: its last row does not match the signed head, so the
/// sealer refuses to sign (new rows are still sealed), and the page and `imangor audit verify`
/// report it (V16.4.2).
#[tokio::test]
async fn the_sealer_never_signs_a_rewritten_unsigned_tail_v16_4_2() {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    for i in 0..3 {
        app.register(&format!("later{i}@example.com")).await;
    }
    seal(&app).await;
    let (head, signed) = tail(&app).await;
    assert!(head > signed + 1, "an unsigned tail: {head} {signed}");
    rewrite_after(
        &app,
        signed,
        &[&format!(
            "update security_events set detail = 'rewritten' where seq = {}",
            signed + 1
        )],
    )
    .await;
    // The rewrite links up, but its last row is not the signed head: even what remembers
    // nothing finds it.
    let r = check(&app).await;
    assert!(!r.verified, "{r:?}");
    let p = r.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (head, "edited"));
    app.register("after@example.com").await;
    seal(&app).await;
    seal_and_sign(&app).await;
    let (now_head, now_signed) = tail(&app).await;
    assert_eq!(now_signed, signed, "nothing signed");
    assert!(now_head > head, "new rows are still sealed: {now_head}");
    assert_eq!(
        imangor::db::audit::checkpoint_after(&app.state.store.db, signed)
            .await
            .unwrap()
            .map(|c| c.seq),
        None
    );
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], head, "{c}");
    assert_eq!(c["first_problem"]["kind"], "edited", "{c}");
}

/// Security review L6: forged checkpoints before the first row or past the head are reported by
/// the page, and neither the page nor the sealer overflows on them (V16.4.2).
#[tokio::test]
async fn forged_checkpoints_out_of_range_are_reported_without_overflow_v16_4_2() {
    for seq in [i64::MIN, 0, i64::MAX] {
        let app = with_events().await;
        let admin = app.admin_tokens().await;
        exec(&app, "delete from audit_checkpoints").await;
        exec(
            &app,
            &format!(
                "insert into audit_checkpoints (seq, hash, key_id, signature, at) values ({seq}, 'x', 'k', 's', 0)"
            ),
        )
        .await;
        seal(&app).await;
        seal_and_sign(&app).await;
        let c = chain(&app, &admin).await;
        assert_eq!(c["verified"], false, "{seq}: {c}");
        let kind = c["first_problem"]["kind"].as_str().unwrap();
        assert!(matches!(kind, "checkpoint" | "deleted"), "{seq}: {c}");
        assert!(!check(&app).await.verified);
    }
}

/// Security review M3: a row a page shows, older than the newest checkpoint, edited after the
/// server's walks passed it, is reported on that page (hashed from the checkpoints around it).
#[tokio::test]
async fn a_page_hashes_the_rows_it_shows_before_the_newest_checkpoint_v16_4_2() {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    let (_, older) = tail(&app).await;
    for i in 0..3 {
        app.register(&format!("later{i}@example.com")).await;
    }
    seal_and_sign(&app).await;
    assert!(rewalk(&app, true).await.verified);
    let edited = older + 1;
    exec(
        &app,
        &format!("update security_events set detail = 'quiet' where seq = {edited}"),
    )
    .await;
    // The page that shows the row says so (the periodic walks have not run since the edit).
    let res = app.get("/api/v1/audit?limit=100", &admin.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    let c = &page["chain"];
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], edited, "{c}");
    assert_eq!(c["first_problem"]["kind"], "edited", "{c}");
}

/// Five failed logins against a server process (five security events to seal).
async fn five_failed_logins(s: &crate::process::Server) {
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
}

fn chain_problems(app: &TestApp, kind: &str) -> u64 {
    app.metric(&format!("audit_chain_problems_total{{kind=\"{kind}\"}}"))
}

/// Security review (third audit) H1: the unsigned tail, sealed by one server, rewritten
/// consistently; a second server on the same database that never saw those rows (a replica whose
/// pass had nothing to seal, or a restarted server: it remembers nothing) does not sign it: the
/// tail's last row does not match the signed head. It still seals new rows, and reports the
/// problem on its page and as one critical `audit_tampering` incident (V16.4.2, V16.4.3).
#[tokio::test]
async fn a_server_that_never_saw_the_unsigned_tail_does_not_sign_it_rewritten_v16_4_2_v16_4_3() {
    let a = TestApp::spawn_with(&[("IMANGOR_DATA_KEYS", DATA_KEYS)]).await;
    let (head, signed) = unsigned_tail(&a).await;
    rewrite_after(
        &a,
        signed,
        &[&format!(
            "update security_events set detail = 'rewritten' where seq = {}",
            signed + 1
        )],
    )
    .await;
    let url = a.database_url.clone();
    let b = TestApp::spawn_with(&[
        ("IMANGOR_DATA_KEYS", DATA_KEYS),
        ("IMANGOR_DATABASE_URL", &url),
    ])
    .await;
    let admin = b.admin_tokens().await;
    b.register("after@example.com").await;
    seal(&b).await;
    seal_and_sign(&b).await;
    assert_eq!(
        imangor::db::audit::checkpoint_after(&b.state.store.db, signed)
            .await
            .unwrap()
            .map(|c| c.seq),
        None,
        "no checkpoint over the rewritten tail"
    );
    let (now_head, now_signed) = tail(&b).await;
    assert_eq!(now_signed, signed);
    assert!(now_head > head, "new rows are still sealed: {now_head}");
    let c = chain(&b, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], head, "{c}");
    assert_eq!(c["first_problem"]["kind"], "edited", "{c}");
    // Both servers found it; one incident, raised once.
    seal(&a).await;
    seal(&b).await;
    let found = crate::incidents::listed_of(&b, &admin, "audit_tampering").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            &found[0]["level"],
            &found[0]["count"],
            &found[0]["affected_systems"]
        ),
        (&json!("critical"), &json!(1), &json!(["audit"])),
        "{found:?}"
    );
    assert_eq!(chain_problems(&b, "edited"), 1);
}

/// Security review (third audit) H2: a forged checkpoint (row 0) does not stop the sealer: new
/// events are still sealed and the detectors still run (10 failed logins raise brute_force), only
/// signing stops; the tampering is one critical `audit_tampering` incident, raised once however
/// many passes find it, and counted once in `audit_chain_problems_total` (V16.4.3, V16.4.2).
#[tokio::test]
async fn a_forged_checkpoint_stops_signing_but_not_sealing_or_detection_v16_4_3_v16_4_2() {
    let app = with_events().await;
    let admin = app.admin_tokens().await;
    let victim = app.register("victim@example.com").await;
    seal(&app).await;
    let before = checkpoint_count(&app).await;
    exec(
        &app,
        "insert into audit_checkpoints (seq, hash, key_id, signature, at) values (0, 'x', 'k', 's', 0)",
    )
    .await;
    for _ in 0..10 {
        let res = app
            .token(&[
                ("grant_type", "password"),
                ("username", &victim.email),
                ("password", "definitely not it"),
            ])
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    for _ in 0..3 {
        seal(&app).await;
    }
    seal_and_sign(&app).await;
    let brute = crate::incidents::listed_of(&app, &admin, "brute_force").await;
    assert_eq!(brute.len(), 1, "{brute:?}");
    assert_eq!(brute[0]["subject"], json!(victim.id));
    let found = crate::incidents::listed_of(&app, &admin, "audit_tampering").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (&found[0]["level"], &found[0]["count"]),
        (&json!("critical"), &json!(1)),
        "{found:?}"
    );
    assert_eq!(chain_problems(&app, "checkpoint"), 1);
    // Nothing signed since (the forged row aside).
    assert_eq!(checkpoint_count(&app).await, before + 1);
    let c = chain(&app, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["kind"], "checkpoint", "{c}");
    // More passes, more events: still one incident, raised once.
    app.register("later@example.com").await;
    for _ in 0..3 {
        seal(&app).await;
    }
    let found = crate::incidents::listed_of(&app, &admin, "audit_tampering").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["count"], 1, "{found:?}");
    assert_eq!(chain_problems(&app, "checkpoint"), 1);
}

/// Open finding (a) of the earlier review: `audit_head` deleted together with the rows sealed
/// after the newest checkpoint. The chain then ends at that checkpoint, as a trail from before the
/// signed head does; but that checkpoint's signature covers its time, which only checkpoints
/// written with a head do, so a server that never saw those rows (a fresh replica, or a restarted
/// server) reports the head removed and signs nothing over it (V16.4.2, V16.4.3).
#[tokio::test]
async fn a_removed_signed_head_with_the_rows_after_the_newest_checkpoint_is_found_v16_4_2_v16_4_3()
{
    let a = TestApp::spawn_with(&[("IMANGOR_DATA_KEYS", DATA_KEYS)]).await;
    let (_, signed) = unsigned_tail(&a).await;
    exec(
        &a,
        &format!("delete from security_events where seq > {signed}"),
    )
    .await;
    exec(&a, "delete from audit_head").await;
    let url = a.database_url.clone();
    let b = TestApp::spawn_with(&[
        ("IMANGOR_DATA_KEYS", DATA_KEYS),
        ("IMANGOR_DATABASE_URL", &url),
    ])
    .await;
    let admin = b.admin_tokens().await;
    b.register("after@example.com").await;
    seal(&b).await;
    seal_and_sign(&b).await;
    assert_eq!(
        imangor::db::audit::signed_head(&b.state.store.db)
            .await
            .unwrap()
            .map(|h| h.seq),
        None,
        "no head signed over the cut trail"
    );
    let (now_head, now_signed) = tail(&b).await;
    assert_eq!(now_signed, signed, "no checkpoint over the cut trail");
    assert!(now_head > signed, "new rows are still sealed: {now_head}");
    let p = check(&b).await.first_problem.unwrap();
    assert_eq!((p.seq, p.kind), (signed + 1, "checkpoint"), "{p:?}");
    let c = chain(&b, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"]["seq"], signed + 1, "{c}");
    assert_eq!(c["first_problem"]["kind"], "checkpoint", "{c}");
    let found = crate::incidents::listed_of(&b, &admin, "audit_tampering").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(chain_problems(&b, "checkpoint"), 1);
}

/// Open finding (b) of the earlier review: a data key made first on one replica before another
/// holds it (a rollout in progress). The head the first signs cannot be checked by the second:
/// that is not tampering (no incident, nothing counted, no problem on its page, which is not
/// `verified` either), and the second signs nothing over it, but keeps sealing. `imangor audit
/// verify` with that keyring says it cannot verify the head (V16.4.2, V16.4.3).
#[tokio::test]
async fn a_head_signed_with_a_key_this_server_does_not_hold_is_not_tampering_and_not_signed_over_v16_4_2()
 {
    const NEWER_FIRST: &str = "t2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let old = TestApp::spawn_with(&[("IMANGOR_DATA_KEYS", DATA_KEYS)]).await;
    let admin = old.admin_tokens().await;
    old.register("first@example.com").await;
    seal_and_sign(&old).await;
    let url = old.database_url.clone();
    let new = TestApp::spawn_with(&[
        ("IMANGOR_DATA_KEYS", NEWER_FIRST),
        ("IMANGOR_DATABASE_URL", &url),
    ])
    .await;
    new.register("second@example.com").await;
    seal(&new).await;
    let h = imangor::db::audit::signed_head(&old.state.store.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.key_id, "t2", "{h:?}");
    let checkpoints = checkpoint_count(&old).await;
    old.register("third@example.com").await;
    seal(&old).await;
    seal_and_sign(&old).await;
    let after = imangor::db::audit::signed_head(&old.state.store.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (after.seq, &after.key_id, &after.signature),
        (h.seq, &h.key_id, &h.signature),
        "nothing signed over it"
    );
    assert_eq!(checkpoint_count(&old).await, checkpoints);
    let (head, _) = tail(&old).await;
    assert!(head > h.seq, "still sealing: {head} {}", h.seq);
    let r = rewalk(&old, true).await;
    assert_eq!((r.verified, r.first_problem), (false, None));
    let c = chain(&old, &admin).await;
    assert_eq!(c["verified"], false, "{c}");
    assert_eq!(c["first_problem"], Value::Null, "{c}");
    let raised = crate::incidents::listed_of(&old, &admin, "audit_tampering").await;
    assert!(raised.is_empty(), "{raised:?}");
    assert_eq!(chain_problems(&old, "checkpoint"), 0);
    let p = check(&old).await.first_problem.unwrap();
    assert_eq!(p.kind, "checkpoint", "{p:?}");
    assert!(p.message.contains("cannot be verified here"), "{p:?}");
}
