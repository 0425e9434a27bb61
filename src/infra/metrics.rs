//! Prometheus metrics, served on their own listener (`IMANGOR_METRICS_LISTEN`), never on the
//! public one. A small registry of our own: counters and histograms with fixed label sets, so
//! that cardinality is bounded by construction (the `endpoint` label is a route template, and
//! every unknown path is the one value `unmatched`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::audit::Action;
use crate::domain::client::GrantType;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram (cumulative buckets are computed when exported).
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += s;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i];
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{labels} {}", self.sum);
        let _ = writeln!(out, "{name}_count{labels} {}", self.count);
    }
}

/// The outcomes of `auth_attempts_total{status}`.
#[derive(Debug, Clone, Copy)]
pub enum AuthStatus {
    Success,
    Failure,
    Locked,
    RateLimited,
}

const AUTH_STATUSES: [&str; 4] = ["success", "failure", "locked", "rate_limited"];

/// The actions of `security_events_skipped_total{action}`: refusals of the login guard past
/// their account's cap of events (`limits::login::RefusalEvents`), and replays of a spent
/// refresh token whose reuse was already recorded (refused, never written again: a replay must
/// not raise the incident and page the on-call each time).
pub const SKIPPED_ACTIONS: [Action; 4] = [
    Action::AuthLogin,
    Action::UserPasswordChange,
    Action::AuthRefreshReuse,
    Action::OAuthCodeReuse,
];
/// Why an incident alert was lost: `security_alerts_dropped_total{reason}`.
#[derive(Debug, Clone, Copy)]
pub enum AlertDropped {
    /// The queue to the webhook sender was full (of opened, escalated and critical alerts, or
    /// of re-raises when the alert was a re-raise).
    QueueFull,
    /// The webhook refused or did not answer every attempt.
    Undelivered,
    /// A queued re-raise made room for an opened, escalated or critical alert.
    Displaced,
    /// The sender had stopped (the server is shutting down).
    Closed,
    /// Still queued (or being delivered) when the shutdown deadline passed.
    Shutdown,
}

const ALERT_DROP_REASONS: [&str; 5] = [
    "queue_full",
    "undelivered",
    "displaced",
    "closed",
    "shutdown",
];

/// The limits `throttled_requests_total{limit}` counts.
const THROTTLE_CLASSES: [&str; 5] = ["api", "token", "register", "report", "health"];

/// Histograms by route template, then by (method, status): looking a route up borrows its
/// name, so a request allocates nothing once its route has been seen.
type ByRoute = std::collections::HashMap<String, BTreeMap<(&'static str, u16), Histogram>>;

/// Every metric of the process. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<ByRoute>,
    auth: [AtomicU64; 4],
    /// `oauth_grants_total{grant_type, outcome}`: by `GrantType::ALL`, then success / refused.
    oauth_grants: [[AtomicU64; 2]; GrantType::ALL.len()],
    throttled: Mutex<BTreeMap<&'static str, u64>>,
    skipped: [AtomicU64; SKIPPED_ACTIONS.len()],
    incidents: Mutex<BTreeMap<(String, String), u64>>,
    alerts_dropped: [AtomicU64; ALERT_DROP_REASONS.len()],
    /// Connections closed on arrival: over an address's share, over the server's cap.
    refused: [AtomicU64; 2],
    /// Database checks of the readiness probe (`/readyz` itself makes none).
    readiness_checks: AtomicU64,
    /// Requests authenticated by an old stack's access token (`IMANGOR_LEGACY_JWT_SECRET`).
    legacy_tokens: AtomicU64,
    /// Problems of the audit chain found, by kind (each once per process).
    audit_problems: Mutex<BTreeMap<&'static str, u64>>,
}

const REFUSED: [&str; 2] = ["per_address", "capacity"];

/// Values read at scrape time from elsewhere in the process.
pub struct Gauges {
    pub active_sessions: Option<i64>,
    pub hash_queue_depth: usize,
    /// Kept by the hashing pool itself.
    pub hashing: Histogram,
}

