//! The resources API: validation, ownership rules from API.md written out by hand (independent
//! of the policy table), SQL-filtered lists and tamper-proof cursors.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn create(app: &TestApp, token: &str, title: &str, public: bool) -> Value {
    let res = app
        .post_json(
            "/api/v1/resources",
            Some(token),
            &json!({"title": title, "content": "body", "is_public": public}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

async fn put(app: &TestApp, token: &str, id: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/v1/resources/{id}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/api/v1/resources/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_resource_is_created_owned_by_the_caller_with_the_contract_fields() {
    let app = TestApp::spawn().await;
    let (a, t) = app.user_with_role("alice@example.com", "user").await;
    let v = create(&app, &t.access, "First", false).await;
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "content",
            "created_at",
            "id",
            "is_public",
            "owner_id",
            "title",
            "updated_at"
        ]
    );
    assert_eq!(v["owner_id"], a.id.as_str());
    assert_eq!(v["is_public"], false);
    let got: Value = app
        .get(
            &format!("/api/v1/resources/{}", v["id"].as_str().unwrap()),
            &t.access,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, v);
}

#[tokio::test]
async fn the_owner_comes_from_the_token_never_the_body_v8_2_3() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("bob@example.com", "user").await;
    for extra in [
        json!({"owner_id": app.admin.id}),
        json!({"id": "x"}),
        json!({"created_at": "2020-01-01T00:00:00Z"}),
    ] {
        let mut b = json!({"title": "t", "content": "c", "is_public": true});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let field = extra.as_object().unwrap().keys().next().unwrap().clone();
        invalid_fields(
            app.post_json("/api/v1/resources", Some(&t.access), &b)
                .await,
            &[&field],
        )
        .await;
    }
}

#[tokio::test]
async fn fields_are_checked_with_a_clear_422_v2_2_1_v15_3_5() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("val@example.com", "user").await;
    let ok = |title: String, content: String| json!({"title": title, "content": content, "is_public": false});
    for (body, fields) in [
        (ok(String::new(), "c".into()), vec!["title"]),
        (ok("   ".into(), "c".into()), vec!["title"]),
        (ok("ä".repeat(201), "c".into()), vec!["title"]),
        (ok("t\u{0}".into(), "c".into()), vec!["title"]),
        (ok("t".into(), "x".repeat(64 * 1024 + 1)), vec!["content"]),
        (ok("t".into(), "a\u{0}b".into()), vec!["content"]),
        (
            ok(String::new(), "x".repeat(64 * 1024 + 1)),
            vec!["content", "title"],
        ),
        (
            json!({"title": "t", "content": "c", "is_public": "true"}),
            vec!["is_public"],
        ),
        (
            json!({"title": 123, "content": "c", "is_public": true}),
            vec!["title"],
        ),
        (
            json!({"title": ["t"], "content": "c", "is_public": true}),
            vec!["title"],
        ),
        (json!({"title": "t", "content": "c"}), vec!["is_public"]),
        (
            json!({"title": "t", "content": null, "is_public": true}),
            vec!["content"],
        ),
    ] {
        invalid_fields(
            app.post_json("/api/v1/resources", Some(&t.access), &body)
                .await,
            &fields,
        )
        .await;
    }
    for (title, content) in [
        ("ä".repeat(200), String::new()),
        ("x".into(), "x".repeat(64 * 1024)),
    ] {
        let res = app
            .post_json("/api/v1/resources", Some(&t.access), &ok(title, content))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
}

#[tokio::test]
async fn awkward_text_round_trips_byte_exact_v1_2_3() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("text@example.com", "user").await;
    let content = "quote \" backslash \\ </script><script>alert(1)</script> \u{2028}\u{2029} 🦀 ' OR '1'='1 \r\n\t end";
    let res = app.post_json("/api/v1/resources", Some(&t.access), &json!({"title": "Robert'); DROP TABLE resources;--", "content": content, "is_public": true})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    let got: Value = app
        .get(
            &format!("/api/v1/resources/{}", v["id"].as_str().unwrap()),
            &t.access,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["content"], content);
    assert_eq!(got["title"], "Robert'); DROP TABLE resources;--");
}

