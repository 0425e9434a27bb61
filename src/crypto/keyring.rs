//! The text form of a keyring, as an operator writes it: comma- (or newline-) separated entries,
//! newest first. Data keys are `ID:BASE64`, signing keys `ID:ALG:BASE64`. The first entry is the
//! one that encrypts or signs; every entry decrypts or verifies.
//!
//! A keyring comes from a variable, a file (`*_FILE`), or in development a file generated in the
//! data dir. `imangor keys` rewrites files in place (atomically, 0600) and prints the new value of
//! a variable for the operator to store, since it cannot change the environment of a deployment.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use crate::domain::key::{Weakness, weakness};

const MAX_ID_LEN: usize = 40;

/// One key of a keyring. Its bytes are zeroed when dropped; `Debug` shows the id only.
pub struct Entry {
    pub id: String,
    /// Signing keyrings name the algorithm; data keyrings have none.
    pub alg: Option<String>,
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry({}, [REDACTED])", self.id)
    }
}

pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Base64 in either alphabet (standard, or URL-safe as Fernet keys are), padded or not.
pub fn decode_b64(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [
        GeneralPurpose::new(&alphabet::URL_SAFE, cfg),
        GeneralPurpose::new(&alphabet::STANDARD, cfg),
    ]
    .iter()
    .find_map(|e| e.decode(s.trim()).ok())
    .map(Zeroizing::new)
}

pub fn encode_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Parses a keyring; `var` names it in errors (never its content).
pub fn parse(text: &str, var: &str, with_alg: bool) -> anyhow::Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    for (n, item) in text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let what = if with_alg {
            "ID:ALG:BASE64"
        } else {
            "ID:BASE64"
        };
        let mut parts = item.splitn(if with_alg { 3 } else { 2 }, ':');
        let id = parts.next().unwrap_or_default();
        let alg = if with_alg { parts.next() } else { None };
        let Some(b64) = parts.next() else {
            bail!("{var}: entry {} is not {what}", n + 1);
        };
        if !valid_id(id) {
            bail!(
                "{var}: entry {}: a key id is 1..={MAX_ID_LEN} of A-Z a-z 0-9 . _ -",
                n + 1
            );
        }
        if out.iter().any(|e| e.id == id) {
            bail!("{var}: key id {id} appears twice");
        }
        let Some(key) = decode_b64(b64) else {
            bail!("{var}: key {id} is not base64");
        };
        out.push(Entry {
            id: id.to_owned(),
            alg: alg.map(str::to_owned),
            key,
        });
    }
    if out.is_empty() {
        bail!("{var} holds no key");
    }
    Ok(out)
}

/// The text form of `entries`, one per line (files) — the same text parses from a variable.
pub fn render(entries: &[Entry], separator: &str) -> Zeroizing<String> {
    let items: Vec<Zeroizing<String>> = entries
        .iter()
        .map(|e| {
            Zeroizing::new(match &e.alg {
                Some(a) => format!("{}:{a}:{}", e.id, encode_b64(&e.key)),
                None => format!("{}:{}", e.id, encode_b64(&e.key)),
            })
        })
        .collect();
    let mut s = Zeroizing::new(String::new());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push_str(separator);
        }
        s.push_str(item);
    }
    s
}

/// A fresh key id: `PREFIX-YYYYMMDD-XXXXXX`, dated so that an operator sees its age at a glance.
pub fn new_id(prefix: &str) -> anyhow::Result<String> {
    let today = time::OffsetDateTime::now_utc().date();
    let rand = crate::crypto::random_key(3)?;
    let hex = crate::crypto::hex(&rand);
    Ok(format!(
        "{prefix}-{:04}{:02}{:02}-{hex}",
        today.year(),
        u8::from(today.month()),
        today.day()
    ))
}

/// Rules for any secret key (`domain::key`), naming the key in the error.
pub fn check_strength(var: &str, id: &str, key: &[u8], min_len: usize) -> anyhow::Result<()> {
    match weakness(key, min_len) {
        None => Ok(()),
        Some(Weakness::Short { len }) => {
            bail!("{var}: key {id} must be at least {min_len} bytes (it has {len})")
        }
        Some(Weakness::Predictable { distinct }) => bail!(
            "{var}: key {id} is too predictable (only {distinct} distinct bytes): use random bytes"
        ),
    }
}

/// The key id of a bare `IMANGOR_JWT_SECRET`: a hash of the key, which reveals nothing about it.
pub fn derived_kid(key: &[u8]) -> String {
    let text = format!(
        "imangor-kid:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    format!("hs-{}", &super::hex(digest.as_ref())[..16])
}

/// Replaces a keyring file atomically: a private temporary file beside it, synced, then renamed.
pub fn write_file(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("keys")
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("writing {} (is it on a read-only volume?)", tmp.display()))?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyrings_parse_in_both_alphabets_and_refuse_duplicates() {
        let k = encode_b64(&[0xfb; 32]);
        let url = k.replace('+', "-").replace('/', "_");
        let ring = parse(&format!("a:{k},\n b:{url}"), "X", false).unwrap();
        assert_eq!(ring.len(), 2);
        assert_eq!(&ring[1].key[..], &[0xfb; 32]);
        assert!(parse(&format!("a:{k},a:{k}"), "X", false).is_err());
        assert!(parse("a", "X", false).is_err());
        assert!(parse("", "X", false).is_err());
        assert!(parse(&format!("../x:{k}"), "X", false).is_err());
        let signing = parse(&format!("s1:HS256:{k}"), "X", true).unwrap();
        assert_eq!(signing[0].alg.as_deref(), Some("HS256"));
        let text = render(&ring, ",");
        assert_eq!(parse(&text, "X", false).unwrap()[0].id, "a");
    }

    #[test]
    fn errors_name_the_key_but_never_show_it() {
        let err = parse("a:!!!notbase64secret", "IMANGOR_DATA_KEYS", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("IMANGOR_DATA_KEYS") && !err.contains("notbase64secret"));
        assert!(
            format!(
                "{:?}",
                parse(&format!("a:{}", encode_b64(&[1; 32])), "X", false).unwrap()
            )
            .contains("REDACTED")
        );
    }

    #[test]
    fn a_bare_secret_keeps_its_derived_kid() {
        // The key log and issued tokens name it: it must never change.
        assert_eq!(
            derived_kid(&(0..32).collect::<Vec<u8>>()),
            "hs-af016a4348ed5c3a"
        );
    }

    #[test]
    fn weak_keys_are_refused() {
        assert!(check_strength("X", "a", &[1; 32], 32).is_err());
        assert!(check_strength("X", "a", b"short", 32).is_err());
        let good: Vec<u8> = (0..32).collect();
        assert!(check_strength("X", "a", &good, 32).is_ok());
    }
}
