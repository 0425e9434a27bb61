//! `imangor user`: accounts managed by the operator, through the use cases the API runs.

use std::io::BufRead;

use anyhow::Context;
use clap::Subcommand;

use super::{shown, with_state};
use crate::config::Config;
use crate::domain::{Email, FullName, Password, Role};
use crate::service::users::{NewAccount, operator};

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
    /// Remove every second factor of an account (TOTP, recovery codes, passkeys) and end its
    /// sessions: its owner lost them, or someone else added one.
    ResetFactors {
        #[arg(long)]
        email: String,
    },
}

pub(super) async fn run(cmd: UserCommand, config: Config) -> anyhow::Result<()> {
    with_state(config, async move |app| {
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
                let email = Email::parse(&email).map_err(shown)?;
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
                    full_name: FullName::parse(&full_name).map_err(shown)?,
                    email,
                };
                let user = operator::create(&app.store, &app.identity, new, role)
                    .await
                    .map_err(shown)?;
                if generated {
                    eprintln!("generated password (shown once): {password}");
                }
                user
            }
            UserCommand::SetRole { email, role } => {
                let email = Email::parse(&email).map_err(shown)?;
                operator::set_role(&app.store, &email, parse_role(&role)?)
                    .await
                    .map_err(shown)?
            }
            UserCommand::Disable { email } => {
                let email = Email::parse(&email).map_err(shown)?;
                operator::disable(&app.store, &email).await.map_err(shown)?
            }
            UserCommand::ResetFactors { email } => {
                let email = Email::parse(&email).map_err(shown)?;
                let (user, removed) = operator::reset_second_factors(&app.store, &email)
                    .await
                    .map_err(shown)?;
                eprintln!("{removed} second factor(s) removed; the account's sessions ended");
                user
            }
        };
        println!(
            "{} {} role={} disabled={}",
            user.id, user.email, user.role, user.disabled
        );
        Ok(())
    })
    .await
}

fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).ok_or_else(|| anyhow::anyhow!("--role must be admin, manager or user"))
}
