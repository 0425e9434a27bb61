//! Secrets: values sealed by the data keyring before they reach the database, opened only for
//! their owner. A value that fails to open (altered, moved from another row, or sealed with a key
//! no longer in the keyring) is never shown: the caller gets a bare 500 and a critical security
//! event is recorded.

use super::audit::{Event, RequestMeta};
use crate::authz::{self, Action, Principal};
use crate::config::Config;
use crate::crypto::data::{DataKeyring, OpenError};
use crate::crypto::fernet;
use crate::db::secrets::{self, Resealed, SecretEntry, SecretRow, binding};
use crate::db::{Db, Tx};
use crate::domain::{SecretId, SecretName, SecretValue, Timestamp, UserId};
use crate::error::{AppError, Result};
use crate::service::context::{Sinks, Store};

#[tracing::instrument(skip_all, fields(user_id = %who.user_id()))]
pub async fn create(
    store: &Store,
    config: &Config,
    keys: &DataKeyring,
    who: &Principal,
    name: SecretName,
    value: SecretValue,
    meta: &RequestMeta,
) -> Result<SecretEntry> {
    let grant = authz::authorize_plain(Some(who), Action::SecretCreate)?;
    let id = SecretId::new();
    let sealed = keys.seal(value.expose().as_bytes(), &binding(who.user_id(), id))?;
    drop(value);
    let now = Timestamp::now();
    let mut tx =
        super::users::begin_create(store, config, who.user_id(), super::users::Owned::Secrets)
            .await?;
    secrets::insert(&mut tx, &grant, id, &name, &sealed, now).await?;
    Event::new("secret.create", "success")
        .actor(who.user_id())
        .target(format!("secret:{id}"))
        .detail(format!("key {}", sealed.key_id))
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(SecretEntry {
        id,
        name: name.as_str().to_owned(),
        created_at: now,
    })
}

/// The secret and its plaintext, for its owner only.
pub async fn read(
    store: &Store,
    sinks: &Sinks,
    keys: &DataKeyring,
    who: &Principal,
    id: SecretId,
    meta: &RequestMeta,
) -> Result<(SecretRow, SecretValue)> {
    let mut tx = store.db.begin().await?;
    let sealed = secrets::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    store.commit(tx).await?;
    let row = authz::authorize(Some(who), Action::SecretRead, sealed)?.into_object();
    let value = open(&store.db, keys, &row, Some(who.user_id()), meta).await?;
    // Every read of a plaintext is in the audit trail (written off the request path).
    Event::new("secret.read", "success")
        .actor(who.user_id())
        .target(format!("secret:{}", row.id))
        .emit(&sinks.events, meta)
        .await;
    Ok((row, value))
}

/// Opens a stored value; a failure is recorded as a critical event and answered as a bare 500.
/// `reader` is the account whose read this is (none for `keys reencrypt`).
pub async fn open(
    db: &Db,
    keys: &DataKeyring,
    row: &SecretRow,
    reader: Option<UserId>,
    meta: &RequestMeta,
) -> Result<SecretValue> {
    let aad = binding(row.owner_id, row.id);
    let fault = match keys.open(&row.key_id, &row.ciphertext, &aad) {
        Ok(bytes) => {
            if fernet::looks_like(&row.ciphertext) {
                reseal_imported(db, keys, row, reader, &bytes, &aad, meta).await;
            }
            match SecretValue::from_stored(bytes) {
                Some(v) => return Ok(v),
                None => "the opened value is not UTF-8".to_owned(),
            }
        }
        Err(e @ (OpenError::Tampered | OpenError::UnknownKey(_))) => e.to_string(),
    };
    let mut tx = db.begin().await?;
    Event::new("secret.decrypt", "failure")
        .critical()
        .target(format!("secret:{}", row.id))
        .detail(&fault)
        .record(&mut tx, meta)
        .await?;
    tx.commit().await.quiet()?;
    Err(AppError::Internal(anyhow::anyhow!(
        "secret {} did not open: {fault}",
        row.id
    )))
}

/// An imported Fernet value is bound to no row: the first read seals it under the newest key with
/// its row's binding, in a transaction that replaces it only if it is still the value read (a
/// concurrent `keys reencrypt` or delete wins). A failure leaves the value as it was, readable,
/// for `imangor keys reencrypt` to reseal; the read itself still answers.
async fn reseal_imported(
    db: &Db,
    keys: &DataKeyring,
    row: &SecretRow,
    reader: Option<UserId>,
    plain: &[u8],
    aad: &[u8],
    meta: &RequestMeta,
) {
    let resealed = async {
        let sealed = keys.seal(plain, aad)?;
        let mut tx = db.begin_write().await?;
        let done = secrets::reseal(&mut tx, row, &sealed).await?;
        if done == Resealed::Done {
            let mut event = Event::new("secret.reseal", "success")
                .warning()
                .target(format!("secret:{}", row.id))
                .detail(format!(
                    "imported Fernet value (key {}) sealed under key {}, bound to its row",
                    row.key_id, sealed.key_id
                ));
            if let Some(reader) = reader {
                event = event.actor(reader);
            }
            event.record(&mut tx, meta).await?;
        }
        tx.commit().await.quiet()?;
        anyhow::Ok(done)
    }
    .await;
    match resealed {
        Ok(Resealed::Done | Resealed::Changed) => {}
        Ok(Resealed::Unmatched) => tracing::warn!(
            secret = %row.id,
            "an imported Fernet value was not resealed: its row still holds it but the update matched nothing; `imangor keys reencrypt` reports it"
        ),
        Err(e) => tracing::warn!(
            secret = %row.id,
            error = %format!("{e:#}"),
            "resealing an imported Fernet value failed; `imangor keys reencrypt` reseals it"
        ),
    }
}

/// Deletes a secret: its owner, or an admin containing an incident (who never reads it).
#[tracing::instrument(skip_all, fields(user_id = %who.user_id(), secret = %id))]
pub async fn delete(
    store: &Store,
    who: &Principal,
    id: SecretId,
    meta: &RequestMeta,
) -> Result<()> {
    let mut tx = store.db.begin_write().await?;
    let sealed = secrets::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let target = authz::authorize(Some(who), Action::SecretDelete, sealed)?;
    secrets::delete(&mut tx, &target).await?;
    let mut e = Event::new("secret.delete", "success")
        .actor(who.user_id())
        .target(format!("secret:{id}"));
    if target.object().owner_id != who.user_id() {
        e = e.detail(format!(
            "deleted by an admin; owner {}",
            target.object().owner_id
        ));
    }
    e.record(&mut tx, meta).await?;
    store.commit(tx).await?;
    Ok(())
}

/// A page of the caller's own secrets, names only; `limit + 1` rows so the caller knows if more follow.
pub async fn list(
    store: &Store,
    who: &Principal,
    before: Option<SecretId>,
    limit: u32,
) -> Result<Vec<SecretEntry>> {
    let grant = authz::authorize_plain(Some(who), Action::SecretList)?;
    let mut tx: Tx = store.db.begin().await?;
    let rows = secrets::list(&mut tx, &grant, before, limit + 1).await?;
    store.commit(tx).await?;
    Ok(rows)
}
