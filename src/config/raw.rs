//! Raw settings: an optional TOML file, then `IMANGOR_*` environment variables, which win. Every
//! secret may be given as `X_FILE` (a path whose content is the value). Nothing is typed here
//! but the helpers `Config::from_raw` types each value with, naming its variable in errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Where a keyring was read from, so that `imangor keys` can write it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An environment variable (or a TOML value): printed for the operator, never written.
    Variable(&'static str),
    /// A file named by `*_FILE`.
    File(PathBuf),
    /// Generated in the data dir by development mode.
    Generated(PathBuf),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Variable(v) => v.to_string(),
            Source::File(p) => format!("file {}", p.display()),
            Source::Generated(p) => format!("development key file {}", p.display()),
        }
    }
}

struct Key {
    name: &'static str,
    secret: bool,
}

const fn k(name: &'static str) -> Key {
    Key {
        name,
        secret: false,
    }
}
const fn s(name: &'static str) -> Key {
    Key { name, secret: true }
}

/// The settings of the operator contract, as TOML keys; the variable is `IMANGOR_` + upper case.
const KEYS: &[Key] = &[
    k("env"),
    k("listen"),
    k("metrics_listen"),
    k("data_dir"),
    s("database_url"),
    k("db_max_connections"),
    k("db_acquire_timeout"),
    s("redis_url"),
    k("redis_prefix"),
    k("allow_plaintext_backends"),
    s("jwt_secret"),
    s("jwt_keys"),
    s("legacy_jwt_secret"),
    s("data_keys"),
    k("key_max_age_days"),
    s("alert_webhook_url"),
    s("alert_webhook_secret"),
    s("drill_key"),
    k("alert_min_level"),
    k("alert_queue"),
    k("contain_stuffing_block"),
    k("contain_refresh_reuse"),
    k("incident_recurrence_days"),
    k("jwt_issuer"),
    k("jwt_audience"),
    k("public_url"),
    k("webauthn_rp_id"),
    k("password_grant"),
    k("mfa_required_roles"),
    k("access_token_ttl"),
    k("refresh_token_ttl"),
    k("session_max_age"),
    k("auth_cache_ttl"),
    k("bootstrap_admin_email"),
    s("bootstrap_admin_password"),
    k("registration"),
    k("password_min_length"),
    k("hash_concurrency"),
    k("hash_queue"),
    k("hash_idle_release"),
    k("request_timeout"),
    k("shutdown_timeout"),
    k("log_format"),
    k("rate_limits"),
    k("sqlite_inline_reads"),
    k("rate_limit_api"),
    k("rate_limit_token"),
    k("rate_limit_register"),
    k("rate_limit_report"),
    k("login_lock_after"),
    k("login_slow_after"),
    k("login_hard_cap"),
    k("trusted_proxies"),
    k("client_ip_header"),
    k("trusted_hops"),
    k("cors_origins"),
    k("cors_credentials"),
    k("max_connections"),
    k("max_connections_per_address"),
    k("header_timeout"),
    k("quota_resources"),
    k("quota_secrets"),
    k("body_timeout"),
    k("write_timeout"),
    k("audit_checkpoint_events"),
    k("audit_checkpoint_interval"),
];

/// Raw settings by key, before typing. Holds secrets too, so `Debug` is not derived. Remembers
/// which secrets came from files, so that `imangor keys` can write a keyring back where it was.
#[derive(Default, Clone)]
pub struct RawSettings(
    BTreeMap<&'static str, String>,
    BTreeMap<&'static str, PathBuf>,
);

