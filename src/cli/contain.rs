//! `imangor contain`: the operator's containment, through the use cases the API runs, so that it
//! is recorded and reaches the running servers as theirs does.

use clap::Subcommand;

use super::{shown, with_state};
use crate::config::Config;
use crate::domain::Email;
use crate::domain::net::Cidr;
use crate::service::containment::{self, By};

#[derive(Subcommand, Debug)]
pub enum ContainCommand {
    /// End every session of an account (its tokens stop working at once).
    RevokeSessions {
        #[arg(long)]
        email: String,
    },
    /// Refuse requests from an address or network for a while.
    Block {
        /// `203.0.113.7` or `203.0.113.0/24`.
        cidr: String,
        #[arg(long, default_value_t = 900)]
        seconds: u64,
        #[arg(long, default_value = "operator containment")]
        reason: String,
    },
}

pub(super) async fn run(cmd: ContainCommand, config: Config) -> anyhow::Result<()> {
    with_state(config, async move |app| {
        let meta = crate::service::audit::RequestMeta::default();
        match cmd {
            ContainCommand::RevokeSessions { email } => {
                let email = Email::parse(&email).map_err(shown)?;
                let user = crate::db::users::find_credentials(&app.store.db, email.as_str())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no account has the email {}", email.as_str()))?
                    .0;
                let n = containment::revoke_sessions(&app.store, By::Operator, user.id, &meta)
                    .await
                    .map_err(shown)?;
                println!("{n} session(s) of {} ended", user.email);
            }
            ContainCommand::Block {
                cidr,
                seconds,
                reason,
            } => {
                let net = cidr.parse::<Cidr>().map_err(shown)?;
                crate::domain::text::one_line(&reason, "--reason", 200).map_err(shown)?;
                let until = containment::block(
                    &app.store,
                    &app.guards,
                    By::Operator,
                    net,
                    seconds,
                    &reason,
                    &meta,
                )
                .await
                .map_err(shown)?;
                println!("{net} blocked until {}", until.rfc3339());
            }
        }
        Ok(())
    })
    .await
}
