//! The audit trail as OCSF events for a SIEM (Open Cybersecurity Schema Framework, version
//! `VERSION`): each sealed row becomes one event of the class its action belongs to.
//!
//! | actions | class |
//! |---|---|
//! | `auth.*` (sign-in, refresh, revocation, a refused or legacy token) | Authentication (3002, category 3) |
//! | `user.*` (register, create, role, disable, enable, password) | Account Change (3001, category 3) |
//! | resources, secrets, authorization refusals, keys, containment, imports, the server's own | API Activity (6003, category 6) |
//! | `incident.*` (opened by a detector, reported, updated) | Detection Finding (2004, category 2) |
//!
//! The chain travels with each event: `metadata.sequence` is the row's `seq`, `metadata.uid` its
//! id, `unmapped.hash` and `unmapped.prev_hash` its link, so a SIEM can check that no row is
//! missing, repeated or reordered (each `prev_hash` is the `hash` of the row before). The row's
//! own fields (action, outcome, actor, target, detail) are in `unmapped` too, as stored.

use serde_json::{Map, Value, json};

use crate::db::audit::AuditRow;
use crate::domain::Timestamp;
use crate::domain::audit::{Action, Outcome};
use crate::domain::incident::{Level, Status};

/// The OCSF schema version the events follow (`metadata.version`).
pub const VERSION: &str = "1.3.0";
/// `metadata.product.name` and `vendor_name`; also the service and the endpoint of events the
/// server raised itself (no request, no client address).
const PRODUCT: &str = "imangor";

/// The OCSF event classes the trail uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Authentication,
    AccountChange,
    ApiActivity,
    DetectionFinding,
}

impl Class {
    pub const fn uid(self) -> u32 {
        match self {
            Class::Authentication => 3002,
            Class::AccountChange => 3001,
            Class::ApiActivity => 6003,
            Class::DetectionFinding => 2004,
        }
    }

    /// The category is the class's thousands.
    pub const fn category_uid(self) -> u32 {
        self.uid() / 1000
    }

    const fn name(self) -> &'static str {
        match self {
            Class::Authentication => "Authentication",
            Class::AccountChange => "Account Change",
            Class::ApiActivity => "API Activity",
            Class::DetectionFinding => "Detection Finding",
        }
    }

    const fn category_name(self) -> &'static str {
        match self {
            Class::Authentication | Class::AccountChange => "Identity & Access Management",
            Class::ApiActivity => "Application Activity",
            Class::DetectionFinding => "Findings",
        }
    }
}

/// An activity of a class: its `activity_id` and caption (99: Other, with a caption of ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity(pub u32, pub &'static str);

const OTHER: u32 = 99;

/// The class and activity of each action: one arm per action, so an action added to the
/// vocabulary does not build until it is mapped here.
pub fn classify(action: Action) -> (Class, Activity) {
    use Action as A;
    use Class::*;
    let (create, read, update, delete) = (
        Activity(1, "Create"),
        Activity(2, "Read"),
        Activity(3, "Update"),
        Activity(4, "Delete"),
    );
    match action {
        A::AuthLogin => (Authentication, Activity(1, "Logon")),
        A::AuthRevoke => (Authentication, Activity(2, "Logoff")),
        A::AuthRefresh | A::AuthRefreshReuse => (Authentication, Activity(OTHER, "Token Refresh")),
        A::OAuthAuthorize | A::OAuthToken | A::OAuthClientAuth | A::OAuthCodeReuse => {
            (Authentication, Activity(OTHER, "OAuth Grant"))
        }
        A::MfaVerify | A::MfaRecoveryUse => (Authentication, Activity(OTHER, "Second Factor")),
        A::MfaTotpEnroll | A::MfaRecoveryCodes | A::MfaPasskeyRegister => {
            (AccountChange, Activity(OTHER, "MFA Enable"))
        }
        A::MfaTotpRemove | A::MfaPasskeyRemove => (AccountChange, Activity(OTHER, "MFA Disable")),
        A::ClientCreate => (ApiActivity, create),
        A::ClientRotateSecret => (ApiActivity, update),
        A::ClientDelete => (ApiActivity, delete),
        // A presented token checked: refused (forged, expired), or an old stack's accepted.
        A::AuthTokenInvalid | A::AuthLegacyToken => {
            (Authentication, Activity(OTHER, "Token Validation"))
        }
        A::UserRegister | A::UserCreate | A::UserBootstrapAdmin => (AccountChange, create),
        A::UserEnable => (AccountChange, Activity(2, "Enable")),
        A::UserPasswordChange => (AccountChange, Activity(3, "Password Change")),
        A::UserDisable => (AccountChange, Activity(5, "Disable")),
        A::UserRoleChange => (AccountChange, Activity(OTHER, "Role Change")),
        A::ResourceUpdate | A::SecretReseal => (ApiActivity, update),
        A::ResourceDelete | A::SecretDelete => (ApiActivity, delete),
        A::SecretCreate => (ApiActivity, create),
        A::SecretRead | A::SecretDecrypt | A::IncidentEvidence => (ApiActivity, read),
        A::AuthzDenied => (ApiActivity, Activity(OTHER, "Access Denied")),
        A::ContainmentBlockAddress => (ApiActivity, create),
        A::ContainmentRevokeSessions | A::ContainmentUnblockAddress => (ApiActivity, delete),
        A::KeysAdd => (ApiActivity, create),
        // Accounts, resources and secrets brought in from the Python stack.
        A::ImportRun => (ApiActivity, create),
        A::KeysPromote | A::KeysReencrypt | A::KeysRotateSigning => (ApiActivity, update),
        A::KeysRetire => (ApiActivity, delete),
        A::ServerStart => (ApiActivity, Activity(OTHER, "Server Start")),
        A::SharedStateRestored | A::SharedStateUnavailable => {
            (ApiActivity, Activity(OTHER, "Shared State"))
        }
        A::IncidentOpen | A::IncidentReport => (DetectionFinding, create),
        // Close when the update resolved it (`finding`).
        A::IncidentUpdate => (DetectionFinding, Activity(2, "Update")),
    }
}

