//! The keyrings a configuration names: the data keyring and the signing keyring, each with where
//! it came from (`config::Source`), so that `imangor keys` can write it back. In development a
//! keyring that is not configured is generated once and kept in the data dir (0600); production
//! refuses to start without its keys, and refuses keys that development generated (they were
//! written to disk in the clear).

use std::path::Path;

use anyhow::bail;

use super::data::DataKeyring;
use super::files::write_private;
use super::keyring;
use crate::config::{Config, Secret, Source, read_secret_file};
use crate::domain::key::check_jwt_secret;

/// Development keyrings generated in the data dir, by setting.
pub const DEV_SIGNING_KEYS: &str = "jwt-keys";
pub const DEV_DATA_KEYS: &str = "data-keys";

/// A keyring's text and source: the configured one, or in development one generated once and
/// kept in the data dir (0600): one random 32-byte key, its id made from `id_prefix`, with `alg`
/// for a signing keyring. Production never reaches the generation branch.
fn keyring_text(
    config: &Config,
    configured: Option<(Secret, Source)>,
    dev_file: &str,
    id_prefix: &str,
    alg: Option<&str>,
) -> anyhow::Result<(Secret, Source)> {
    let with_alg = alg.is_some();
    let generated = config.data_dir.join(dev_file);
    if let Some((text, source)) = configured {
        // Development keys were written to disk in the clear: never production keys.
        if config.is_production() && shares_a_key(text.expose(), &generated, with_alg) {
            bail!(
                "{}: a key is one that development generated in {}: make new keys for production",
                source.describe(),
                generated.display()
            );
        }
        return Ok((text, source));
    }
    if config.is_production() {
        bail!("{dev_file}: keys are required in production");
    }
    if !generated.exists() {
        let entry = keyring::Entry {
            id: keyring::new_id(id_prefix)?,
            alg: alg.map(str::to_owned),
            key: super::random_key(32)?,
        };
        write_private(&generated, keyring::render(&[entry], "\n").as_bytes())?;
        tracing::warn!(
            path = %generated.display(),
            "DEVELOPMENT MODE: generated keys and kept them in the data dir; never use them in production"
        );
    }
    Ok((
        Secret::new(read_secret_file(&generated)?),
        Source::Generated(generated),
    ))
}

/// True when the keyring `text` holds a key of the development keyring file `dev`.
fn shares_a_key(text: &str, dev: &Path, with_alg: bool) -> bool {
    let (Ok(dev), Ok(ours)) = (
        read_secret_file(dev).and_then(|d| keyring::parse(&d, "", with_alg)),
        keyring::parse(text, "", with_alg),
    ) else {
        return false;
    };
    ours.iter().any(|k| dev.iter().any(|d| d.key == k.key))
}

/// The data keyring's text and where it lives.
pub fn data_keys(config: &Config) -> anyhow::Result<(Secret, Source)> {
    keyring_text(config, config.data_keys.clone(), DEV_DATA_KEYS, "d", None)
}

/// The data keyring's entries and where they live.
pub fn data_entries(config: &Config) -> anyhow::Result<(Vec<keyring::Entry>, Source)> {
    let (text, source) = data_keys(config)?;
    Ok((
        keyring::parse(text.expose(), "IMANGOR_DATA_KEYS", false)?,
        source,
    ))
}

/// The data keyring this configuration encrypts with.
pub fn data_keyring(config: &Config) -> anyhow::Result<DataKeyring> {
    DataKeyring::new(data_entries(config)?.0)
}

/// The signing keyring's entries and where they live. A bare `IMANGOR_JWT_SECRET` is a keyring
/// of one HS256 key whose `kid` is derived from it.
pub fn signing_keys(config: &Config) -> anyhow::Result<(Vec<keyring::Entry>, Source)> {
    const VAR: &str = "IMANGOR_JWT_KEYS";
    if let Some(s) = &config.jwt_secret {
        check_jwt_secret(s.expose().as_bytes()).map_err(anyhow::Error::msg)?;
        let key = s.expose().as_bytes();
        let dev = config.data_dir.join(DEV_SIGNING_KEYS);
        if config.is_production()
            && shares_a_key(&format!("x:HS256:{}", keyring::encode_b64(key)), &dev, true)
        {
            bail!(
                "IMANGOR_JWT_SECRET is the development key generated in {}: make a new one for production",
                dev.display()
            );
        }
        let entry = keyring::Entry {
            id: keyring::derived_kid(key),
            alg: Some("HS256".into()),
            key: zeroize::Zeroizing::new(key.to_vec()),
        };
        return Ok((vec![entry], Source::Variable("IMANGOR_JWT_SECRET")));
    }
    let (text, source) = keyring_text(
        config,
        config.jwt_keys.clone(),
        DEV_SIGNING_KEYS,
        "hs",
        Some("HS256"),
    )?;
    Ok((keyring::parse(text.expose(), VAR, true)?, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawSettings;

    fn raw(vars: &[(&str, &str)]) -> RawSettings {
        RawSettings::gather(
            None,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap()
    }

    #[test]
    fn production_refuses_the_generated_development_keys_v13_3_1() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let dev = Config::from_raw(&raw(&[("IMANGOR_DATA_DIR", &d)])).unwrap();
        signing_keys(&dev).unwrap();
        data_keys(&dev).unwrap();
        let signing = std::fs::read_to_string(dir.path().join(DEV_SIGNING_KEYS)).unwrap();
        let data = std::fs::read_to_string(dir.path().join(DEV_DATA_KEYS)).unwrap();
        let prod = |extra: &[(&str, &str)]| {
            let mut v = vec![
                ("IMANGOR_ENV", "production"),
                ("IMANGOR_DATA_DIR", d.as_str()),
                ("IMANGOR_DATABASE_URL", "sqlite://x.db"),
            ];
            v.extend_from_slice(extra);
            Config::from_raw(&raw(&v)).unwrap()
        };
        let good_data = format!("p1:{}", keyring::encode_b64(&(0..32).collect::<Vec<u8>>()));
        let c = prod(&[
            ("IMANGOR_JWT_KEYS", signing.trim()),
            ("IMANGOR_DATA_KEYS", &good_data),
        ]);
        let err = signing_keys(&c).unwrap_err().to_string();
        assert!(err.contains("development generated"), "{err}");
        assert!(
            !err.contains(signing.trim()),
            "the key itself is not printed"
        );
        assert!(data_keys(&c).is_ok());
        let c = prod(&[
            ("IMANGOR_JWT_SECRET", "0123456789abcdefghijklmnopqrstuvwxyz"),
            ("IMANGOR_DATA_KEYS", data.trim()),
        ]);
        let err = data_keys(&c).unwrap_err().to_string();
        assert!(err.contains("development generated"), "{err}");
    }
}
