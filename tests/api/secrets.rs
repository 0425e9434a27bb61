//! The secrets API: values sealed before storage (ASVS V11.3.2, V14.2.4), readable by their
//! owner only (V8.2.2, API1), names only in lists (API3), failures that show nothing (V16.5.x).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn create(app: &TestApp, token: &str, name: &str, value: &str) -> Value {
    let res = app
        .post_json(
            "/api/v1/secrets",
            Some(token),
            &json!({"name": name, "value": value}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// Runs one statement with string binds on the app's own database.
async fn exec(app: &TestApp, sql: &str, binds: &[&str]) {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.execute($pool).await.unwrap();
        }};
    }
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => run!(p),
        imangor::db::Db::Postgres(p) => run!(p),
    }
}

/// The stored (key id, ciphertext) of a secret.
async fn stored(app: &TestApp, id: &str) -> (String, Vec<u8>) {
    use sqlx::Row;
    let sql = "select key_id, ciphertext from secrets where id = $1";
    macro_rules! get {
        ($pool:expr) => {{
            let r = sqlx::query(sql).bind(id).fetch_one($pool).await.unwrap();
            (r.get("key_id"), r.get("ciphertext"))
        }};
    }
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => get!(p),
        imangor::db::Db::Postgres(p) => get!(p),
    }
}

/// The Python stack's Fernet fixture: its key, a token it made, and the token's plaintext.
fn fernet_fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/fernet.json")).unwrap()
}

/// A server whose data keyring holds the fixture's key as `legacy`, after the newest key `t1`.
async fn with_legacy_key(fixture: &Value) -> TestApp {
    let ring = format!("{DATA_KEYS},legacy:{}", fixture["key"].as_str().unwrap());
    TestApp::spawn_with(&[("IMANGOR_DATA_KEYS", &ring)]).await
}

/// A new secret of the caller's, its id.
async fn create_id(app: &TestApp, token: &str, name: &str, value: &str) -> String {
    create(app, token, name, value).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A secret of the caller's whose row holds the fixture's Fernet token under the key id
/// `legacy` (bytes), as an import from the Python stack leaves it; its id.
async fn imported(app: &TestApp, token: &str, name: &str, fixture: &Value) -> String {
    let id = create_id(app, token, name, "placeholder").await;
    set_stored(
        &app.database_url,
        &id,
        "legacy",
        fixture["token"].as_str().unwrap().as_bytes(),
    )
    .await;
    id
}

/// The value of a secret as `token`'s account reads it (200).
async fn read_value(app: &TestApp, id: &str, token: &str) -> Value {
    let res = app.get(&format!("/api/v1/secrets/{id}"), token).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["value"].clone()
}

/// The `secret.reseal` events of this app.
async fn reseal_events(app: &TestApp) -> Vec<EventRow> {
    events(app)
        .await
        .into_iter()
        .filter(|e| e.action == "secret.reseal")
        .collect()
}

#[tokio::test]
async fn a_secret_is_created_read_listed_by_name_and_deleted_v14_3_2_api3() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("owner@example.com", "user").await;
    let value = "line one\nline two: ünïcødé \"quoted\" </script>";
    let made = create(&app, &t.access, "deploy key", value).await;
    let mut keys: Vec<&String> = made.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["created_at", "id", "name"],
        "no value in the creation answer"
    );
    let id = made["id"].as_str().unwrap();

    let res = app.get(&format!("/api/v1/secrets/{id}"), &t.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["value"], value);
    assert_eq!(got["name"], "deploy key");
    assert_eq!(got["id"], id);

    create(&app, &t.access, "second", "v2").await;
    let list: Value = app
        .get("/api/v1/secrets", &t.access)
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "second", "newest first");
    assert!(
        items.iter().all(|i| i.get("value").is_none()),
        "names only: {list}"
    );

    // One name per owner; another owner may use it.
    let dup = app
        .post_json(
            "/api/v1/secrets",
            Some(&t.access),
            &json!({"name": "second", "value": "x"}),
        )
        .await;
    problem(dup, StatusCode::CONFLICT).await;
    let (_, other) = app.user_with_role("other@example.com", "user").await;
    create(&app, &other.access, "second", "x").await;

    let res = app
        .client
        .delete(app.url(&format!("/api/v1/secrets/{id}")))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get(&format!("/api/v1/secrets/{id}"), &t.access).await;
    problem(res, StatusCode::NOT_FOUND).await;
    let kinds: Vec<String> = events(&app).await.into_iter().map(|e| e.action).collect();
    for kind in ["secret.create", "secret.read", "secret.delete"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} audited");
    }
}

