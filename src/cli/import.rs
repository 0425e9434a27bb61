//! `imangor import`: moving in from another deployment. The use case is `service::import`; this
//! file reads the files named on the command line, shows progress and prints the report.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;

use super::with_store;
use crate::config::Config;
use crate::db::imports::Source;
use crate::service::import::{Mapping, Options, Report};

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// From a deployment of the guide's Python stack (FastAPI, SQLAlchemy, passlib bcrypt,
    /// Fernet): accounts keep their passwords, resources their owners and visibility, secrets
    /// their values. A re-run skips what was imported; an interrupted run resumes.
    PythonStack {
        /// The source database, read only: sqlite://PATH or postgres://...
        #[arg(long)]
        source: String,
        /// A file holding the source's FERNET_KEY (urlsafe base64 of 32 bytes); never stored.
        #[arg(long)]
        fernet_key_file: PathBuf,
        /// A TOML file naming the source's tables and columns where they differ from the guide's.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Read and check everything, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Import into a database that has accounts: a source account whose email exists is
        /// mapped to that account, which keeps its password.
        #[arg(long)]
        merge: bool,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

pub(super) async fn run(cmd: ImportCommand, config: Config) -> anyhow::Result<()> {
    let ImportCommand::PythonStack {
        source,
        fernet_key_file,
        mapping,
        dry_run,
        merge,
        report,
    } = cmd;
    let key_text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&fernet_key_file)
            .with_context(|| format!("reading {}", fernet_key_file.display()))?,
    );
    let fernet_key = crate::crypto::keyring::decode_b64(&key_text)
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} does not hold a Fernet key (urlsafe base64 of 32 bytes)",
                fernet_key_file.display()
            )
        })?;
    let mapping = match &mapping {
        Some(path) => Mapping::parse(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?,
        None => Mapping::default(),
    };
    let options = Options {
        dry_run,
        merge,
        fernet_key,
        mapping,
    };
    let (_, keys) = crate::state::open_keyrings(&config)?;
    let source = Source::open(&source).await?;
    let mut progress = Progress::new();
    let result = with_store(&config, async |db| {
        crate::service::import::python_stack(db, &keys, &source, &options, &mut |t, n, total| {
            progress.tick(t, n, total)
        })
        .await
    })
    .await;
    source.close().await;
    let done = result?;
    print_report(&done);
    if let Some(path) = report {
        let json = serde_json::to_vec_pretty(&done).context("writing the report as JSON")?;
        // It names accounts and what was skipped of them: readable by its owner only (0600).
        crate::crypto::files::replace_private(&path, &json)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn print_report(r: &Report) {
    if r.dry_run {
        println!("dry run: nothing was written");
    }
    for (name, t) in r.tables() {
        println!(
            "{name} (source table {}): read {}, imported {}, merged {}, already imported {}, skipped {}",
            t.source_table,
            t.read,
            t.imported,
            t.merged,
            t.already_imported,
            t.skipped.len()
        );
        for s in &t.skipped {
            println!("  skipped {name} {}: {}", s.source_id, s.reason);
        }
    }
}

/// Progress on stderr: a line rewritten in place on a terminal, otherwise a line per table at
/// most once a second (and when a table is done), which a log keeps readable.
struct Progress {
    terminal: bool,
    table: String,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            table: String::new(),
            started: Instant::now(),
            last: None,
        }
    }

    fn tick(&mut self, table: &str, done: u64, total: u64) {
        if table != self.table {
            self.table = table.to_owned();
            self.started = Instant::now();
            self.last = None;
        }
        let finished = done >= total;
        let now = Instant::now();
        if !finished && self.last.is_some_and(|l| now - l < Duration::from_secs(1)) {
            return;
        }
        self.last = Some(now);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            format!("{:.0} s", total.saturating_sub(done) as f64 / rate)
        } else {
            "?".to_owned()
        };
        let line = format!("{table}: {done}/{total} rows, {rate:.0} rows/s, ETA {eta}");
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}{}", if finished { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
    }
}
