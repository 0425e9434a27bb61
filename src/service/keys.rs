//! Key rotation, for `imangor keys`: the data keyring (add, re-encrypt, retire) and the signing
//! keyring (rotate, retire). Keyrings are read and written where the configuration keeps them;
//! a keyring given in a variable cannot be changed from here, so its new value is handed back
//! for the operator to store. Running servers pick a changed keyring up when they restart.

use std::path::PathBuf;

use anyhow::{Context, bail};
use zeroize::Zeroizing;

use crate::auth::legacy::LegacyTokens;
use crate::auth::token::{self, JWT_LEEWAY_S, TokenKeys};
use crate::config::{Config, Source};
use crate::crypto::configured::{self, data_entries};
use crate::crypto::data::DataKeyring;
use crate::crypto::keyring::{self, Entry};
use crate::db::keys::{self as log, Ring};
use crate::db::{Db, secrets};
use crate::domain::Timestamp;

/// Where a changed keyring went.
pub enum Written {
    File(PathBuf),
    /// The keyring came from a variable: this is its new value, to be stored by the operator.
    Variable {
        var: &'static str,
        value: Zeroizing<String>,
    },
}

fn write_back(source: &Source, entries: &[Entry]) -> anyhow::Result<Written> {
    match source {
        Source::File(p) | Source::Generated(p) => {
            keyring::write_file(p, &keyring::render(entries, "\n"))?;
            Ok(Written::File(p.clone()))
        }
        Source::Variable(var) => Ok(Written::Variable {
            // A bare JWT secret becomes a keyring: the secret keeps verifying under its derived kid.
            var: if *var == "IMANGOR_JWT_SECRET" {
                "IMANGOR_JWT_KEYS"
            } else {
                var
            },
            value: keyring::render(entries, ","),
        }),
    }
}

/// Records both keyrings in the key log (first seen, superseded), at start-up and after a change,
/// and the old stack's key while its tokens are accepted: `imangor doctor` reads since when.
pub async fn observe(
    db: &Db,
    data: &DataKeyring,
    signing: &TokenKeys,
    legacy: Option<&LegacyTokens>,
) -> sqlx::Result<()> {
    let now = Timestamp::now();
    let ids: Vec<&str> = data.ids().collect();
    log::observe(db, Ring::Data, &ids, now).await?;
    let kids: Vec<&str> = signing.describe().into_iter().map(|(k, _)| k).collect();
    log::observe(db, Ring::Signing, &kids, now).await?;
    match legacy {
        Some(l) => log::observe(db, Ring::Legacy, &[l.kid()], now).await,
        None => Ok(()),
    }
}

/// Adds a new random data key: first (it encrypts from the next start), or last with `standby`
/// (it only decrypts; with several replicas, roll it out everywhere first, then make it first).
pub fn add_data_key(config: &Config, standby: bool) -> anyhow::Result<(String, Written)> {
    let (mut entries, source) = data_entries(config)?;
    let entry = Entry {
        id: keyring::new_id("d")?,
        alg: None,
        key: crate::crypto::random_key(crate::crypto::data::KEY_LEN)?,
    };
    let id = entry.id.clone();
    if standby {
        entries.push(entry);
    } else {
        entries.insert(0, entry);
    }
    DataKeyring::new(keyring::parse(
        &keyring::render(&entries, ","),
        "IMANGOR_DATA_KEYS",
        false,
    )?)?;
    Ok((id, write_back(&source, &entries)?))
}

/// Moves a data key first in its keyring.
pub fn promote_data_key(config: &Config, id: &str) -> anyhow::Result<Written> {
    let (mut entries, source) = data_entries(config)?;
    let Some(pos) = entries.iter().position(|e| e.id == id) else {
        bail!("no data key has the id {id}");
    };
    let entry = entries.remove(pos);
    entries.insert(0, entry);
    write_back(&source, &entries)
}