/// Whether the action succeeded, as OCSF's `status_id` (1 Success, 2 Failure): a session ended
/// by its owner's revocation is a success, one ended because a used refresh token came back is
/// not.
fn status_id(action: Option<Action>, outcome: Option<Outcome>) -> (u32, &'static str) {
    match outcome {
        Some(Outcome::Success) => (1, "Success"),
        Some(Outcome::SessionRevoked | Outcome::AccessTokenDenied)
            if action == Some(Action::AuthRevoke) =>
        {
            (1, "Success")
        }
        // Half a sign-in: neither a success nor a failure yet.
        Some(Outcome::SecondFactorRequired) => (99, "Other"),
        Some(_) => (2, "Failure"),
        None => (0, "Unknown"),
    }
}

/// OCSF `severity_id` and caption.
fn severity(id: u32) -> (u32, &'static str) {
    let name = match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        _ => return (0, "Unknown"),
    };
    (id, name)
}

/// The row's severity (`info`, `warning`, `critical`) as OCSF's.
fn row_severity(s: &str) -> (u32, &'static str) {
    severity(match s {
        "info" => 1,
        "warning" => 3,
        "critical" => 5,
        _ => 0,
    })
}

fn level_severity(l: Level) -> (u32, &'static str) {
    severity(match l {
        Level::Low => 2,
        Level::Medium => 3,
        Level::High => 4,
        Level::Critical => 5,
    })
}

