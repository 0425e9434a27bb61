//! The `imangor` binary itself: start-up rules, secrets from files, development keys, logs,
//! graceful shutdown and the operator commands.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_imangor");

/// A running `imangor serve` whose output is captured.
pub(crate) struct Server {
    child: Child,
    addr: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

pub(crate) fn command(envs: &[(&str, String)]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.kill_on_drop(true);
    c
}

fn capture<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    r: R,
    into: Arc<Mutex<String>>,
    addr: Option<tokio::sync::mpsc::Sender<String>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let (Some(tx), Ok(v)) = (&addr, serde_json::from_str::<Value>(&line))
                && v["message"] == "imangor serving"
            {
                let _ = tx
                    .send(v["addr"].as_str().unwrap_or_default().to_owned())
                    .await;
            }
            into.lock().unwrap().push_str(&line);
            into.lock().unwrap().push('\n');
        }
    });
}

impl Server {
    pub(crate) async fn start(envs: &[(&str, String)]) -> Server {
        let mut all = vec![
            ("IMANGOR_LISTEN", "127.0.0.1:0".to_owned()),
            ("IMANGOR_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
            ("IMANGOR_LOG_FORMAT", "json".to_owned()),
        ];
        all.extend(envs.iter().cloned());
        let mut child = command(&all)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (
            Arc::new(Mutex::new(String::new())),
            Arc::new(Mutex::new(String::new())),
        );
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        capture(child.stdout.take().unwrap(), stdout.clone(), Some(tx));
        capture(child.stderr.take().unwrap(), stderr.clone(), None);
        let addr = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("server did not start: {}", stderr.lock().unwrap()))
            .unwrap();
        Server {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// Registers an account and logs it in with the password grant; the token response.
    pub(crate) async fn signed_up(
        &self,
        c: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> Value {
        let res = c
            .post(self.url("/api/v1/users"))
            .json(&json!({"email": email, "password": password, "full_name": "Log"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        self.login(email, password).await
    }

    /// The password grant's token response; panics unless 200.
    pub(crate) async fn login(&self, email: &str, password: &str) -> Value {
        let res = reqwest::Client::new()
            .post(self.url("/api/v1/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "login of {email}");
        res.json().await.unwrap()
    }

    /// The access token of a password grant; panics unless 200.
    pub(crate) async fn access_token(&self, email: &str, password: &str) -> String {
        self.login(email, password).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    pub(crate) async fn stop(mut self) -> (String, String) {
        self.terminate();
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            status.success(),
            "clean exit: {status:?}\n{}",
            self.stderr.lock().unwrap()
        );
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (out, err)
    }
}

pub(crate) async fn base_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("IMANGOR_DATA_DIR", dir.join("data").display().to_string()),
        ("IMANGOR_DATABASE_URL", database_url(dir).await),
    ]
}

async fn refused_start(envs: &[(&str, String)]) -> String {
    let out = command(envs).arg("serve").output().await.unwrap();
    assert!(!out.status.success(), "must refuse to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn production_refuses_missing_short_or_predictable_secrets_v11_2_3_v13_2_3() {
    let dir = tempfile::tempdir().unwrap();
    let db = (
        "IMANGOR_DATABASE_URL",
        format!("sqlite://{}", dir.path().join("x.db").display()),
    );
    let prod = ("IMANGOR_ENV", "production".to_owned());
    let keys = ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned());
    let err = refused_start(&[prod.clone(), db.clone(), keys.clone()]).await;
    assert!(err.contains("IMANGOR_JWT_SECRET"), "{err}");
    let err = refused_start(&[
        prod.clone(),
        db.clone(),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
    ])
    .await;
    assert!(err.contains("IMANGOR_DATA_KEYS"), "{err}");
    for weak in [
        "k:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "k:c2hvcnQ=",
        "k:changeme",
    ] {
        let err = refused_start(&[
            prod.clone(),
            db.clone(),
            ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
            ("IMANGOR_DATA_KEYS", weak.to_owned()),
        ])
        .await;
        assert!(err.contains("IMANGOR_DATA_KEYS"), "{err}");
    }
    for weak in [
        "short-secret",
        "changemechangemechangemechangeme",
        "secretsecretsecretsecretsecretsecret",
    ] {
        let err = refused_start(&[
            prod.clone(),
            db.clone(),
            keys.clone(),
            ("IMANGOR_JWT_SECRET", weak.to_owned()),
        ])
        .await;
        assert!(err.contains("IMANGOR_JWT_SECRET"), "{err}");
        assert!(
            !err.contains(weak),
            "the secret itself is never printed: {err}"
        );
    }
    let err = refused_start(&[
        prod.clone(),
        keys.clone(),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
    ])
    .await;
    assert!(err.contains("IMANGOR_DATABASE_URL"), "{err}");
    let err = refused_start(&[("IMANGOR_ENV", "prod".to_owned())]).await;
    assert!(err.contains("IMANGOR_ENV"), "{err}");
    // Both forms of one secret is ambiguous.
    let err = refused_start(&[
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
        ("IMANGOR_JWT_SECRET_FILE", "/etc/hostname".to_owned()),
    ])
    .await;
    assert!(err.contains("IMANGOR_JWT_SECRET_FILE"), "{err}");
}

/// The settings `vars` give, typed and checked as `imangor serve` does: `Err` with the message
/// production stops with.
fn settings(vars: &[(&str, &str)]) -> Result<imangor::config::Config, String> {
    let raw = imangor::config::RawSettings::gather(
        None,
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .map_err(|e| format!("{e:#}"))?;
    imangor::config::Config::from_raw(&raw).map_err(|e| format!("{e:#}"))
}

/// ASVS V12.3.1: production refuses a link to PostgreSQL or Redis on another host that is not
/// verified TLS, naming the variable and never printing the URL (it holds the password), unless
/// the operator says the network is trusted; a link on this host is accepted; `imangor doctor`
/// names the link either way.
#[tokio::test]
async fn production_refuses_plaintext_links_to_postgres_and_redis_v12_3_1() {
    let prod = [
        ("IMANGOR_ENV", "production"),
        ("IMANGOR_JWT_SECRET", JWT_SECRET),
        ("IMANGOR_DATA_KEYS", DATA_KEYS),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = prod.to_vec();
        v.extend_from_slice(extra);
        settings(&v)
    };
    let remote = "postgres://app:pg-pass-Zq81@db.internal.example:5432/app";
    for url in [
        remote.to_owned(),
        format!("{remote}?sslmode=disable"),
        format!("{remote}?sslmode=prefer"),
        format!("{remote}?sslmode=require"),
        "postgresql://app:pg-pass-Zq81@10.1.2.3/app".to_owned(),
        // No host name check, and sqlx trusts the public web CAs beside sslrootcert.
        format!("{remote}?sslmode=verify-ca&sslrootcert=/etc/imangor/ca.crt"),
    ] {
        let url: &'static str = url.leak();
        let err = with(&[("IMANGOR_DATABASE_URL", url)]).unwrap_err();
        assert!(
            err.contains("IMANGOR_DATABASE_URL") && err.contains("verify-full"),
            "{url}: {err}"
        );
        assert!(
            !err.contains("pg-pass-Zq81"),
            "the password is never printed: {err}"
        );
        if url.contains("verify-ca") {
            assert!(
                err.contains("verify-ca, which does not check the host name"),
                "{err}"
            );
        }
        // The operator's word that the network is trusted.
        assert!(
            with(&[
                ("IMANGOR_DATABASE_URL", url),
                ("IMANGOR_ALLOW_PLAINTEXT_BACKENDS", "true")
            ])
            .is_ok(),
            "{url}"
        );
    }
    for ok in [
        "postgres://app:pg-pass-Zq81@db.internal.example:5432/app?sslmode=verify-full",
        "postgres://app:pg-pass-Zq81@127.0.0.1:5432/app",
        "postgres://app:pg-pass-Zq81@localhost/app?sslmode=disable",
        "postgres://app:pg-pass-Zq81@[::1]:5432/app",
        "postgres://app@/app?host=/var/run/postgresql",
    ] {
        assert!(
            with(&[("IMANGOR_DATABASE_URL", ok)]).is_ok(),
            "{ok}: {:?}",
            with(&[("IMANGOR_DATABASE_URL", ok)]).err()
        );
    }
    let db = ("IMANGOR_DATABASE_URL", "postgres://app@127.0.0.1/app");
    for refused in [
        "redis://:redis-pass-Jw42@cache.internal.example:6379",
        "redis://10.1.2.4:6379/0",
        "rediss://:redis-pass-Jw42@cache.internal.example:6379/#insecure",
    ] {
        let err = with(&[db, ("IMANGOR_REDIS_URL", refused)]).unwrap_err();
        assert!(
            err.contains("IMANGOR_REDIS_URL") && err.contains("rediss://"),
            "{refused}: {err}"
        );
        assert!(!err.contains("redis-pass-Jw42"), "{err}");
        assert!(
            with(&[
                db,
                ("IMANGOR_REDIS_URL", refused),
                ("IMANGOR_ALLOW_PLAINTEXT_BACKENDS", "true")
            ])
            .is_ok()
        );
    }
    for ok in [
        "rediss://:redis-pass-Jw42@cache.internal.example:6379",
        "redis://127.0.0.1:6379",
        "redis://localhost:6379/2",
    ] {
        assert!(with(&[db, ("IMANGOR_REDIS_URL", ok)]).is_ok(), "{ok}");
    }
    // Development takes any link.
    assert!(settings(&[("IMANGOR_DATABASE_URL", remote)]).is_ok());

    // The binary stops with the same message, and no password in it.
    let err = refused_start(&[
        ("IMANGOR_ENV", "production".to_owned()),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
        ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()),
        ("IMANGOR_DATABASE_URL", remote.to_owned()),
    ])
    .await;
    assert!(err.contains("IMANGOR_DATABASE_URL"), "{err}");
    assert!(!err.contains("pg-pass-Zq81"), "{err}");

    // The doctor names the link: a failure when refused, a warning when the operator allowed it.
    let dir = tempfile::tempdir().unwrap();
    let mut envs = vec![
        ("IMANGOR_ENV", "production".to_owned()),
        ("IMANGOR_DATA_DIR", dir.path().display().to_string()),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
        ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()),
        // `.invalid` never resolves: the doctor's connection fails at once.
        (
            "IMANGOR_DATABASE_URL",
            "postgres://app:pg-pass-Zq81@db.invalid/app".to_owned(),
        ),
    ];
    let doctor = |envs: Vec<(&'static str, String)>| async move {
        let out = command(&envs).arg("doctor").output().await.unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = doctor(envs.clone()).await;
    let line = out
        .lines()
        .find(|l| l.contains("link to PostgreSQL at db.invalid"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("FAIL"), "{out}");
    envs.push(("IMANGOR_ALLOW_PLAINTEXT_BACKENDS", "true".to_owned()));
    let out = doctor(envs).await;
    let line = out
        .lines()
        .find(|l| l.contains("link to PostgreSQL at db.invalid"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.starts_with("WARN") && line.contains("IMANGOR_ALLOW_PLAINTEXT_BACKENDS=true"),
        "{out}"
    );
    assert!(!out.contains("pg-pass-Zq81"), "{out}");
}

/// `base_env` in production, with a sound signing key and data keyring.
async fn production_env(dir: &Path) -> Vec<(&'static str, String)> {
    let mut envs = base_env(dir).await;
    envs.extend([
        ("IMANGOR_ENV", "production".to_owned()),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
        ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()),
    ]);
    envs
}

/// The first JSON log line of `out` whose message starts with `message`; `why` names it when
/// none does.
fn log_line(out: &str, message: &str, why: &str) -> Value {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .unwrap_or_else(|| panic!("{why}: {out}"))
}

/// Production never prints a generated bootstrap password (it would reach the log pipeline): it
/// is written to a 0600 file of the data dir, and only that file's path is logged.
#[tokio::test]
async fn production_keeps_a_generated_bootstrap_password_in_a_private_file_never_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let envs = production_env(dir.path()).await;
    let s = Server::start(&envs).await;
    let file = dir.path().join("data").join("bootstrap-admin-password");
    let password = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim_end()
        .to_owned();
    assert!(password.len() >= 20, "a generated password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    s.login("admin@imangor.local", &password).await;
    let (out, err) = s.stop().await;
    assert!(
        !out.contains(&password) && !err.contains(&password),
        "the password is in no log: {out} {err}"
    );
    let logged = log_line(
        &out,
        "bootstrap admin created",
        "the start says where the password is",
    );
    assert_eq!(logged["path"], file.display().to_string());
    assert_eq!(logged["email"], "admin@imangor.local");
    // Until it is deleted, the doctor reminds the operator of the file (and never shows it).
    let doctor = command(&envs).arg("doctor").output().await.unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.lines().any(|l| l.starts_with("WARN")
            && l.contains(&file.display().to_string())
            && l.contains("bootstrap admin password")),
        "{report}"
    );
    assert!(!report.contains(&password), "{report}");

    // The bootstrap admin's first password change removes the file (it opens nothing now).
    let s = Server::start(&envs).await;
    let token = s.access_token("admin@imangor.local", &password).await;
    let res = reqwest::Client::new()
        .patch(s.url("/api/v1/users/me"))
        .bearer_auth(&token)
        .json(&json!({"current_password": password, "new_password": "a fresh passphrase for ops 2026"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!file.exists(), "removed by the password change");
    let (out, _) = s.stop().await;
    let removed = log_line(
        &out,
        "bootstrap admin password file removed",
        "the removal is logged",
    );
    assert_eq!(removed["path"], file.display().to_string());

    // A second start finds the admin and writes nothing.
    let s = Server::start(&envs).await;
    s.stop().await;
    assert!(!file.exists());
}

/// Production writes a generated bootstrap password only into a data dir that is this user's
/// alone (0700 or stricter, owned by the server's user): otherwise the start stops, saying why,
/// and no file is written.
#[cfg(unix)]
#[tokio::test]
async fn production_writes_the_bootstrap_password_only_into_a_private_data_dir() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let envs = production_env(dir.path()).await;
    let data = dir.path().join("data");
    let file = data.join("bootstrap-admin-password");
    std::fs::create_dir(&data).unwrap();
    for mode in [0o750, 0o707, 0o777] {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = refused_start(&envs).await;
        assert!(
            err.contains(&format!(
                "data dir {} is open to other users (mode {mode:o}): make it 0700",
                data.display()
            )),
            "{mode:o}: {err}"
        );
        assert!(!file.exists());
    }
    // Owned by another user (only root can give it away).
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let me = std::fs::metadata(dir.path()).unwrap().uid();
    if me == 0 {
        std::os::unix::fs::chown(&data, Some(65534), None).unwrap();
        let err = refused_start(&envs).await;
        assert!(
            err.contains(&format!(
                "data dir {} is owned by uid 65534, not by this server's uid 0",
                data.display()
            )),
            "{err}"
        );
        assert!(!file.exists());
        std::os::unix::fs::chown(&data, Some(0), None).unwrap();
    }
    // Private: written, 0600.
    let s = Server::start(&envs).await;
    assert!(file.exists());
    s.stop().await;
}

#[tokio::test]
async fn production_takes_secrets_from_files_and_a_toml_config() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("jwt");
    std::fs::write(&secret_file, format!("{JWT_SECRET}\n")).unwrap();
    let pw_file = dir.path().join("admin-pw");
    std::fs::write(&pw_file, "operator chosen passphrase\n").unwrap();
    let config = dir.path().join("imangor.toml");
    std::fs::write(&config, format!("env = \"production\"\njwt_audience = \"aud-from-toml\"\nbootstrap_admin_email = \"ops@example.com\"\nbootstrap_admin_password_file = \"{}\"\n", pw_file.display())).unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.push(("IMANGOR_JWT_SECRET_FILE", secret_file.display().to_string()));
    envs.push(("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()));
    envs.push(("IMANGOR_CONFIG", config.display().to_string()));
    let s = Server::start(&envs).await;
    let c = reqwest::Client::new();
    let res = c
        .post(s.url("/api/v1/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "ops@example.com"),
            ("password", "operator chosen passphrase"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["aud-from-toml"]);
    jsonwebtoken::decode::<Value>(
        t["access_token"].as_str().unwrap(),
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &v,
    )
    .expect("signed with the file's secret, audience from the TOML file");
    let (out, err) = s.stop().await;
    assert!(
        !err.contains("password:"),
        "no generated password when one is configured"
    );
    assert!(
        out.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "production logs are JSON lines"
    );
}

#[tokio::test]
async fn an_unknown_toml_setting_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("imangor.toml");
    std::fs::write(&config, "jwt_secert = \"typo\"\n").unwrap();
    let err = refused_start(&[("IMANGOR_CONFIG", config.display().to_string())]).await;
    assert!(err.contains("jwt_secert"), "{err}");
}

#[tokio::test]
async fn development_keeps_a_generated_key_and_prints_the_bootstrap_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let envs = base_env(dir.path()).await;
    let s = Server::start(&envs).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = s.stderr.lock().unwrap().clone();
    let password = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .expect("bootstrap password on stderr")
        .trim()
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["data/jwt-keys", "data/data-keys"] {
            assert_eq!(
                std::fs::metadata(dir.path().join(key))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o600,
                "{key}"
            );
        }
        assert_eq!(
            std::fs::metadata(dir.path().join("data"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
    let c = reqwest::Client::new();
    let login = |url: String| {
        let c = c.clone();
        let password = password.clone();
        async move {
            c.post(url)
                .form(&[
                    ("grant_type", "password"),
                    ("username", "admin@imangor.local"),
                    ("password", &password),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let res = login(s.url("/api/v1/token")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (out, _) = s.stop().await;
    assert!(
        out.contains("DEVELOPMENT MODE"),
        "a loud warning about the generated key"
    );

    let s = Server::start(&envs).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !s.stderr.lock().unwrap().contains("password:"),
        "printed once only"
    );
    let res = c
        .get(s.url("/api/v1/users/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the generated key was kept");
    s.stop().await;
}

#[tokio::test]
async fn logs_never_contain_passwords_or_tokens_and_stay_one_json_object_a_line_v16_2_5_v16_4_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.push(("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()));
    envs.push(("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()));
    envs.push(("RUST_LOG", "debug".to_owned()));
    let s = Server::start(&envs).await;
    let c = reqwest::Client::new();
    let pw = "log canary passphrase 77";
    let wrong = "wrong canary passphrase 88";
    let t = s.signed_up(&c, "log@example.com", pw).await;
    let bad = c
        .post(s.url("/api/v1/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "log@example.com"),
            ("password", wrong),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let (access, refresh) = (
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    );
    c.get(s.url("/api/v1/users/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    // A secret stored and read.
    let secret_value = "secret canary value 5150";
    let made: Value = c
        .post(s.url("/api/v1/secrets"))
        .bearer_auth(&access)
        .json(&json!({"name": "canary", "value": secret_value}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got: Value = c
        .get(s.url(&format!("/api/v1/secrets/{}", made["id"].as_str().unwrap())))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["value"], secret_value);
    c.get(s.url(&format!("/api/v1/users/me?access_token={access}")))
        .send()
        .await
        .unwrap();
    let r2: Value = c
        .post(s.url("/api/v1/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    c.post(s.url("/api/v1/token/revoke"))
        .form(&[("token", r2["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    c.patch(s.url("/api/v1/users/me"))
        .bearer_auth(&access)
        .json(&json!({"current_password": wrong, "new_password": "another canary 99"}))
        .send()
        .await
        .unwrap();
    // A path built to forge a log line.
    c.get(s.url("/x%0a%7B%22level%22:%22ERROR%22%7D"))
        .send()
        .await
        .unwrap();
    let (out, err) = s.stop().await;
    let all = format!("{out}\n{err}");
    let signature = access.rsplit('.').next().unwrap();
    for secret in [
        pw,
        wrong,
        "another canary 99",
        access.as_str(),
        signature,
        refresh.as_str(),
        r2["refresh_token"].as_str().unwrap(),
        JWT_SECRET,
        secret_value,
        &DATA_KEYS[3..],
    ] {
        assert!(!all.contains(secret), "{secret} leaked into the logs");
    }
    assert!(out.lines().count() > 10, "the run was logged");
    for line in out.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not one JSON object: {line}"));
        assert_ne!(v["msg"], "forged");
    }
}

/// V16.3.3: a refused access token is logged with the reason, on the request's one access line
/// (request id, method and path in its `spans`); the client gets the same 401 whatever the reason.
#[tokio::test]
async fn a_refused_token_is_logged_with_its_reason_on_the_requests_one_line_v16_3_3() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.push(("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()));
    envs.push(("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()));
    let s = Server::start(&envs).await;
    let c = reqwest::Client::new();
    let t = s
        .signed_up(&c, "refused@example.com", "refused log passphrase 1")
        .await;
    let access = t["access_token"].as_str().unwrap();
    let (signed, _) = access.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", "A".repeat(43));
    let mut ids = Vec::new();
    for (token, reason) in [
        (forged.as_str(), "bad signature"),
        ("not-a-token", "malformed token"),
        (access, ""),
    ] {
        let res = c
            .get(s.url("/api/v1/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let want = if reason.is_empty() { 200 } else { 401 };
        assert_eq!(res.status().as_u16(), want);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        ids.push((id, reason));
    }
    let (out, _) = s.stop().await;
    for (id, reason) in ids {
        let lines: Vec<Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                v["spans"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["request_id"] == id.as_str()))
            })
            .collect();
        assert_eq!(lines.len(), 1, "one line for request {id}: {lines:?}");
        let line = &lines[0];
        assert_eq!(line["message"], "answered");
        assert_eq!(line["spans"][0]["path"], "/api/v1/users/me");
        if reason.is_empty() {
            assert!(line.get("token_refused").is_none(), "{line}");
        } else {
            assert_eq!(line["token_refused"], reason, "{line}");
            assert_eq!(line["status"], 401);
        }
    }
}

#[tokio::test]
async fn sigterm_drains_the_request_in_flight_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.push(("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()));
    let s = Server::start(&envs).await;
    let body = json!({"email": "drain@example.com", "password": PASSWORD, "full_name": "Drain"})
        .to_string();
    let mut conn = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connection is taken once draining.
    assert!(
        reqwest::Client::new()
            .get(s.url("/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_err()
    );
    conn.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    drop(conn);
    s.stop().await;
}

/// A connection the server took before SIGTERM whose request arrives just after it (a load
/// balancer's, sent an instant after connecting) is answered, not closed unread: hyper closes a
/// connection that has not sent a byte when its graceful shutdown begins, and nginx answered
/// such a POST with a 502 during the replica test's rolling restart.
#[tokio::test]
async fn a_request_sent_just_after_sigterm_on_a_taken_connection_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.push(("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()));
    let s = Server::start(&envs).await;
    let mut conn = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    // Taken by the server (its accept loop runs at once), no byte sent yet.
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.terminate();
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .unwrap()
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "answered: {answer:?}");
    drop(conn);
    s.stop().await;
}

#[tokio::test]
async fn operators_create_promote_and_disable_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.push(("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()));
    let mut child = command(&envs)
        .args([
            "user",
            "create",
            "--email",
            "Ops@Example.com",
            "--full-name",
            "Ops",
            "--role",
            "manager",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"an operator passphrase\n")
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ops@example.com role=manager"));

    let run = |args: &'static [&'static str]| {
        let envs = envs.clone();
        async move { command(&envs).args(args).output().await.unwrap() }
    };
    let out = run(&[
        "user",
        "set-role",
        "--email",
        "ops@example.com",
        "--role",
        "admin",
    ])
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("role=admin"));
    let out = run(&[
        "user",
        "set-role",
        "--email",
        "ops@example.com",
        "--role",
        "root",
    ])
    .await;
    assert!(!out.status.success());
    let out = run(&["user", "disable", "--email", "ops@example.com"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("last active admin"),
        "the only admin stays"
    );
    let out = run(&[
        "user",
        "create",
        "--email",
        "boss@example.com",
        "--full-name",
        "Boss",
        "--role",
        "admin",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("generated password"));

    let s = Server::start(&envs).await;
    let c = reqwest::Client::new();
    let login = || {
        c.post(s.url("/api/v1/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", "ops@example.com"),
                ("password", "an operator passphrase"),
            ])
            .send()
    };
    let res = login().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        c.get(s.url("/api/v1/users"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let out = run(&["user", "disable", "--email", "ops@example.com"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server caches a token's state for IMANGOR_AUTH_CACHE_TTL (a second by default): without
    // Redis to announce it, an operator's change applies once that entry expires. The deadline
    // is generous (argon2 load on shared cores slows everything); the cache's own expiry is
    // what bounds it, not this loop.
    let disabled = std::time::Instant::now();
    loop {
        let status = c
            .get(s.url("/api/v1/users"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            disabled.elapsed() < Duration::from_secs(15),
            "applied once the cached state expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(login().await.unwrap().status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

#[tokio::test]
async fn operators_review_access_and_contain_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.push(("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()));
    envs.push(("IMANGOR_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()));
    envs.push((
        "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD",
        ADMIN_PASSWORD.to_owned(),
    ));
    let s = Server::start(&envs).await;
    let c = reqwest::Client::new();
    for email in ["=cmd@example.com", "quiet@example.com"] {
        let res = c
            .post(s.url("/api/v1/users"))
            .json(&json!({"email": email, "password": PASSWORD, "full_name": "X"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let admin = s.access_token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let user = s.access_token("=cmd@example.com", PASSWORD).await;
    let run = |args: Vec<&'static str>| {
        let envs = envs.clone();
        async move {
            let out = command(&envs).args(args).output().await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };

    // The review lists the admin (with a login) and the account never used.
    let (ok, out, err) = run(vec!["access-review", "--format", "json"]).await;
    assert!(ok, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let of = |email: &str| rows.iter().find(|r| r["email"] == email).cloned();
    assert!(
        of(ADMIN_EMAIL).unwrap()["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("admin"))
    );
    assert!(of(ADMIN_EMAIL).unwrap()["last_login"].is_string());
    assert_eq!(
        of("quiet@example.com").unwrap()["flags"],
        json!(["never_logged_in"])
    );
    assert!(
        of("=cmd@example.com").is_none(),
        "an active plain user needs no review"
    );
    let (ok, out, _) = run(vec![
        "access-review",
        "--format",
        "csv",
        "--dormant-days",
        "0",
    ])
    .await;
    assert!(
        ok && out.starts_with("email,role,disabled,created_at,last_login,flags\n"),
        "{out}"
    );
    assert!(
        out.contains("'=cmd@example.com,user"),
        "a formula is defused: {out}"
    );
    let (ok, out, _) = run(vec!["access-review"]).await;
    assert!(ok && out.contains("never"), "{out}");

    // Containment from the command line takes effect on the running server.
    let (ok, out, err) = run(vec![
        "contain",
        "revoke-sessions",
        "--email",
        "=cmd@example.com",
    ])
    .await;
    assert!(ok && out.contains("1 session(s)"), "{out} {err}");
    let me = c
        .get(s.url("/api/v1/users/me"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let (ok, out, _) = run(vec!["contain", "block", "192.0.2.0/24", "--seconds", "60"]).await;
    assert!(ok && out.contains("192.0.2.0/24 blocked until"), "{out}");
    let (ok, _, err) = run(vec!["contain", "block", "not-a-net"]).await;
    assert!(!ok && err.contains("not an address"), "{err}");

    // The start-up summary and the operator's actions are in the audit trail.
    let audit: Value = c
        .get(s.url("/api/v1/audit?limit=100"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let audit: Value = if audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["action"] == "containment.block_address")
    {
        audit
    } else {
        c.get(s.url("/api/v1/audit?limit=100"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let items = audit["items"].as_array().unwrap();
    let start = items
        .iter()
        .find(|i| i["action"] == "server.start")
        .expect("a start-up event");
    let summary = start["detail"].as_str().unwrap();
    assert!(
        summary.contains("database sqlite") || summary.contains("database postgres"),
        "{summary}"
    );
    assert!(!summary.contains(JWT_SECRET));
    for action in ["containment.revoke_sessions", "containment.block_address"] {
        let e = items
            .iter()
            .find(|i| i["action"] == action)
            .unwrap_or_else(|| panic!("{action}"));
        assert_eq!(e["actor_id"], "operator");
    }
    s.stop().await;
}

/// The commands that run no use case open the store alone: with a Redis that takes connections
/// and never answers, `audit export`, `keys status` and `access-review` never connect to it, and
/// nothing but their output reaches stdout (where logs go too). A command that runs a use case
/// (`user create`) builds the whole state: it connects, and logs that Redis does not answer.
#[tokio::test]
async fn commands_that_run_no_use_case_open_the_store_alone_never_redis() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Arrange: a silent Redis that counts (and holds) the connections made to it.
    let redis = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", redis.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = redis.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.push(("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()));
    envs.push(("IMANGOR_LOG_FORMAT", "json".to_owned()));
    envs.push(("IMANGOR_REDIS_URL", url));
    let run = |args: &'static [&'static str]| {
        let envs = envs.clone();
        async move {
            let out = command(&envs).args(args).output().await.unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        }
    };
    // A connection the command made is accepted by the time this has passed.
    let settled = || async { tokio::time::sleep(Duration::from_millis(100)).await };
    let (ok, out, err) = run(&[
        "user",
        "create",
        "--email",
        "ops@example.com",
        "--full-name",
        "Ops",
        "--role",
        "admin",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("does not answer"), "the whole state: {out}");
    settled().await;
    let by_the_whole_state = connections.load(Ordering::SeqCst);
    assert!(by_the_whole_state > 0, "the whole state connects to Redis");

    // Act / Assert: each of these runs, prints only what it reports, and never reaches Redis.
    let (ok, out, err) = run(&["audit", "export"]).await;
    assert!(ok && err.contains("rows exported"), "{err}");
    for line in out.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        assert!(row["seq"].is_number(), "only rows: {line}");
    }
    let (ok, out, err) = run(&["keys", "status"]).await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with("data keys (newest first)\n") && out.contains("signing keys"),
        "{out}"
    );
    assert!(!out.contains("Redis"), "{out}");
    let (ok, out, err) = run(&["access-review", "--format", "json"]).await;
    assert!(ok, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["email"], "ops@example.com");
    settled().await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        by_the_whole_state,
        "the store alone never connects to Redis"
    );
    silent.abort();
}

/// A page hashes up to `IMANGOR_AUDIT_CHECKPOINT_EVENTS` rows, and the sealer as many before it
/// signs: more than 10 000 is refused at start, naming the variable.
#[test]
fn audit_checkpoint_events_is_capped_at_ten_thousand() {
    assert!(settings(&[("IMANGOR_AUDIT_CHECKPOINT_EVENTS", "10000")]).is_ok());
    let err = settings(&[("IMANGOR_AUDIT_CHECKPOINT_EVENTS", "10001")]).unwrap_err();
    assert!(
        err.contains("IMANGOR_AUDIT_CHECKPOINT_EVENTS") && err.contains("1..=10000"),
        "{err}"
    );
}
