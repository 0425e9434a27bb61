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
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    fill!(&mut c, Flavour::GUIDE, without);
    c.close().await.unwrap();
    format!("sqlite://{}", path.display())
}

/// The same rows in a fresh PostgreSQL schema, as another deployment keeps them: `items`
/// instead of `resources`, `is_active` instead of `disabled`, the Fernet tokens in `bytea`.
async fn pg_source() -> String {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(dir.path()).await;
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    fill!(&mut c, Flavour::OTHER, None::<&str>);
    c.close().await.unwrap();
    url
}

/// How a deployment named and typed things.
struct Flavour {
    resources: &'static str,
    is_active: bool,
    postgres: bool,
}

impl Flavour {
    const GUIDE: Flavour = Flavour {
        resources: "resources",
        is_active: false,
        postgres: false,
    };
    const OTHER: Flavour = Flavour {
        resources: "items",
        is_active: true,
        postgres: true,
    };
    /// A bound time: SQLAlchemy writes text on SQLite, `timestamp` on PostgreSQL.
    fn time(&self, n: u32) -> String {
        match self.postgres {
            true => format!("cast(${n} as timestamp)"),
            false => format!("${n}"),
        }
    }
}

/// Creates and fills the source's tables on connection `$c` (either backend).
macro_rules! fill {
    ($c:expr, $f:expr, $without:expr) => {{
        let f = $f;
        let (time_type, token_type) = match f.postgres {
            true => ("timestamp", "bytea"),
            false => ("datetime", "text"),
        };
        let status = if f.is_active { "is_active" } else { "disabled" };
        let users_cols = [
            "id integer primary key".to_owned(),
            "email varchar(255) not null unique".into(),
            "hashed_password varchar(255) not null".into(),
            "full_name varchar(255)".into(),
            "role varchar(20) not null".into(),
            format!("{status} boolean not null default false"),
            format!("created_at {time_type}"),
        ]
        .into_iter()
        .filter(|c| $without.is_none_or(|w| !c.starts_with(w)))
        .collect::<Vec<_>>()
        .join(", ");
        for ddl in [
            format!("create table users ({users_cols})"),
            format!("create table {} (id integer primary key, owner_id integer references users(id), title varchar(200) not null, content text, is_public boolean not null default false, created_at {time_type}, updated_at {time_type})", f.resources),
            format!("create table secrets (id integer primary key, owner_id integer references users(id), name varchar(100) not null, encrypted_value {token_type} not null, created_at {time_type})"),
            "create table refresh_tokens (id integer primary key, user_id integer, token_hash varchar(64))".into(),
        ] {
            sqlx::query(&ddl).execute(&mut *$c).await.unwrap();
        }
        if $without.is_none() {
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
            let sql = format!("insert into users values ($1, $2, $3, $4, $5, $6, {})", f.time(7));
            for (id, email, hash, role, disabled) in users {
                sqlx::query(&sql)
                    .bind(id as i32)
                    .bind(email)
                    .bind(hash)
                    .bind(format!("Person {id}"))
                    .bind(role)
                    .bind(disabled != f.is_active)
                    .bind("2024-05-01 12:30:00.250000")
                    .execute(&mut *$c)
                    .await
                    .unwrap();
            }
            let sql = format!(
                "insert into {} values ($1, $2, $3, $4, $5, {}, {})",
                f.resources,
                f.time(6),
                f.time(7)
            );
            for (id, owner, title, public) in [
                (1, 1, "alice private", false),
                (2, 1, "alice public", true),
                (3, 2, "bob private", false),
                (4, 3, "orphan", true),
            ] {
                sqlx::query(&sql)
                    .bind(id)
                    .bind(owner)
                    .bind(title)
                    .bind(format!("content of {title}"))
                    .bind(public)
                    .bind("2024-05-02 08:00:00")
                    .bind("2024-06-03 09:15:00")
                    .execute(&mut *$c)
                    .await
                    .unwrap();
            }
            let (_, token, _) = fernet();
            let damaged = format!("{}A=", &token[..token.len() - 4]);
            let sql = format!("insert into secrets values ($1, $2, $3, $4, {})", f.time(5));
            for (id, owner, name, value) in [
                (1, 1, "api-key", token.clone()),
                (2, 2, "db-password", token.clone()),
                (3, 1, "damaged", damaged),
            ] {
                let q = sqlx::query(&sql).bind(id).bind(owner).bind(name);
                let q = match f.postgres {
                    true => q.bind(value.into_bytes()),
                    false => q.bind(value),
                };
                q.bind("2024-05-03 10:00:00")
                    .execute(&mut *$c)
                    .await
                    .unwrap();
            }
        }
    }};
}
use fill;

