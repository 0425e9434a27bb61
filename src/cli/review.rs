//! `imangor access-review`: the guide's permission review, read from the store alone, in the
//! operator's chosen format.

use super::{shown, with_store};
use crate::config::Config;
use crate::service::access_review::{Finding, as_operator};

pub(super) async fn run(config: &Config, format: &str, dormant_days: u64) -> anyhow::Result<()> {
    let findings = with_store(config, async |db| {
        as_operator(db, dormant_days).await.map_err(shown)
    })
    .await?;
    print!("{}", render(&findings, format)?);
    Ok(())
}

/// The access review (`service::access_review`) in the operator's chosen format.
fn render(findings: &[Finding], format: &str) -> anyhow::Result<String> {
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
