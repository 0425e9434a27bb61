//! Test fixtures: a running app on its own database, accounts, tokens, and assertions on answers.

use std::net::SocketAddr;

use imangor::config::{Config, RawSettings};
use imangor::startup::App;
use imangor::state::AppState;
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// The HS256 key of test servers (40 bytes, so production rules accept it too).
pub const JWT_SECRET: &str = "test-only-hs256-key-7f3a9c2e5b8d1f4a6c0e";
/// A data keyring of production quality for tests (32 distinct bytes; not a development key).
pub const DATA_KEYS: &str = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const ADMIN_EMAIL: &str = "root-admin@example.com";
pub const ADMIN_PASSWORD: &str = "bootstrap admin passphrase 1";
/// A password that passes the policy, used for most test accounts.
pub const PASSWORD: &str = "tangerine submarine 42";

pub struct TestApp {
    pub addr: SocketAddr,
    /// The scrape listener.
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub state: AppState,
    pub admin: Account,
    /// Where its data lives; another server given this URL shares it (a second replica).
    pub database_url: String,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// Set when registration is admin-only: fixtures then register accounts as the admin.
    registrar: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}

pub fn on_postgres() -> bool {
    std::env::var("IMANGOR_TEST_DB").is_ok_and(|v| v == "postgres")
}

