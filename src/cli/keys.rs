//! `imangor keys`: the data keyring (add, promote, re-encrypt, retire) and the signing keyring
//! (rotate, retire), each operation recorded in the audit trail. The store alone is opened, and
//! only by the operations that read it or record one.

use std::time::{Duration, Instant};

use clap::Subcommand;

use super::with_store;
use crate::auth::token::JWT_LEEWAY_S;
use crate::config::Config;
use crate::db::Db;
use crate::db::keys::{KeyRecord, Ring};
use crate::service::keys::{self, Written};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Both keyrings: each key's role, age, and the rows it seals.
    Status,
    /// Add a random data key, first: it encrypts new values once the servers restart.
    Add {
        /// Add it last instead, to decrypt only: with several replicas, roll the keyring out to
        /// every replica, then `keys promote` it, so no replica meets a value it cannot open.
        #[arg(long)]
        standby: bool,
    },
    /// Make a data key the one that encrypts (moves it first in the keyring).
    Promote { id: String },
    /// Rewrite every secret not sealed under the newest data key, in batches; safe while servers
    /// serve, and resumable.
    Reencrypt {
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
    /// Remove a key: a data key no row uses any more, or a signing key whose tokens have expired.
    Retire { id: String },
    /// Add a new signing key, first in the keyring; the others keep verifying until retired.
    RotateSigning {
        /// HS256 (a shared secret) or EdDSA (Ed25519; its public key is served at /.well-known/jwks.json).
        #[arg(long, default_value = "EdDSA")]
        alg: String,
    },
}