/// Adds a new signing key first in the keyring; the others keep verifying until retired.
pub fn rotate_signing(config: &Config, alg: &str) -> anyhow::Result<(String, Written)> {
    let (mut entries, source) = configured::signing_keys(config)?;
    let key = match alg {
        "HS256" => crate::crypto::random_key(32)?,
        "EdDSA" => token::generate_ed25519()?,
        other => bail!("--alg {other}: one of {}", token::ALGORITHMS.join(", ")),
    };
    let prefix = if alg == "EdDSA" { "ed" } else { "hs" };
    let entry = Entry {
        id: keyring::new_id(prefix)?,
        alg: Some(alg.to_owned()),
        key,
    };
    let id = entry.id.clone();
    entries.insert(0, entry);
    Ok((id, write_back(&source, &entries)?))
}

/// Rows sealed under each key id, and the ids of keys that seal, for `keys status` and `retire`.
pub async fn rows_by_key(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    let mut tx = db.begin().await?;
    let counts = secrets::count_by_key(&mut tx).await?;
    tx.commit().await.quiet()?;
    Ok(counts)
}

/// Imported Fernet values not yet resealed, per key id they name.
pub async fn fernet_rows_by_key(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    let mut tx = db.begin().await?;
    let counts = secrets::fernet_by_key(&mut tx).await?;
    tx.commit().await.quiet()?;
    Ok(counts)
}

/// Removes a key from its keyring. A data key is refused while any row still uses it (run
/// `keys reencrypt`), or while it is the key that encrypts. A signing key is refused while it
/// signs, or until the access tokens it signed have expired.
pub async fn retire(config: &Config, db: &Db, id: &str) -> anyhow::Result<Written> {
    let now = Timestamp::now();
    let (mut data, data_source) = data_entries(config)?;
    if let Some(pos) = data.iter().position(|e| e.id == id) {
        if pos == 0 {
            bail!(
                "data key {id} is the key that encrypts: add a new key (`imangor keys add`), restart, re-encrypt, then retire it"
            );
        }
        let rows = rows_by_key(db)
            .await?
            .into_iter()
            .find(|(k, _)| k == id)
            .map(|(_, n)| n)
            .unwrap_or(0);
        if rows > 0 {
            bail!("data key {id} still seals {rows} rows: run `imangor keys reencrypt` first");
        }
        // Servers that have not restarted since `keys add` still seal new values with it.
        let superseded = log::list(db, Ring::Data)
            .await?
            .into_iter()
            .any(|r| r.key_id == id && r.superseded_at.is_some());
        if !superseded {
            bail!(
                "data key {id}: no server has started with the newer key yet, so new values may still be sealed with it; restart the servers, run `imangor keys reencrypt`, then retire it"
            );
        }
        let ring = DataKeyring::new(keyring::parse(
            &keyring::render(&data, ","),
            "IMANGOR_DATA_KEYS",
            false,
        )?)?;
        crate::service::audit::check::resign_checkpoints(db, &ring, id).await?;
        data.remove(pos);
        let written = write_back(&data_source, &data)?;
        log::retire(db, Ring::Data, id, now).await?;
        return Ok(written);
    }
    let (mut signing, signing_source) = configured::signing_keys(config)?;
    let Some(pos) = signing.iter().position(|e| e.id == id) else {
        bail!("no data key or signing key has the id {id}");
    };
    if pos == 0 {
        bail!(
            "signing key {id} is the key that signs: rotate first (`imangor keys rotate-signing`)"
        );
    }
    let overlap = config.access_token_ttl + JWT_LEEWAY_S;
    let superseded = log::list(db, Ring::Signing)
        .await?
        .into_iter()
        .find(|r| r.key_id == id)
        .and_then(|r| r.superseded_at);
    match superseded {
        Some(t) if t.plus_seconds(overlap) <= now => {}
        Some(t) => bail!(
            "signing key {id} stopped signing at {}: tokens it signed stay valid until {}; retire it after that",
            t.rfc3339(),
            t.plus_seconds(overlap).rfc3339()
        ),
        None => bail!(
            "signing key {id}: no server has started with the newer key yet, so tokens it signs may be issued still; restart the servers, wait {overlap} s, then retire it"
        ),
    }
    signing.remove(pos);
    let written = write_back(&signing_source, &signing)?;
    log::retire(db, Ring::Signing, id, now).await?;
    Ok(written)
}