/// A server, and a source with the guide's schema and rows (in a directory kept until the end).
async fn arranged() -> (TestApp, tempfile::TempDir, String) {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let url = source(&dir.path().join("legacy.db"), None).await;
    (app, dir, url)
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

async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    app.get(path, token).await.json().await.unwrap()
}

async fn password_grant(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.token(&[
        ("grant_type", "password"),
        ("username", email),
        ("password", password),
    ])
    .await
}

/// The caller's one secret, with its value.
async fn only_secret(app: &TestApp, token: &str) -> Value {
    let page = get_json(app, "/api/v1/secrets", token).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let id = items[0]["id"].as_str().unwrap();
    get_json(app, &format!("/api/v1/secrets/{id}"), token).await
}

/// (imported, already imported) of users, resources and secrets.
fn counts(r: &Report) -> [(u64, u64); 3] {
    r.tables().map(|(_, t)| (t.imported, t.already_imported))
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
    let (app, _dir, url) = arranged().await;

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
    let refused = password_grant(&app, "dave@example.com", ALICE_PW).await;
    assert_ne!(refused.status(), StatusCode::OK, "dave stays disabled");
    let me = get_json(&app, "/api/v1/users/me", &bob.access).await;
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
    let mine = get_json(&app, "/api/v1/resources", &alice.access).await;
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
    let read = only_secret(&app, &alice.access).await;
    let secret_path = format!("/api/v1/secrets/{}", read["id"].as_str().unwrap());
    assert_eq!(read["name"], "api-key");
    assert_eq!(read["value"], fernet().2);
    assert_eq!(
        app.get(&secret_path, &bob.access).await.status(),
        StatusCode::NOT_FOUND
    );

    // A second run changes nothing and says so.
    let again = import(&app, &url, &options(false, false)).await.unwrap();
    assert_eq!(counts(&again), [(0, 3), (0, 3), (0, 2)]);
    let events = events(&app).await;
    assert_eq!(
        events.iter().filter(|e| e.action == "import.run").count(),
        2
    );
    let e = events.iter().find(|e| e.action == "import.run").unwrap();
    // Who ran it, as the system knows them (the login name and uid).
    assert!(
        e.actor_id.as_deref().unwrap_or("").starts_with("operator "),
        "{:?}",
        e.actor_id
    );
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
    let (app, _dir, url) = arranged().await;

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
    let refused = password_grant(&app, "alice@example.com", ALICE_PW).await;
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
    let (app, _dir, url) = arranged().await;
    let existing = app.register("alice@example.com").await;

    let err = import(&app, &url, &options(false, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--merge"), "{err}");
    let merged = import(&app, &url, &options(false, true)).await.unwrap();

    assert_eq!((merged.users.merged, merged.users.imported), (1, 2));
    // Marked as merged: the old stack's tokens for that source user are never accepted (issue 20
    // review: the email match proves no common owner).
    let marked: bool = match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => sqlx::query_scalar(
            "select merged from legacy_ids where source_table = 'users' and target_id = $1",
        )
        .bind(&existing.id)
        .fetch_one(p)
        .await
        .unwrap(),
        imangor::db::Db::Postgres(p) => sqlx::query_scalar(
            "select merged from legacy_ids where source_table = 'users' and target_id = $1",
        )
        .bind(&existing.id)
        .fetch_one(p)
        .await
        .unwrap(),
    };
    assert!(marked);
    // The existing account keeps its password; its source rows are now its own.
    let alice = app.login(&existing).await;
    let refused = password_grant(&app, "alice@example.com", ALICE_PW).await;
    assert_ne!(refused.status(), StatusCode::OK);
    let mine = get_json(&app, "/api/v1/resources", &alice.access).await;
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
    let (app, _dir, url) = arranged().await;
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
    let import = |key: &Path| {
        let mut c = command(&envs);
        c.args([
            "import",
            "python-stack",
            "--source",
            &url,
            "--fernet-key-file",
        ])
        .arg(key);
        c
    };

    let out = import(&key_file)
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
    assert_eq!(only_secret(&app, &alice.access).await["value"], fernet().2);

    let bad_key = dir.path().join("bad.key");
    std::fs::write(&bad_key, "not a key").unwrap();
    let out = import(&bad_key).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Fernet key"));
}

#[tokio::test]
async fn a_postgresql_source_with_other_names_is_read_through_its_alternatives() {
    // The source is a PostgreSQL schema: run with the PostgreSQL suite only.
    if !on_postgres() {
        return;
    }
    let app = TestApp::spawn().await;
    let url = pg_source().await;

    let r = import(&app, &url, &options(false, false)).await.unwrap();

    assert_eq!(r.resources.source_table, "items");
    assert_eq!(
        (r.users.imported, r.resources.imported, r.secrets.imported),
        (3, 3, 2)
    );
    let dave = password_grant(&app, "dave@example.com", ALICE_PW).await;
    assert_ne!(dave.status(), StatusCode::OK, "is_active false is disabled");
    let alice = app.login(&account("alice@example.com", ALICE_PW)).await;
    assert_eq!(only_secret(&app, &alice.access).await["value"], fernet().2);
    let mine = get_json(&app, "/api/v1/resources", &alice.access).await;
    let private = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"] == "alice private")
        .unwrap()
        .clone();
    assert!(
        private["updated_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-06-03T09:15:00")
    );
}

/// Runs statements on the target database (a fault planted for a test).
async fn on_target(app: &TestApp, sqlite: &[&str], postgres: &[&str]) {
    use sqlx::Connection;
    macro_rules! run {
        ($conn:ty, $statements:expr) => {{
            let mut c = <$conn>::connect(&app.database_url).await.unwrap();
            for q in $statements {
                sqlx::query(q).execute(&mut c).await.unwrap();
            }
            c.close().await.unwrap();
        }};
    }
    match on_postgres() {
        true => run!(sqlx::PgConnection, postgres),
        false => run!(sqlx::SqliteConnection, sqlite),
    }
}

#[tokio::test]
async fn an_import_that_stops_midway_keeps_what_it_wrote_and_resumes() {
    let (app, _dir, url) = arranged().await;
    // The target refuses one resource: the import stops after the accounts are in, and the
    // page of resources that held it is not written at all.
    on_target(
        &app,
        &[
            "create trigger stop before insert on resources when new.title = 'alice public' \
           begin select raise(abort, 'planted fault'); end",
        ],
        &[
            "create function stop() returns trigger language plpgsql as $$ begin \
             if new.title = 'alice public' then raise exception 'planted fault'; end if; \
             return new; end $$",
            "create trigger stop before insert on resources for each row execute function stop()",
        ],
    )
    .await;

    let err = import(&app, &url, &options(false, false))
        .await
        .unwrap_err();

    assert!(format!("{err:#}").contains("planted fault"), "{err:#}");
    let alice = app.login(&account("alice@example.com", ALICE_PW)).await;
    let mine = get_json(&app, "/api/v1/resources", &alice.access).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 0, "{mine}");
    let stopped = events(&app).await;
    let e = stopped.iter().find(|e| e.action == "import.run").unwrap();
    assert_eq!(e.outcome, "failure");
    assert!(
        e.detail.as_deref().unwrap().contains("planted fault"),
        "{e:?}"
    );
    on_target(
        &app,
        &["drop trigger stop"],
        &["drop trigger stop on resources"],
    )
    .await;
    let resumed = import(&app, &url, &options(false, false)).await.unwrap();
    assert_eq!(counts(&resumed), [(0, 3), (3, 0), (2, 0)]);
}
