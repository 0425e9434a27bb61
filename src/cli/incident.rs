//! `imangor incident`: the operator's view of one incident. `evidence` writes its evidence
//! bundle; it reads the store and the keyrings (the checkpoint key signs the manifest): no Redis,
//! no hashing pool.

use std::path::PathBuf;

use clap::Subcommand;

use super::{shown, with_store};
use crate::config::Config;
use crate::error::AppError;
use crate::service::audit::evidence::{self, Sources};

#[derive(Subcommand, Debug)]
pub enum IncidentCommand {
    /// Write the incident's evidence bundle (JSON): the incident with its notes, its audit events,
    /// the chain segment and the signed checkpoints that cover them, the public checkpoint keys,
    /// the configuration (no secrets) and a signed manifest. `imangor evidence verify` checks it.
    Evidence {
        /// The incident's id.
        id: String,
        /// Where to write the bundle (created readable by this user only; replaced if there).
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) async fn run(cmd: IncidentCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        IncidentCommand::Evidence { id, out } => {
            let (tokens, keys) = crate::state::open_keyrings(config)?;
            let bundle = with_store(config, async |db| {
                let src = Sources {
                    db,
                    keys: &keys,
                    tokens: &tokens,
                    config,
                };
                evidence::as_operator(&src, &id).await.map_err(|e| match e {
                    AppError::NotFound => anyhow::anyhow!("no incident has the id {id}"),
                    e => shown(e),
                })
            })
            .await?;
            crate::crypto::files::replace_private(&out, &bundle)?;
            println!(
                "evidence bundle of incident {id} written to {} ({} bytes)",
                out.display(),
                bundle.len()
            );
            Ok(())
        }
    }
}