/// One sealed row as an OCSF event.
pub fn event(row: &AuditRow) -> Value {
    let action = row.action.parse::<Action>().ok();
    let outcome = row.outcome.parse::<Outcome>().ok();
    // A name this build does not know (written by a newer one) is still exported, as API activity.
    let (class, mut activity) =
        action.map_or((Class::ApiActivity, Activity(OTHER, "Other")), classify);
    let mut sev = row_severity(&row.severity);
    let (mut status, mut status_name) = status_id(action, outcome);
    let mut e = Map::new();
    match class {
        Class::Authentication => {
            e.insert("user".into(), subject(row));
            e.insert("service".into(), json!({"name": PRODUCT}));
            if let Some(ip) = &row.ip {
                e.insert("src_endpoint".into(), json!({"ip": ip}));
            }
        }
        Class::AccountChange => {
            let user = match &row.target {
                Some(t) => json!({"uid": t}),
                None => subject(row),
            };
            e.insert("user".into(), user);
            if let Some(a) = &row.actor_id {
                e.insert("actor".into(), json!({"user": {"uid": a}}));
            }
            e.insert("src_endpoint".into(), endpoint(row));
        }
        Class::ApiActivity => {
            let actor = match &row.actor_id {
                Some(a) => json!({"user": {"uid": a}}),
                None => json!({"app_name": PRODUCT}),
            };
            e.insert("actor".into(), actor);
            // A refusal names the operation refused in its detail.
            let operation = match (action, &row.detail) {
                (Some(Action::AuthzDenied), Some(d)) => d.as_str(),
                _ => row.action.as_str(),
            };
            e.insert(
                "api".into(),
                json!({"operation": operation, "service": {"name": PRODUCT}}),
            );
            e.insert("src_endpoint".into(), endpoint(row));
            if let Some(t) = &row.target {
                e.insert("resources".into(), json!([{"uid": t}]));
            }
        }
        Class::DetectionFinding => {
            let f = finding(row, action);
            if let Some(a) = f.activity {
                activity = a;
            }
            if let Some(l) = f.level {
                sev = level_severity(l);
            }
            (status, status_name) = f.status;
            e.insert("finding_info".into(), f.info);
            e.insert("is_alert".into(), json!(activity.0 == 1));
        }
    }
    let Activity(activity_id, activity_name) = activity;
    let at = Timestamp::from_micros(row.at);
    let mut metadata = json!({
        "version": VERSION,
        "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": env!("CARGO_PKG_VERSION")},
        "uid": row.id,
        "sequence": row.seq,
        "event_code": row.action,
        "log_name": "audit",
        "original_time": at.rfc3339(),
    });
    if let Some(r) = &row.request_id {
        metadata["correlation_uid"] = json!(r);
    }
    let message = match &row.detail {
        Some(d) => format!("{} {}: {d}", row.action, row.outcome),
        None => format!("{} {}", row.action, row.outcome),
    };
    let mut base = json!({
        "class_uid": class.uid(),
        "class_name": class.name(),
        "category_uid": class.category_uid(),
        "category_name": class.category_name(),
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class.uid() * 100 + activity_id,
        "type_name": format!("{}: {activity_name}", class.name()),
        "severity_id": sev.0,
        "severity": sev.1,
        "time": at.micros() / 1000,
        "status_id": status,
        "status": status_name,
        "status_detail": row.outcome,
        "message": message,
        "metadata": metadata,
        "unmapped": {
            "hash": row.hash,
            "prev_hash": row.prev_hash,
            "action": row.action,
            "outcome": row.outcome,
            "severity": row.severity,
            "actor_id": row.actor_id,
            "target": row.target,
            "detail": row.detail,
        },
    });
    if let Value::Object(b) = &mut base {
        b.extend(e);
    }
    base
}

/// Who authenticated: the account (its id), or the pseudonym of a name that matched none.
fn subject(row: &AuditRow) -> Value {
    match (&row.actor_id, &row.target) {
        (Some(a), _) => json!({"uid": a}),
        (None, Some(t)) => json!({"name": t}),
        (None, None) => json!({"name": "unknown", "type_id": 0}),
    }
}

/// Where the request came from; the server itself for what it did on its own (a job, a command).
fn endpoint(row: &AuditRow) -> Value {
    match &row.ip {
        Some(ip) => json!({"ip": ip}),
        None => json!({"name": PRODUCT}),
    }
}

