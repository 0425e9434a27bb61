//! Configuration: the raw settings (`raw`: an optional TOML file, then `IMANGOR_*` environment
//! variables, which win; every secret may be given as `X_FILE`), typed and checked here into a
//! `Config`, with what production refuses to start with (`production`). Secrets live in
//! `Secret`, whose `Debug` is redacted. `Config::from_raw` fails fast, naming the variable at fault.

mod production;
mod raw;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::net::{self, Cidr, ClientIpHeader, Hops};
use crate::domain::{Email, LoginPolicy, PasswordPolicy, Quota, Role};

pub use raw::{RawSettings, Source, read_secret_file};

/// A secret value: never printed by `Debug`, zeroed when dropped.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(SecretString::from(s))
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Open,
    AdminOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Automatic containment, per detector.
#[derive(Debug, Clone, Copy)]
pub struct Containment {
    /// Seconds an address doing credential stuffing is blocked (0: not blocked).
    pub stuffing_block_s: u64,
    /// Refresh-token reuse revokes every session of the user, not only the reused family.
    pub reuse_revokes_all: bool,
}

/// Every setting the server runs with, typed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub env: Environment,
    pub listen: SocketAddr,
    /// The Prometheus scrape listener; `None` when set to `off`.
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; `None` means the SQLite file in the data dir.
    pub database_url: Option<Secret>,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    /// Shared state of the replicas (`redis://` or `rediss://`); `None`: this process only.
    pub redis_url: Option<Secret>,
    /// The operator says the network to PostgreSQL and Redis is trusted (a NetworkPolicy, a
    /// private link): production then accepts links that are not verified TLS (ASVS V12.3.1).
    pub allow_plaintext_backends: bool,
    /// Put before every Redis key and channel, so that several deployments can share a server.
    pub redis_prefix: String,
    pub jwt_secret: Option<Secret>,
    /// The signing keyring `KID:ALG:BASE64,...` (newest first), and where it came from.
    pub jwt_keys: Option<(Secret, Source)>,
    /// The HS256 key of the Python stack imangor replaced (`SECRET_KEY`): while set, that stack's
    /// access tokens are accepted for the accounts imported from it (`auth::legacy`).
    pub legacy_jwt_secret: Option<Secret>,
    /// The data keyring `ID:BASE64,...` (newest first), and where it came from.
    pub data_keys: Option<(Secret, Source)>,
    /// Keys older than this are reported by `imangor doctor` (rotation period).
    pub key_max_age_days: u64,
    /// Where incidents at or above `alert_min_level` are posted (HMAC-signed with the secret).
    pub alert_webhook_url: Option<Secret>,
    pub alert_webhook_secret: Option<Secret>,
    /// IMANGOR_DRILL_KEY: with it, a request signed by `imangor drill` (`crypto::drill`) is drill
    /// traffic, given an address of the drill range; without it the drill header is ignored.
    pub drill_key: Option<Secret>,
    pub alert_min_level: crate::domain::incident::Level,
    /// Alerts waiting for the webhook, at most; past it an alert is dropped and counted.
    pub alert_queue: usize,
    /// Automatic containment per detector.
    pub containment: Containment,
    /// Days after its resolution in which a detector's new incident of the same (kind, subject)
    /// is a recurrence of it (0: never).
    pub incident_recurrence_days: u64,
    /// `iss` of the tokens and `issuer` of the OAuth metadata (the two always agree):
    /// IMANGOR_JWT_ISSUER, else IMANGOR_PUBLIC_URL when set, else `imangor`.
    pub jwt_issuer: String,
    /// The external base URL, no trailing slash: the OAuth endpoints and sign-in pages as
    /// clients reach them (IMANGOR_PUBLIC_URL, default `http://` + the listen address).
    pub public_url: String,
    /// The WebAuthn relying party id passkeys are scoped to: IMANGOR_WEBAUTHN_RP_ID, else the
    /// public URL's host. Browsers report the public URL's origin in every answer.
    pub webauthn_rp_id: String,
    /// The OAuth2 password grant (the guide's first-party flow) is accepted.
    pub password_grant: bool,
    /// Roles that must have a second factor (IMANGOR_MFA_REQUIRED_ROLES): without one, an
    /// account of such a role signs in only to enrol one.
    pub mfa_required_roles: Vec<Role>,
    pub jwt_audience: String,
    pub access_token_ttl: u64,
    pub refresh_token_ttl: u64,
    pub session_max_age: u64,
    /// How long the state behind an access token is cached, seconds (0: not cached).
    pub auth_cache_ttl: Duration,
    pub bootstrap_admin_email: Option<String>,
    pub bootstrap_admin_password: Option<Secret>,
    pub registration: Registration,
    pub password_policy: PasswordPolicy,
    pub hash_concurrency: usize,
    pub hash_queue: usize,
    /// How long the hashing queue stays idle before the hashing threads' kept argon2 memory
    /// (19 MiB each) is returned to the system; zero: none is kept, each hash allocates its own.
    pub hash_idle_release: Duration,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    /// `false` only for benchmarks (`IMANGOR_RATE_LIMITS=off`); refused in production.
    pub rate_limits: bool,
    /// SQLite's hot single-statement reads run on the request's thread (`db::inline`); `off`
    /// sends them through sqlx's connection threads (`IMANGOR_SQLITE_INLINE_READS`).
    pub sqlite_inline_reads: bool,
    /// Per client (user, or address when anonymous), for every API call / the token endpoint / registration.
    pub rate_limit_api: Quota,
    pub rate_limit_token: Quota,
    pub rate_limit_register: Quota,
    /// Incident reports per account (`POST /api/v1/incidents`), whatever the role.
    pub rate_limit_report: Quota,
    pub login: LoginPolicy,
    pub trusted_proxies: Vec<Cidr>,
    /// The one forwarding header believed from a trusted proxy.
    pub client_ip_header: ClientIpHeader,
    /// How far into that header: past every trusted hop (unset), or exactly N hops
    /// (`IMANGOR_TRUSTED_HOPS`).
    pub trusted_hops: Hops,
    /// Exact origins allowed to call from a browser; `*` means any (never with credentials in production).
    pub cors_origins: Vec<String>,
    pub cors_credentials: bool,
    /// Open connections served at once; more are closed on arrival.
    pub max_connections: usize,
    /// Connections one address may hold at once (a trusted proxy's own are not counted; its
    /// clients' requests in flight are, by forwarded address).
    pub max_connections_per_address: usize,
    /// Time a client has to send a request's headers (slowloris defence), counted from the
    /// moment the connection is ready for a request: it is also the idle keep-alive timeout.
    pub header_timeout: Duration,
    /// Resources and secrets one account may hold; the create past it is refused (403).
    pub quota_resources: u64,
    pub quota_secrets: u64,
    /// Time a client has to send a request's body once its headers are in.
    pub body_timeout: Duration,
    /// Time to write one response out to the client.
    pub write_timeout: Duration,
    /// When the audit sealer signs the chain's head.
    pub audit_checkpoints: CheckpointSchedule,
}