#[tokio::test]
async fn ownership_rules_of_api_md_hold_v8_2_2_api1() {
    let app = TestApp::spawn().await;
    let (_, a) = app.user_with_role("owner-a@example.com", "user").await;
    let (_, b) = app.user_with_role("other-b@example.com", "user").await;
    let (_, m) = app.user_with_role("mgr-m@example.com", "manager").await;
    let admin = app.admin_tokens().await;
    let private = create(&app, &a.access, "private", false).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let public = create(&app, &a.access, "public", true).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"title": "changed", "content": "c", "is_public": true});
    let path = |id: &str| format!("/api/v1/resources/{id}");

    // Another user: the private one does not exist for them; the public one is read-only.
    problem(
        app.get(&path(&private), &b.access).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        put(&app, &b.access, &private, &body).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        delete(&app, &b.access, &private).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        app.get(&path(&public), &b.access).await.status(),
        StatusCode::OK
    );
    problem(
        put(&app, &b.access, &public, &body).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        delete(&app, &b.access, &public).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // A manager reads everything and writes nothing of others'.
    assert_eq!(
        app.get(&path(&private), &m.access).await.status(),
        StatusCode::OK
    );
    problem(
        put(&app, &m.access, &private, &body).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // An admin writes anything; the owner stays the owner.
    let v: Value = put(&app, &admin.access, &private, &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["title"], "changed");
    let original: Value = app
        .get(&path(&public), &a.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["owner_id"], original["owner_id"]);
    // The owner deletes; then it is gone for everyone.
    assert_eq!(
        delete(&app, &a.access, &public).await.status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.get(&path(&public), &admin.access).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        delete(&app, &a.access, &public).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Anonymous: 401 with the Bearer challenge.
    let res = app.get_anon(&path(&private)).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn put_replaces_the_fields_and_keeps_identity_and_creation_time() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("put@example.com", "user").await;
    let v = create(&app, &t.access, "before", false).await;
    let id = v["id"].as_str().unwrap();
    // Past the timestamps' resolution (a microsecond) and then some: the update is strictly later.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let put_sent = now_micros();
    let res = put(
        &app,
        &t.access,
        id,
        &json!({"title": "after", "content": "new", "is_public": true}),
    )
    .await;
    let u: Value = res.json().await.unwrap();
    assert_eq!(
        (
            u["title"].as_str(),
            u["content"].as_str(),
            u["is_public"].as_bool()
        ),
        (Some("after"), Some("new"), Some(true))
    );
    assert_eq!(u["id"], v["id"]);
    assert_eq!(u["created_at"], v["created_at"]);
    let put_done = now_micros();
    // `updated_at` is the update's own time: strictly after the creation's, within the PUT.
    let created = micros(&v["updated_at"]);
    let updated = micros(&u["updated_at"]);
    assert_eq!(
        micros(&v["created_at"]),
        created,
        "a new resource was never updated"
    );
    assert!(
        created < put_sent && (put_sent..=put_done).contains(&updated),
        "created {created}, PUT between {put_sent} and {put_done}, updated_at {updated}"
    );
    // And it is what a later read shows, exactly.
    let read: Value = app
        .get(&format!("/api/v1/resources/{id}"), &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["updated_at"], u["updated_at"]);
    assert_eq!(read["created_at"], v["created_at"]);
    // A partial body is not a full replacement.
    invalid_fields(
        put(&app, &t.access, id, &json!({"title": "only"})).await,
        &["content"],
    )
    .await;
}

#[tokio::test]
async fn ids_that_are_not_ids_are_404_never_5xx_v1_1_1_v1_4_2() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("ids@example.com", "user").await;
    for id in [
        "1",
        "-1",
        "99999999999999999999999",
        "not-an-id",
        "%252e%252e",
        "..%2F..%2Fusers",
        "' OR '1'='1",
        "01234567-89ab-cdef-0123-456789abcdef",
        "01234567-89AB-CDEF-0123-456789ABCDEF",
    ] {
        let path = format!("/api/v1/resources/{id}");
        problem(app.get(&path, &t.access).await, StatusCode::NOT_FOUND).await;
        problem(delete(&app, &t.access, id).await, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn lists_show_only_what_the_caller_may_read_newest_first() {
    let app = TestApp::spawn().await;
    let (a, at) = app.user_with_role("list-a@example.com", "user").await;
    let (_, bt) = app.user_with_role("list-b@example.com", "user").await;
    let (_, mt) = app.user_with_role("list-m@example.com", "manager").await;
    let a_private = create(&app, &at.access, "a-private", false).await;
    let a_public = create(&app, &at.access, "a-public", true).await;
    let b_private = create(&app, &bt.access, "b-private", false).await;
    let b_public = create(&app, &bt.access, "b-public", true).await;
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();

    let seen_by_b: Value = app
        .get("/api/v1/resources", &bt.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(&seen_by_b),
        [id(&b_public), id(&b_private), id(&a_public)],
        "own and public, newest first"
    );
    assert!(
        !seen_by_b.to_string().contains(&id(&a_private)),
        "no foreign private id anywhere in the answer"
    );
    let seen_by_m: Value = app
        .get("/api/v1/resources", &mt.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(&seen_by_m),
        [id(&b_public), id(&b_private), id(&a_public), id(&a_private)]
    );
    let seen_by_a: Value = app
        .get("/api/v1/resources", &at.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(&seen_by_a),
        [id(&b_public), id(&a_public), id(&a_private)]
    );
    let _ = a;
}

#[tokio::test]
async fn pages_cover_everything_once_and_cursors_cannot_be_forged_or_shared() {
    let app = TestApp::spawn().await;
    let (_, at) = app.user_with_role("page-a@example.com", "user").await;
    let (_, bt) = app.user_with_role("page-b@example.com", "user").await;
    for i in 0..7 {
        create(&app, &at.access, &format!("a{i}"), i % 2 == 0).await;
        create(&app, &bt.access, &format!("b{i}"), false).await;
    }
    let mut titles = Vec::new();
    let mut cursor: Option<String> = None;
    let mut first_cursor = None;
    loop {
        let path = match &cursor {
            None => "/api/v1/resources?limit=3".to_owned(),
            Some(c) => format!("/api/v1/resources?limit=3&cursor={c}"),
        };
        let v: Value = app.get(&path, &at.access).await.json().await.unwrap();
        titles.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["title"].as_str().unwrap().to_owned()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => {
                first_cursor.get_or_insert(c.to_owned());
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(titles, ["a6", "a5", "a4", "a3", "a2", "a1", "a0"]);
    let c = first_cursor.unwrap();
    // Tampered, truncated, foreign: refused.
    let mut bytes = c.clone().into_bytes();
    bytes[2] = if bytes[2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    for bad in [
        tampered.as_str(),
        &c[..c.len() - 2],
        "AAAA",
        "' OR 1=1--",
        "%00",
    ] {
        let res = app
            .get(
                &format!("/api/v1/resources?cursor={}", urlencode(bad)),
                &at.access,
            )
            .await;
        invalid_fields(res, &["cursor"]).await;
    }
    let res = app
        .get(&format!("/api/v1/resources?cursor={c}"), &bt.access)
        .await;
    invalid_fields(res, &["cursor"]).await;
    for q in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=1e309",
        "limit=18446744073709551616",
        "limit=x",
        "limit=1&limit=2",
        "owner_id=x",
    ] {
        problem(
            app.get(&format!("/api/v1/resources?{q}"), &at.access).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
}

/// Now, in microseconds since the epoch (the server's timestamp resolution).
fn now_micros() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000
}

/// An RFC 3339 timestamp of an answer, in microseconds since the epoch.
fn micros(v: &Value) -> i128 {
    let s = v.as_str().unwrap_or_else(|| panic!("a timestamp: {v}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .unix_timestamp_nanos()
        / 1_000
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The hot reads run on connections held outside the pool (`db::readers`); one that the
/// database ended while it was idle is replaced, and the client never sees it (on PostgreSQL
/// the test ends it with `pg_terminate_backend`).
#[tokio::test]
async fn a_held_read_connection_the_database_ended_is_replaced_unseen() {
    use imangor::db::readers::{ReadConn, Settled};
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("held@example.com", "user").await;
    let r = create(&app, &t.access, "held", false).await;
    let path = format!("/api/v1/resources/{}", r["id"].as_str().unwrap());
    assert_eq!(app.get(&path, &t.access).await.status(), StatusCode::OK);
    let readers = &app.state.store.readers;
    // On SQLite the read ran on the request's thread (`db::inline`), which keeps its own.
    let kept = readers
        .inline()
        .map_or_else(|| readers.open_count(), |i| i.idle_count());
    assert!(kept >= 1, "the read kept its connection");
    // What follows cannot run on SQLite, and is not skipped silently: SQLite's connections live
    // in this process, nothing outside it can end one, and none of its errors counts as a
    // connection error (`is_connection_error`), so there is no ended connection to replace. On
    // SQLite the keep-after-success / drop-after-failure rules are proved by `db::readers`'
    // unit tests; here it ends with the kept connection above.
    if !on_postgres() {
        return;
    }
    let backend = || async {
        let mut held = readers.hold().await.unwrap();
        let ReadConn::Postgres(c) = held.conn().unwrap() else {
            unreachable!()
        };
        let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
            .fetch_one(c)
            .await
            .unwrap();
        assert!(matches!(
            held.settle(Ok(())).await.unwrap(),
            Settled::Done(Ok(()))
        ));
        pid
    };
    let before = backend().await;
    let imangor::db::Db::Postgres(p) = &app.state.store.db else {
        unreachable!()
    };
    let ended: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
        .bind(before)
        .fetch_one(p)
        .await
        .unwrap();
    assert!(ended);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let res = app.get(&path, &t.access).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    assert_ne!(backend().await, before, "a fresh connection took its slot");
}

/// `IMANGOR_QUOTA_RESOURCES`: the create past an account's quota is a 403 problem naming the
/// limit, whichever database, and however many creates arrive at once (counted and inserted
/// under the account's lock); other accounts and a freed place are unaffected.
#[tokio::test]
async fn the_create_past_the_resource_quota_is_refused_with_403_quota_exceeded() {
    let app = TestApp::spawn_with(&[("IMANGOR_QUOTA_RESOURCES", "3")]).await;
    let (_, a) = app.user_with_role("quota-a@example.com", "user").await;
    let (_, b) = app.user_with_role("quota-b@example.com", "user").await;
    let body = json!({"title": "t", "content": "c", "is_public": false});
    // Ten creates at once on an empty account: exactly three fit.
    let tries: Vec<_> = (0..10)
        .map(|_| {
            let (c, url, token, body) = (
                app.client.clone(),
                app.url("/api/v1/resources"),
                a.access.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                c.post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut refused = 0;
    for t in tries {
        let res = t.await.unwrap();
        if res.status() == StatusCode::CREATED {
            created.push(res.json::<Value>().await.unwrap()["id"].clone());
        } else {
            let p = problem(res, StatusCode::FORBIDDEN).await;
            assert!(
                p["type"].as_str().unwrap().ends_with("quota_exceeded"),
                "{p}"
            );
            let detail = p["detail"].as_str().unwrap();
            assert!(
                detail.contains('3') && detail.contains("IMANGOR_QUOTA_RESOURCES"),
                "the detail names the limit: {detail}"
            );
            refused += 1;
        }
    }
    assert_eq!((created.len(), refused), (3, 7), "exactly the quota fits");
    let mine: Value = app
        .get("/api/v1/resources?limit=100", &a.access)
        .await
        .json()
        .await
        .unwrap();
    let owned = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| created.contains(&r["id"]))
        .count();
    assert_eq!(owned, 3);
    // Sequentially: the fourth is refused, another account is not, a freed place is taken again.
    let p = problem(
        app.post_json("/api/v1/resources", Some(&a.access), &body)
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(p["type"], "urn:imangor:problem:quota_exceeded");
    create(&app, &b.access, "b's own", false).await;
    let res = delete(&app, &a.access, created[0].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    create(&app, &a.access, "in the freed place", false).await;

    // The contract documents the refusal.
    let doc: Value = app.get_anon("/openapi.json").await.json().await.unwrap();
    for path in ["/api/v1/resources", "/api/v1/secrets"] {
        let r403 = &doc["paths"][path]["post"]["responses"]["403"];
        assert!(
            r403["description"]
                .as_str()
                .is_some_and(|d| d.contains("quota_exceeded")),
            "POST {path} documents 403: {r403}"
        );
    }
}

/// Runs one statement with string binds on the app's own database; the rows it changed.
async fn exec(app: &TestApp, sql: &str, binds: &[&str]) -> u64 {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.execute($pool).await.unwrap().rows_affected()
        }};
    }
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => run!(p),
        imangor::db::Db::Postgres(p) => run!(p),
    }
}

/// The kept (resource, secret) counts of an account.
async fn kept_counts(app: &TestApp, user: &str) -> (i64, i64) {
    let sql = "select resource_count, secret_count from users where id = $1";
    macro_rules! get {
        ($pool:expr) => {
            sqlx::query_as(sql)
                .bind(user)
                .fetch_one($pool)
                .await
                .unwrap()
        };
    }
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => get!(p),
        imangor::db::Db::Postgres(p) => get!(p),
    }
}

/// A kept count below zero is drift, never extra quota: the create counts the account's rows
/// instead (and the refusal stands), and the kept counts are set back to the rows held.
#[tokio::test]
async fn a_negative_quota_count_is_drift_counted_from_the_rows_never_extra_quota() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_QUOTA_RESOURCES", "2"),
        ("IMANGOR_QUOTA_SECRETS", "1"),
    ])
    .await;
    let (account, a) = app.user_with_role("drift@example.com", "user").await;
    create(&app, &a.access, "one", false).await;
    create(&app, &a.access, "two", false).await;
    let res = app
        .post_json(
            "/api/v1/secrets",
            Some(&a.access),
            &json!({"name": "only", "value": "v"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(kept_counts(&app, &account.id).await, (2, 1));
    let drifted = "update users set resource_count = -5, secret_count = -1 where id = $1";
    assert_eq!(exec(&app, drifted, &[&account.id]).await, 1);

    let p = problem(
        app.post_json(
            "/api/v1/resources",
            Some(&a.access),
            &json!({"title": "three", "content": "c", "is_public": false}),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(p["type"], "urn:imangor:problem:quota_exceeded");
    assert_eq!(kept_counts(&app, &account.id).await, (2, 1), "repaired");

    assert_eq!(exec(&app, drifted, &[&account.id]).await, 1);
    let p = problem(
        app.post_json(
            "/api/v1/secrets",
            Some(&a.access),
            &json!({"name": "second", "value": "v"}),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(p["type"], "urn:imangor:problem:quota_exceeded");
    assert_eq!(kept_counts(&app, &account.id).await, (2, 1), "repaired");
}

/// Migration 0008 during a rolling upgrade: a delete an old replica has not yet committed when
/// the backfill runs is waited for (PostgreSQL: `lock table ... in share mode`; SQLite: one
/// writer at a time), so the kept count matches the rows once both are done.
#[tokio::test]
async fn the_quota_count_backfill_waits_for_writes_of_old_replicas() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(dir.path()).await;
    let pg = url.starts_with("postgres");
    let migrations = if pg {
        imangor::db::POSTGRES_MIGRATIONS
    } else {
        imangor::db::SQLITE_MIGRATIONS
    };
    let at = migrations
        .iter()
        .position(|m| m.1 == "quota counts")
        .expect("the quota counts migration");
    let (before, last) = migrations.split_at(at);
    let seed = "insert into users (id, email, full_name, password_hash, role, created_at, updated_at)
                values ('u1', 'u1@example.com', 'U', 'x', 'user', 0, 0);
                insert into resources (id, owner_id, title, content, is_public, created_at, updated_at)
                values ('r1', 'u1', 't', 'c', false, 0, 0), ('r2', 'u1', 't', 'c', false, 0, 0);";
    let migrate_last = last[0].2;
    macro_rules! scenario {
        ($conn:ty, $url:expr) => {{
            let mut setup = <$conn>::connect($url).await.unwrap();
            for (_, _, sql) in before {
                setup.execute(sqlx::raw_sql(sql)).await.unwrap();
            }
            setup.execute(sqlx::raw_sql(seed)).await.unwrap();
            // The old replica: a delete in flight.
            let mut old = <$conn>::connect($url).await.unwrap();
            let mut t = old.begin().await.unwrap();
            t.execute("delete from resources where id = 'r1'")
                .await
                .unwrap();
            let url = $url.to_owned();
            let upgrade = tokio::spawn(async move {
                let mut c = <$conn>::connect(&url).await.unwrap();
                let mut t = c.begin().await.unwrap();
                t.execute(sqlx::raw_sql(migrate_last)).await.unwrap();
                t.commit().await.unwrap();
            });
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            t.commit().await.unwrap();
            upgrade.await.unwrap();
            let kept: i64 = sqlx::query_scalar("select resource_count from users where id = 'u1'")
                .fetch_one(&mut setup)
                .await
                .unwrap();
            let rows: i64 =
                sqlx::query_scalar("select count(*) from resources where owner_id = 'u1'")
                    .fetch_one(&mut setup)
                    .await
                    .unwrap();
            assert_eq!((kept, rows), (1, 1), "the kept count is the rows held");
        }};
    }
    if pg {
        scenario!(sqlx::PgConnection, &url);
    } else {
        scenario!(sqlx::SqliteConnection, &format!("{url}?mode=rwc"));
    }
}

/// Issue 21: on SQLite the hot reads (one resource, the state behind the token) run on the
/// request's thread (`db::inline`), none handed on to sqlx, and each sees every change at once.
#[tokio::test]
async fn on_sqlite_a_resource_is_read_on_the_requests_thread_and_each_change_is_seen_at_once() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("inline@example.com", "user").await;
    let v = create(&app, &t.access, "First", false).await;
    let path = format!("/api/v1/resources/{}", v["id"].as_str().unwrap());
    let title = |res: reqwest::Response| async move {
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<Value>().await.unwrap()["title"].clone()
    };
    assert_eq!(title(app.get(&path, &t.access).await).await, "First");
    let body = json!({"title": "Second", "content": "body", "is_public": false});
    assert_eq!(
        put(&app, &t.access, &path[18..], &body).await.status(),
        StatusCode::OK
    );
    assert_eq!(title(app.get(&path, &t.access).await).await, "Second");
    let gone = delete(&app, &t.access, &path[18..]).await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&path, &t.access).await.status(),
        StatusCode::NOT_FOUND
    );
    match app.state.store.readers.inline() {
        Some(inline) => {
            let c = inline.counts();
            assert!(c.served >= 3, "{c:?}: reads answered inline");
            assert_eq!(c.failed, 0, "{c:?}: none failed there");
        }
        None => assert!(on_postgres(), "SQLite reads inline unless switched off"),
    }
}
