//! Incidents and their notes, and the closed vocabulary of incidents: their kinds, their levels
//! in rising order, and their statuses with the workflow between them.

use super::Timestamp;
use super::vocabulary::vocabulary;

vocabulary! {
    /// How serious an incident is; ordered, `Low` lowest.
    #[derive(PartialOrd, Ord)]
    pub enum Level("incident level") {
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
}

impl Level {
    /// The level one below this one (`Low` stays `Low`).
    pub fn below(self) -> Level {
        match self {
            Level::Low | Level::Medium => Level::Low,
            Level::High => Level::Medium,
            Level::Critical => Level::High,
        }
    }

    /// The level one above this one (`Critical` stays `Critical`): a recurrence's.
    pub fn above(self) -> Level {
        match self {
            Level::Low => Level::Medium,
            Level::Medium => Level::High,
            Level::High | Level::Critical => Level::Critical,
        }
    }
}

vocabulary! {
    /// Where an incident stands: open -> contained -> resolved (or open -> resolved).
    pub enum Status("incident status") {
        Open => "open",
        Contained => "contained",
        Resolved => "resolved",
    }
}

impl Status {
    /// Whether an incident at this status may be set to `next`: one step on (open -> contained,
    /// open or contained -> resolved), or the same unresolved status again (a note). A resolved
    /// incident stays resolved: a new occurrence opens a new one.
    pub fn may_become(self, next: Status) -> bool {
        match (self, next) {
            (Status::Open, Status::Contained | Status::Resolved)
            | (Status::Contained, Status::Resolved) => true,
            (a, b) => a == b && a != Status::Resolved,
        }
    }
}

vocabulary! {
    /// What raised an incident: a detector's rule, or a person's report.
    pub enum Kind("incident kind") {
        BruteForce => "brute_force",
        CredentialStuffing => "credential_stuffing",
        RefreshReuse => "refresh_reuse",
        /// Wrong second-factor codes on one account: someone holding its password guesses codes.
        TotpGuessing => "totp_guessing",
        /// A recovery code signed in from an address the account never signed in from: someone
        /// who holds the password may hold a code too (or the owner lost their authenticator).
        RecoveryCodeNewAddress => "recovery_code_new_address",
        /// A spent authorization code presented again (RFC 6749 §4.1.2: what it issued is revoked).
        CodeReuse => "authorization_code_reuse",
        AuthzProbing => "authz_probing",
        ForgedTokens => "forged_tokens",
        RoleEscalation => "role_escalation",
        SharedStateUnavailable => "shared_state_unavailable",
        DataIntegrity => "data_integrity",
        AuditTampering => "audit_tampering",
        UserReport => "user_report",
    }
}

/// An incident as stored.
#[derive(Debug, Clone)]
pub struct Incident {
    pub id: String,
    pub kind: Kind,
    pub level: Level,
    pub status: Status,
    pub subject: Option<String>,
    pub description: String,
    pub reported_by: Option<String>,
    /// The level a plain user's report asked for, when it was stored lower (for triage).
    pub requested_level: Option<Level>,
    /// Short names of the systems it touches (`auth`, `secrets`, ...).
    pub affected_systems: Vec<String>,
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub updated_at: Timestamp,
    /// When it was resolved (none while open or contained).
    pub resolved_at: Option<Timestamp>,
    /// The resolved incident of the same (kind, subject) that this one is a recurrence of.
    pub recurrence_of: Option<String>,
    /// Opened by the traffic of a drill (`imangor drill`), not by an attack.
    pub drill: bool,
}

/// One incident of a chain of recurrences, as the chain lists it.
#[derive(Debug, Clone)]
pub struct Link {
    pub id: String,
    pub level: Level,
    pub status: Status,
    pub first_seen: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub recurrence_of: Option<String>,
}

/// The level of an incident that recurs: one above the higher of the level its detector gives
/// it and the level the resolved incident it recurs of ended at (after triage), at most
/// `Critical`. So each recurrence of a chain stands at least one level above its detector's.
pub fn recurrence_level(detected: Level, previous: Level) -> Level {
    detected.max(previous).above()
}

/// A note on an incident: who (none: the server itself) moved it to `status`, and why.
#[derive(Debug, Clone)]
pub struct Note {
    pub at: Timestamp,
    pub author_id: Option<String>,
    pub status: Status,
    pub note: String,
}

/// What a page of incidents is filtered on (each when given).
#[derive(Debug, Default, Clone, Copy)]
pub struct Filter<'a> {
    pub level: Option<Level>,
    pub status: Option<Status>,
    /// One name of `affected_systems` (`[a-z0-9_-]`, checked by the caller).
    pub system: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_rise_in_the_order_of_their_names() {
        assert_eq!(Level::NAMES, ["low", "medium", "high", "critical"]);
        assert!(Level::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            Level::ALL.iter().map(|l| l.below()).collect::<Vec<_>>(),
            [Level::Low, Level::Low, Level::Medium, Level::High]
        );
        assert_eq!(
            Level::ALL.iter().map(|l| l.above()).collect::<Vec<_>>(),
            [Level::Medium, Level::High, Level::Critical, Level::Critical]
        );
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>(), Ok(*l));
            assert_eq!(l.to_string(), l.as_str());
        }
        assert!("High".parse::<Level>().is_err());
        assert!("".parse::<Level>().is_err());
    }

    #[test]
    fn a_recurrence_climbs_one_level_from_the_higher_of_detector_and_previous_capped() {
        use Level::*;
        assert_eq!(recurrence_level(High, High), Critical);
        assert_eq!(recurrence_level(Medium, Medium), High);
        // A previous incident triaged down does not pull the recurrence below its detector's.
        assert_eq!(recurrence_level(High, Low), Critical);
        // A chain keeps climbing from where the previous one ended.
        assert_eq!(recurrence_level(Medium, High), Critical);
        assert_eq!(recurrence_level(Critical, Critical), Critical);
    }

    #[test]
    fn the_workflow_moves_on_and_a_resolved_incident_stays_resolved() {
        use Status::*;
        let allowed: Vec<(Status, Status)> = Status::ALL
            .iter()
            .flat_map(|a| Status::ALL.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.may_become(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Open, Open),
                (Open, Contained),
                (Open, Resolved),
                (Contained, Contained),
                (Contained, Resolved),
            ]
        );
        assert_eq!(Status::NAMES, ["open", "contained", "resolved"]);
    }

    #[test]
    fn kinds_read_back_from_their_names() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(*k));
        }
        assert_eq!(
            serde_json::to_string(&Kind::SharedStateUnavailable).unwrap(),
            "\"shared_state_unavailable\""
        );
    }
}
