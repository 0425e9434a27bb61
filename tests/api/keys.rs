//! Key rotation and `imangor doctor`, through the binary: data keys added, values re-encrypted
//! under concurrent writes and old keys retired (ASVS V11.2.2); signing keys rotated and retired,
//! after which their tokens are refused; a deployment checked the way a reviewer would.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{Server, base_env, command};

/// Runs `imangor ARGS` with `envs`; returns (success, stdout, stderr).
async fn imangor(envs: &[(&str, String)], args: &[&str]) -> (bool, String, String) {
    let out = command(envs).args(args).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs one statement on the database at `url` (the test's SQLite file or PostgreSQL schema).
pub(crate) async fn sql(url: &str, statement: &str) {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(statement).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(statement).execute(&mut c).await.unwrap();
    }
}

/// Every secret row as stored: (id, key id, ciphertext).
async fn stored_rows(url: &str) -> Vec<(String, String, Vec<u8>)> {
    use sqlx::{Connection, Row};
    let q = "select id, key_id, ciphertext from secrets order by id";
    let rows: Vec<(String, String, Vec<u8>)> = if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(q)
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(q)
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    rows
}

/// The one number a query answers.
async fn count(url: &str, query: &str) -> i64 {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(query).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(query).fetch_one(&mut c).await.unwrap()
    }
}

fn env_of<'a>(envs: &'a [(&str, String)], key: &str) -> &'a str {
    &envs.iter().find(|(k, _)| *k == key).unwrap().1
}

