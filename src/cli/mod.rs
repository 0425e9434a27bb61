//! The command line: clap's definitions, and the dispatch of each task to the file of its group.
//! `serve` is run by `main` (through `startup`); every other command is a task that opens only
//! what it needs (the store alone, `state::open_store`, unless it runs a use case), closes it and
//! exits.

mod audit;
mod clients;
mod contain;
mod drill;
mod evidence;
mod import;
mod incident;
mod keys;
mod review;
mod users;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, RawSettings};
use crate::db::Db;
use crate::state::AppState;

pub use audit::AuditCommand;
pub use clients::ClientCommand;
pub use contain::ContainCommand;
pub use evidence::EvidenceCommand;
pub use import::ImportCommand;
pub use incident::IncidentCommand;
pub use keys::KeysCommand;
pub use users::UserCommand;

#[derive(Parser, Debug)]
#[command(
    name = "imangor",
    version,
    about = "An API server built to the security guide"
)]
pub struct Cli {
    /// TOML configuration file; IMANGOR_* environment variables override it.
    #[arg(long, global = true, env = "IMANGOR_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API (IMANGOR_LISTEN).
    Serve,
    /// Check an evidence bundle offline: reads the file alone (no configuration, no database).
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    #[command(flatten)]
    Task(Task),
}

/// The commands that do one thing and exit.
#[derive(Subcommand, Debug)]
pub enum Task {
    /// Apply database migrations and exit.
    Migrate,
    /// Print the authorization policy as a Markdown table (docs/authorization.md).
    Policy,
    /// Manage accounts as the operator.
    #[command(subcommand)]
    User(UserCommand),
    /// Rotate the data keyring (encrypted values) and the signing keyring (access tokens).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// OAuth clients: register, list, rotate a secret, delete.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Containment as the operator: end a user's sessions, block an address or network.
    #[command(subcommand)]
    Contain(ContainCommand),
    /// The guide's permission review: admins, managers, dormant accounts and accounts never
    /// logged in, with their last login.
    AccessReview {
        /// table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
        /// An account not logged in for this many days is dormant.
        #[arg(long, default_value_t = 90)]
        dormant_days: u64,
    },
    /// Bring accounts, resources and secrets over from another deployment.
    #[command(subcommand)]
    Import(ImportCommand),
    /// The audit trail: check its chain, or export it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Runs every attack scenario against a running deployment and checks each step of the
    /// chain (detected, contained, alerted, audited, counted); exit 1 when one failed.
    Drill(drill::DrillArgs),
    /// One incident: write its evidence bundle.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Check the configuration as a security reviewer would: lists what is unsafe for
    /// production and exits 1 when anything is.
    Doctor {
        /// The servers run behind a reverse proxy or load balancer (assumed on Kubernetes).
        #[arg(long)]
        behind_proxy: bool,
        /// How many replicas serve the same data.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
    },
}

impl Cli {
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let raw = RawSettings::gather(self.config.as_deref(), std::env::vars())?;
        match self.command {
            // The doctor reports what production would refuse instead of refusing it.
            Command::Task(Task::Doctor { .. }) => Config::from_raw_unchecked(&raw),
            _ => Config::from_raw(&raw),
        }
    }
}

/// Runs one task (`serve` is `main`'s).
pub async fn run(task: Task, config: Config) -> anyhow::Result<()> {
    match task {
        Task::Policy => {
            print!("{}", crate::authz::policy::markdown());
            Ok(())
        }
        Task::Migrate => {
            // Migrating is a deployment step: it records the keyrings the servers will use.
            let (tokens, keys) = crate::state::open_keyrings(&config)?;
            let legacy = crate::auth::legacy::LegacyTokens::configured(&config);
            with_store(&config, async |db| {
                crate::service::keys::observe(db, &keys, &tokens, legacy.as_ref())
                    .await
                    .context("recording the keyrings in the key log")
            })
            .await?;
            println!("migrations applied");
            Ok(())
        }
        Task::Doctor {
            behind_proxy,
            replicas,
        } => {
            let deployment = crate::doctor::Deployment {
                behind_proxy: behind_proxy || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
                replicas,
            };
            let findings = crate::doctor::examine(&config, deployment).await;
            match crate::doctor::report(&findings) {
                0 => Ok(()),
                n => anyhow::bail!("{n} findings are unsafe for production"),
            }
        }
        Task::User(cmd) => users::run(cmd, config).await,
        Task::Keys(cmd) => keys::run(cmd, config).await,
        Task::Client(cmd) => clients::run(cmd, config).await,
        Task::Contain(cmd) => contain::run(cmd, config).await,
        Task::AccessReview {
            format,
            dormant_days,
        } => review::run(&config, &format, dormant_days).await,
        Task::Audit(cmd) => audit::run(cmd, &config).await,
        Task::Incident(cmd) => incident::run(cmd, &config).await,
        Task::Import(cmd) => import::run(cmd, config).await,
        Task::Drill(args) => drill::run(args, config).await,
    }
}

/// Runs a command that reads no configuration (`evidence verify`: the file alone).
pub fn run_offline(cmd: EvidenceCommand) -> anyhow::Result<()> {
    evidence::run(cmd)
}

/// Runs `task` on the store alone (connected and migrated), then closes it, failed or not.
async fn with_store<T>(
    config: &Config,
    task: impl AsyncFnOnce(&Db) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let db = crate::state::open_store(config).await?;
    let result = task(&db).await;
    db.close().await;
    result
}

/// Runs `task` on the whole state, for the use cases that take it, then closes the store.
async fn with_state<T>(
    config: Config,
    task: impl AsyncFnOnce(&AppState) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    // The jobs (the event writer, the alert sender) run until the command ends.
    let (app, _jobs) = crate::state::open(config).await?;
    let result = task(&app).await;
    app.store.db.close().await;
    result
}

/// An error as the operator reads it: its message alone (a refused value, a use case's answer).
fn shown(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
