//! Alerts: incidents at or above `IMANGOR_ALERT_MIN_LEVEL` are posted to a webhook as JSON,
//! signed with HMAC-SHA256 over `TIMESTAMP.BODY` (header `X-Imangor-Signature: t=TIMESTAMP,
//! v1=HEX`), retried with backoff (1, 2, 4, 8, 16 s), never on the request path: `send` only
//! queues (`IMANGOR_ALERT_QUEUE` alerts at most). An alert is never lost silently: one that
//! finds the queue full, or that the webhook refuses on every attempt, is logged and counted in
//! `security_alerts_dropped_total{reason}`, never blocking a request.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use tokio::sync::mpsc;

use crate::config::Secret;
use crate::db::incidents::Incident;
use crate::metrics::{AlertDropped, Metrics};

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

/// The queue to the alert sender; a no-op when no webhook is configured.
#[derive(Clone)]
pub struct Alerts {
    tx: Option<mpsc::Sender<serde_json::Value>>,
    metrics: Arc<Metrics>,
}

impl Alerts {
    /// Starts the sender task when a webhook URL is configured; `queue` alerts wait at most.
    pub fn start(
        url: Option<String>,
        secret: Option<Secret>,
        queue: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Ok(Self { tx: None, metrics });
        };
        let secret = secret.ok_or_else(|| {
            anyhow::anyhow!("IMANGOR_ALERT_WEBHOOK_URL needs IMANGOR_ALERT_WEBHOOK_SECRET (the HMAC key receivers check)")
        })?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(deliver(client, url, secret, rx, metrics.clone()));
        Ok(Self {
            tx: Some(tx),
            metrics,
        })
    }

    /// Queues the alert of `incident`; never waits.
    pub fn send(&self, incident: &Incident, why: Alert) {
        let Some(tx) = &self.tx else { return };
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
                "first_seen": incident.first_seen.rfc3339(),
                "last_seen": incident.last_seen.rfc3339(),
            }
        });
        if let Err(e) = tx.try_send(body) {
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "the alert queue is full",
                mpsc::error::TrySendError::Closed(_) => "the alert sender has stopped",
            };
            self.metrics.alert_dropped(AlertDropped::QueueFull);
            tracing::error!(
                target: "security",
                incident = %incident.id,
                level = %incident.level,
                reason,
                "alert dropped (counted in security_alerts_dropped_total)"
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
    mut rx: mpsc::Receiver<serde_json::Value>,
    metrics: Arc<Metrics>,
) {
    while let Some(body) = rx.recv().await {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            let t = crate::domain::Timestamp::now().unix_seconds();
            let res = client
                .post(&url)
                .header("content-type", "application/json")
                .header(
                    "x-imangor-signature",
                    signature(secret.expose().as_bytes(), t, &bytes),
                )
                .body(bytes.clone())
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => break,
                other => {
                    let why = match other {
                        Ok(r) => format!("status {}", r.status()),
                        Err(e) => e.without_url().to_string(),
                    };
                    if attempt == ATTEMPTS {
                        metrics.alert_dropped(AlertDropped::Undelivered);
                        tracing::error!(
                            target: "security",
                            attempt,
                            why,
                            "alert not delivered; giving up (counted in security_alerts_dropped_total)"
                        );
                        break;
                    }
                    tracing::warn!(attempt, why, "alert not delivered; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
}
