//! `imangor doctor`: reads a deployment's configuration the way a security reviewer would and
//! lists what is unsafe for production (FAIL) or worth a look (WARN). It judges the settings for
//! production whatever `IMANGOR_ENV` says, changes nothing, and exits non-zero on any FAIL.

use std::path::Path;

use crate::config::{Config, LogFormat, Source};
use crate::crypto::configured;
use crate::crypto::data::DataKeyring;
use crate::crypto::keyring;
use crate::db::keys::{self as log, Ring};
use crate::db::{Db, DbOptions};
use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub message: String,
}

/// What the doctor knows about the deployment besides its settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deployment {
    /// The servers run behind a reverse proxy or load balancer.
    pub behind_proxy: bool,
    /// How many replicas serve the same data.
    pub replicas: u32,
}

fn fail(out: &mut Vec<Finding>, message: impl Into<String>) {
    out.push(Finding {
        level: Level::Fail,
        message: message.into(),
    });
}

fn warn(out: &mut Vec<Finding>, message: impl Into<String>) {
    out.push(Finding {
        level: Level::Warn,
        message: message.into(),
    });
}

/// Every finding, the most serious first.
pub async fn examine(config: &Config, deployment: Deployment) -> Vec<Finding> {
    let mut out = Vec::new();
    if !config.is_production() {
        fail(
            &mut out,
            "IMANGOR_ENV is not `production`: development generates keys on disk and skips the start-up refusals",
        );
    }
    for why in config.refusals() {
        fail(&mut out, why);
    }
    // A plaintext link the operator allowed is still named, so that the reviewer sees it.
    if config.allow_plaintext_backends {
        for link in config.plaintext_links() {
            warn(
                &mut out,
                format!(
                    "{link}: allowed by IMANGOR_ALLOW_PLAINTEXT_BACKENDS=true; only a closed network (a NetworkPolicy, a private link) keeps a listener on the path from reading or changing it"
                ),
            );
        }
    }
    keyrings(config, &mut out);
    oauth(config, &mut out);
    if deployment.behind_proxy && config.trusted_proxies.is_empty() {
        fail(
            &mut out,
            "behind a proxy with no IMANGOR_TRUSTED_PROXIES: every client shares the proxy's address, so rate limits and lock-outs hit everyone at once",
        );
    }
    let sqlite = config
        .database_url
        .as_ref()
        .is_none_or(|u| u.expose().starts_with("sqlite:"));
    if sqlite && deployment.replicas > 1 {
        fail(
            &mut out,
            format!(
                "SQLite with {} replicas: each replica would have its own data; use PostgreSQL (IMANGOR_DATABASE_URL=postgres://...)",
                deployment.replicas
            ),
        );
    }
    if config.cors_origins.iter().any(|o| o == "*") {
        warn(
            &mut out,
            "IMANGOR_CORS_ORIGINS=*: any web page may call the API from a browser",
        );
    }
    if let Some(o) = config
        .cors_origins
        .iter()
        .find(|o| o.starts_with("http://"))
    {
        warn(
            &mut out,
            format!("IMANGOR_CORS_ORIGINS allows {o}, which is not HTTPS"),
        );
    }
    if config.webauthn_rp_id.parse::<std::net::IpAddr>().is_ok()
        || config.webauthn_rp_id.starts_with('[')
    {
        warn(
            &mut out,
            format!(
                "passkeys cannot be registered: browsers refuse an IP address ({}) as WebAuthn relying party id; set IMANGOR_PUBLIC_URL to a host name (localhost in development)",
                config.webauthn_rp_id
            ),
        );
    }
    if config.password_policy.min_chars < 15 {
        warn(
            &mut out,
            format!(
                "IMANGOR_PASSWORD_MIN_LENGTH is {}: NIST SP 800-63B rev. 4 asks 15 when a password is the only factor",
                config.password_policy.min_chars
            ),
        );
    }
    if config.log_format == LogFormat::Pretty {
        warn(
            &mut out,
            "IMANGOR_LOG_FORMAT=pretty: log collectors and SIEMs read `json`",
        );
    }
    if config.bootstrap_admin_password.is_some() {
        warn(
            &mut out,
            "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD is set: remove it once the first admin has changed the password",
        );
    }
    let generated = config
        .data_dir
        .join(crate::service::users::BOOTSTRAP_PASSWORD_FILE);
    if generated.exists() {
        warn(
            &mut out,
            format!(
                "{} still holds the generated bootstrap admin password: log in, change it, then delete the file",
                generated.display()
            ),
        );
    }
    permissions(&config.data_dir, &mut out);
    if let Some(db) = connect(config, &mut out).await {
        key_ages(config, &db, &mut out).await;
        migration(config, &db, &mut out).await;
        db.close().await;
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.level));
    out
}