/// When the audit sealer signs the head of the chain: once `events` sealed rows follow the newest
/// checkpoint, or once that checkpoint is `every` old and a row follows it, whichever comes first
/// (and always when a server stops). At most `events` rows, none older than `every`, are unsigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSchedule {
    pub events: i64,
    pub every: Duration,
}

impl CheckpointSchedule {
    /// How old the newest checkpoint may be, with rows after it, before a check calls the tail
    /// stale: the schedule plus the time a late sealing pass may take (the interval, at most 10 s).
    pub fn stale_after(&self) -> Duration {
        self.every + self.every.min(Duration::from_secs(10))
    }
}

impl Config {
    /// Types and checks the raw settings. Production refuses unsafe or missing settings.
    pub fn from_raw(raw: &RawSettings) -> anyhow::Result<Config> {
        let env = match raw.get("env").unwrap_or("development") {
            "development" => Environment::Development,
            "production" => Environment::Production,
            other => bail!("IMANGOR_ENV: {other:?} is neither `development` nor `production`"),
        };
        let registration = match raw.get("registration").unwrap_or("open") {
            "open" => Registration::Open,
            "admin" => Registration::AdminOnly,
            other => bail!("IMANGOR_REGISTRATION: {other:?} is neither `open` nor `admin`"),
        };
        let log_format = match raw.get("log_format") {
            None if env == Environment::Production => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => bail!("IMANGOR_LOG_FORMAT: {other:?} is neither `json` nor `pretty`"),
        };
        let bootstrap_admin_email = match raw.get("bootstrap_admin_email") {
            Some(e) => Some(
                Email::parse(e)
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "IMANGOR_BOOTSTRAP_ADMIN_EMAIL: {e:?} is not a valid email address"
                        )
                    })?
                    .as_str()
                    .to_owned(),
            ),
            None => None,
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let min_chars = raw.parse("password_min_length", 8usize)?;
        if !(8..=64).contains(&min_chars) {
            bail!("IMANGOR_PASSWORD_MIN_LENGTH: {min_chars} is outside 8..=64");
        }
        let access_token_ttl = raw.seconds("access_token_ttl", 900, 1..=86_400)?;
        let refresh_token_ttl = raw.seconds("refresh_token_ttl", 1_209_600, 1..=31_536_000)?;
        let session_max_age = raw.seconds("session_max_age", 2_592_000, 1..=31_536_000)?;
        // The bound on how late a change reaches a replica that missed its announcement.
        let auth_cache_ttl = Duration::from_secs(raw.seconds("auth_cache_ttl", 1, 0..=60)?);
        if raw.get("jwt_secret").is_some() && raw.get("jwt_keys").is_some() {
            bail!(
                "IMANGOR_JWT_SECRET and IMANGOR_JWT_KEYS are both set: a keyring replaces the single secret, set only one"
            );
        }
        let listen: SocketAddr = raw.parse("listen", SocketAddr::from(([127, 0, 0, 1], 8000)))?;
        let public_url = raw.get("public_url").map(public_url).transpose()?;
        let config = Config {
            env,
            listen,
            metrics_listen: match raw.get("metrics_listen") {
                Some("off") => None,
                _ => Some(raw.parse("metrics_listen", SocketAddr::from(([127, 0, 0, 1], 9100)))?),
            },
            data_dir: PathBuf::from(raw.get("data_dir").unwrap_or("./data")),
            database_url: raw.get("database_url").map(|s| Secret::new(s.to_owned())),
            db_max_connections: raw.parse("db_max_connections", 10u32)?.clamp(1, 1000),
            db_acquire_timeout: Duration::from_secs(raw.seconds(
                "db_acquire_timeout",
                5,
                1..=300,
            )?),
            redis_url: match raw.get("redis_url") {
                Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {
                    Some(Secret::new(u.to_owned()))
                }
                Some(_) => bail!("IMANGOR_REDIS_URL must start with redis:// or rediss:// (TLS)"),
                None => None,
            },
            allow_plaintext_backends: raw.parse("allow_plaintext_backends", false)?,
            redis_prefix: match raw.get("redis_prefix").unwrap_or("imangor:") {
                p if !p.is_empty()
                    && p.len() <= 64
                    && p.bytes().all(|b| b.is_ascii_graphic() && b != b'*') =>
                {
                    p.to_owned()
                }
                other => bail!(
                    "IMANGOR_REDIS_PREFIX: {other:?} must be 1..64 printable characters without `*`"
                ),
            },
            jwt_secret: raw.get("jwt_secret").map(|s| Secret::new(s.to_owned())),
            legacy_jwt_secret: raw
                .get("legacy_jwt_secret")
                .map(|s| Secret::new(s.to_owned())),
            jwt_keys: raw
                .get("jwt_keys")
                .map(|s| (Secret::new(s.to_owned()), raw.source("jwt_keys"))),
            data_keys: raw
                .get("data_keys")
                .map(|s| (Secret::new(s.to_owned()), raw.source("data_keys"))),
            key_max_age_days: raw.seconds("key_max_age_days", 90, 1..=3650)?,
            alert_webhook_url: raw
                .get("alert_webhook_url")
                .map(|s| Secret::new(s.to_owned())),
            alert_webhook_secret: raw
                .get("alert_webhook_secret")
                .map(|s| Secret::new(s.to_owned())),
            drill_key: match raw.get("drill_key") {
                // Whoever holds it can mark traffic as drill: never a weak one, in any environment.
                Some(k) => {
                    crate::domain::key::check_hmac_secret("IMANGOR_DRILL_KEY", k.as_bytes())
                        .map_err(|e| anyhow::anyhow!(e))?;
                    Some(Secret::new(k.to_owned()))
                }
                None => None,
            },
            alert_min_level: match raw.get("alert_min_level").unwrap_or("high").parse() {
                Ok(l) => l,
                Err(crate::domain::vocabulary::Unknown { value: other, .. }) => bail!(
                    "IMANGOR_ALERT_MIN_LEVEL: {other:?} is not one of low, medium, high, critical"
                ),
            },
            alert_queue: raw.parse("alert_queue", 1024usize)?.clamp(1, 100_000),
            containment: Containment {
                stuffing_block_s: raw.seconds("contain_stuffing_block", 900, 0..=30 * 86_400)?,
                reuse_revokes_all: match raw.get("contain_refresh_reuse").unwrap_or("session") {
                    "session" => false,
                    "all" => true,
                    other => bail!(
                        "IMANGOR_CONTAIN_REFRESH_REUSE: {other:?} is neither `session` nor `all`"
                    ),
                },
            },
            incident_recurrence_days: raw.seconds("incident_recurrence_days", 30, 0..=3650)?,
            jwt_issuer: match (raw.get("jwt_issuer"), &public_url) {
                (Some(i), _) => i.to_owned(),
                (None, Some(u)) => u.clone(),
                (None, None) => "imangor".to_owned(),
            },
            webauthn_rp_id: rp_id(
                raw.get("webauthn_rp_id"),
                public_url.as_deref().unwrap_or(&format!("http://{listen}")),
            )?,
            public_url: public_url.unwrap_or_else(|| format!("http://{listen}")),
            mfa_required_roles: match raw.get("mfa_required_roles") {
                None => Vec::new(),
                Some(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(|r| {
                        Role::parse(r).ok_or_else(|| {
                            anyhow::anyhow!(
                                "IMANGOR_MFA_REQUIRED_ROLES: {r:?} is not one of admin, manager, user"
                            )
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            },
            password_grant: raw.on_off("password_grant", true)?,
            jwt_audience: raw.get("jwt_audience").unwrap_or("imangor-api").to_owned(),
            access_token_ttl,
            refresh_token_ttl,
            session_max_age,
            auth_cache_ttl,
            bootstrap_admin_email,
            bootstrap_admin_password: raw
                .get("bootstrap_admin_password")
                .map(|s| Secret::new(s.to_owned())),
            registration,
            password_policy: PasswordPolicy { min_chars },
            hash_concurrency: raw.parse("hash_concurrency", cores)?.clamp(1, 256),
            hash_queue: raw.parse("hash_queue", 256usize)?.clamp(1, 100_000),
            hash_idle_release: Duration::from_secs(raw.seconds(
                "hash_idle_release",
                30,
                0..=86_400,
            )?),
            request_timeout: Duration::from_secs(raw.seconds("request_timeout", 30, 1..=3600)?),
            shutdown_timeout: Duration::from_secs(raw.seconds("shutdown_timeout", 30, 0..=3600)?),
            log_format,
            rate_limits: raw.on_off("rate_limits", true)?,
            sqlite_inline_reads: raw.on_off("sqlite_inline_reads", true)?,
            rate_limit_api: raw.parse(
                "rate_limit_api",
                Quota {
                    n: 600,
                    per: Duration::from_secs(60),
                },
            )?,
            rate_limit_token: raw.parse(
                "rate_limit_token",
                Quota {
                    n: 20,
                    per: Duration::from_secs(60),
                },
            )?,
            rate_limit_register: raw.parse(
                "rate_limit_register",
                Quota {
                    n: 5,
                    per: Duration::from_secs(60),
                },
            )?,
            rate_limit_report: raw.parse(
                "rate_limit_report",
                Quota {
                    n: 10,
                    per: Duration::from_secs(3600),
                },
            )?,
            login: LoginPolicy {
                lock_after: raw.parse("login_lock_after", 5u32)?.clamp(1, 100),
                slow_after: raw.parse("login_slow_after", 10u32)?.clamp(1, 100),
                // NIST SP 800-63B: at most 100 consecutive failures.
                hard_cap: raw.parse("login_hard_cap", 100u32)?.clamp(1, 100),
                ..LoginPolicy::default()
            },
            trusted_proxies: net::parse_list(raw.get("trusted_proxies").unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("IMANGOR_TRUSTED_PROXIES: {e}"))?,
            client_ip_header: raw.parse("client_ip_header", ClientIpHeader::XForwardedFor)?,
            trusted_hops: match raw.get("trusted_hops") {
                None => Hops::Walk,
                Some(_) => Hops::Exactly(raw.seconds("trusted_hops", 1, 1..=16)? as usize),
            },
            cors_origins: cors_origins(raw.get("cors_origins").unwrap_or(""))?,
            cors_credentials: raw.parse("cors_credentials", false)?,
            max_connections: raw.parse("max_connections", 1024usize)?.clamp(1, 1_000_000),
            max_connections_per_address: raw
                .parse("max_connections_per_address", 64usize)?
                .clamp(1, 1_000_000),
            header_timeout: Duration::from_secs(raw.seconds("header_timeout", 10, 1..=300)?),
            quota_resources: raw.seconds("quota_resources", 10_000, 1..=100_000_000)?,
            quota_secrets: raw.seconds("quota_secrets", 1_000, 1..=100_000_000)?,
            body_timeout: Duration::from_secs(raw.seconds("body_timeout", 10, 1..=300)?),
            write_timeout: Duration::from_secs(raw.seconds("write_timeout", 10, 1..=300)?),
            audit_checkpoints: CheckpointSchedule {
                events: raw.seconds("audit_checkpoint_events", 1000, 1..=10_000)? as i64,
                every: Duration::from_secs(raw.seconds(
                    "audit_checkpoint_interval",
                    60,
                    1..=86_400,
                )?),
            },
        };
        config.check_production()?;
        Ok(config)
    }

    /// Types the settings without production's refusals, for `imangor doctor`, which reports them.
    pub fn from_raw_unchecked(raw: &RawSettings) -> anyhow::Result<Config> {
        let mut probe = raw.clone();
        let env = probe.remove("env");
        if let Some(other) = env
            .as_deref()
            .filter(|e| !["development", "production"].contains(e))
        {
            bail!("IMANGOR_ENV: {other:?} is neither `development` nor `production`");
        }
        let mut config = Config::from_raw(&probe)?;
        if env.as_deref() == Some("production") {
            config.env = Environment::Production;
            config.log_format = match raw.get("log_format") {
                Some("pretty") => LogFormat::Pretty,
                _ => LogFormat::Json,
            };
        }
        Ok(config)
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("imangor.db")
    }
}
/// `IMANGOR_CORS_ORIGINS`: comma-separated `scheme://host[:port]` origins, or `*`.
fn cors_origins(s: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for o in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let ok = o == "*"
            || ((o.starts_with("https://") || o.starts_with("http://"))
                && !o.ends_with('/')
                && o.split_once("://")
                    .is_some_and(|(_, h)| !h.is_empty() && !h.contains(['/', '*', ' '])));
        if !ok {
            bail!("IMANGOR_CORS_ORIGINS: {o:?} is not an origin like https://app.example.com");
        }
        out.push(o.to_owned());
    }
    Ok(out)
}

/// IMANGOR_PUBLIC_URL: an absolute `http` or `https` URL with a host and no query or fragment,
/// kept without its trailing `/` (paths are appended to it).
fn public_url(s: &str) -> anyhow::Result<String> {
    // The value is never echoed: it might hold credentials by mistake.
    let u = url::Url::parse(s)
        .map_err(|e| anyhow::anyhow!("IMANGOR_PUBLIC_URL is not an absolute URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https")
        || u.host().is_none()
        || u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        bail!(
            "IMANGOR_PUBLIC_URL must be an http or https URL with a host and no query, fragment, user or password"
        );
    }
    Ok(u.as_str().trim_end_matches('/').to_owned())
}

/// IMANGOR_WEBAUTHN_RP_ID: the public URL's host or a parent domain of it (WebAuthn §5.1.3: an
/// RP id must be a registrable suffix of the origin's host), lower case; default the host.
fn rp_id(set: Option<&str>, public_url: &str) -> anyhow::Result<String> {
    let host = url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .ok_or_else(|| anyhow::anyhow!("IMANGOR_PUBLIC_URL has no host"))?;
    let Some(id) = set else {
        return Ok(host);
    };
    let id = id.trim().to_ascii_lowercase();
    let well_formed = !id.is_empty()
        && id.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !well_formed || !(host == id || host.ends_with(&format!(".{id}"))) {
        bail!(
            "IMANGOR_WEBAUTHN_RP_ID must be the host of IMANGOR_PUBLIC_URL ({host}) or a domain it is under"
        );
    }
    Ok(id)
}

/// The origin browsers report for pages of the public URL (`scheme://host[:port]`).
pub fn public_origin(public_url: &str) -> String {
    url::Url::parse(public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webauthn_rp_id_is_the_public_host_or_a_domain_above_it() {
        assert_eq!(
            rp_id(None, "https://id.example.com/x").unwrap(),
            "id.example.com"
        );
        assert_eq!(
            rp_id(Some("Example.com"), "https://id.example.com").unwrap(),
            "example.com"
        );
        for bad in ["evil.com", "ample.com", "", "a..com", "id.example.com.evil"] {
            assert!(rp_id(Some(bad), "https://id.example.com").is_err(), "{bad}");
        }
        assert_eq!(
            public_origin("http://localhost:8123/base"),
            "http://localhost:8123"
        );
    }

    pub(super) fn raw(vars: &[(&str, &str)]) -> RawSettings {
        RawSettings::gather(
            None,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap()
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Config::from_raw(&raw(&[(
            "IMANGOR_JWT_SECRET",
            "s3cr3t-value-that-is-long-enough-0123456789",
        )]))
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_recurrence_window_is_30_days_unless_set_within_0_to_3650() {
        assert_eq!(
            Config::from_raw(&raw(&[]))
                .unwrap()
                .incident_recurrence_days,
            30
        );
        let set = |v: &str| Config::from_raw(&raw(&[("IMANGOR_INCIDENT_RECURRENCE_DAYS", v)]));
        assert_eq!(set("0").unwrap().incident_recurrence_days, 0);
        assert_eq!(set("3650").unwrap().incident_recurrence_days, 3650);
        let refused = set("3651").unwrap_err().to_string();
        assert!(
            refused.contains("IMANGOR_INCIDENT_RECURRENCE_DAYS"),
            "{refused}"
        );
        assert!(set("a month").is_err());
    }

    #[test]
    fn hashing_memory_is_released_after_30_idle_seconds_unless_set_within_0_to_a_day() {
        assert_eq!(
            Config::from_raw(&raw(&[])).unwrap().hash_idle_release,
            Duration::from_secs(30)
        );
        let set = |v: &str| Config::from_raw(&raw(&[("IMANGOR_HASH_IDLE_RELEASE", v)]));
        assert_eq!(set("0").unwrap().hash_idle_release, Duration::ZERO);
        assert_eq!(
            set("86400").unwrap().hash_idle_release,
            Duration::from_secs(86_400)
        );
        let refused = set("86401").unwrap_err().to_string();
        assert!(refused.contains("IMANGOR_HASH_IDLE_RELEASE"), "{refused}");
        assert!(set("soon").is_err());
    }

    #[test]
    fn a_public_url_with_credentials_is_refused_without_echoing_them() {
        assert_eq!(
            public_url("https://id.example.com/").unwrap(),
            "https://id.example.com"
        );
        for bad in [
            "https://:hunter2@id.example.com",
            "https://user@id.example.com",
            "https://id.example.com/?x=1",
            "ftp://id.example.com",
        ] {
            let e = public_url(bad).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
