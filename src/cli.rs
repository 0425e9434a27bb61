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
    /// Rotate the data keyring (encrypted values) and the signing keyring (access tokens).
    #[command(subcommand)]
    Keys(KeysCommand),
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
    /// The audit trail: check its chain, or export it.
    #[command(subcommand)]
    Audit(AuditCommand),
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
        match self.command {
            // The doctor reports what production would refuse instead of refusing it.
            Command::Doctor { .. } => Config::from_raw_unchecked(&raw),
            _ => Config::from_raw(&raw),
        }
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
            // Migrating is a deployment step: it records the keyrings the servers will use.
            let app = startup::state(config).await?;
            startup::observe_keys(&app).await?;
            app.db.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Doctor {
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
        Command::Keys(cmd) => keys(cmd, config).await,
        Command::Contain(cmd) => {
            use crate::service::containment::{self, By};
            let app = startup::state(config).await?;
            let meta = crate::service::RequestMeta::default();
            let shown = |e: crate::error::AppError| anyhow::anyhow!("{e}");
            let result = match cmd {
                ContainCommand::RevokeSessions { email } => {
                    let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let user = crate::db::users::find_credentials(&app.db, email.as_str())
                        .await?
                        .ok_or_else(|| {
                            anyhow::anyhow!("no account has the email {}", email.as_str())
                        })?
                        .0;
                    containment::revoke_sessions(&app, By::Operator, user.id, &meta)
                        .await
                        .map(|n| println!("{n} session(s) of {} ended", user.email))
                        .map_err(shown)
                }
                ContainCommand::Block {
                    cidr,
                    seconds,
                    reason,
                } => {
                    let net = cidr
                        .parse::<crate::domain::net::Cidr>()
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    crate::domain::text::one_line(&reason, "--reason", 200)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    containment::block(&app, By::Operator, net, seconds, &reason, &meta)
                        .await
                        .map(|until| println!("{net} blocked until {}", until.rfc3339()))
                        .map_err(shown)
                }
            };
            app.db.close().await;
            result
        }
        Command::AccessReview {
            format,
            dormant_days,
        } => {
            let app = startup::state(config).await?;
            let findings = crate::service::access_review::as_operator(&app.db, dormant_days)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            app.db.close().await;
            print!("{}", access_review(&findings, &format)?);
            Ok(())
        }
        Command::Audit(cmd) => {
            let app = startup::state(config).await?;
            let result = match cmd {
                AuditCommand::Verify => {
                    let r = crate::audit::verify(&app.db, &app.keys, app.config.audit_checkpoints)
                        .await?;
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
                }
                AuditCommand::Export { after } => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    let n = crate::audit::export(&app.db, after, &mut out).await?;
                    std::io::Write::flush(&mut out)?;
                    eprintln!("{n} rows exported");
                    Ok(())
                }
            };
            app.db.close().await;
            result
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

/// Records an operator's key operation in the audit trail.
async fn key_event(config: &Config, action: &'static str, detail: String) -> anyhow::Result<()> {
    let app = startup::state(config.clone()).await?;
    let mut tx = app.db.begin().await?;
    crate::service::Event::new(action, "success")
        .actor("operator")
        .detail(detail)
        .record(&mut tx, &crate::service::RequestMeta::default())
        .await?;
    tx.commit().await?;
    app.db.close().await;
    Ok(())
}

async fn keys(cmd: KeysCommand, config: Config) -> anyhow::Result<()> {
    use crate::service::keys::{self, Written};
    let shown = |w: Written| match w {
        Written::File(p) => eprintln!("keyring written to {}", p.display()),
        Written::Variable { var, value } => {
            eprintln!(
                "the keyring is set by {var}, which this command cannot change: store this new value (a secret) in {var} or, better, in a file named by {var}_FILE, then restart the servers"
            );
            println!("{}", value.as_str());
        }
    };
    match cmd {
        KeysCommand::Add { standby } => {
            let (id, written) = keys::add_data_key(&config, standby)?;
            key_event(
                &config,
                "keys.add",
                format!("data key {id}{}", if standby { " (standby)" } else { "" }),
            )
            .await?;
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
            key_event(
                &config,
                "keys.rotate_signing",
                format!("signing key {id} ({alg})"),
            )
            .await?;
            eprintln!(
                "signing key {id} ({alg}) added: it signs after the servers restart; retire the old one when its tokens have expired ({} s later)",
                config.access_token_ttl + crate::auth::token::JWT_LEEWAY_S
            );
            shown(written);
            Ok(())
        }
        KeysCommand::Status => {
            let app = startup::state(config).await?;
            let counts = keys::rows_by_key(&app.db).await?;
            let data_log = crate::db::keys::list(&app.db, crate::db::keys::Ring::Data).await?;
            let signing_log =
                crate::db::keys::list(&app.db, crate::db::keys::Ring::Signing).await?;
            let since = |log: &[crate::db::keys::KeyRecord], id: &str| {
                log.iter()
                    .find(|r| r.key_id == id)
                    .map(|r| r.first_seen.rfc3339())
                    .unwrap_or_default()
            };
            println!("data keys (newest first)");
            println!("  {:<28} {:<9} {:>10}  first seen", "id", "role", "rows");
            for (i, id) in app.keys.ids().enumerate() {
                let rows = counts
                    .iter()
                    .find(|(k, _)| k == id)
                    .map(|(_, n)| *n)
                    .unwrap_or(0);
                let role = if i == 0 { "encrypts" } else { "decrypts" };
                println!("  {id:<28} {role:<9} {rows:>10}  {}", since(&data_log, id));
            }
            for (id, n) in counts
                .iter()
                .filter(|(k, _)| !app.keys.ids().any(|i| i == k))
            {
                println!(
                    "  {id:<28} {:<9} {n:>10}  NOT IN THE KEYRING: these rows cannot be read",
                    "missing"
                );
            }
            println!("signing keys (newest first)");
            println!("  {:<28} {:<6} {:<9} first seen", "kid", "alg", "role");
            for (i, (kid, alg)) in app.tokens.describe().into_iter().enumerate() {
                let role = if i == 0 { "signs" } else { "verifies" };
                println!(
                    "  {kid:<28} {alg:<6} {role:<9} {}",
                    since(&signing_log, kid)
                );
            }
            app.db.close().await;
            Ok(())
        }
        KeysCommand::Reencrypt { batch } => {
            let app = startup::state(config.clone()).await?;
            let current = app.keys.current().to_owned();
            let started = std::time::Instant::now();
            let mut last_print = std::time::Instant::now() - std::time::Duration::from_secs(1);
            let done = keys::reencrypt(&app.db, &app.keys, batch.clamp(1, 10_000), |n, total| {
                if last_print.elapsed().as_millis() >= 200 {
                    last_print = std::time::Instant::now();
                    eprint!("\r{}", progress_line(n, total, started.elapsed()));
                }
            })
            .await?;
            let n = done.resealed + done.skipped + done.failed + done.unmatched;
            eprintln!("\r{}", progress_line(n, n, started.elapsed()));
            println!(
                "re-encrypted {} rows under key {} ({} left alone because they changed meanwhile, {} did not open, {} not rewritten) in {:.1} s",
                done.resealed,
                app.keys.current(),
                done.skipped,
                done.failed,
                done.unmatched,
                started.elapsed().as_secs_f64()
            );
            app.db.close().await;
            key_event(
                &config,
                "keys.reencrypt",
                format!(
                    "{} rows resealed under {}, {} skipped, {} did not open, {} not rewritten",
                    done.resealed, current, done.skipped, done.failed, done.unmatched
                ),
            )
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
            let app = startup::state(config.clone()).await?;
            let written = keys::retire(&config, &app.db, &id).await?;
            key_event(&config, "keys.retire", format!("key {id}")).await?;
            eprintln!("key {id} retired");
            shown(written);
            app.db.close().await;
            Ok(())
        }
    }
}

/// `[#########...........]  4500/10000  45%  2250 rows/s`
fn progress_line(n: u64, total: u64, elapsed: std::time::Duration) -> String {
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

/// The access review (`service::access_review`) in the operator's chosen format.
fn access_review(
    findings: &[crate::service::access_review::Finding],
    format: &str,
) -> anyhow::Result<String> {
    let out: Vec<_> = findings
        .iter()
        .map(|f| (&f.user, &f.last_login, &f.flags))
        .collect();
    let last_login =
        |l: &Option<crate::domain::Timestamp>| l.map(|t| t.rfc3339()).unwrap_or_default();
    Ok(match format {
        "json" => {
            let items: Vec<serde_json::Value> = out
                .iter()
                .map(|(u, last, flags)| {
                    serde_json::json!({"id": u.id, "email": u.email, "role": u.role.as_str(),
                        "disabled": u.disabled, "created_at": u.created_at.rfc3339(),
                        "last_login": last.map(|t| t.rfc3339()), "flags": flags})
                })
                .collect();
            serde_json::to_string_pretty(&items)? + "\n"
        }
        "csv" => {
            let mut s = String::from("email,role,disabled,created_at,last_login,flags\n");
            for (u, last, flags) in &out {
                s.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    csv_field(&u.email),
                    u.role.as_str(),
                    u.disabled,
                    u.created_at.rfc3339(),
                    last_login(last),
                    flags.join(" ")
                ));
            }
            s
        }
        "table" => {
            let mut s = format!(
                "{:<36} {:<8} {:<9} {:<27} {}\n",
                "email", "role", "disabled", "last login", "flags"
            );
            for (u, last, flags) in &out {
                let last = match last {
                    Some(t) => t.rfc3339(),
                    None => "never".to_owned(),
                };
                s.push_str(&format!(
                    "{:<36} {:<8} {:<9} {:<27} {}\n",
                    u.email,
                    u.role.as_str(),
                    u.disabled,
                    last,
                    flags.join(", ")
                ));
            }
            s
        }
        other => anyhow::bail!("--format {other}: one of table, json, csv"),
    })
}

/// A CSV field, quoted when it needs to be; a leading `=`, `+`, `-` or `@` is defused so a
/// spreadsheet does not run it as a formula.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}