/// Configured keyrings parse, hold strong keys that development did not generate.
fn keyrings(config: &Config, out: &mut Vec<Finding>) {
    if config.jwt_secret.is_some() || config.jwt_keys.is_some() {
        match configured::signing_keys(config) {
            Err(e) => fail(out, format!("{e:#}")),
            Ok((entries, source)) => {
                if let Err(e) = crate::auth::token::TokenKeys::new(
                    &entries,
                    "IMANGOR_JWT_KEYS",
                    &config.jwt_issuer,
                    &config.jwt_audience,
                    config.access_token_ttl,
                ) {
                    fail(out, format!("{e:#}"));
                }
                generated(&source, out);
            }
        }
    }
    if config.data_keys.is_some() {
        match configured::data_keys(config).and_then(|(text, source)| {
            DataKeyring::new(keyring::parse(text.expose(), "IMANGOR_DATA_KEYS", false)?)
                .map(|_| source)
        }) {
            Err(e) => fail(out, format!("{e:#}")),
            Ok(source) => generated(&source, out),
        }
    }
}

fn generated(source: &Source, out: &mut Vec<Finding>) {
    if let Source::Generated(p) = source {
        fail(
            out,
            format!(
                "keys come from {}, generated by development mode",
                p.display()
            ),
        );
    }
}

/// The data dir and key files must be private to the server's user.
fn permissions(dir: &Path, out: &mut Vec<Finding>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| m.permissions().mode() & 0o777)
        };
        if let Some(m) = mode(dir)
            && m & 0o077 != 0
        {
            fail(
                out,
                format!(
                    "data dir {} is open to other users (mode {m:o}); make it 0700",
                    dir.display()
                ),
            );
        }
        for name in [configured::DEV_DATA_KEYS, configured::DEV_SIGNING_KEYS] {
            let p = dir.join(name);
            if let Some(m) = mode(&p)
                && m & 0o077 != 0
            {
                fail(
                    out,
                    format!("key file {} has mode {m:o}; make it 0600", p.display()),
                );
            }
        }
    }
}

async fn connect(config: &Config, out: &mut Vec<Finding>) -> Option<Db> {
    let url = match &config.database_url {
        Some(u) => u.expose().to_owned(),
        None => {
            let path = config.sqlite_path();
            if !path.exists() {
                return None;
            }
            format!("sqlite://{}", path.display())
        }
    };
    match Db::connect(DbOptions {
        url: &url,
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(5),
    })
    .await
    {
        Ok(db) => Some(db),
        Err(e) => {
            warn(
                out,
                format!("the database did not answer ({e:#}): key ages not checked"),
            );
            None
        }
    }
}

/// Keys in use longer than the rotation period, and rows sealed under keys no longer configured.
async fn key_ages(config: &Config, db: &Db, out: &mut Vec<Finding>) {
    let max = config.key_max_age_days;
    let limit = Timestamp::now().micros() - (max as i64) * 86_400 * 1_000_000;
    for ring in [Ring::Data, Ring::Signing] {
        let Ok(records) = log::list(db, ring).await else {
            warn(out, "the key log could not be read (run `imangor migrate`)");
            return;
        };
        for r in records.iter().filter(|r| r.retired_at.is_none()) {
            if r.superseded_at.is_none() && r.first_seen.micros() < limit {
                fail(
                    out,
                    format!(
                        "{} key {} has been in use since {}, beyond the rotation period of {max} days (IMANGOR_KEY_MAX_AGE_DAYS): rotate it",
                        ring.as_str(),
                        r.key_id,
                        r.first_seen.rfc3339()
                    ),
                );
            }
        }
    }
    // Imported Fernet values are bound to no row (one copied into another row still opens), and
    // the keys they name must stay in the keyring until they are resealed.
    match crate::service::keys::fernet_rows_by_key(db).await {
        Ok(rows) => {
            for (id, n) in rows {
                warn(
                    out,
                    format!(
                        "{n} imported Fernet values under key {id} are not yet bound to their rows, and key {id} must stay in IMANGOR_DATA_KEYS for them: run `imangor keys reencrypt`"
                    ),
                );
            }
        }
        Err(_) => warn(
            out,
            "the secrets could not be read for imported Fernet values",
        ),
    }
    if let (Some(_), Ok(rows)) = (
        &config.data_keys,
        crate::service::keys::rows_by_key(db).await,
    ) && let Ok(ring) = configured::data_keyring(config)
    {
        for (id, n) in rows {
            if !ring.ids().any(|k| k == id) {
                fail(
                    out,
                    format!(
                        "{n} secrets are sealed under key {id}, which is not in IMANGOR_DATA_KEYS: they cannot be read"
                    ),
                );
            }
        }
    }
}

