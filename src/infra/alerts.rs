//! Alerts: incidents at or above `IMANGOR_ALERT_MIN_LEVEL` are posted to a webhook as JSON,
//! signed with HMAC-SHA256 over `TIMESTAMP.BODY` (header `X-Imangor-Signature: t=TIMESTAMP,
//! v1=HEX`), retried with backoff (1, 2, 4, 8, 16 s), never on the request path: `send` only
//! queues (`IMANGOR_ALERT_QUEUE` alerts at most, all lanes together).
//!
//! Three lanes, sent in this order: critical alerts (any event); other opened and escalated
//! alerts (urgent); re-raises of an open incident below critical, sent only when the others are
//! empty. When the queue is full, an urgent alert takes the place of the oldest queued re-raise,
//! and a critical one that of the oldest re-raise or else of the newest queued urgent alert
//! (the one displaced is dropped, reason `displaced`); an alert is itself dropped
//! (`queue_full`) only when no queued alert ranks below it. So a flood of opened high alerts
//! (one per address, say) neither delays nor drops a critical alert.
//!
//! An alert is never lost silently: every drop is logged with its incident and level and counted
//! in `security_alerts_dropped_total{reason}`: `queue_full`, `displaced`, `undelivered` (the
//! webhook refused every attempt), `closed` (sent after the sender stopped) and `shutdown`
//! (still queued or being delivered when the shutdown deadline passed). Never blocks a request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use tokio::sync::Notify;

use crate::config::Secret;
use crate::domain::incident::{Incident, Level};
use crate::infra::jobs::Jobs;
use crate::infra::metrics::{AlertDropped, Metrics};

const ATTEMPTS: u32 = 6;

/// Why an incident alerts: its `event` in the webhook's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// A new incident (`incident.opened`).
    Opened,
    /// An unresolved incident raised again (`incident.raised`).
    Raised,
    /// An admin or a manager raised its level to the alert level or above (`incident.escalated`).
    Escalated,
}

impl Alert {
    fn event(self) -> &'static str {
        match self {
            Alert::Opened => "incident.opened",
            Alert::Raised => "incident.raised",
            Alert::Escalated => "incident.escalated",
        }
    }
}

/// One alert waiting for the sender.
struct Queued {
    body: serde_json::Value,
    incident: String,
    level: String,
}

/// The three lanes, their shared capacity, and where the sender stands.
struct Lanes {
    /// Critical alerts, whatever their event.
    critical: VecDeque<Queued>,
    /// Opened and escalated alerts below critical.
    urgent: VecDeque<Queued>,
    /// Re-raises of an open incident below critical.
    raised: VecDeque<Queued>,
    capacity: usize,
    /// No alert is taken any more (shutdown began).
    closed: bool,
    /// The alert the sender is delivering now (incident, level).
    in_flight: Option<(String, String)>,
    /// The shutdown deadline passed: what was left was counted, the sender counts nothing more.
    abandoned: bool,
}

struct Queue {
    lanes: Mutex<Lanes>,
    /// Wakes the sender (an alert queued, or the queue closed).
    wake: Notify,
    /// Wakes a shutdown waiting for the sender to finish.
    idle: Notify,
}

impl Queue {
    fn lanes(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The queue to the alert sender; a no-op when no webhook is configured.
#[derive(Clone)]
pub struct Alerts {
    queue: Option<Arc<Queue>>,
    metrics: Arc<Metrics>,
}

fn dropped(metrics: &Metrics, why: AlertDropped, incident: &str, level: &str, reason: &str) {
    metrics.alert_dropped(why);
    tracing::error!(
        target: "security",
        incident,
        level,
        reason,
        "alert dropped (counted in security_alerts_dropped_total)"
    );
}

impl Alerts {
    /// Starts the sender task when a webhook URL is configured; `queue` alerts wait at most.
    pub fn start(
        url: Option<String>,
        secret: Option<Secret>,
        queue: usize,
        metrics: Arc<Metrics>,
        jobs: &mut Jobs,
    ) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Ok(Self {
                queue: None,
                metrics,
            });
        };
        let secret = secret.ok_or_else(|| {
            anyhow::anyhow!("IMANGOR_ALERT_WEBHOOK_URL needs IMANGOR_ALERT_WEBHOOK_SECRET (the HMAC key receivers check)")
        })?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let q = Arc::new(Queue {
            lanes: Mutex::new(Lanes {
                critical: VecDeque::new(),
                urgent: VecDeque::new(),
                raised: VecDeque::new(),
                capacity: queue.max(1),
                closed: false,
                in_flight: None,
                abandoned: false,
            }),
            wake: Notify::new(),
            idle: Notify::new(),
        });
        jobs.spawn(
            "alert sender",
            deliver(client, url, secret, q.clone(), metrics.clone()),
        );
        Ok(Self {
            queue: Some(q),
            metrics,
        })
    }

