//! What production refuses to start with: missing or weak keys, the benchmark switch, a wildcard
//! origin with credentials, and links to PostgreSQL or Redis that leave the host without verified
//! TLS. Each refusal names its variable; `imangor doctor` lists them all.

use super::{Config, Environment};
use crate::domain::key::{check_hmac_secret, check_jwt_secret};

impl Config {
    pub(super) fn check_production(&self) -> anyhow::Result<()> {
        if self.env != Environment::Production {
            return Ok(());
        }
        match self.refusals().into_iter().next() {
            Some(why) => Err(anyhow::anyhow!(why)),
            None => Ok(()),
        }
    }

    /// The settings production refuses to start with, each named by its variable. Production
    /// stops at the first; `imangor doctor` lists them all.
    pub fn refusals(&self) -> Vec<String> {
        let mut out = Vec::new();
        match (&self.jwt_secret, &self.jwt_keys) {
            (None, None) => out.push(
                "IMANGOR_JWT_SECRET or IMANGOR_JWT_KEYS (or their _FILE) is required in production"
                    .to_owned(),
            ),
            (Some(s), _) => {
                if let Err(e) = check_jwt_secret(s.expose().as_bytes()) {
                    out.push(e);
                }
            }
            (None, Some(_)) => {}
        }
        if let Some(legacy) = &self.legacy_jwt_secret {
            if let Err(e) =
                check_hmac_secret("IMANGOR_LEGACY_JWT_SECRET", legacy.expose().as_bytes())
            {
                out.push(e);
            }
            if self
                .jwt_secret
                .as_ref()
                .is_some_and(|s| s.expose() == legacy.expose())
            {
                out.push("IMANGOR_LEGACY_JWT_SECRET is IMANGOR_JWT_SECRET: the old stack's key must not sign imangor's tokens; give imangor a new one".into());
            }
        }
        if self.data_keys.is_none() {
            out.push(
                "IMANGOR_DATA_KEYS (or IMANGOR_DATA_KEYS_FILE) is required in production".into(),
            );
        }
        if self.database_url.is_none() {
            out.push(
                "IMANGOR_DATABASE_URL is required in production: say where the data lives".into(),
            );
        }
        if !self.rate_limits {
            out.push(
                "IMANGOR_RATE_LIMITS=off is for benchmarks only and is refused in production"
                    .into(),
            );
        }
        if self.cors_credentials && self.cors_origins.iter().any(|o| o == "*") {
            out.push("IMANGOR_CORS_ORIGINS=* with IMANGOR_CORS_CREDENTIALS=true is refused in production: list the origins".into());
        }
        if !self.allow_plaintext_backends {
            for link in self.plaintext_links() {
                out.push(format!(
                    "{link}: refused in production; use verified TLS, or set IMANGOR_ALLOW_PLAINTEXT_BACKENDS=true where the network to it is trusted (ASVS V12.3.1)"
                ));
            }
        }
        out
    }

    /// The links to PostgreSQL and Redis that leave this host without verified TLS, each named by
    /// its variable, host and why (never the URL: it may hold a password). A link to a loopback
    /// address or a Unix socket stays on the host and is not listed.
    pub fn plaintext_links(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(url) = &self.database_url
            && let Some(link) = postgres_link(url.expose())
        {
            out.push(link);
        }
        if let Some(url) = &self.redis_url
            && let Some(link) = redis_link(url.expose())
        {
            out.push(link);
        }
        out
    }
}

/// True for a host name that stays on this machine: `localhost`, a loopback address, or a path
/// (a Unix socket).
fn is_local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.is_empty()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A PostgreSQL URL that reaches another host without `sslmode=verify-full`: what is wrong with
/// it, without the URL itself. `None` for SQLite, a local link, or verified TLS.
///
/// `verify-ca` is refused too: sqlx (rustls) starts its trust store from the public web CAs and
/// adds `sslrootcert` to them, and verify-ca skips the host name check, so any public certificate
/// for any domain would be accepted in the database's place.
fn postgres_link(url: &str) -> Option<String> {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return None;
    }
    // A URL that does not parse is reported when connecting, naming the variable.
    let opts: PgConnectOptions = url.parse().ok()?;
    if opts.get_socket().is_some() || is_local_host(opts.get_host()) {
        return None;
    }
    let mode = match opts.get_ssl_mode() {
        PgSslMode::VerifyFull => return None,
        PgSslMode::VerifyCa => {
            "verify-ca, which does not check the host name, and the public web CAs are trusted beside sslrootcert: any public certificate for any domain would pass"
        }
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer (the default)",
        PgSslMode::Require => "require (encrypted, but the server is not verified)",
    };
    Some(format!(
        "IMANGOR_DATABASE_URL: the link to PostgreSQL at {}:{} is not verified TLS (sslmode={mode}; verify-full is needed)",
        opts.get_host(),
        opts.get_port()
    ))
}

