//! `imangor audit`: check the trail's chain and its signed checkpoints, or export it. Both read
//! the store alone: no Redis, no hashing pool.

use clap::Subcommand;

use super::with_store;
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the hash chain and its signed checkpoints; report the first edited, deleted or
    /// reordered row and exit 1 if there is one.
    Verify,
    /// Write the sealed trail as JSON Lines on stdout, oldest first, for a SIEM.
    Export {
        /// Only rows after this sequence number (resume where the last export stopped).
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

pub(super) async fn run(cmd: AuditCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify => {
            // The checkpoints are signed with the data keys.
            let (_, keys) = crate::state::open_keyrings(config)?;
            with_store(config, async |db| {
                let r = crate::service::audit::check::verify(db, &keys, config.audit_checkpoints).await?;
                println!(
                    "{} rows and {} signed checkpoints checked; {} rows after the newest checkpoint; {} rows not sealed yet",
                    r.rows, r.checkpoints, r.unsigned, r.unsealed
                );
                match r.first_problem {
                    None => {
                        println!("the audit trail is intact");
                        Ok(())
                    }
                    Some(p) => {
                        println!("BROKEN at row {} ({}): {}", p.seq, p.kind, p.message);
                        Err(anyhow::anyhow!("the audit trail was tampered with"))
                    }
                }
            })
            .await
        }
        AuditCommand::Export { after } => {
            with_store(config, async |db| {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                let n = crate::service::audit::page::export(db, after, &mut out).await?;
                std::io::Write::flush(&mut out)?;
                eprintln!("{n} rows exported");
                Ok(())
            })
            .await
        }
    }
}