    /// Queues the alert of `incident`; never waits. A critical alert goes first and, when the
    /// queue is full, takes the place of a queued re-raise or else of the newest queued urgent
    /// alert; an opened or escalated one goes next and takes the place of a queued re-raise.
    pub fn send(&self, incident: &Incident, why: Alert) {
        let Some(q) = &self.queue else { return };
        let body = serde_json::json!({
            "event": why.event(),
            "incident": {
                "id": incident.id,
                "kind": incident.kind,
                "level": incident.level,
                "requested_level": incident.requested_level,
                "status": incident.status,
                "subject": incident.subject,
                "description": incident.description,
                "affected_systems": incident.affected_systems,
                "count": incident.count,
                "recurrence_of": incident.recurrence_of,
                "first_seen": incident.first_seen.rfc3339(),
                "last_seen": incident.last_seen.rfc3339(),
            }
        });
        let item = Queued {
            body,
            incident: incident.id.clone(),
            level: incident.level.to_string(),
        };
        let critical = incident.level == Level::Critical;
        let urgent = why != Alert::Raised;
        let mut lanes = q.lanes();
        if lanes.closed {
            drop(lanes);
            return dropped(
                &self.metrics,
                AlertDropped::Closed,
                &incident.id,
                incident.level.as_str(),
                "the alert sender has stopped",
            );
        }
        if lanes.critical.len() + lanes.urgent.len() + lanes.raised.len() >= lanes.capacity {
            let displaced = if critical {
                match lanes.raised.pop_front() {
                    Some(old) => Some(old),
                    None => lanes.urgent.pop_back(),
                }
            } else if urgent {
                lanes.raised.pop_front()
            } else {
                None
            };
            match displaced {
                Some(old) => dropped(
                    &self.metrics,
                    AlertDropped::Displaced,
                    &old.incident,
                    &old.level,
                    "a lower alert made room for a more urgent one in the full queue",
                ),
                None => {
                    drop(lanes);
                    return dropped(
                        &self.metrics,
                        AlertDropped::QueueFull,
                        &incident.id,
                        incident.level.as_str(),
                        "the alert queue is full",
                    );
                }
            }
        }
        if critical {
            lanes.critical.push_back(item);
        } else if urgent {
            lanes.urgent.push_back(item);
        } else {
            lanes.raised.push_back(item);
        }
        drop(lanes);
        q.wake.notify_one();
    }

    /// At shutdown: takes no more alerts (`closed`), lets the sender deliver what is queued
    /// until `deadline`, then counts what is left (queued or being delivered) as `shutdown`.
    pub async fn shutdown(&self, deadline: Duration) {
        let Some(q) = &self.queue else { return };
        q.lanes().closed = true;
        q.wake.notify_one();
        let drained = async {
            loop {
                let idle = q.idle.notified();
                {
                    let l = q.lanes();
                    if l.critical.is_empty()
                        && l.urgent.is_empty()
                        && l.raised.is_empty()
                        && l.in_flight.is_none()
                    {
                        return;
                    }
                }
                idle.await;
            }
        };
        if tokio::time::timeout(deadline, drained).await.is_ok() {
            return;
        }
        let mut lanes = q.lanes();
        let l = &mut *lanes;
        l.abandoned = true;
        let queued = l
            .critical
            .drain(..)
            .chain(l.urgent.drain(..))
            .chain(l.raised.drain(..));
        let left: Vec<(String, String)> = l
            .in_flight
            .take()
            .into_iter()
            .chain(queued.map(|a| (a.incident, a.level)))
            .collect();
        drop(lanes);
        for (incident, level) in left {
            dropped(
                &self.metrics,
                AlertDropped::Shutdown,
                &incident,
                &level,
                "still queued when the shutdown deadline passed",
            );
        }
    }
}

/// The signature header value for `body` sent at `timestamp` (seconds since the epoch).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, secret));
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let hex = crate::crypto::hex(ctx.sign().as_ref());
    format!("t={timestamp},v1={hex}")
}

async fn deliver(
    client: reqwest::Client,
    url: String,
    secret: Secret,
    q: Arc<Queue>,
    metrics: Arc<Metrics>,
) {
    loop {
        let wake = q.wake.notified();
        let next = {
            let mut l = q.lanes();
            let next = l
                .critical
                .pop_front()
                .or_else(|| l.urgent.pop_front())
                .or_else(|| l.raised.pop_front());
            match next {
                Some(a) => {
                    l.in_flight = Some((a.incident.clone(), a.level.clone()));
                    Some(a)
                }
                None if l.closed => return,
                None => None,
            }
        };
        let Some(alert) = next else {
            wake.await;
            continue;
        };
        let failed = post(&client, &url, &secret, &alert.body).await;
        let mut l = q.lanes();
        if l.abandoned {
            // Counted by the shutdown that gave up waiting.
            return;
        }
        l.in_flight = None;
        drop(l);
        if let Some(why) = failed {
            dropped(
                &metrics,
                AlertDropped::Undelivered,
                &alert.incident,
                &alert.level,
                &format!("the webhook refused all {ATTEMPTS} attempts, the last: {why}"),
            );
        }
        q.idle.notify_waiters();
    }
}

/// Posts one alert, retrying with backoff; the last failure when every attempt failed.
async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &Secret,
    body: &serde_json::Value,
) -> Option<String> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        let t = crate::domain::Timestamp::now().unix_seconds();
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .header(
                "x-imangor-signature",
                signature(secret.expose().as_bytes(), t, &bytes),
            )
            .body(bytes.clone())
            .send()
            .await;
        let why = match res {
            Ok(r) if r.status().is_success() => return None,
            Ok(r) => format!("status {}", r.status()),
            Err(e) => e.without_url().to_string(),
        };
        if attempt == ATTEMPTS {
            return Some(why);
        }
        tracing::warn!(attempt, why, "alert not delivered; retrying");
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    None
}