pub(super) async fn run(cmd: KeysCommand, config: Config) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Add { standby } => {
            let (id, written) = keys::add_data_key(&config, standby)?;
            let detail = format!("data key {id}{}", if standby { " (standby)" } else { "" });
            key_event(&config, "keys.add", detail).await?;
            eprintln!(
                "data key {id} added{}",
                if standby {
                    " (standby: decrypts only)"
                } else {
                    " (encrypts after the servers restart)"
                }
            );
            shown(written);
            Ok(())
        }
        KeysCommand::Promote { id } => {
            shown(keys::promote_data_key(&config, &id)?);
            key_event(&config, "keys.promote", format!("data key {id}")).await?;
            eprintln!("data key {id} encrypts after the servers restart");
            Ok(())
        }
        KeysCommand::RotateSigning { alg } => {
            let (id, written) = keys::rotate_signing(&config, &alg)?;
            let detail = format!("signing key {id} ({alg})");
            key_event(&config, "keys.rotate_signing", detail).await?;
            eprintln!(
                "signing key {id} ({alg}) added: it signs after the servers restart; retire the old one when its tokens have expired ({} s later)",
                config.access_token_ttl + JWT_LEEWAY_S
            );
            shown(written);
            Ok(())
        }
        KeysCommand::Status => {
            let (tokens, ring) = crate::state::open_keyrings(&config)?;
            with_store(&config, async |db| {
                let counts = keys::rows_by_key(db).await?;
                let data_log = crate::db::keys::list(db, Ring::Data).await?;
                let signing_log = crate::db::keys::list(db, Ring::Signing).await?;
                let since = |log: &[KeyRecord], id: &str| {
                    log.iter()
                        .find(|r| r.key_id == id)
                        .map(|r| r.first_seen.rfc3339())
                        .unwrap_or_default()
                };
                println!("data keys (newest first)");
                println!("  {:<28} {:<9} {:>10}  first seen", "id", "role", "rows");
                for (i, id) in ring.ids().enumerate() {
                    let rows = counts
                        .iter()
                        .find(|(k, _)| k == id)
                        .map(|(_, n)| *n)
                        .unwrap_or(0);
                    let role = if i == 0 { "encrypts" } else { "decrypts" };
                    println!("  {id:<28} {role:<9} {rows:>10}  {}", since(&data_log, id));
                }
                for (id, n) in counts.iter().filter(|(k, _)| !ring.ids().any(|i| i == k)) {
                    println!(
                        "  {id:<28} {:<9} {n:>10}  NOT IN THE KEYRING: these rows cannot be read",
                        "missing"
                    );
                }
                println!("signing keys (newest first)");
                println!("  {:<28} {:<6} {:<9} first seen", "kid", "alg", "role");
                for (i, (kid, alg)) in tokens.describe().into_iter().enumerate() {
                    let role = if i == 0 { "signs" } else { "verifies" };
                    println!(
                        "  {kid:<28} {alg:<6} {role:<9} {}",
                        since(&signing_log, kid)
                    );
                }
                Ok(())
            })
            .await
        }
        KeysCommand::Reencrypt { batch } => {
            let (_, ring) = crate::state::open_keyrings(&config)?;
            let done = with_store(&config, async |db| {
                let current = ring.current().to_owned();
                let started = Instant::now();
                let mut last_print = Instant::now() - Duration::from_secs(1);
                let done = keys::reencrypt(db, &ring, batch.clamp(1, 10_000), |n, total| {
                    if last_print.elapsed().as_millis() >= 200 {
                        last_print = Instant::now();
                        eprint!("\r{}", progress_line(n, total, started.elapsed()));
                    }
                })
                .await?;
                let n = done.resealed + done.skipped + done.failed + done.unmatched;
                eprintln!("\r{}", progress_line(n, n, started.elapsed()));
                println!(
                    "re-encrypted {} rows under key {} ({} left alone because they changed meanwhile, {} did not open, {} not rewritten) in {:.1} s",
                    done.resealed,
                    ring.current(),
                    done.skipped,
                    done.failed,
                    done.unmatched,
                    started.elapsed().as_secs_f64()
                );
                let detail = format!(
                    "{} rows resealed under {}, {} skipped, {} did not open, {} not rewritten",
                    done.resealed, current, done.skipped, done.failed, done.unmatched
                );
                record(db, "keys.reencrypt", detail).await?;
                Ok(done)
            })
            .await?;
            if done.unmatched > 0 {
                anyhow::bail!(
                    "{} rows opened but their reseal matched nothing: left as they are (see the log)",
                    done.unmatched
                );
            }
            if done.failed > 0 {
                anyhow::bail!(
                    "{} rows did not open: see the critical security events",
                    done.failed
                );
            }
            Ok(())
        }
        KeysCommand::Retire { id } => {
            with_store(&config, async |db| {
                let written = keys::retire(&config, db, &id).await?;
                record(db, "keys.retire", format!("key {id}")).await?;
                eprintln!("key {id} retired");
                shown(written);
                Ok(())
            })
            .await
        }
    }
}

/// Tells the operator where a changed keyring went; a keyring set by a variable is printed.
fn shown(written: Written) {
    match written {
        Written::File(p) => eprintln!("keyring written to {}", p.display()),
        Written::Variable { var, value } => {
            eprintln!(
                "the keyring is set by {var}, which this command cannot change: store this new value (a secret) in {var} or, better, in a file named by {var}_FILE, then restart the servers"
            );
            println!("{}", value.as_str());
        }
    }
}

/// Records an operator's key operation in the audit trail, on the store alone.
async fn key_event(config: &Config, action: &'static str, detail: String) -> anyhow::Result<()> {
    with_store(config, async |db| record(db, action, detail).await).await
}

async fn record(db: &Db, action: &'static str, detail: String) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    crate::service::audit::Event::new(action, "success")
        .actor("operator")
        .detail(detail)
        .record(&mut tx, &crate::service::audit::RequestMeta::default())
        .await?;
    tx.commit().await.quiet()?;
    Ok(())
}

/// `[#########...........]  4500/10000  45%  2250 rows/s`
fn progress_line(n: u64, total: u64, elapsed: Duration) -> String {
    let total = total.max(n).max(1);
    let filled = (n * 30 / total) as usize;
    format!(
        "[{}{}] {n:>9}/{total}  {:>3}%  {:.0} rows/s",
        "#".repeat(filled),
        ".".repeat(30 - filled),
        n * 100 / total,
        n as f64 / elapsed.as_secs_f64().max(0.001)
    )
}
