//! Moving in from a deployment of the guide's Python stack (`imangor import python-stack`):
//! accounts with their bcrypt hashes (verified at their first login, then replaced by argon2id),
//! resources with their owners, visibility and times, and secrets decrypted with the old Fernet
//! key and sealed under the data keyring, bound to their new rows. Each row is written with its
//! `legacy_ids` entry in one transaction (a page of rows at a time), so a re-run skips what is
//! there and an interrupted import resumes; no row is ever half imported.

use std::collections::HashMap;

use anyhow::Context;
use serde::Serialize;
use zeroize::Zeroizing;

use super::audit::{self, Event, RequestMeta};
use crate::auth::password::{MAX_BCRYPT_COST, bcrypt_cost};
use crate::crypto::data::DataKeyring;
use crate::crypto::fernet;
use crate::db::imports::{self, ImportedUser, Source};
use crate::db::secrets::binding;
use crate::db::{Db, Tx};
use crate::domain::{
    Content, Email, FullName, Resource, ResourceId, Role, SecretId, SecretName, SecretValue,
    Timestamp, Title, UserId,
};

/// Rows per transaction: large enough that commits do not dominate, small enough that an
/// interruption loses little.
const PAGE: i64 = 500;

/// The source's table and column names, as a mapping file gives them (TOML: a `[users]`,
/// `[resources]` and `[secrets]` table of `field = "column"`, and `table = "name"`); what it does
/// not name keeps the guide's name.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    users: HashMap<String, String>,
    #[serde(default)]
    resources: HashMap<String, String>,
    #[serde(default)]
    secrets: HashMap<String, String>,
}

impl Mapping {
    pub fn parse(text: &str) -> anyhow::Result<Mapping> {
        let m: Mapping = toml::from_str(text).context("reading the mapping file")?;
        for (table, map, fields) in [
            ("users", &m.users, &USER_COLUMNS.concat()[..]),
            ("resources", &m.resources, RESOURCE_FIELDS),
            ("secrets", &m.secrets, SECRET_FIELDS),
        ] {
            for key in map.keys() {
                anyhow::ensure!(
                    key == "table" || key == "id" || fields.contains(&key.as_str()),
                    "the mapping's [{table}] names {key:?}, which is not one of table, id, {}",
                    fields.join(", ")
                );
            }
        }
        Ok(m)
    }
}

/// The columns read from `users`, in the order `user` reads them.
const USER_COLUMNS: &[&[&str]] = &[
    &["email"],
    &["hashed_password"],
    &["full_name"],
    &["role"],
    &["created_at"],
    &["disabled", "is_active"],
];
const RESOURCE_FIELDS: &[&str] = &[
    "owner_id",
    "title",
    "content",
    "is_public",
    "created_at",
    "updated_at",
];
const SECRET_FIELDS: &[&str] = &["owner_id", "name", "encrypted_value", "created_at"];

/// How to run an import.
pub struct Options {
    /// Read and check everything, write nothing.
    pub dry_run: bool,
    /// Map a source account to the target's account of the same email (keeping its password)
    /// instead of refusing a target that already has accounts.
    pub merge: bool,
    /// The source's Fernet key (32 bytes); used to decrypt, never stored.
    pub fernet_key: Zeroizing<Vec<u8>>,
    pub mapping: Mapping,
}

/// What an import did, per table.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub users: TableReport,
    pub resources: TableReport,
    pub secrets: TableReport,
}

#[derive(Debug, Default, Serialize)]
pub struct TableReport {
    /// The source table read.
    pub source_table: String,
    pub read: u64,
    /// Written (or, in a dry run, that would be).
    pub imported: u64,
    /// Source accounts mapped to an existing account of the same email (`--merge`).
    pub merged: u64,
    /// Already imported by an earlier run.
    pub already_imported: u64,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub source_id: i64,
    pub reason: String,
}

