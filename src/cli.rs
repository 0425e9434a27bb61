//! The command line: `serve`, `migrate`, and operator commands on accounts.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, RawSettings};
use crate::domain::{Email, FullName, Password, Role};
use crate::service::users::{NewAccount, operator};
use crate::startup::{self, App};

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
    /// Apply database migrations and exit.
    Migrate,
    /// Print the authorization policy as a Markdown table (docs/authorization.md).
    Policy,
    /// Manage accounts as the operator.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. The password is read from the first line of stdin with --password-stdin,
    /// otherwise generated and printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        full_name: String,
        #[arg(long, default_value = "user")]
        role: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an account's role (admin, manager, user).
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Disable an account and end all its sessions.
    Disable {
        #[arg(long)]
        email: String,
    },
}

impl Cli {
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let raw = RawSettings::gather(self.config.as_deref(), std::env::vars())?;
        Config::from_raw(&raw)
    }
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let app = App::build(config).await?;
            app.run(startup::shutdown_signal()).await
        }
        Command::Policy => {
            print!("{}", crate::authz::policy::markdown());
            Ok(())
        }
        Command::Migrate => {
            startup::state(config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(cmd) => {
            let app = startup::state(config).await?;
            let shown = |e: crate::error::AppError| anyhow::anyhow!("{e}");
            let user = match cmd {
                UserCommand::Create {
                    email,
                    full_name,
                    role,
                    password_stdin,
                } => {
                    let role = parse_role(&role)?;
                    let (password, generated) = if password_stdin {
                        let mut line = String::new();
                        std::io::stdin()
                            .lock()
                            .read_line(&mut line)
                            .context("reading the password from stdin")?;
                        (line.trim_end_matches(['\n', '\r']).to_owned(), false)
                    } else {
                        (crate::auth::random_token(18)?, true)
                    };
                    let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let new = NewAccount {
                        password: Password::parse(
                            &password,
                            &app.config.password_policy,
                            "password",
                            Some(email.as_str()),
                        )
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "password refused: {}",
                                e.errors.first().map(|f| f.message.as_str()).unwrap_or("")
                            )
                        })?,
                        full_name: FullName::parse(&full_name)
                            .map_err(|e| anyhow::anyhow!("{e}"))?,
                        email,
                    };
                    let user = operator::create(&app, new, role).await.map_err(shown)?;
                    if generated {
                        eprintln!("generated password (shown once): {password}");
                    }
                    user
                }
                UserCommand::SetRole { email, role } => {
                    let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
                    operator::set_role(&app, &email, parse_role(&role)?)
                        .await
                        .map_err(shown)?
                }
                UserCommand::Disable { email } => {
                    let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
                    operator::disable(&app, &email).await.map_err(shown)?
                }
            };
            println!(
                "{} {} role={} disabled={}",
                user.id, user.email, user.role, user.disabled
            );
            app.db.close().await;
            Ok(())
        }
    }
}

fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).ok_or_else(|| anyhow::anyhow!("--role must be admin, manager or user"))
}