/// What an incident event says as a finding.
struct Finding {
    info: Value,
    /// Close when an update resolved the incident.
    activity: Option<Activity>,
    level: Option<Level>,
    /// The finding's status (1 New, 2 In Progress, 4 Resolved).
    status: (u32, &'static str),
}

/// Reads an incident event: the incident's id from the target (`incident:ID`), its kind and level
/// from the detail `service::incidents` writes (`KIND (LEVEL)` when a detector opens it,
/// `level LEVEL ...` for a report, `FROM -> TO[; level A -> B][; ...]` for an update).
fn finding(row: &AuditRow, action: Option<Action>) -> Finding {
    let uid = row
        .target
        .as_deref()
        .map(|t| t.strip_prefix("incident:").unwrap_or(t))
        .unwrap_or(&row.id);
    let detail = row.detail.as_deref().unwrap_or("");
    let new = (1, "New");
    let (title, level, activity, status) = match action {
        Some(Action::IncidentOpen) => {
            let (kind, level) = detail.split_once(" (").unwrap_or((detail, ""));
            (kind, level.trim_end_matches(')').parse().ok(), None, new)
        }
        Some(Action::IncidentReport) => {
            let level = detail
                .strip_prefix("level ")
                .and_then(|l| l.split([' ', ';']).next())
                .and_then(|l| l.parse().ok());
            ("user_report", level, None, new)
        }
        _ => {
            let mut parts = detail.split("; ");
            let to = parts
                .next()
                .and_then(|s| s.rsplit_once("-> "))
                .and_then(|(_, to)| to.parse::<Status>().ok());
            let level = parts
                .find_map(|p| p.strip_prefix("level "))
                .and_then(|l| l.rsplit_once("-> "))
                .and_then(|(_, to)| to.parse().ok());
            let (activity, status) = match to {
                Some(Status::Resolved) => (Some(Activity(3, "Close")), (4, "Resolved")),
                Some(Status::Open | Status::Contained) => (None, (2, "In Progress")),
                None => (None, (0, "Unknown")),
            };
            ("incident update", level, activity, status)
        }
    };
    let mut info = json!({"uid": uid, "title": title, "desc": detail});
    if !title.is_empty() && action == Some(Action::IncidentOpen) {
        info["types"] = json!([title]);
    }
    Finding {
        info,
        activity,
        level,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(action: Action, outcome: Outcome, target: Option<&str>, detail: &str) -> AuditRow {
        AuditRow {
            id: "e1".into(),
            seq: Some(7),
            at: 1_700_000_000_123_456,
            action: action.as_str().into(),
            outcome: outcome.as_str().into(),
            severity: "info".into(),
            actor_id: None,
            target: target.map(Into::into),
            ip: None,
            request_id: None,
            detail: Some(detail.into()),
            prev_hash: Some("p".into()),
            hash: Some("h".into()),
        }
    }

    #[test]
    fn every_action_has_a_class_and_an_activity_of_it() {
        for a in Action::ALL {
            let (class, Activity(id, name)) = classify(*a);
            assert!(matches!(id, 1..=11 | 99), "{a}: {id}");
            assert!(!name.is_empty());
            let e = event(&row(*a, Outcome::Success, None, ""));
            assert_eq!(e["class_uid"], class.uid(), "{a}");
            assert_eq!(
                e["type_uid"].as_u64().unwrap(),
                e["class_uid"].as_u64().unwrap() * 100 + e["activity_id"].as_u64().unwrap()
            );
            assert_eq!(e["category_uid"], class.uid() / 1000);
        }
        assert_eq!(classify(Action::AuthLogin).0, Class::Authentication);
        assert_eq!(classify(Action::UserRoleChange).0, Class::AccountChange);
        assert_eq!(classify(Action::ResourceUpdate).0, Class::ApiActivity);
        assert_eq!(classify(Action::IncidentOpen).0, Class::DetectionFinding);
    }

    #[test]
    fn the_chain_and_the_time_travel_with_the_event() {
        let e = event(&row(
            Action::AuthLogin,
            Outcome::Failure,
            Some("login:ab"),
            "x",
        ));
        assert_eq!(e["time"], 1_700_000_000_123_i64);
        assert_eq!(e["metadata"]["sequence"], 7);
        assert_eq!(e["unmapped"]["hash"], "h");
        assert_eq!(e["unmapped"]["prev_hash"], "p");
        assert_eq!(e["status_id"], 2);
        assert_eq!(e["user"]["name"], "login:ab");
    }

    #[test]
    fn incident_events_read_their_level_and_the_status_they_moved_to() {
        let open = event(&row(
            Action::IncidentOpen,
            Outcome::Success,
            Some("incident:i9"),
            "brute_force (high)",
        ));
        assert_eq!(open["finding_info"]["uid"], "i9");
        assert_eq!(open["finding_info"]["title"], "brute_force");
        assert_eq!(open["severity_id"], 4);
        assert_eq!(
            (open["activity_id"].as_u64(), open["status_id"].as_u64()),
            (Some(1), Some(1))
        );
        let report = event(&row(
            Action::IncidentReport,
            Outcome::Success,
            Some("incident:i9"),
            "level medium (asked critical, kept for triage)",
        ));
        assert_eq!(report["severity_id"], 3);
        let update = event(&row(
            Action::IncidentUpdate,
            Outcome::Success,
            Some("incident:i9"),
            "open -> resolved; level low -> critical; affected systems [high]",
        ));
        assert_eq!(update["activity_id"], 3);
        assert_eq!(update["type_uid"], 200403);
        assert_eq!(update["status_id"], 4);
        assert_eq!(update["severity_id"], 5);
        let note = event(&row(
            Action::IncidentUpdate,
            Outcome::Success,
            Some("incident:i9"),
            "open -> contained",
        ));
        assert_eq!(
            (note["activity_id"].as_u64(), note["status_id"].as_u64()),
            (Some(2), Some(2))
        );
    }
}
