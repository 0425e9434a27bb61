//! `imangor client`: the OAuth client registry as the operator, through the use cases the admin
//! API runs (the same checks, the same audit events; the actor is the operator).

use clap::Subcommand;

use super::{shown, with_state};
use crate::config::Config;
use crate::domain::ClientId;
use crate::domain::client::{Client, NewClient};
use crate::service::audit::RequestMeta;
use crate::service::oauth;

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client. A confidential client's secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// public (single-page and native apps: no secret) or confidential.
        #[arg(long = "type")]
        kind: String,
        /// An exact redirect URI (repeat for several): https, http on 127.0.0.1 or [::1], or
        /// a private-use scheme like com.example.app:/cb.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// authorization_code, client_credentials, refresh_token (repeat for several); default
        /// authorization_code and refresh_token.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A scope its tokens may carry (repeat for several); default the data scopes.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Sign in without a consent page.
        #[arg(long)]
        first_party: bool,
    },
    /// Every client (no secrets).
    List {
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// A new secret for a confidential client (printed once); the old one stops working.
    RotateSecret { client_id: String },
    /// Delete a client: every token issued to it stops working at once.
    Delete { client_id: String },
}

pub(super) async fn run(cmd: ClientCommand, config: Config) -> anyhow::Result<()> {
    let grant = oauth::as_operator();
    let meta = RequestMeta::default();
    with_state(config, async move |app| match cmd {
        ClientCommand::Create {
            name,
            kind,
            redirect_uris,
            grants,
            scopes,
            first_party,
        } => {
            let new = NewClient::parse(
                &name,
                &kind,
                &redirect_uris,
                (!grants.is_empty()).then_some(grants.as_slice()),
                (!scopes.is_empty()).then_some(scopes.as_slice()),
                first_party,
            )
            .map_err(|e| {
                let fields: Vec<String> = e
                    .errors
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect();
                anyhow::anyhow!("client refused: {}", fields.join("; "))
            })?;
            let r = oauth::create_client(&app.store, &app.identity, &grant, new, &meta)
                .await
                .map_err(shown)?;
            println!("{}", line(&r.client));
            if let Some(secret) = r.secret {
                println!("client_secret (shown once): {secret}");
            }
            Ok(())
        }
        ClientCommand::List { format } => {
            let all = oauth::list_clients(&app.store, &grant)
                .await
                .map_err(shown)?;
            match format.as_str() {
                "table" => all.iter().for_each(|c| println!("{}", line(c))),
                "json" => {
                    let rows: Vec<serde_json::Value> = all.iter().map(json).collect();
                    println!("{}", serde_json::Value::Array(rows));
                }
                other => anyhow::bail!("--format {other:?} is neither table nor json"),
            }
            Ok(())
        }
        ClientCommand::RotateSecret { client_id } => {
            let secret = oauth::rotate_secret(&app.store, &grant, parse_id(&client_id)?, &meta)
                .await
                .map_err(shown)?;
            println!("client_secret (shown once): {secret}");
            Ok(())
        }
        ClientCommand::Delete { client_id } => {
            oauth::delete_client(&app.store, &grant, parse_id(&client_id)?, &meta)
                .await
                .map_err(shown)?;
            println!("deleted {client_id}: every token issued to it is revoked");
            Ok(())
        }
    })
    .await
}

fn parse_id(s: &str) -> anyhow::Result<ClientId> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a client id"))
}

fn line(c: &Client) -> String {
    format!(
        "{} {} type={} grants={} scopes={} first_party={} redirect_uris={}",
        c.id,
        serde_json::Value::String(c.name.clone()),
        c.kind,
        c.grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(","),
        c.scopes.to_string().replace(' ', ","),
        c.first_party,
        c.redirect_uris
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn json(c: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.id.to_string(),
        "name": c.name,
        "type": c.kind.as_str(),
        "redirect_uris": c.redirect_uris.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scopes": c.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "first_party": c.first_party,
        "created_at": c.created_at.rfc3339(),
    })
}
