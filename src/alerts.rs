//! Alerts: incidents at or above `IMANGOR_ALERT_MIN_LEVEL` are posted to a webhook as JSON,
//! signed with HMAC-SHA256 over `TIMESTAMP.BODY` (header `X-Imangor-Signature: t=TIMESTAMP,
//! v1=HEX`), retried with backoff (1, 2, 4, 8, 16 s), never on the request path: `send` only
//! queues. When the queue is full an alert is dropped and logged, never blocking a request.

use std::time::Duration;

use aws_lc_rs::hmac;
use tokio::sync::mpsc;

use crate::config::Secret;
use crate::db::incidents::Incident;

const QUEUE: usize = 1024;
const ATTEMPTS: u32 = 6;

/// The queue to the alert sender; a no-op when no webhook is configured.
#[derive(Clone, Default)]
pub struct Alerts {
    tx: Option<mpsc::Sender<serde_json::Value>>,
}

impl Alerts {
    /// Starts the sender task when a webhook URL is configured.
    pub fn start(url: Option<String>, secret: Option<Secret>) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Ok(Self::default());
        };
        let secret = secret.ok_or_else(|| {
            anyhow::anyhow!("IMANGOR_ALERT_WEBHOOK_URL needs IMANGOR_ALERT_WEBHOOK_SECRET (the HMAC key receivers check)")
        })?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(client, url, secret, rx));
        Ok(Self { tx: Some(tx) })
    }

    pub fn send(&self, incident: &Incident, opened: bool) {
        let Some(tx) = &self.tx else { return };
        let body = serde_json::json!({
            "event": if opened { "incident.opened" } else { "incident.raised" },
            "incident": {
                "id": incident.id,
                "kind": incident.kind,
                "level": incident.level,
                "status": incident.status,
                "subject": incident.subject,
                "description": incident.description,
                "count": incident.count,
                "first_seen": incident.first_seen.rfc3339(),
                "last_seen": incident.last_seen.rfc3339(),
            }
        });
        if tx.try_send(body).is_err() {
            tracing::error!(incident = %incident.id, "the alert queue is full: alert dropped");
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
                        tracing::error!(attempt, why, "alert not delivered; giving up");
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