/// What a re-encryption did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reencrypted {
    /// Rows now sealed under the newest key.
    pub resealed: u64,
    /// Rows deleted or rewritten by someone else while this ran (left as they are).
    pub skipped: u64,
    /// Rows that did not open (recorded as critical events; left as they are).
    pub failed: u64,
    /// Rows that opened and still hold the value read, yet whose update matched nothing (a stored
    /// form the comparison missed): an error, each logged; left as they are.
    pub unmatched: u64,
}

/// Rewrites every row not sealed under the newest key, in batches of `batch` rows, one short
/// transaction each, in id order. Safe while servers serve: a row is only replaced if it is still
/// what was read. Resumable: a killed run leaves every row readable, and the next run starts
/// over with the rows still under old keys (rows created meanwhile have later ids and are met
/// later in the same pass).
pub async fn reencrypt(
    db: &Db,
    ring: &DataKeyring,
    batch: u32,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<Reencrypted> {
    let current = ring.current().to_owned();
    let total: u64 = rows_by_key(db)
        .await?
        .iter()
        .filter(|(k, _)| *k != current)
        .map(|(_, n)| *n as u64)
        .sum();
    let mut done = Reencrypted::default();
    let mut after = String::new();
    let meta = super::audit::RequestMeta::default();
    loop {
        let mut tx = db.begin_write().await?;
        let rows = secrets::not_under(&mut tx, &current, &after, batch).await?;
        let Some(last) = rows.last() else {
            tx.commit().await.quiet()?;
            break;
        };
        after = last.id.to_string();
        let mut failed = Vec::new();
        for row in &rows {
            let aad = secrets::binding(row.owner_id, row.id);
            match ring.open(&row.key_id, &row.ciphertext, &aad) {
                Ok(plain) => {
                    let sealed = ring.seal(&plain, &aad)?;
                    match secrets::reseal(&mut tx, row, &sealed).await? {
                        secrets::Resealed::Done => done.resealed += 1,
                        secrets::Resealed::Changed => done.skipped += 1,
                        secrets::Resealed::Unmatched => {
                            done.unmatched += 1;
                            tracing::error!(
                                secret = %row.id,
                                "the row still holds the value read, but its reseal matched nothing; left as it is"
                            );
                        }
                    }
                }
                Err(_) => failed.push(row.clone()),
            }
        }
        tx.commit().await.quiet().context("committing a batch")?;
        for row in &failed {
            done.failed += 1;
            // Records the critical event; the row stays as it is for investigation.
            let _ = super::secrets::open(db, ring, row, None, &meta).await;
        }
        progress(
            done.resealed + done.skipped + done.failed + done.unmatched,
            total.max(done.resealed),
        );
    }
    // The TOTP secrets under the same keyring (one per account: one transaction).
    let mut tx = db.begin_write().await?;
    for (user, row) in crate::db::mfa::not_under(&mut tx, &current).await? {
        let aad = crate::db::mfa::binding(user);
        match ring.open(&row.key_id, &row.secret, &aad) {
            Ok(plain) => {
                let sealed = ring.seal(&plain, &aad)?;
                if crate::db::mfa::reseal(&mut tx, user, &row, &sealed).await? {
                    done.resealed += 1;
                } else {
                    done.skipped += 1;
                }
            }
            Err(e) => {
                done.failed += 1;
                tracing::error!(user = %user, error = %e, "a TOTP secret did not open; left as it is");
            }
        }
    }
    tx.commit()
        .await
        .quiet()
        .context("committing the TOTP secrets")?;
    Ok(done)
}
