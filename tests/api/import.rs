//! `imangor import python-stack`: a database shaped like the guide's Python stack (SQLAlchemy
//! models, passlib bcrypt hashes, Fernet-encrypted secrets) brought over; the imported accounts
//! then log in with their old passwords, see what they saw, and read their secrets.

use std::path::Path;

use imangor::db::imports::Source;
use imangor::service::import::{Mapping, Options, Report, python_stack};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::process::command;

const ALICE_PW: &str = "alice's old passphrase";
const BOB_PW: &str = "bob's old passphrase";

fn fernet() -> (String, String, String) {
    let f: Value = serde_json::from_str(include_str!("../fixtures/fernet.json")).unwrap();
    let s = |k: &str| f[k].as_str().unwrap().to_owned();
    (s("key"), s("token"), s("plaintext"))
}

/// Builds the guide's schema at `path` and fills it: five users (one with an invalid email, one
/// with an unknown role, one disabled), four resources (one whose owner is not imported), three
/// secrets (one whose token is damaged). `without` drops a column of `users`.
async fn source(path: &Path, without: Option<&str>) -> String {
    use sqlx::Connection;
    let url = format!("sqlite://{}", path.display());
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let users_cols = [
        "id integer primary key",
        "email varchar(255) not null unique",
        "hashed_password varchar(255) not null",
        "full_name varchar(255)",
        "role varchar(20) not null",
        "disabled boolean not null default 0",
        "created_at datetime",
    ]
    .into_iter()
    .filter(|c| without.is_none_or(|w| !c.starts_with(w)))
    .collect::<Vec<_>>()
    .join(", ");
    for ddl in [
        format!("create table users ({users_cols})"),
        "create table resources (id integer primary key, owner_id integer references users(id), title varchar(200) not null, content text, is_public boolean not null default 0, created_at datetime, updated_at datetime)".into(),
        "create table secrets (id integer primary key, owner_id integer references users(id), name varchar(100) not null, encrypted_value text not null, created_at datetime)".into(),
        "create table refresh_tokens (id integer primary key, user_id integer, token_hash varchar(64))".into(),
    ] {
        sqlx::query(&ddl).execute(&mut c).await.unwrap();
    }
    if without.is_some() {
        c.close().await.unwrap();
        return url;
    }
    let b2b = bcrypt::hash(ALICE_PW, 4).unwrap();
    let b2a = bcrypt::hash_with_result(BOB_PW, 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA);
    let users: [(i64, &str, &str, &str, bool); 5] = [
        (1, "Alice@Example.com", &b2b, "user", false),
        (2, "bob@example.com", &b2a, "manager", false),
        (3, "not an email", &b2b, "user", false),
        (4, "carol@example.com", &b2b, "superuser", false),
        (5, "dave@example.com", &b2b, "user", true),
    ];
    for (id, email, hash, role, disabled) in users {
        sqlx::query("insert into users values ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(email)
            .bind(hash)
            .bind(format!("Person {id}"))
            .bind(role)
            .bind(disabled)
            .bind("2024-05-01 12:30:00.250000")
            .execute(&mut c)
            .await
            .unwrap();
    }
    for (id, owner, title, public) in [
        (1, 1, "alice private", false),
        (2, 1, "alice public", true),
        (3, 2, "bob private", false),
        (4, 3, "orphan", true),
    ] {
        sqlx::query("insert into resources values ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(owner)
            .bind(title)
            .bind(format!("content of {title}"))
            .bind(public)
            .bind("2024-05-02 08:00:00")
            .bind("2024-06-03 09:15:00")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let (_, token, _) = fernet();
    let damaged = format!("{}A=", &token[..token.len() - 4]);
    for (id, owner, name, value) in [
        (1, 1, "api-key", token.clone()),
        (2, 2, "db-password", token.clone()),
        (3, 1, "damaged", damaged),
    ] {
        sqlx::query("insert into secrets values ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(owner)
            .bind(name)
            .bind(value)
            .bind("2024-05-03 10:00:00")
            .execute(&mut c)
            .await
            .unwrap();
    }
    c.close().await.unwrap();
    url
}

fn options(dry_run: bool, merge: bool) -> Options {
    let key = imangor::crypto::keyring::decode_b64(&fernet().0).unwrap();
    Options {
        dry_run,
        merge,
        fernet_key: key,
        mapping: Mapping::default(),
    }
}

async fn import(app: &TestApp, url: &str, options: &Options) -> anyhow::Result<Report> {
    let source = Source::open(url).await?;
    let report = python_stack(
        &app.state.store.db,
        &app.state.keys,
        &source,
        options,
        &mut |_, _, _| {},
    )
    .await;
    source.close().await;
    report
}

fn reasons(t: &imangor::service::import::TableReport) -> Vec<(i64, String)> {
    t.skipped
        .iter()
        .map(|s| (s.source_id, s.reason.clone()))
        .collect()
}

fn account(email: &str, password: &str) -> Account {
    Account {
        id: String::new(),
        email: email.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn imported_accounts_log_in_with_their_old_passwords_and_keep_what_they_owned() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let url = source(&dir.path().join("legacy.db"), None).await;

    let r = import(&app, &url, &options(false, false)).await.unwrap();

    assert_eq!((r.users.read, r.users.imported), (5, 3));
    let skipped = reasons(&r.users);
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].0 == 3 && skipped[0].1.contains("invalid email"));
    assert!(skipped[1].0 == 4 && skipped[1].1.contains("unknown role"));
    assert_eq!((r.resources.read, r.resources.imported), (4, 3));
    assert!(reasons(&r.resources)[0].1.contains("owner not imported"));
    assert_eq!((r.secrets.read, r.secrets.imported), (3, 2));
    assert!(reasons(&r.secrets)[0].1.contains("undecryptable"));

    // The bcrypt hashes ($2b$ and $2a$) open the accounts; the email was normalised.
    let alice = app.login(&account("alice@example.com", ALICE_PW)).await;
    let bob = app.login(&account("bob@example.com", BOB_PW)).await;
    // Verified once as bcrypt, then rehashed to argon2id: the password keeps working.
    app.login(&account("alice@example.com", ALICE_PW)).await;
    let refused = app
        .token(&[
            ("grant_type", "password"),
            ("username", "dave@example.com"),
            ("password", ALICE_PW),
        ])
        .await;
    assert_ne!(refused.status(), StatusCode::OK, "dave stays disabled");
    let me: Value = app
        .get("/api/v1/users/me", &bob.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "manager");
    assert_eq!(me["full_name"], "Person 2");
    assert!(
        me["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-05-01T12:30:00.25"),
        "{me}"
    );

    // Resources: owners, visibility and times kept.
    let mine: Value = app
        .get("/api/v1/resources", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    let items = mine["items"].as_array().unwrap();
    let by_title = |t: &str| {
        items
            .iter()
            .find(|i| i["title"] == t)
            .unwrap_or_else(|| panic!("{t} in {mine}"))
            .clone()
    };
    let private = by_title("alice private");
    let public = by_title("alice public");
    assert_eq!(private["content"], "content of alice private");
    assert!(
        private["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-05-02T08:00:00")
    );
    assert!(
        private["updated_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-06-03T09:15:00")
    );
    let path = |r: &Value| format!("/api/v1/resources/{}", r["id"].as_str().unwrap());
    let other = app.register("other@example.com").await;
    let other = app.login(&other).await;
    assert_eq!(
        app.get(&path(&public), &other.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get(&path(&private), &other.access).await.status(),
        StatusCode::NOT_FOUND
    );

    // Secrets: the Fernet plaintext, readable by its owner alone.
    let secrets: Value = app
        .get("/api/v1/secrets", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    let items = secrets["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{secrets}");
    let secret_path = format!("/api/v1/secrets/{}", items[0]["id"].as_str().unwrap());
    let read: Value = app
        .get(&secret_path, &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["name"], "api-key");
    assert_eq!(read["value"], fernet().2);
    assert_eq!(
        app.get(&secret_path, &bob.access).await.status(),
        StatusCode::NOT_FOUND
    );

    // A second run changes nothing and says so.
    let again = import(&app, &url, &options(false, false)).await.unwrap();
    assert_eq!((again.users.imported, again.users.already_imported), (0, 3));
    assert_eq!(
        (again.resources.imported, again.resources.already_imported),
        (0, 3)
    );
    assert_eq!(
        (again.secrets.imported, again.secrets.already_imported),
        (0, 2)
    );
    let events = events(&app).await;
    assert_eq!(
        events.iter().filter(|e| e.action == "import.run").count(),
        2
    );
    let e = events.iter().find(|e| e.action == "import.run").unwrap();
    assert_eq!(e.actor_id.as_deref(), Some("operator"));
    assert!(
        e.detail
            .as_deref()
            .unwrap_or("")
            .contains("users: read 5, imported 3"),
        "{:?}",
        e.detail
    );
}

#[tokio::test]
async fn a_dry_run_checks_everything_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let url = source(&dir.path().join("legacy.db"), None).await;

    let dry = import(&app, &url, &options(true, false)).await.unwrap();

    assert!(dry.dry_run);
    assert_eq!(
        (
            dry.users.imported,
            dry.resources.imported,
            dry.secrets.imported
        ),
        (3, 3, 2)
    );
    let refused = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice@example.com"),
            ("password", ALICE_PW),
        ])
        .await;
    assert_ne!(refused.status(), StatusCode::OK, "no account was written");
    assert!(!events(&app).await.iter().any(|e| e.action == "import.run"));
    let real = import(&app, &url, &options(false, false)).await.unwrap();
    assert_eq!(
        (
            real.users.imported,
            real.users.already_imported,
            real.secrets.imported
        ),
        (3, 0, 2)
    );
}

#[tokio::test]
async fn a_target_with_accounts_is_refused_unless_merging_by_email() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let url = source(&dir.path().join("legacy.db"), None).await;
    let existing = app.register("alice@example.com").await;

    let err = import(&app, &url, &options(false, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--merge"), "{err}");
    let merged = import(&app, &url, &options(false, true)).await.unwrap();

    assert_eq!((merged.users.merged, merged.users.imported), (1, 2));
    // The existing account keeps its password; its source rows are now its own.
    let alice = app.login(&existing).await;
    let refused = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice@example.com"),
            ("password", ALICE_PW),
        ])
        .await;
    assert_ne!(refused.status(), StatusCode::OK);
    let mine: Value = app
        .get("/api/v1/resources", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["title"] == "alice private" && i["owner_id"] == existing.id.as_str()),
        "{mine}"
    );
}

#[tokio::test]
async fn a_wrong_fernet_key_reports_every_secret_as_undecryptable() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let url = source(&dir.path().join("legacy.db"), None).await;
    let mut wrong = options(false, false);
    wrong.fernet_key[0] ^= 1;

    let r = import(&app, &url, &wrong).await.unwrap();

    assert_eq!((r.users.imported, r.resources.imported), (3, 3));
    assert_eq!((r.secrets.read, r.secrets.imported), (3, 0));
    assert!(
        reasons(&r.secrets)
            .iter()
            .all(|(_, why)| why.contains("undecryptable")),
        "{:?}",
        r.secrets.skipped
    );
}