#[tokio::test]
async fn secret_input_is_validated_v2_2_1() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("v@example.com", "user").await;
    let post = |body: Value| {
        let (app, t) = (&app, &t);
        async move {
            app.post_json("/api/v1/secrets", Some(&t.access), &body)
                .await
        }
    };
    invalid_fields(
        post(json!({"name": "", "value": ""})).await,
        &["name", "value"],
    )
    .await;
    invalid_fields(post(json!({"name": "a\nb", "value": "x"})).await, &["name"]).await;
    invalid_fields(
        post(json!({"name": "x".repeat(101), "value": "x"})).await,
        &["name"],
    )
    .await;
    invalid_fields(
        post(json!({"name": "big", "value": "x".repeat(16 * 1024 + 1)})).await,
        &["value"],
    )
    .await;
    assert_eq!(
        post(json!({"name": "max", "value": "x".repeat(16 * 1024)}))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        post(json!({"name": "ü".repeat(100), "value": "x"}))
            .await
            .status(),
        StatusCode::CREATED
    );
    // Mass assignment: an owner or an id cannot be chosen.
    let res = post(
        json!({"name": "n", "value": "v", "owner_id": "00000000-0000-7000-8000-000000000000"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app.get("/api/v1/secrets/not-an-id", &t.access).await;
    problem(res, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn only_the_owner_reads_a_secret_and_an_admin_may_delete_it_v8_2_2_api1() {
    let app = TestApp::spawn().await;
    let (owner, ot) = app.user_with_role("a@example.com", "user").await;
    let (_, bt) = app.user_with_role("b@example.com", "user").await;
    let (_, mt) = app.user_with_role("m@example.com", "manager").await;
    let at = app.admin_tokens().await;
    let id = create_id(&app, &ot.access, "bank", "the plaintext 7f1e").await;
    let path = format!("/api/v1/secrets/{id}");
    for (who, token) in [
        ("user", &bt.access),
        ("manager", &mt.access),
        ("admin", &at.access),
    ] {
        // The contract: owner only; another's secret is not revealed to exist (docs/authorization.md:
        // secret.read of another's is 404 for every role, admin included).
        let res = app.get(&path, token).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{who}");
        let body = problem(res, StatusCode::NOT_FOUND).await.to_string();
        assert!(!body.contains("7f1e"), "{who} never sees the plaintext");
        let list: Value = app
            .get("/api/v1/secrets", token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            list["items"].as_array().unwrap().len(),
            0,
            "{who}'s list is their own"
        );
    }
    for token in [&bt.access, &mt.access] {
        let res = app
            .client
            .delete(app.url(&path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&at.access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NO_CONTENT,
        "admins contain by deleting"
    );
    let e = events(&app)
        .await
        .into_iter()
        .find(|e| e.action == "secret.delete")
        .unwrap();
    assert_eq!(e.actor_id.as_deref(), Some(app.admin.id.as_str()));
    assert!(
        e.detail.unwrap().contains(&owner.id),
        "the event names the owner"
    );
    assert_eq!(
        app.get(&path, &ot.access).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_plaintext_is_nowhere_in_the_database_v14_2_4_v11_3_2() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("p@example.com", "user").await;
    let marker = "PLAINTEXT-MARKER-4b9d2c";
    for i in 0..20 {
        create(&app, &t.access, &format!("s{i}"), &format!("{marker} {i}")).await;
    }
    if on_postgres() {
        use sqlx::Row;
        let imangor::db::Db::Postgres(p) = &app.state.store.db else {
            unreachable!()
        };
        for table in ["secrets", "security_events", "key_log"] {
            let rows = sqlx::query(&format!("select t::text as row from {table} t"))
                .fetch_all(p)
                .await
                .unwrap();
            assert!(!rows.is_empty() || table != "secrets");
            for r in rows {
                let text: String = r.get("row");
                assert!(!text.contains(marker), "{table}: {text}");
                assert!(
                    !text.contains(&hex(marker.as_bytes())),
                    "{table} holds it as bytes"
                );
            }
        }
    } else {
        // Every byte the database wrote: the main file and the write-ahead log.
        let imangor::db::Db::Sqlite(p) = &app.state.store.db else {
            unreachable!()
        };
        let path: String =
            sqlx::query_scalar("select file from pragma_database_list where name = 'main'")
                .fetch_one(p)
                .await
                .unwrap();
        let mut files = 0;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                files += 1;
                assert!(
                    !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                    "{path}{suffix} holds the plaintext"
                );
            }
        }
        assert!(files >= 2, "the database file and its WAL were read");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn a_moved_or_altered_ciphertext_fails_cleanly_with_a_critical_event_v11_3_2_v16_5_1() {
    let app = TestApp::spawn().await;
    let (_, a) = app.user_with_role("a@example.com", "user").await;
    let (_, b) = app.user_with_role("b@example.com", "user").await;
    let mine = create_id(&app, &a.access, "mine", "alice's value").await;
    let theirs = create_id(&app, &b.access, "theirs", "bob's value").await;

    // An attacker with write access to the table copies Bob's ciphertext into Alice's row.
    let (key, bob_ct) = stored(&app, &theirs).await;
    set_stored(&app.database_url, &mine, &key, &bob_ct).await;
    let res = app.get(&format!("/api/v1/secrets/{mine}"), &a.access).await;
    let body = problem(res, StatusCode::INTERNAL_SERVER_ERROR).await;
    let text = body.to_string();
    assert!(
        !text.contains("bob") && !text.contains("key") && !text.contains("decrypt"),
        "{text}"
    );
    let e = events(&app)
        .await
        .into_iter()
        .rfind(|e| e.action == "secret.decrypt")
        .expect("an event");
    assert_eq!(
        (e.outcome.as_str(), e.severity.as_str()),
        ("failure", "critical")
    );
    assert_eq!(e.target.as_deref(), Some(format!("secret:{mine}").as_str()));

    // One flipped bit anywhere: the same.
    let (key, mut ct) = stored(&app, &theirs).await;
    let last = ct.len() - 1;
    ct[last] ^= 1;
    set_stored(&app.database_url, &theirs, &key, &ct).await;
    let res = app
        .get(&format!("/api/v1/secrets/{theirs}"), &b.access)
        .await;
    problem(res, StatusCode::INTERNAL_SERVER_ERROR).await;
    // A row relabelled with a key the ring does not hold.
    exec(
        &app,
        "update secrets set key_id = 'gone' where id = $1",
        &[&theirs],
    )
    .await;
    let res = app
        .get(&format!("/api/v1/secrets/{theirs}"), &b.access)
        .await;
    problem(res, StatusCode::INTERNAL_SERVER_ERROR).await;
    let critical = events(&app)
        .await
        .into_iter()
        .filter(|e| e.severity == "critical")
        .count();
    assert_eq!(critical, 3);
}

#[tokio::test]
async fn a_fernet_token_made_by_python_decrypts() {
    let fixture = fernet_fixture();
    let app = with_legacy_key(&fixture).await;
    let (_, t) = app.user_with_role("py@example.com", "user").await;
    // A row as an import from the Python stack leaves it: the Fernet token, under its key's id.
    let id = imported(&app, &t.access, "from python", &fixture).await;
    assert_eq!(read_value(&app, &id, &t.access).await, fixture["plaintext"]);
    // New values are sealed under the first key, never as Fernet.
    let other = create_id(&app, &t.access, "new", "v").await;
    let (key, ct) = stored(&app, &other).await;
    assert_eq!(key, "t1");
    assert_eq!(ct[0], 1, "format v1 (AES-256-GCM)");
}

/// `IMANGOR_QUOTA_SECRETS`: the create past an account's quota is a 403 problem naming the limit,
/// also when the creates arrive at once; other accounts keep their own quota.
#[tokio::test]
async fn the_create_past_the_secret_quota_is_refused_with_403_quota_exceeded() {
    let app = TestApp::spawn_with(&[("IMANGOR_QUOTA_SECRETS", "3")]).await;
    let (_, a) = app.user_with_role("sq-a@example.com", "user").await;
    let (_, b) = app.user_with_role("sq-b@example.com", "user").await;
    let tries: Vec<_> = (0..8)
        .map(|i| {
            let (c, url, token) = (
                app.client.clone(),
                app.url("/api/v1/secrets"),
                a.access.clone(),
            );
            tokio::spawn(async move {
                c.post(url)
                    .bearer_auth(token)
                    .json(&json!({"name": format!("s{i}"), "value": "v"}))
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for t in tries {
        let res = t.await.unwrap();
        if res.status() == StatusCode::CREATED {
            created += 1;
            continue;
        }
        let p = problem(res, StatusCode::FORBIDDEN).await;
        assert_eq!(p["type"], "urn:imangor:problem:quota_exceeded");
        assert_eq!(
            p["detail"],
            "quota exceeded: an account may hold at most 3 secrets (IMANGOR_QUOTA_SECRETS)"
        );
    }
    assert_eq!(created, 3, "exactly the quota fits");
    let listed: Value = app
        .get("/api/v1/secrets?limit=100", &a.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    let res = app
        .post_json(
            "/api/v1/secrets",
            Some(&a.access),
            &json!({"name": "one more", "value": "v"}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN).await;
    create(&app, &b.access, "b's own", "v").await;
    // A deleted secret frees its place.
    let gone = listed["items"][0]["id"].as_str().unwrap();
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/secrets/{gone}")))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    create(&app, &a.access, "in the freed place", "v").await;
}

/// An imported Fernet value is bound to no row; its first read seals it under the AEAD bound to
/// its row, after which it no longer opens anywhere else (ASVS V11.3.2).
#[tokio::test]
async fn the_first_read_of_an_imported_fernet_value_binds_it_to_its_row_v11_3_2() {
    let fixture = fernet_fixture();
    let plaintext = &fixture["plaintext"];
    let app = with_legacy_key(&fixture).await;
    let (owner_account, owner) = app.user_with_role("fernet-owner@example.com", "user").await;
    let (_, thief) = app.user_with_role("fernet-thief@example.com", "user").await;
    let id = imported(&app, &owner.access, "imported", &fixture).await;
    assert_eq!(read_value(&app, &id, &owner.access).await, *plaintext);
    // Resealed by that read: the newest key, format v1 (AES-256-GCM), no Fernet left.
    let (key, ct) = stored(&app, &id).await;
    assert_eq!(key, "t1");
    assert_eq!(ct[0], 1, "format v1");
    assert!(!ct.starts_with(b"gAAAAA"));
    assert_eq!(read_value(&app, &id, &owner.access).await, *plaintext);
    // The resealed ciphertext moved into the thief's own row does not open there.
    let theirs = create_id(&app, &thief.access, "mine", "x").await;
    set_stored(&app.database_url, &theirs, &key, &ct).await;
    let res = app
        .get(&format!("/api/v1/secrets/{theirs}"), &thief.access)
        .await;
    problem(res, StatusCode::INTERNAL_SERVER_ERROR).await;
    let resealed = reseal_events(&app).await;
    assert_eq!(resealed.len(), 1, "one reseal, recorded in the audit trail");
    assert_eq!(
        resealed[0].actor_id.as_deref(),
        Some(owner_account.id.as_str())
    );
    assert_eq!(resealed[0].severity, "warning");
}

/// An imported Fernet token stored as TEXT on SQLite (Python's sqlite3 writes a `str` so) is
/// resealed by its first read as well, the reader named as the event's actor (ASVS V11.3.2).
#[tokio::test]
async fn the_first_read_of_an_imported_fernet_value_stored_as_text_reseals_it_v11_3_2() {
    let fixture = fernet_fixture();
    let plaintext = &fixture["plaintext"];
    let app = with_legacy_key(&fixture).await;
    let (account, owner) = app.user_with_role("text-owner@example.com", "user").await;
    let id = create_id(&app, &owner.access, "imported", "placeholder").await;
    set_stored_as_text(
        &app.database_url,
        &id,
        "legacy",
        fixture["token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(read_value(&app, &id, &owner.access).await, *plaintext);
    let (key, ct) = stored(&app, &id).await;
    assert_eq!(
        (key.as_str(), ct[0]),
        ("t1", 1),
        "resealed: format v1 under t1"
    );
    let resealed = reseal_events(&app).await;
    assert_eq!(resealed.len(), 1);
    assert_eq!(resealed[0].actor_id.as_deref(), Some(account.id.as_str()));
    assert_eq!(
        resealed[0].target.as_deref(),
        Some(format!("secret:{id}").as_str())
    );
    assert_eq!(read_value(&app, &id, &owner.access).await, *plaintext);
}