/// A server environment with a data keyring in a file, one account, and its token.
async fn setup(dir: &Path) -> (Vec<(&'static str, String)>, std::path::PathBuf) {
    let keys = dir.join("data-keys");
    std::fs::write(&keys, format!("{DATA_KEYS}\n")).unwrap();
    let mut envs = base_env(dir).await;
    envs.push(("IMANGOR_DATA_KEYS_FILE", keys.display().to_string()));
    envs.push(("IMANGOR_RATE_LIMITS", "off".to_owned()));
    envs.push(("IMANGOR_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()));
    envs.push((
        "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD",
        ADMIN_PASSWORD.to_owned(),
    ));
    envs.push(("IMANGOR_LOG_FORMAT", "json".to_owned()));
    (envs, keys)
}

/// Creates secrets until `stop`, deleting every fourth; records what was acknowledged.
async fn writer(
    url: String,
    token: String,
    tag: u32,
    stop: Arc<AtomicBool>,
    kept: Arc<Mutex<BTreeMap<String, String>>>,
) {
    let c = reqwest::Client::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let value = format!("value {tag}-{n} {}", "x".repeat(n % 50));
        let res = c
            .post(format!("{url}/api/v1/secrets"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("w{tag}-{n}"), "value": value}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if n % 4 == 0 {
            let res = c
                .delete(format!("{url}/api/v1/secrets/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NO_CONTENT);
        } else {
            kept.lock().unwrap().insert(id, value);
        }
    }
}

#[tokio::test]
async fn a_data_key_rotation_under_concurrent_writes_loses_nothing_v11_2_2() {
    let dir = tempfile::tempdir().unwrap();
    let (envs, keyfile) = setup(dir.path()).await;
    let s1 = Server::start(&envs).await;
    let token = s1.access_token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let kept = Arc::new(Mutex::new(BTreeMap::new()));

    // Rows under the first key, written by four clients at once.
    let stop = Arc::new(AtomicBool::new(false));
    let seeders: Vec<_> = (0..4)
        .map(|t| {
            tokio::spawn(writer(
                s1.url(""),
                token.clone(),
                t,
                stop.clone(),
                kept.clone(),
            ))
        })
        .collect();
    while kept.lock().unwrap().len() < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in seeders {
        w.await.unwrap();
    }

    let (ok, _, err) = imangor(&envs, &["keys", "add"]).await;
    assert!(ok, "{err}");
    let new_id = err.split_whitespace().nth(2).unwrap().to_owned();
    let ring = std::fs::read_to_string(&keyfile).unwrap();
    assert!(
        ring.starts_with(&new_id) && ring.contains("t1:"),
        "new key first, old kept"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keyfile).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (ok, _, err) = imangor(&envs, &["keys", "retire", "t1"]).await;
    assert!(!ok && err.contains("still seals"), "{err}");
    let (ok, _, err) = imangor(&envs, &["keys", "retire", &new_id]).await;
    assert!(!ok && err.contains("encrypts"), "{err}");
    // With no row left under t1, it is still refused until a server starts with the new key.
    let (ok, out, err) = imangor(&envs, &["keys", "reencrypt"]).await;
    assert!(ok, "{out} {err}");
    let (ok, _, err) = imangor(&envs, &["keys", "retire", "t1"]).await;
    assert!(!ok && err.contains("no server has started"), "{err}");

    // Re-encrypt while the running server (still on the old keyring) keeps writing and deleting.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (10..13)
        .map(|t| {
            tokio::spawn(writer(
                s1.url(""),
                token.clone(),
                t,
                stop.clone(),
                kept.clone(),
            ))
        })
        .collect();
    let (ok, out, err) = imangor(&envs, &["keys", "reencrypt", "--batch", "25"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("re-encrypted") && err.contains("rows/s"),
        "{out} {err}"
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    s1.stop().await;

    // Servers restart on the new keyring; a second pass takes what the old server wrote after the first.
    let s2 = Server::start(&envs).await;
    let (ok, out, err) = imangor(&envs, &["keys", "reencrypt"]).await;
    assert!(ok, "{out} {err}");
    let (ok, out, _) = imangor(&envs, &["keys", "status"]).await;
    assert!(ok);
    let line = |id: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap()
            .to_owned()
    };
    assert!(line(&new_id).contains("encrypts"), "{out}");
    assert!(
        line("t1").split_whitespace().any(|w| w == "0"),
        "no row left under t1: {out}"
    );
    s2.stop().await;
    let (ok, _, err) = imangor(&envs, &["keys", "retire", "t1"]).await;
    assert!(ok, "{err}");
    assert!(!std::fs::read_to_string(&keyfile).unwrap().contains("t1:"));
    // The audit checkpoints t1 signed were signed again: the trail still verifies without t1.
    let (ok, out, err) = imangor(&envs, &["audit", "verify"]).await;
    assert!(ok && out.contains("intact"), "{out} {err}");

    // Only the new key now: every acknowledged value reads back exactly; deleted ones stay gone.
    let s3 = Server::start(&envs).await;
    let c = reqwest::Client::new();
    let kept = kept.lock().unwrap().clone();
    assert!(kept.len() > 300);
    for (id, value) in &kept {
        let res = c
            .get(s3.url(&format!("/api/v1/secrets/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{id}");
        assert_eq!(res.json::<Value>().await.unwrap()["value"], value.as_str());
    }
    let mut listed = 0;
    let mut cursor = String::new();
    loop {
        let page: Value = c
            .get(s3.url(&format!("/api/v1/secrets?limit=100{cursor}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(listed, kept.len(), "nothing lost, nothing resurrected");
    s3.stop().await;
}

#[tokio::test]
async fn a_retired_signing_key_is_refused_and_jwks_follows_the_rotation_v11_2_2() {
    let dir = tempfile::tempdir().unwrap();
    let (mut envs, _) = setup(dir.path()).await;
    let signing = dir.path().join("jwt-keys");
    std::fs::write(
        &signing,
        format!("hs-old:HS256:{}\n", base64_of(JWT_SECRET.as_bytes())),
    )
    .unwrap();
    envs.push(("IMANGOR_JWT_KEYS_FILE", signing.display().to_string()));

    let s = Server::start(&envs).await;
    let old_token = s.access_token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    s.stop().await;
    let (ok, _, err) = imangor(&envs, &["keys", "rotate-signing", "--alg", "EdDSA"]).await;
    assert!(ok, "{err}");
    let new_kid = err.split_whitespace().nth(2).unwrap().to_owned();

    // Overlap: the old key verifies, the new one signs and is published.
    let s = Server::start(&envs).await;
    let c = reqwest::Client::new();
    let me = |s: &Server, t: &str| {
        c.get(s.url("/api/v1/users/me"))
            .bearer_auth(t.to_owned())
            .send()
    };
    assert_eq!(me(&s, &old_token).await.unwrap().status(), StatusCode::OK);
    let new_token = s.access_token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let jwks: Value = c
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], new_kid.as_str());
    s.stop().await;

    // Too early: tokens of the old key may still be live.
    let (ok, _, err) = imangor(&envs, &["keys", "retire", "hs-old"]).await;
    assert!(!ok && err.contains("stay valid until"), "{err}");
    // Once the access-token lifetime has passed (the clock is moved back in the key log):
    sql(
        env_of(&envs, "IMANGOR_DATABASE_URL"),
        "update key_log set superseded_at = 0 where key_id = 'hs-old'",
    )
    .await;
    let (ok, _, err) = imangor(&envs, &["keys", "retire", "hs-old"]).await;
    assert!(ok, "{err}");

    let s = Server::start(&envs).await;
    invalid_token(me(&s, &old_token).await.unwrap()).await;
    assert_eq!(me(&s, &new_token).await.unwrap().status(), StatusCode::OK);
    s.stop().await;
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn doctor_passes_a_sound_production_setup_and_names_every_unsafe_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.extend([
        ("IMANGOR_ENV", "production".to_owned()),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
        ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()),
        ("IMANGOR_PASSWORD_MIN_LENGTH", "15".to_owned()),
        ("IMANGOR_MFA_REQUIRED_ROLES", "admin,manager".to_owned()),
    ]);
    let (ok, out, err) = imangor(&envs, &["migrate"]).await;
    assert!(ok, "{out} {err}");
    let (ok, out, err) = imangor(&envs, &["doctor"]).await;
    assert!(ok, "a sound setup passes: {out} {err}");
    assert!(!out.contains("FAIL"), "{out}");
    // The OAuth side is noted, not failed: the password grant is on, the public URL and the
    // issuer are not https (issue 18).
    for note in [
        "IMANGOR_PASSWORD_GRANT is on",
        "IMANGOR_PUBLIC_URL is http://",
        "not an https URL",
        // The default public URL is an address: no passkey can be registered there.
        "browsers refuse an IP address (127.0.0.1)",
    ] {
        assert!(out.contains(note), "{note} missing from:\n{out}");
    }
    let mut oauth = envs.clone();
    oauth.extend([
        ("IMANGOR_PUBLIC_URL", "https://id.example.com".to_owned()),
        ("IMANGOR_PASSWORD_GRANT", "off".to_owned()),
    ]);
    let (ok, out, _) = imangor(&oauth, &["doctor"]).await;
    assert!(
        ok && !out.contains("PASSWORD_GRANT")
            && !out.contains("PUBLIC_URL")
            && !out.contains("relying party")
            && !out.contains("issuer"),
        "{out}"
    );
    assert!(
        !out.contains("console cannot sign in"),
        "a loopback or https public URL serves the console: {out}"
    );
    // Plain http on a name: no redirect URI for the console's client at all (console_oauth.rs).
    let mut plain = envs.clone();
    plain.push((
        "IMANGOR_PUBLIC_URL",
        "http://imangor.example.com".to_owned(),
    ));
    let (_, out, _) = imangor(&plain, &["doctor"]).await;
    assert!(out.contains("the console cannot sign in at all"), "{out}");

    // Old keys: beyond the rotation period.
    sql(
        env_of(&envs, "IMANGOR_DATABASE_URL"),
        "update key_log set first_seen = 0",
    )
    .await;
    let (ok, out, _) = imangor(&envs, &["doctor"]).await;
    assert!(!ok && out.contains("rotation period"), "{out}");

    let mut bad: Vec<(&str, String)> = base_env(dir.path()).await;
    bad.extend([
        ("IMANGOR_ENV", "production".to_owned()),
        (
            "IMANGOR_JWT_SECRET",
            "changemechangemechangemechangeme".to_owned(),
        ),
        ("IMANGOR_RATE_LIMITS", "off".to_owned()),
        ("IMANGOR_CORS_ORIGINS", "*".to_owned()),
        ("IMANGOR_CORS_CREDENTIALS", "true".to_owned()),
    ]);
    bad.retain(|(k, _)| *k != "IMANGOR_DATABASE_URL");
    let (ok, out, err) = imangor(&bad, &["doctor", "--behind-proxy", "--replicas", "3"]).await;
    assert!(!ok, "exits non-zero: {out}");
    for finding in [
        "IMANGOR_JWT_SECRET",
        "IMANGOR_DATA_KEYS",
        "IMANGOR_DATABASE_URL",
        "IMANGOR_RATE_LIMITS",
        "IMANGOR_CORS_ORIGINS=* with",
        "IMANGOR_TRUSTED_PROXIES",
        "SQLite with 3 replicas",
        "IMANGOR_PASSWORD_MIN_LENGTH",
        "IMANGOR_MFA_REQUIRED_ROLES",
    ] {
        assert!(out.contains(finding), "{finding} missing from:\n{out}");
    }
    assert!(!out.contains("changemechangeme"), "never prints a secret");
    assert!(err.contains("unsafe for production"), "{err}");

    // Development: generated keys are unsafe for production.
    let dev = base_env(dir.path()).await;
    let (ok, _, _) = imangor(&dev, &["migrate"]).await;
    assert!(ok);
    let (ok, out, _) = imangor(&dev, &["doctor"]).await;
    assert!(
        !ok && out.contains("IMANGOR_ENV is not `production`"),
        "{out}"
    );
}

#[tokio::test]
async fn a_reencryption_killed_midway_leaves_every_row_readable_and_resumes_v11_2_2() {
    let dir = tempfile::tempdir().unwrap();
    let (envs, _) = setup(dir.path()).await;
    let s = Server::start(&envs).await;
    let token = s.access_token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let c = reqwest::Client::new();
    let mut values = BTreeMap::new();
    for i in 0..300 {
        let value = format!("value {i}");
        let res = c
            .post(s.url("/api/v1/secrets"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("k{i}"), "value": value}))
            .send()
            .await
            .unwrap();
        values.insert(
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            value,
        );
    }
    s.stop().await;
    let (ok, _, err) = imangor(&envs, &["keys", "add"]).await;
    assert!(ok, "{err}");
    // One row per transaction, killed (SIGKILL) part of the way through.
    let mut child = command(&envs)
        .args(["keys", "reencrypt", "--batch", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed as soon as it has moved a row (a fixed delay was too short on a loaded machine).
    let url = env_of(&envs, "IMANGOR_DATABASE_URL").to_owned();
    let started = std::time::Instant::now();
    while count(&url, "select count(*) from secrets where key_id <> 't1'").await == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "reencrypt moves rows"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let (_, out, _) = imangor(&envs, &["keys", "status"]).await;
    let t1_rows: i64 = out
        .lines()
        .find(|l| l.trim_start().starts_with("t1"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap()
        .parse()
        .unwrap();
    // Killed part of the way: some rows moved, some did not (a run that moved nothing, or one
    // that finished before the kill, proves nothing about resuming).
    let moved = count(&url, "select count(*) from secrets where key_id <> 't1'").await;
    assert!(
        (1..300).contains(&t1_rows) && moved == 300 - t1_rows,
        "the killed run moved {moved} rows and left {t1_rows}: {out}"
    );
    // Every row reads back, under whichever key it is now.
    let s = Server::start(&envs).await;
    for (id, value) in &values {
        let v: Value = c
            .get(s.url(&format!("/api/v1/secrets/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["value"], value.as_str());
    }
    s.stop().await;
    // The next run finishes the job.
    let (ok, out, err) = imangor(&envs, &["keys", "reencrypt"]).await;
    assert!(ok, "{out} {err}");
    assert!(
        out.contains(&format!("re-encrypted {t1_rows} rows")),
        "{out}"
    );
    let (ok, _, err) = imangor(&envs, &["keys", "retire", "t1"]).await;
    assert!(ok, "{err}");
}

/// Creates a secret through the API; its id.
async fn new_secret(s: &Server, token: &str, name: &str, value: &str) -> String {
    let res = reqwest::Client::new()
        .post(s.url("/api/v1/secrets"))
        .bearer_auth(token)
        .json(&json!({"name": name, "value": value}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A secret read through the API: (status, value).
async fn read_secret(s: &Server, token: &str, id: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .get(s.url(&format!("/api/v1/secrets/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json::<Value>().await.unwrap()["value"].clone())
}

/// `keys add --standby` puts a key last, where it only decrypts: servers keep sealing with the old
/// key, and a server started with it reads what a server with the promoted key sealed (the
/// rolling-restart window). `keys promote` moves it first; a server then seals with it.
#[tokio::test]
async fn a_standby_data_key_decrypts_only_until_promoted_v11_2_2() {
    let dir = tempfile::tempdir().unwrap();
    let (envs, keyfile) = setup(dir.path()).await;
    let url = env_of(&envs, "IMANGOR_DATABASE_URL").to_owned();
    let key_of = |rows: Vec<(String, String, Vec<u8>)>, id: &str| {
        rows.into_iter().find(|r| r.0 == id).unwrap().1
    };
    // A server on the keyring before the standby key exists.
    let before = Server::start(&envs).await;
    let token = before.access_token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let a = new_secret(&before, &token, "a", "value a").await;

    let (ok, _, err) = imangor(&envs, &["keys", "add", "--standby"]).await;
    assert!(ok, "{err}");
    assert!(err.contains("(standby: decrypts only)"), "{err}");
    let new_id = err.split_whitespace().nth(2).unwrap().to_owned();
    let ring = std::fs::read_to_string(&keyfile).unwrap();
    let ids: Vec<&str> = ring.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(ids, ["t1", new_id.as_str()], "standby goes last");
    let (ok, out, _) = imangor(&envs, &["keys", "status"]).await;
    assert!(ok);
    let role = |out: &str, id: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(id))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .to_owned()
    };
    assert_eq!(role(&out, "t1"), "encrypts", "{out}");
    assert_eq!(role(&out, &new_id), "decrypts", "{out}");

    // A server started with the standby key still seals with t1.
    let standby = Server::start(&envs).await;
    let b = new_secret(&standby, &token, "b", "value b").await;
    assert_eq!(key_of(stored_rows(&url).await, &b), "t1");

    let (ok, _, err) = imangor(&envs, &["keys", "promote", "d-no-such-key"]).await;
    assert!(
        !ok && err.contains("no data key has the id d-no-such-key"),
        "{err}"
    );
    let (ok, _, err) = imangor(&envs, &["keys", "promote", &new_id]).await;
    assert!(ok, "{err}");
    let ring = std::fs::read_to_string(&keyfile).unwrap();
    let ids: Vec<&str> = ring.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(ids, [new_id.as_str(), "t1"], "promoted first, t1 kept");
    let (_, out, _) = imangor(&envs, &["keys", "status"]).await;
    assert_eq!(role(&out, &new_id), "encrypts", "{out}");
    assert_eq!(role(&out, "t1"), "decrypts", "{out}");

    // A server started after the promotion seals with the new key and reads the old rows.
    let promoted = Server::start(&envs).await;
    let c = new_secret(&promoted, &token, "c", "value c").await;
    assert_eq!(key_of(stored_rows(&url).await, &c), new_id);
    for (id, v) in [(&a, "value a"), (&b, "value b"), (&c, "value c")] {
        assert_eq!(
            read_secret(&promoted, &token, id).await,
            (StatusCode::OK, json!(v))
        );
    }
    // The server still on the standby keyring reads it: that is what standby is for.
    assert_eq!(
        read_secret(&standby, &token, &c).await,
        (StatusCode::OK, json!("value c"))
    );
    // One that never had the key cannot (the window `--standby` closes).
    assert_eq!(
        read_secret(&before, &token, &c).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    before.stop().await;
    standby.stop().await;
    promoted.stop().await;
}

/// Imported Fernet values (bound to no row) are resealed by `keys reencrypt` under the AEAD with
/// their row's binding, even when the key their row names is the one that encrypts; none is left,
/// every value still reads, and a resealed value moved to another row no longer opens (V11.3.2).
#[tokio::test]
async fn reencrypt_reseals_imported_fernet_values_bound_to_their_rows_v11_3_2() {
    let fixture: Value = serde_json::from_str(include_str!("../fixtures/fernet.json")).unwrap();
    let plaintext = fixture["plaintext"].as_str().unwrap();
    let token_bytes = fixture["token"].as_str().unwrap().as_bytes();
    let dir = tempfile::tempdir().unwrap();
    let (envs, keyfile) = setup(dir.path()).await;
    // The Python stack's key encrypts here too (the operator kept it): its id is the current one.
    std::fs::write(
        &keyfile,
        format!("legacy:{}\n{DATA_KEYS}\n", fixture["key"].as_str().unwrap()),
    )
    .unwrap();
    let url = env_of(&envs, "IMANGOR_DATABASE_URL").to_owned();
    let s = Server::start(&envs).await;
    let token = s.access_token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let imported: Vec<String> = [
        new_secret(&s, &token, "imported 1", "placeholder").await,
        new_secret(&s, &token, "imported 2", "placeholder").await,
    ]
    .into();
    let other = new_secret(&s, &token, "native", "native value").await;
    s.stop().await;
    set_stored(&url, &imported[0], "legacy", token_bytes).await;
    // As Python's sqlite3 writes a `str`: TEXT on SQLite, which never equals a blob.
    set_stored_as_text(
        &url,
        &imported[1],
        "legacy",
        fixture["token"].as_str().unwrap(),
    )
    .await;
    let fernet = |rows: &[(String, String, Vec<u8>)]| {
        rows.iter().filter(|r| r.2.starts_with(b"gAAAAA")).count()
    };
    assert_eq!(fernet(&stored_rows(&url).await), 2);
    // The doctor warns while they remain, naming the key they need.
    let doctor_warning = "imported Fernet values under key legacy are not yet bound to their rows";
    let (_, out, _) = imangor(&envs, &["doctor"]).await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("WARN") && l.contains(&format!("2 {doctor_warning}"))),
        "{out}"
    );

    let (ok, out, err) = imangor(&envs, &["keys", "reencrypt"]).await;
    assert!(ok, "{out} {err}");
    assert!(
        out.contains("re-encrypted 2 rows under key legacy"),
        "{out}"
    );
    let rows = stored_rows(&url).await;
    assert_eq!(fernet(&rows), 0, "no Fernet value left");
    let (_, out, _) = imangor(&envs, &["doctor"]).await;
    assert!(!out.contains(doctor_warning), "{out}");
    for id in &imported {
        let row = rows.iter().find(|r| &r.0 == id).unwrap();
        assert_eq!(
            (row.1.as_str(), row.2[0]),
            ("legacy", 1),
            "format v1 (AES-256-GCM)"
        );
    }
    // A second pass finds nothing to do.
    let (ok, out, _) = imangor(&envs, &["keys", "reencrypt"]).await;
    assert!(ok && out.contains("re-encrypted 0 rows"), "{out}");

    let s = Server::start(&envs).await;
    for id in &imported {
        assert_eq!(
            read_secret(&s, &token, id).await,
            (StatusCode::OK, json!(plaintext))
        );
    }
    // Moved into another row, the resealed value does not open there.
    let moved = rows.iter().find(|r| r.0 == imported[0]).unwrap();
    set_stored(&url, &other, &moved.1, &moved.2).await;
    assert_eq!(
        read_secret(&s, &token, &other).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    s.stop().await;
}