impl Report {
    pub fn tables(&self) -> [(&'static str, &TableReport); 3] {
        [
            ("users", &self.users),
            ("resources", &self.resources),
            ("secrets", &self.secrets),
        ]
    }

    fn summary(&self) -> String {
        self.tables()
            .iter()
            .map(|(name, t)| {
                format!(
                    "{name}: read {}, imported {}, merged {}, already imported {}, skipped {}",
                    t.read,
                    t.imported,
                    t.merged,
                    t.already_imported,
                    t.skipped.len()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A table of the source resolved against the mapping: its name, its id column, and for each
/// field the alternative taken (`fields`) and the column read for it (`columns`), in order.
struct Plan {
    table: String,
    id: String,
    fields: Vec<&'static str>,
    columns: Vec<String>,
}

impl Plan {
    /// Refuses, naming it, a table or column the source lacks. `tables` and each entry of
    /// `fields` list alternatives: the one the mapping names, else the first the source has.
    async fn resolve(
        source: &Source,
        section: &str,
        map: &HashMap<String, String>,
        tables: &[&str],
        fields: &[&[&'static str]],
    ) -> anyhow::Result<Plan> {
        let candidates: Vec<String> = match map.get("table") {
            Some(t) => vec![t.clone()],
            None => tables.iter().map(|t| t.to_string()).collect(),
        };
        let mut found = None;
        for t in &candidates {
            let cols = source.columns(t).await?;
            if !cols.is_empty() {
                found = Some((t.clone(), cols));
                break;
            }
        }
        let Some((table, present)) = found else {
            anyhow::bail!(
                "the source has no table {} (name it with `table = ...` under [{section}] in --mapping)",
                candidates.join(" or ")
            );
        };
        let has = |name: &str| present.contains(&name.to_lowercase());
        let missing = |name: &str| {
            anyhow::anyhow!(
                "the source table {table} has no column {name} (name it under [{section}] in --mapping)"
            )
        };
        let id = map.get("id").map_or("id", String::as_str).to_owned();
        if !has(&id) {
            return Err(missing(&id));
        }
        let mut plan = Plan {
            id,
            fields: Vec::new(),
            columns: Vec::new(),
            table: table.clone(),
        };
        for alternatives in fields {
            let chosen = match alternatives.iter().find_map(|f| Some((*f, map.get(*f)?))) {
                Some((field, column)) if has(column) => (field, column.clone()),
                Some((_, column)) => return Err(missing(column)),
                None => match alternatives.iter().find(|f| has(f)) {
                    Some(field) => (*field, field.to_string()),
                    None => return Err(missing(&alternatives.join(" or "))),
                },
            };
            plan.fields.push(chosen.0);
            plan.columns.push(chosen.1);
        }
        Ok(plan)
    }
}

/// One source row, checked before anything is written: skipped (why) or to write.
enum Row<W> {
    Skip(String),
    Write(W),
}

/// Imports the source into `db`. Refused, before anything is written, when the source lacks a
/// table or column of the mapping, or when a first import finds accounts other than the
/// bootstrap admin in the target and `merge` is off.
/// `progress` hears (table, rows done, rows in the table) after every page.
#[tracing::instrument(skip_all, fields(dry_run = options.dry_run, merge = options.merge))]
pub async fn python_stack(
    db: &Db,
    keys: &DataKeyring,
    source: &Source,
    options: &Options,
    progress: &mut (dyn FnMut(&str, u64, u64) + Send),
) -> anyhow::Result<Report> {
    let m = &options.mapping;
    let users = Plan::resolve(source, "users", &m.users, &["users"], USER_COLUMNS).await?;
    // The guide's models have `disabled`; others keep `is_active`, its negation.
    let active = users.fields[5] == "is_active";
    let resources = Plan::resolve(
        source,
        "resources",
        &m.resources,
        &["resources", "items"],
        &RESOURCE_FIELDS
            .iter()
            .map(std::slice::from_ref)
            .collect::<Vec<_>>(),
    )
    .await?;
    let secrets = Plan::resolve(
        source,
        "secrets",
        &m.secrets,
        &["secrets"],
        &SECRET_FIELDS
            .iter()
            .map(std::slice::from_ref)
            .collect::<Vec<_>>(),
    )
    .await?;

    let mut tx = db.begin().await.context("opening the target database")?;
    let mut mapped_users = imports::mapped(&mut tx, "users").await?;
    // Checked before the first import only: a re-run resumes or repeats what the operator
    // started, while accounts registered since are left alone (an email they share with a
    // source account is skipped unless merging).
    let foreign = match mapped_users.is_empty() {
        true => imports::foreign_accounts(&mut tx).await?,
        false => 0,
    };
    if foreign > 0 && !options.merge {
        anyhow::bail!(
            "the target already holds {foreign} account(s) besides the bootstrap admin: pass --merge to map the source's accounts to them by email (their passwords are kept), or import into an empty database"
        );
    }
    let mapped_resources = imports::mapped(&mut tx, "resources").await?;
    let mapped_secrets = imports::mapped(&mut tx, "secrets").await?;
    tx.commit().await.quiet()?;

    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };

    let done_users = mapped_users.clone();
    let dry = options.dry_run;
    let ran = async {
        // Accounts first: resources and secrets find their owners through them.
        report.users = run_table(
            db,
            source,
            &users,
            &done_users,
            dry,
            progress,
            |row| parse_user(row, active),
            async |tx, source_id, u: ParsedUser| write_user(tx, options, source_id, u).await,
            |source_id, target| {
                mapped_users.insert(source_id.to_owned(), target.to_owned());
            },
        )
        .await?;
        let owners = &mapped_users;
        report.resources = run_table(
            db,
            source,
            &resources,
            &mapped_resources,
            dry,
            progress,
            |row| parse_resource(row, owners),
            async |tx, source_id, r: Resource| {
                if dry {
                    return Ok(Written::Imported(r.id.to_string()));
                }
                imports::insert_resource(tx, &r).await?;
                recorded(tx, "resources", source_id, r.id.to_string()).await
            },
            |_, _| {},
        )
        .await?;
        report.secrets = run_table(
            db,
            source,
            &secrets,
            &mapped_secrets,
            dry,
            progress,
            |row| parse_secret(row, owners, &options.fernet_key, keys),
            async |tx, source_id, s: ParsedSecret| {
                if dry {
                    return Ok(Written::Imported(s.id.to_string()));
                }
                if !imports::insert_secret(tx, s.id, s.owner, &s.name, &s.sealed, s.created_at)
                    .await?
                {
                    return Ok(Written::Skipped(
                        "its owner already has a secret of this name".into(),
                    ));
                }
                recorded(tx, "secrets", source_id, s.id.to_string()).await
            },
            |_, _| {},
        )
        .await?;
        anyhow::Ok(())
    }
    .await;

    if !dry {
        // Recorded also when the import stopped midway: what was written stays (a re-run
        // resumes), and the trail says how far it got.
        let (outcome, detail) = match &ran {
            Ok(()) => (audit::Outcome::Success, report.summary()),
            Err(e) => (
                audit::Outcome::Failure,
                format!("stopped: {e:#}; a re-run resumes; {}", report.summary()),
            ),
        };
        let recorded = async {
            let mut tx = db.begin().await?;
            Event::new(audit::Action::ImportRun, outcome)
                .actor(operator())
                .target("python-stack")
                .detail(detail)
                .record(&mut tx, &RequestMeta::default())
                .await?;
            tx.commit().await.quiet()?;
            anyhow::Ok(())
        }
        .await;
        ran?;
        recorded.context("recording the import in the audit trail")?;
        return Ok(report);
    }
    ran.map(|()| report)
}

/// Records the row written in `legacy_ids`: imported.
async fn recorded(
    tx: &mut Tx,
    table: &str,
    source_id: &str,
    target: String,
) -> anyhow::Result<Written> {
    imports::record(tx, table, source_id, &target, Timestamp::now()).await?;
    Ok(Written::Imported(target))
}

/// What writing a row did.
enum Written {
    /// Written; the imangor id it has.
    Imported(String),
    /// Mapped to an account that was there (`--merge`).
    Merged(String),
    Skipped(String),
}

/// Reads `plan`'s table a page at a time; each page's rows are written with their `legacy_ids`
/// entries in one transaction (in a dry run, `write` writes nothing and the transaction is
/// dropped). Rows listed in `done` (imported by an earlier run) are counted and left alone.
#[allow(clippy::too_many_arguments)]
async fn run_table<W>(
    db: &Db,
    source: &Source,
    plan: &Plan,
    done: &HashMap<String, String>,
    dry_run: bool,
    progress: &mut (dyn FnMut(&str, u64, u64) + Send),
    mut parse: impl FnMut(&[Option<String>]) -> Row<W>,
    mut write: impl AsyncFnMut(&mut Tx, &str, W) -> anyhow::Result<Written>,
    mut imported: impl FnMut(&str, &str),
) -> anyhow::Result<TableReport> {
    let mut t = TableReport {
        source_table: plan.table.clone(),
        ..TableReport::default()
    };
    let total = source.count(&plan.table).await?;
    let columns: Vec<&str> = plan.columns.iter().map(String::as_str).collect();
    let mut after = i64::MIN;
    progress(&plan.table, 0, total);
    loop {
        let page = source
            .page(&plan.table, &plan.id, &columns, after, PAGE)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        // A dry run reads the target (a merge's lookups) in a transaction it never commits.
        let mut tx = if dry_run {
            db.begin().await?
        } else {
            db.begin_write().await?
        };
        for (id, cells) in page {
            t.read += 1;
            let source_id = id.to_string();
            if done.contains_key(&source_id) {
                t.already_imported += 1;
                continue;
            }
            let w = match parse(&cells) {
                Row::Skip(reason) => {
                    t.skipped.push(Skipped {
                        source_id: id,
                        reason,
                    });
                    continue;
                }
                Row::Write(w) => w,
            };
            let written = write(&mut tx, &source_id, w).await?;
            match written {
                Written::Imported(target) => {
                    t.imported += 1;
                    imported(&source_id, &target);
                }
                Written::Merged(target) => {
                    t.merged += 1;
                    imported(&source_id, &target);
                }
                Written::Skipped(reason) => t.skipped.push(Skipped {
                    source_id: id,
                    reason,
                }),
            }
        }
        if dry_run {
            drop(tx);
        } else {
            tx.commit()
                .await
                .quiet()
                .with_context(|| format!("writing rows of {}", plan.table))?;
        }
        progress(&plan.table, t.read, total);
    }
    Ok(t)
}

/// Who ran the import, as the system knows them: the login name (or the one `sudo` ran as) and
/// the user id, for the audit trail.
fn operator() -> String {
    let name = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    #[cfg(unix)]
    {
        let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        if let Ok(uid) = uid {
            return format!("operator {name} (uid {uid})");
        }
    }
    format!("operator {name}")
}

fn cell(row: &[Option<String>], i: usize) -> Option<&str> {
    row.get(i).and_then(|c| c.as_deref())
}

/// A boolean as SQLite (`0`/`1`) or PostgreSQL (`true`/`false`) prints it; null is false.
fn flag(v: Option<&str>) -> Option<bool> {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("0" | "false" | "f") => Some(false),
        Some("1" | "true" | "t") => Some(true),
        Some(_) => None,
    }
}

/// A time column; null is now (SQLAlchemy fills it in, so only a hand-made row lacks one).
fn time(v: Option<&str>, column: &str) -> Result<Timestamp, String> {
    match v {
        None => Ok(Timestamp::now()),
        Some(s) => Timestamp::parse_sql(s).ok_or_else(|| format!("invalid {column}: {s:?}")),
    }
}

struct ParsedUser {
    email: Email,
    full_name: FullName,
    hash: String,
    role: Role,
    disabled: bool,
    created_at: Timestamp,
}

fn parse_user(row: &[Option<String>], active: bool) -> Row<ParsedUser> {
    match user(row, active) {
        Err(reason) => Row::Skip(reason),
        Ok(u) => Row::Write(u),
    }
}

fn user(row: &[Option<String>], active: bool) -> Result<ParsedUser, String> {
    let raw_email = cell(row, 0).unwrap_or("");
    let email = Email::parse(raw_email).map_err(|_| format!("invalid email: {raw_email:?}"))?;
    let hash = cell(row, 1).unwrap_or("");
    if !(hash.starts_with("$2b$") || hash.starts_with("$2a$") || hash.starts_with("$2y$"))
        || hash.len() != 60
    {
        return Err("the password hash is not bcrypt ($2a$, $2b$ or $2y$)".into());
    }
    // A cost outside what deployments use would make each login attempt hold a hashing thread
    // for minutes or hours (a tampered source): refused, as the login path refuses it.
    if !bcrypt_cost(hash).is_some_and(|c| (4..=MAX_BCRYPT_COST).contains(&c)) {
        return Err(format!("the bcrypt cost is outside 4 to {MAX_BCRYPT_COST}"));
    }
    // A missing name becomes the email's local part: the guide's model allows none.
    let full_name = match cell(row, 2).map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => FullName::parse(n).map_err(|_| format!("invalid full name: {n:?}"))?,
        None => FullName::parse(email.as_str().split('@').next().unwrap_or("user"))
            .map_err(|_| "no usable full name".to_owned())?,
    };
    let raw_role = cell(row, 3).unwrap_or("");
    // Exactly the old stack's values: it compared roles as they are stored, so `Admin ` was no
    // admin there and is none here.
    let role = Role::parse(raw_role).ok_or_else(|| format!("unknown role: {raw_role:?}"))?;
    let created_at = time(cell(row, 4), "created_at")?;
    let status = cell(row, 5);
    let flag = flag(status).ok_or_else(|| format!("invalid account status: {status:?}"))?;
    Ok(ParsedUser {
        email,
        full_name,
        hash: hash.to_owned(),
        role,
        // A null `is_active` was no active account for the old stack (Python's None is false).
        disabled: if active { !flag } else { flag },
        created_at,
    })
}

async fn write_user(
    tx: &mut Tx,
    options: &Options,
    source_id: &str,
    u: ParsedUser,
) -> anyhow::Result<Written> {
    let now = Timestamp::now();
    if let Some(existing) = imports::user_by_email(tx, u.email.as_str()).await? {
        if imports::created_by_import(tx, existing).await? {
            return Ok(Written::Skipped(
                "another source account has the same email (compared without case)".into(),
            ));
        }
        if !options.merge {
            return Ok(Written::Skipped(
                "an account with this email exists (pass --merge to map to it)".into(),
            ));
        }
        let target = existing.to_string();
        if !options.dry_run {
            imports::record_merged(tx, source_id, &target, now).await?;
        }
        return Ok(Written::Merged(target));
    }
    let id = UserId::new();
    if !options.dry_run {
        let inserted = imports::insert_user(
            tx,
            &ImportedUser {
                id,
                email: u.email.as_str(),
                full_name: u.full_name.as_str(),
                password_hash: &u.hash,
                role: u.role,
                disabled: u.disabled,
                created_at: u.created_at,
            },
        )
        .await?;
        if !inserted {
            return Ok(Written::Skipped("an account with this email exists".into()));
        }
        imports::record(tx, "users", source_id, &id.to_string(), now).await?;
    }
    Ok(Written::Imported(id.to_string()))
}

/// The owner's imangor id, or why the row cannot be imported.
fn owner(row: &[Option<String>], owners: &HashMap<String, String>) -> Result<UserId, String> {
    let raw = cell(row, 0).unwrap_or("");
    owners
        .get(raw.trim())
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("owner not imported (source user {raw})"))
}

fn parse_resource(row: &[Option<String>], owners: &HashMap<String, String>) -> Row<Resource> {
    match resource(row, owners) {
        Ok(r) => Row::Write(r),
        Err(reason) => Row::Skip(reason),
    }
}

fn resource(row: &[Option<String>], owners: &HashMap<String, String>) -> Result<Resource, String> {
    let owner_id = owner(row, owners)?;
    let raw_title = cell(row, 1).unwrap_or("");
    let title = Title::parse(raw_title).map_err(|_| format!("invalid title: {raw_title:?}"))?;
    let content =
        Content::parse(cell(row, 2).unwrap_or("")).map_err(|_| "invalid content".to_owned())?;
    let public = cell(row, 3);
    let is_public = flag(public).ok_or_else(|| format!("invalid is_public: {public:?}"))?;
    let created_at = time(cell(row, 4), "created_at")?;
    let updated_at = match cell(row, 5) {
        None => created_at,
        v => time(v, "updated_at")?,
    };
    Ok(Resource {
        id: ResourceId::new(),
        owner_id,
        title: title.as_str().to_owned(),
        content: content.as_str().to_owned(),
        is_public,
        created_at,
        updated_at,
    })
}

struct ParsedSecret {
    id: SecretId,
    owner: UserId,
    name: SecretName,
    sealed: crate::crypto::data::Ciphertext,
    created_at: Timestamp,
}

fn parse_secret(
    row: &[Option<String>],
    owners: &HashMap<String, String>,
    fernet_key: &[u8],
    keys: &DataKeyring,
) -> Row<ParsedSecret> {
    match secret(row, owners, fernet_key, keys) {
        Ok(s) => Row::Write(s),
        Err(reason) => Row::Skip(reason),
    }
}

fn secret(
    row: &[Option<String>],
    owners: &HashMap<String, String>,
    fernet_key: &[u8],
    keys: &DataKeyring,
) -> Result<ParsedSecret, String> {
    let owner = owner(row, owners)?;
    let raw_name = cell(row, 1).unwrap_or("");
    let name = SecretName::parse(raw_name).map_err(|_| format!("invalid name: {raw_name:?}"))?;
    let token = cell(row, 2).unwrap_or("").trim();
    // PostgreSQL prints a `bytea` column as `\x` and hex.
    let token: Vec<u8> = match token.strip_prefix("\\x") {
        Some(hex) => (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect(),
        None => token.as_bytes().to_vec(),
    };
    let plain = fernet::decrypt(fernet_key, &token)
        .ok_or_else(|| "undecryptable value (wrong Fernet key or altered token)".to_owned())?;
    let text =
        String::from_utf8(plain.to_vec()).map_err(|_| "the value is not UTF-8".to_owned())?;
    let value = SecretValue::parse(text).map_err(|_| "invalid value (empty or over 16 KiB)")?;
    let created_at = time(cell(row, 3), "created_at")?;
    let id = SecretId::new();
    let sealed = keys
        .seal(value.expose().as_bytes(), &binding(owner, id))
        .map_err(|e| format!("sealing failed: {e}"))?;
    Ok(ParsedSecret {
        id,
        owner,
        name,
        sealed,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(role: &str, hash: &str, status: Option<&str>) -> Vec<Option<String>> {
        vec![
            Some("someone@example.com".into()),
            Some(hash.into()),
            Some("Some One".into()),
            Some(role.into()),
            Some("2024-05-01 12:30:00.250000".into()),
            status.map(Into::into),
        ]
    }

    const HASH: &str = "$2b$12$rwrZzrmuV8EmfOieUp/uyOT50hUbRzwwOOGzNLRDm9pPR.hshqSuC";

    /// Issue 20 review: what the old stack did not treat as an admin is none here, a bcrypt cost
    /// that would hold a hashing thread for hours is refused, and a null `is_active` (Python's
    /// None: not active) is a disabled account.
    #[test]
    fn a_source_account_is_taken_exactly_as_the_old_stack_read_it() {
        for role in ["Admin ", "ADMIN", "superuser", ""] {
            let e = user(&row(role, HASH, Some("0")), false).err().unwrap();
            assert!(e.contains("unknown role"), "{role:?}: {e}");
        }
        let slow = HASH.replace("$12$", "$31$");
        let e = user(&row("admin", &slow, Some("0")), false).err().unwrap();
        assert!(e.contains("bcrypt cost"), "{e}");
        let ok = user(&row("admin", HASH, Some("0")), false).unwrap();
        assert_eq!((ok.role, ok.disabled), (Role::Admin, false));
        // `is_active`: null and false are disabled, true is not; `disabled`: null is enabled.
        assert!(user(&row("user", HASH, None), true).unwrap().disabled);
        assert!(user(&row("user", HASH, Some("0")), true).unwrap().disabled);
        assert!(!user(&row("user", HASH, Some("1")), true).unwrap().disabled);
        assert!(!user(&row("user", HASH, None), false).unwrap().disabled);
    }
}