/// A Redis URL that reaches another host without verified TLS (`rediss://`, never `#insecure`).
fn redis_link(url: &str) -> Option<String> {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    let info = url.into_connection_info().ok()?;
    let (host, port, why) = match info.addr() {
        ConnectionAddr::Tcp(host, port) => {
            (host, *port, "redis:// is plaintext; rediss:// is needed")
        }
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: true,
            ..
        } => (
            host,
            *port,
            "rediss://...#insecure does not verify the server",
        ),
        _ => return None,
    };
    if is_local_host(host) {
        return None;
    }
    Some(format!(
        "IMANGOR_REDIS_URL: the link to Redis at {host}:{port} is not verified TLS ({why})"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Hops;
    use super::super::tests::raw;
    use super::*;

    #[test]
    fn production_refuses_missing_short_or_predictable_secrets() {
        let base = [
            ("IMANGOR_ENV", "production"),
            ("IMANGOR_DATABASE_URL", "sqlite://x.db"),
            (
                "IMANGOR_DATA_KEYS",
                "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
        ];
        let err = Config::from_raw(&raw(&base)).unwrap_err().to_string();
        assert!(err.contains("IMANGOR_JWT_SECRET"), "{err}");
        let no_data_keys = [
            base[0],
            base[1],
            ("IMANGOR_JWT_SECRET", "0123456789abcdefghijklmnopqrstuvwxyz"),
        ];
        let err = Config::from_raw(&raw(&no_data_keys))
            .unwrap_err()
            .to_string();
        assert!(err.contains("IMANGOR_DATA_KEYS"), "{err}");
        for weak in ["short", "changemechangemechangemechangeme", &"a".repeat(64)] {
            let mut v = base.to_vec();
            v.push(("IMANGOR_JWT_SECRET", weak));
            assert!(Config::from_raw(&raw(&v)).is_err(), "{weak}");
        }
    }

    #[test]
    fn production_refuses_rate_limits_off_and_wildcard_cors_with_credentials() {
        let base = [
            ("IMANGOR_ENV", "production"),
            ("IMANGOR_DATABASE_URL", "sqlite://x.db"),
            ("IMANGOR_JWT_SECRET", "0123456789abcdefghijklmnopqrstuvwxyz"),
            (
                "IMANGOR_DATA_KEYS",
                "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
        ];
        assert!(Config::from_raw(&raw(&base)).is_ok());
        for extra in [
            [("IMANGOR_RATE_LIMITS", "off")].as_slice(),
            &[
                ("IMANGOR_CORS_ORIGINS", "*"),
                ("IMANGOR_CORS_CREDENTIALS", "true"),
            ],
        ] {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            let err = Config::from_raw(&raw(&v)).unwrap_err().to_string();
            assert!(err.contains(extra[0].0), "{err}");
        }
        // Outside production the benchmark switch is accepted.
        assert!(
            !Config::from_raw(&raw(&[("IMANGOR_RATE_LIMITS", "off")]))
                .unwrap()
                .rate_limits
        );
        assert!(Config::from_raw(&raw(&[("IMANGOR_CORS_ORIGINS", "https://a.example/")])).is_err());
        assert!(Config::from_raw(&raw(&[("IMANGOR_TRUSTED_PROXIES", "10.0.0.0/99")])).is_err());
        let err = Config::from_raw(&raw(&[("IMANGOR_CLIENT_IP_HEADER", "x-client-ip")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("IMANGOR_CLIENT_IP_HEADER:"), "{err}");
        let hops = |v: &str| Config::from_raw(&raw(&[("IMANGOR_TRUSTED_HOPS", v)]));
        assert_eq!(hops("2").unwrap().trusted_hops, Hops::Exactly(2));
        for bad in ["0", "17", "x"] {
            let err = hops(bad).unwrap_err().to_string();
            assert!(err.starts_with("IMANGOR_TRUSTED_HOPS:"), "{err}");
        }
        assert_eq!(
            Config::from_raw(&raw(&[])).unwrap().trusted_hops,
            Hops::Walk
        );
    }
}