impl RawSettings {
    /// Reads the TOML file (if any), then the environment (`vars`), which wins.
    pub fn gather(
        file: Option<&Path>,
        vars: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut raw = RawSettings::default();
        if let Some(path) = file {
            raw.read_toml(path)?;
        }
        let vars: BTreeMap<String, String> =
            vars.filter(|(k, _)| k.starts_with("IMANGOR_")).collect();
        for key in KEYS {
            let var = var(key.name);
            let file_var = format!("{var}_FILE");
            match (
                vars.get(&var),
                key.secret.then(|| vars.get(&file_var)).flatten(),
            ) {
                (Some(_), Some(_)) => bail!("{var} and {file_var} are both set: set only one"),
                (Some(v), None) => {
                    raw.0.insert(key.name, v.clone());
                }
                (None, Some(path)) => {
                    raw.0.insert(
                        key.name,
                        read_secret_file(Path::new(path)).with_context(|| file_var.to_string())?,
                    );
                    raw.1.insert(key.name, PathBuf::from(path));
                }
                (None, None) => {}
            }
        }
        Ok(raw)
    }

    fn read_toml(&mut self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        for (name, value) in table {
            let (key, from_file) = match KEYS.iter().find(|k| k.name == name) {
                Some(k) => (k, false),
                None => match name
                    .strip_suffix("_file")
                    .and_then(|n| KEYS.iter().find(|k| k.secret && k.name == n))
                {
                    Some(k) => (k, true),
                    None => bail!("config file {}: unknown setting `{name}`", path.display()),
                },
            };
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => bail!(
                    "config file {}: `{name}` must be a string or a number, not {}",
                    path.display(),
                    other.type_str()
                ),
            };
            let text = if from_file {
                self.1.insert(key.name, PathBuf::from(&text));
                read_secret_file(Path::new(&text)).with_context(|| name.clone())?
            } else {
                text
            };
            self.0.insert(key.name, text);
        }
        Ok(())
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        if let Some(k) = KEYS.iter().find(|k| k.name == key) {
            self.0.insert(k.name, value.into());
        }
    }

    /// Takes a setting out (`Config::from_raw_unchecked` types the rest without it).
    pub(super) fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Where a keyring setting came from: its file, or the variable.
    pub(super) fn source(&self, key: &'static str) -> Source {
        match self.1.get(key) {
            Some(p) => Source::File(p.clone()),
            None => Source::Variable(match key {
                "data_keys" => "IMANGOR_DATA_KEYS",
                "jwt_keys" => "IMANGOR_JWT_KEYS",
                _ => "IMANGOR_JWT_SECRET",
            }),
        }
    }

    /// A setting's value; an empty one counts as unset.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A switch: `on` or `off`, or `default` when unset.
    pub(super) fn on_off(&self, key: &str, default: bool) -> anyhow::Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some("on") => Ok(true),
            Some("off") => Ok(false),
            Some(other) => bail!("{}: {other:?} is neither `on` nor `off`", var(key)),
        }
    }

    /// A setting parsed with `FromStr`, or `default` when unset.
    pub(super) fn parse<T: std::str::FromStr>(&self, key: &str, default: T) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: invalid value {v:?}: {e}", var(key))),
        }
    }

    /// A whole number (seconds, or a count) within `range`, or `default` when unset.
    pub(super) fn seconds(
        &self,
        key: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> anyhow::Result<u64> {
        let v = self.parse(key, default)?;
        if !range.contains(&v) {
            bail!(
                "{}: {v} is outside {}..={}",
                var(key),
                range.start(),
                range.end()
            );
        }
        Ok(v)
    }
}

/// A secret file's content, without the line end editors and `echo` add.
pub fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("reading secret file {}", path.display()))?;
    // Files written by editors and `echo` end with a newline that is not part of the secret.
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}

/// The variable of a setting: `IMANGOR_` + its key in upper case.
fn var(key: &str) -> String {
    format!("IMANGOR_{}", key.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_a_variable_and_its_file_is_an_error() {
        let r = RawSettings::gather(
            None,
            [
                ("IMANGOR_JWT_SECRET", "x"),
                ("IMANGOR_JWT_SECRET_FILE", "/nonexistent"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert!(r.is_err());
    }
}