/// A database URL of this test's own: a temp SQLite file, or a fresh PostgreSQL schema.
pub async fn database_url(dir: &std::path::Path) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", dir.join("test.db").display());
    }
    use sqlx::Connection;
    let base = std::env::var("IMANGOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(&base)
        .await
        .expect("PostgreSQL must be reachable when IMANGOR_TEST_DB=postgres");
    sqlx::query(&format!("create schema {schema}"))
        .execute(&mut c)
        .await
        .expect("create a test schema");
    c.close().await.ok();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// Starts a server configured through the operator contract's names, plus `extra`.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = match extra.iter().find(|(k, _)| *k == "IMANGOR_DATABASE_URL") {
            Some((_, url)) => url.to_string(),
            None => database_url(dir.path()).await,
        };
        let data_dir = dir.path().join("data");
        let mut vars: Vec<(String, String)> = vec![
            ("IMANGOR_LISTEN".into(), "127.0.0.1:0".into()),
            ("IMANGOR_METRICS_LISTEN".into(), "127.0.0.1:0".into()),
            ("IMANGOR_DATA_DIR".into(), data_dir.display().to_string()),
            ("IMANGOR_DATABASE_URL".into(), db.clone()),
            ("IMANGOR_JWT_SECRET".into(), JWT_SECRET.into()),
            ("IMANGOR_BOOTSTRAP_ADMIN_EMAIL".into(), ADMIN_EMAIL.into()),
            (
                "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD".into(),
                ADMIN_PASSWORD.into(),
            ),
            // Fixtures make many accounts and logins from one address: limits that only the
            // protection tests tighten.
            ("IMANGOR_RATE_LIMIT_API".into(), "100000/60".into()),
            ("IMANGOR_RATE_LIMIT_TOKEN".into(), "100000/60".into()),
            ("IMANGOR_RATE_LIMIT_REGISTER".into(), "100000/60".into()),
            ("IMANGOR_LOGIN_LOCK_AFTER".into(), "100".into()),
            ("IMANGOR_LOGIN_SLOW_AFTER".into(), "100".into()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // A signing keyring replaces the single secret (setting both is refused).
        if extra.iter().any(|(k, _)| *k == "IMANGOR_JWT_KEYS") {
            vars.retain(|(k, _)| k != "IMANGOR_JWT_SECRET");
        }
        let raw = RawSettings::gather(None, vars.into_iter()).expect("settings");
        let config = Config::from_raw(&raw).expect("config");
        let app = App::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut t = TestApp {
            addr,
            metrics_addr,
            client,
            state,
            admin: Account {
                id: String::new(),
                email: ADMIN_EMAIL.into(),
                password: ADMIN_PASSWORD.into(),
            },
            database_url: db,
            _dir: dir,
            shutdown: Some(tx),
            registrar: None,
        };
        // Without the password grant there is no admin token to fetch (nor its id).
        if extra.contains(&("IMANGOR_PASSWORD_GRANT", "off")) {
            return t;
        }
        let admin_tokens = t.login(&t.admin.clone()).await;
        if extra.contains(&("IMANGOR_REGISTRATION", "admin")) {
            t.registrar = Some(admin_tokens.access.clone());
        }
        t.admin.id = t
            .get("/api/v1/users/me", &admin_tokens.access)
            .await
            .json::<Value>()
            .await
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        t
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A GET on the metrics listener (its probes and the scrape), unlimited.
    pub async fn get_internal(&self, path: &str) -> Response {
        let addr = self.metrics_addr.expect("a metrics listener");
        self.client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_anon(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut r = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn patch_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers an account with the default password; panics unless 201.
    pub async fn register(&self, email: &str) -> Account {
        let res = self
            .post_json("/api/v1/users", self.registrar.as_deref(), &serde_json::json!({"email": email, "password": PASSWORD, "full_name": "Test Person"}))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "registering {email}");
        let v: Value = res.json().await.unwrap();
        Account {
            id: v["id"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
            password: PASSWORD.to_owned(),
        }
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/api/v1/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, a: &Account) -> Tokens {
        let res = self
            .token(&[
                ("grant_type", "password"),
                ("username", &a.email),
                ("password", &a.password),
            ])
            .await;
        assert_eq!(res.status(), StatusCode::OK, "login of {}", a.email);
        tokens(res).await
    }

    pub async fn refresh(&self, refresh: &str) -> Response {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await
    }

    pub async fn revoke(&self, token: &str) -> Response {
        self.client
            .post(self.url("/api/v1/token/revoke"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_tokens(&self) -> Tokens {
        self.login(&self.admin.clone()).await
    }

    /// Registers an account, gives it `role` as the admin, and logs it in.
    pub async fn user_with_role(&self, email: &str, role: &str) -> (Account, Tokens) {
        let a = self.register(email).await;
        if role != "user" {
            self.set_role(&a.id, role).await;
        }
        let t = self.login(&a).await;
        (a, t)
    }

    /// POSTs `body` to `path` as the holder of `token`, asserting the 201; the new item's id.
    pub async fn created(&self, path: &str, token: &str, body: &Value) -> String {
        let res = self.post_json(path, Some(token), body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A resource of the holder of `token`, public or private (another account's attempt to read
    /// a private one is a refusal of the policy, answered 404); its id.
    pub async fn resource(&self, token: &str, public: bool) -> String {
        let body = serde_json::json!({"title": "m", "content": "c", "is_public": public});
        self.created("/api/v1/resources", token, &body).await
    }

    /// The admin gives account `id` the role `role` (asserting the 200).
    pub async fn set_role(&self, id: &str, role: &str) {
        let admin = self.admin_tokens().await;
        let res = self
            .patch_json(
                &format!("/api/v1/users/{id}"),
                &admin.access,
                &serde_json::json!({"role": role}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    /// One series of this server's metrics (`name{labels}`), read in process; 0 when absent.
    pub fn metric(&self, series: &str) -> u64 {
        series_value(&self.state, series).map_or(0, |v| v as u64)
    }
}

/// The value of one series (`name{labels}`) of a server's metrics, rendered in process from its
/// state (so it works after the server stopped); `None` when the series is absent.
pub fn series_value(state: &imangor::state::AppState, series: &str) -> Option<f64> {
    let text = state
        .sinks
        .metrics
        .render(&imangor::infra::metrics::Gauges {
            active_sessions: None,
            hash_queue_depth: 0,
            hashing: Default::default(),
        });
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

pub async fn tokens(res: Response) -> Tokens {
    let v: Value = res.json().await.unwrap();
    Tokens {
        access: v["access_token"].as_str().unwrap().to_owned(),
        refresh: v["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// Asserts an RFC 9457 problem answer with `status`; returns its body.
pub async fn problem(res: Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status);
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "problem content type");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], status.as_u16());
    assert!(
        v["type"].is_string() && v["title"].is_string() && v["detail"].is_string(),
        "{v}"
    );
    v
}

/// Asserts a 422 naming exactly `fields` (in any order).
pub async fn invalid_fields(res: Response, fields: &[&str]) -> Value {
    let v = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut got: Vec<String> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{v}");
    v
}

/// Asserts a 401 for a presented but refused token (RFC 6750 section 3.1).
pub async fn invalid_token(res: Response) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    problem(res, StatusCode::UNAUTHORIZED).await;
}

/// Asserts an RFC 6749 section 5.2 error with `error`.
pub async fn oauth_error(res: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], error, "{v}");
    v
}

/// A recorded security event, as the tests look at it.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub action: String,
    pub outcome: String,
    pub actor_id: Option<String>,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub severity: String,
    pub at: i64,
}

/// Every security event of this app, oldest first (read straight from its database, after the
/// events queued off the request path are written).
pub async fn events(app: &TestApp) -> Vec<EventRow> {
    app.state.sinks.events.flush().await;
    use sqlx::Row;
    let sql = "select action, outcome, actor_id, target, detail, ip, request_id, severity, at from security_events order by at, id";
    macro_rules! rows {
        ($pool:expr) => {
            sqlx::query(sql)
                .fetch_all($pool)
                .await
                .unwrap()
                .iter()
                .map(|r| EventRow {
                    action: r.get("action"),
                    outcome: r.get("outcome"),
                    actor_id: r.get("actor_id"),
                    target: r.get("target"),
                    detail: r.get("detail"),
                    ip: r.get("ip"),
                    request_id: r.get("request_id"),
                    severity: r.get("severity"),
                    at: r.get("at"),
                })
                .collect()
        };
    }
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => rows!(p),
        imangor::db::Db::Postgres(p) => rows!(p),
    }
}

/// Stores a Fernet token as an import would: on SQLite as TEXT (what Python's sqlite3 writes for
/// a `str`), on PostgreSQL as bytea (the column's only type).
pub async fn set_stored_as_text(url: &str, id: &str, key_id: &str, token: &str) {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        return set_stored(url, id, key_id, token.as_bytes()).await;
    }
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let q = "update secrets set key_id = $1, ciphertext = $2 where id = $3";
    let q = sqlx::query(q).bind(key_id).bind(token).bind(id);
    assert_eq!(q.execute(&mut c).await.unwrap().rows_affected(), 1);
    let kind: String = sqlx::query_scalar("select typeof(ciphertext) from secrets where id = $1")
        .bind(id)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(kind, "text");
}

/// Stores `ciphertext` under `key_id` in the row `id`, as an import (or an attacker) would.
pub async fn set_stored(url: &str, id: &str, key_id: &str, ciphertext: &[u8]) {
    use sqlx::Connection;
    let q = "update secrets set key_id = $1, ciphertext = $2 where id = $3";
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let q = sqlx::query(q).bind(key_id).bind(ciphertext).bind(id);
        assert_eq!(q.execute(&mut c).await.unwrap().rows_affected(), 1);
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let q = sqlx::query(q).bind(key_id).bind(ciphertext).bind(id);
        assert_eq!(q.execute(&mut c).await.unwrap().rows_affected(), 1);
    }
}