/// How long the old stack's tokens have been accepted, and the accounts still on its bcrypt
/// hashes. Since when comes from the key log: the first `imangor migrate` or server start with
/// `IMANGOR_LEGACY_JWT_SECRET` records its key's id (a hash, never the key) as first seen.
async fn migration(config: &Config, db: &Db, out: &mut Vec<Finding>) {
    if let Some(legacy) = crate::auth::legacy::LegacyTokens::configured(config) {
        match log::list(db, Ring::Legacy).await {
            Ok(records) => {
                let limit = Timestamp::now().micros() - LEGACY_WINDOW_DAYS * 86_400 * 1_000_000;
                if let Some(r) = records
                    .iter()
                    .find(|r| r.key_id == legacy.kid() && r.first_seen.micros() < limit)
                {
                    warn(
                        out,
                        format!(
                            "IMANGOR_LEGACY_JWT_SECRET has been set since {}, more than {LEGACY_WINDOW_DAYS} days: the old stack's tokens have long expired; watch legacy_tokens_accepted_total stay at zero, then remove it",
                            r.first_seen.rfc3339()
                        ),
                    );
                }
            }
            Err(_) => warn(out, "the key log could not be read (run `imangor migrate`)"),
        }
    }
    match crate::db::users::count_bcrypt(db).await {
        Ok(0) => {}
        Ok(n) => warn(
            out,
            format!(
                "{n} account(s) still hold the bcrypt hashes they were imported with; each is rehashed to argon2id at its next login"
            ),
        ),
        Err(_) => warn(out, "the accounts could not be counted for bcrypt hashes"),
    }
}

/// How long the old stack's tokens may be accepted before `imangor doctor` says so.
pub const LEGACY_WINDOW_DAYS: i64 = 7;

/// Prints the findings; returns how many are unsafe for production.
pub fn report(findings: &[Finding]) -> usize {
    if findings.is_empty() {
        println!("OK    nothing unsafe found");
    }
    for f in findings {
        let tag = match f.level {
            Level::Fail => "FAIL",
            Level::Warn => "WARN",
        };
        println!("{tag}  {}", f.message);
    }
    findings.iter().filter(|f| f.level == Level::Fail).count()
}

/// The OAuth side of a deployment: the password grant (the client handles the user's password;
/// RFC 9700 §2.4 keeps it to first-party clients), the public URL the pages and metadata are
/// reached at, and an issuer that clients checking RFC 8414 can compare.
fn oauth(config: &Config, out: &mut Vec<Finding>) {
    if !config
        .mfa_required_roles
        .contains(&crate::domain::Role::Admin)
    {
        fail(
            out,
            "admins may sign in with a password alone: set IMANGOR_MFA_REQUIRED_ROLES to include admin (one stolen password would be the whole deployment)",
        );
    }
    if config.password_grant {
        warn(
            out,
            "IMANGOR_PASSWORD_GRANT is on: any client may send a user's password to the token endpoint; once every client uses the authorization code flow, set it to off (RFC 9700 2.4)",
        );
    }
    if !config.public_url.starts_with("https://") {
        // Plain http on a name (not a loopback address, nor localhost) is no redirect URI at all: the server
        // leaves the console's built-in client out, and the console cannot sign in.
        let console = match crate::service::oauth::console_redirect_uri(config) {
            Ok(_) => String::new(),
            Err(why) => format!(
                "; the console cannot sign in at all (its redirect URI {}/console is refused: {why})",
                config.public_url
            ),
        };
        warn(
            out,
            format!(
                "IMANGOR_PUBLIC_URL is {}: the sign-in pages, the OAuth metadata and the console's redirect URI are announced over plain http; set the https URL clients reach{console}",
                config.public_url
            ),
        );
    }
    if !config.jwt_issuer.starts_with("https://") {
        warn(
            out,
            format!(
                "the token issuer is {:?}, not an https URL: OAuth clients that compare the metadata's issuer (RFC 8414 3.3, RFC 9207) refuse it; set IMANGOR_PUBLIC_URL (which becomes the issuer) or IMANGOR_JWT_ISSUER; tokens issued under the old issuer stop verifying, so do it when their lifetime ({} s) can pass",
                config.jwt_issuer, config.access_token_ttl
            ),
        );
    }
}