/// Method names as static labels; anything else is `OTHER`.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// A label value as the exposition format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// One answered request: `endpoint` is the route template (`None`: no route matched).
    pub fn request(
        &self,
        endpoint: Option<&str>,
        method: &axum::http::Method,
        status: u16,
        took: Duration,
    ) {
        let endpoint = endpoint.unwrap_or("unmatched");
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let route = match map.get_mut(endpoint) {
            Some(r) => r,
            None => map.entry(endpoint.to_owned()).or_default(),
        };
        route
            .entry((method_label(method), status))
            .or_default()
            .observe(took);
    }

    pub fn auth(&self, s: AuthStatus) {
        self.auth[s as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A grant of an OAuth client at the token endpoint, issued or refused.
    pub fn oauth_grant(&self, grant: GrantType, issued: bool) {
        if let Some(i) = GrantType::ALL.iter().position(|g| *g == grant) {
            self.oauth_grants[i][usize::from(!issued)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An incident alert that was lost, and why.
    pub fn alert_dropped(&self, why: AlertDropped) {
        self.alerts_dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed on arrival, for `reason` (`per_address` or `capacity`).
    pub fn connection_refused(&self, reason: &'static str) {
        if let Some(i) = REFUSED.iter().position(|r| *r == reason) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One database check of the readiness probe.
    pub fn readiness_check(&self) {
        self.readiness_checks.fetch_add(1, Ordering::Relaxed);
    }

    /// A request authenticated by an old stack's access token.
    pub fn legacy_token_accepted(&self) {
        self.legacy_tokens.fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused by a rate limit of `class` (`api`, `token`, `register`, `report`, `health`).
    pub fn throttled(&self, class: &'static str) {
        *self
            .throttled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(class)
            .or_default() += 1;
    }

    /// Requests refused by each rate limit since the process started (the security summary).
    pub fn throttled_counts(&self) -> Vec<(&'static str, u64)> {
        let map = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        THROTTLE_CLASSES
            .into_iter()
            .map(|class| (class, map.get(class).copied().unwrap_or(0)))
            .collect()
    }

    /// A refusal that wrote no security event (`action` is one of `SKIPPED_ACTIONS`).
    pub fn event_skipped(&self, action: Action) {
        if let Some(i) = SKIPPED_ACTIONS.iter().position(|a| *a == action) {
            self.skipped[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A problem of the audit chain found for the first time (`kind`: `edited`, `deleted`,
    /// `reordered` or `checkpoint`).
    pub fn audit_problem(&self, kind: &'static str) {
        *self
            .audit_problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub fn incident(&self, level: &str, kind: &str, n: u64) {
        *self
            .incidents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((level.to_owned(), kind.to_owned()))
            .or_default() += n;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "imangor_build_info",
            "gauge",
            "The running build.",
        );
        let _ = writeln!(
            out,
            "imangor_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );

        head(
            &mut out,
            "http_requests_total",
            "counter",
            "Answered requests by route template, method and status.",
        );
        let requests: BTreeMap<(String, &'static str, u16), Histogram> = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|(route, by)| {
                by.iter()
                    .map(move |((m, s), h)| ((route.clone(), *m, *s), h.clone()))
            })
            .collect();
        for ((endpoint, method, status), h) in &requests {
            let _ = writeln!(
                out,
                "http_requests_total{{endpoint=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                escape(endpoint),
                h.count
            );
        }
        head(
            &mut out,
            "request_duration_seconds",
            "histogram",
            "Time to answer, by route template, method and status.",
        );
        for ((endpoint, method, status), h) in &requests {
            let labels = format!(
                "endpoint=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape(endpoint)
            );
            h.write(&mut out, "request_duration_seconds", &labels);
        }

        head(
            &mut out,
            "auth_attempts_total",
            "counter",
            "Password-grant attempts by outcome.",
        );
        for (i, s) in AUTH_STATUSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "auth_attempts_total{{status=\"{s}\"}} {}",
                self.auth[i].load(Ordering::Relaxed)
            );
        }

        head(
            &mut out,
            "oauth_grants_total",
            "counter",
            "Token requests of OAuth clients by grant type and outcome (issued or refused).",
        );
        for (i, g) in GrantType::ALL.iter().enumerate() {
            for (j, outcome) in ["issued", "refused"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "oauth_grants_total{{grant_type=\"{g}\",outcome=\"{outcome}\"}} {}",
                    self.oauth_grants[i][j].load(Ordering::Relaxed)
                );
            }
        }

        head(
            &mut out,
            "throttled_requests_total",
            "counter",
            "Requests refused by a rate limit, by limit.",
        );
        for (class, n) in self.throttled_counts() {
            let _ = writeln!(out, "throttled_requests_total{{limit=\"{class}\"}} {n}");
        }

        head(
            &mut out,
            "security_events_skipped_total",
            "counter",
            "Refusals that wrote no security event: of the login guard past their account's cap for the window or aimed at no account, and replays of a spent refresh token whose reuse was already recorded.",
        );
        for (i, action) in SKIPPED_ACTIONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "security_events_skipped_total{{action=\"{action}\"}} {}",
                self.skipped[i].load(Ordering::Relaxed)
            );
        }
        head(
            &mut out,
            "connections_refused_total",
            "counter",
            "Connections closed on arrival: the address held its share, or the server was full.",
        );
        for (i, reason) in REFUSED.iter().enumerate() {
            let _ = writeln!(
                out,
                "connections_refused_total{{reason=\"{reason}\"}} {}",
                self.refused[i].load(Ordering::Relaxed)
            );
        }
        head(
            &mut out,
            "readiness_checks_total",
            "counter",
            "Database checks of the readiness probe, one a second; GET /readyz makes none.",
        );
        let _ = writeln!(
            out,
            "readiness_checks_total {}",
            self.readiness_checks.load(Ordering::Relaxed)
        );
        head(
            &mut out,
            "legacy_tokens_accepted_total",
            "counter",
            "Requests authenticated by an access token of the replaced Python stack (IMANGOR_LEGACY_JWT_SECRET); at zero for a while, the setting can go.",
        );
        let _ = writeln!(
            out,
            "legacy_tokens_accepted_total {}",
            self.legacy_tokens.load(Ordering::Relaxed)
        );

        head(
            &mut out,
            "security_incidents_total",
            "counter",
            "Security incidents opened or raised again, by level and type.",
        );
        for ((level, kind), n) in self
            .incidents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "security_incidents_total{{level=\"{}\",type=\"{}\"}} {n}",
                escape(level),
                escape(kind)
            );
        }

        head(
            &mut out,
            "audit_chain_problems_total",
            "counter",
            "Problems of the audit chain this process found (each once), by kind: tampering; nothing more is signed.",
        );
        {
            let map = self
                .audit_problems
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for kind in ["edited", "deleted", "reordered", "checkpoint"] {
                let n = map.get(kind).copied().unwrap_or(0);
                let _ = writeln!(out, "audit_chain_problems_total{{kind=\"{kind}\"}} {n}");
            }
        }

        head(
            &mut out,
            "security_alerts_dropped_total",
            "counter",
            "Incident alerts lost, by reason: the queue was full (queue_full), a more urgent alert took its place (displaced), the webhook refused every attempt (undelivered), sent after the sender stopped (closed), left at the shutdown deadline (shutdown).",
        );
        for (i, reason) in ALERT_DROP_REASONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "security_alerts_dropped_total{{reason=\"{reason}\"}} {}",
                self.alerts_dropped[i].load(Ordering::Relaxed)
            );
        }

        if let Some(n) = gauges.active_sessions {
            head(
                &mut out,
                "active_sessions",
                "gauge",
                "Login sessions neither revoked nor expired.",
            );
            let _ = writeln!(out, "active_sessions {n}");
        }
        head(
            &mut out,
            "password_hash_queue_depth",
            "gauge",
            "Password hashes running or waiting.",
        );
        let _ = writeln!(out, "password_hash_queue_depth {}", gauges.hash_queue_depth);
        head(
            &mut out,
            "password_hash_duration_seconds",
            "histogram",
            "Time of one password hash or verification.",
        );
        gauges
            .hashing
            .write(&mut out, "password_hash_duration_seconds", "");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        m.request(
            Some("/a/{id}"),
            &axum::http::Method::GET,
            200,
            Duration::from_millis(3),
        );
        m.request(
            Some("/a/{id}"),
            &axum::http::Method::GET,
            200,
            Duration::from_secs(20),
        );
        m.request(
            None,
            &axum::http::Method::from_bytes(b"BREW").unwrap(),
            404,
            Duration::ZERO,
        );
        m.incident("high", "a\"b", 1);
        let text = m.render(&Gauges {
            active_sessions: Some(2),
            hash_queue_depth: 0,
            hashing: Histogram::default(),
        });
        assert!(text.contains(r#"request_duration_seconds_bucket{endpoint="/a/{id}",method="GET",status="200",le="0.005"} 1"#), "{text}");
        assert!(text.contains(r#"request_duration_seconds_bucket{endpoint="/a/{id}",method="GET",status="200",le="+Inf"} 2"#));
        assert!(text.contains(
            r#"http_requests_total{endpoint="unmatched",method="OTHER",status="404"} 1"#
        ));
        assert!(text.contains(r#"security_incidents_total{level="high",type="a\"b"} 1"#));
        assert!(text.contains("active_sessions 2"));
    }
}
