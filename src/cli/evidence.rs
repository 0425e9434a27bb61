//! `imangor evidence verify FILE`: checks an evidence bundle offline. It reads the file and
//! nothing else: no configuration, no database, no key but those in the bundle (or the set
//! given with `--keys`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::service::audit::evidence;

#[derive(Subcommand, Debug)]
pub enum EvidenceCommand {
    /// Check an evidence bundle: the manifest and its signature, every event's hash and link,
    /// the checkpoints' signatures and that they cover the events. Exits 1 naming each change.
    Verify {
        /// The bundle (`imangor incident evidence`, or the console's download).
        file: PathBuf,
        /// A key set to trust instead of the bundle's own keys: a copy of the deployment's
        /// `/.well-known/imangor-audit-keys`.
        #[arg(long)]
        keys: Option<PathBuf>,
    },
}

/// Runs an offline command (no configuration is read for it).
pub fn run(cmd: EvidenceCommand) -> anyhow::Result<()> {
    match cmd {
        EvidenceCommand::Verify { file, keys } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let pinned = keys
                .map(|k| std::fs::read(&k).with_context(|| format!("reading {}", k.display())))
                .transpose()?;
            let report = evidence::verify(&bytes, pinned.as_deref());
            for line in &report.about {
                println!("{line}");
            }
            for line in &report.checked {
                println!("checked: {line}");
            }
            if report.changes.is_empty() {
                println!("the evidence bundle is intact");
                return Ok(());
            }
            for change in &report.changes {
                println!("CHANGED: {change}");
            }
            anyhow::bail!(
                "the evidence bundle was changed ({} findings)",
                report.changes.len()
            )
        }
    }
}