#[tokio::test]
async fn a_source_without_a_mapped_column_is_refused_naming_it() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let url = source(&dir.path().join("legacy.db"), Some("hashed_password")).await;

    let err = import(&app, &url, &options(false, false))
        .await
        .unwrap_err()
        .to_string();

    assert!(
        err.contains("users") && err.contains("hashed_password"),
        "{err}"
    );
    // A mapping that names another column for it is taken at its word.
    let mapping = Mapping::parse("[users]\nhashed_password = \"password_digest\"\n").unwrap();
    let err = import(
        &app,
        &url,
        &Options {
            mapping,
            ..options(false, false)
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("password_digest"), "{err}");
    assert!(Mapping::parse("[users]\npassword = \"x\"\n").is_err());
}

#[tokio::test]
async fn the_command_imports_prints_a_report_and_writes_it_as_json() {
    let app = TestApp::spawn_with(&[("IMANGOR_DATA_KEYS", DATA_KEYS)]).await;
    let dir = tempfile::tempdir().unwrap();
    let url = source(&dir.path().join("legacy.db"), None).await;
    let key_file = dir.path().join("fernet.key");
    std::fs::write(&key_file, format!("{}\n", fernet().0)).unwrap();
    let report_file = dir.path().join("report.json");
    let envs = [
        ("IMANGOR_DATABASE_URL", app.database_url.clone()),
        (
            "IMANGOR_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
    ];

    let out = command(&envs)
        .args([
            "import",
            "python-stack",
            "--source",
            &url,
            "--fernet-key-file",
        ])
        .arg(&key_file)
        .arg("--report")
        .arg(&report_file)
        .output()
        .await
        .unwrap();

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("users (source table users): read 5, imported 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped secrets 3: undecryptable"),
        "{stdout}"
    );
    // Not a terminal: plain progress lines, one per table at least.
    assert!(stderr.contains("resources: 4/4 rows"), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(report["secrets"]["imported"], 2);
    assert_eq!(report["users"]["skipped"][0]["source_id"], 3);
    let alice = app.login(&account("alice@example.com", ALICE_PW)).await;
    let secrets: Value = app
        .get("/api/v1/secrets", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    let id = secrets["items"][0]["id"].as_str().unwrap().to_owned();
    let read: Value = app
        .get(&format!("/api/v1/secrets/{id}"), &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["value"], fernet().2);

    let bad_key = dir.path().join("bad.key");
    std::fs::write(&bad_key, "not a key").unwrap();
    let out = command(&envs)
        .args([
            "import",
            "python-stack",
            "--source",
            &url,
            "--fernet-key-file",
        ])
        .arg(&bad_key)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Fernet key"));
}
