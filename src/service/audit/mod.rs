//! The audit trail as a use case: recording security events (`Event`, in the transaction of the
//! change they describe, or off the request path through the `EventSink`), sealing them into the
//! hash chain and checking it (`seal`), and reading it (`page`). The pure hash chain and its
//! signatures are `crypto::chain`'s; the rows are stored by `db::audit` and `db::events`.

pub mod check;
pub mod evidence;
pub mod ocsf;
pub mod page;
pub mod seal;

use std::time::Duration;

use crate::db::{self, Db, Tx};
use crate::domain::Timestamp;

/// What an event records and how it ended: the closed vocabulary `Event::new` takes.
pub use crate::domain::audit::{Action, Outcome};
use crate::infra::jobs::Jobs;

/// Where a request came from, for the security event log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<std::net::IpAddr>,
    pub request_id: Option<String>,
}

/// A security event about to be recorded.
pub(crate) struct Event {
    pub action: Action,
    pub outcome: Outcome,
    pub severity: &'static str,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub detail: Option<String>,
}

impl Event {
    pub fn new(action: Action, outcome: Outcome) -> Self {
        Self {
            action,
            outcome,
            severity: "info",
            actor: None,
            target: None,
            detail: None,
        }
    }
    pub fn actor(mut self, a: impl ToString) -> Self {
        self.actor = Some(a.to_string());
        self
    }
    pub fn target(mut self, t: impl ToString) -> Self {
        self.target = Some(t.to_string());
        self
    }
    /// Marks an event that needs a person's attention now (data integrity, key faults).
    pub fn critical(mut self) -> Self {
        self.severity = "critical";
        self
    }
    /// Marks an event worth a look (logged at warn level): a stored value rewritten by a read.
    pub fn warning(mut self) -> Self {
        self.severity = "warning";
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }

    fn into_row(self, meta: &RequestMeta) -> db::events::NewEvent {
        if self.severity == "info" {
            tracing::info!(target: "security", action = self.action.as_str(), outcome = self.outcome.as_str(), severity = self.severity, actor = ?self.actor, target_id = ?self.target, "security event");
        } else {
            tracing::warn!(target: "security", action = self.action.as_str(), outcome = self.outcome.as_str(), severity = self.severity, actor = ?self.actor, target_id = ?self.target, "security event");
        }
        db::events::NewEvent {
            action: self.action,
            outcome: self.outcome,
            severity: self.severity,
            actor_id: self.actor,
            target: self.target,
            ip: meta.ip.map(|ip| ip.to_string()),
            request_id: meta.request_id.clone(),
            detail: self.detail,
            at: Timestamp::now(),
        }
    }

    /// Queues an event that goes with no change (a refusal, a failed login) for the event
    /// writer: the request does not wait for the disk. Waits only when the queue is full.
    pub async fn emit(self, events: &EventSink, meta: &RequestMeta) {
        events.send(self.into_row(meta)).await;
    }

    /// Appends the event in the caller's transaction, so it is recorded exactly when the change is.
    pub async fn record(self, tx: &mut Tx, meta: &RequestMeta) -> sqlx::Result<()> {
        db::events::insert(tx, &self.into_row(meta)).await
    }
}

/// The event writer: events that go with no change are queued and written in batches by one
/// task, so a request never waits for the disk to record a refusal. `flush` (at shutdown)
/// returns once everything queued before it is written.
#[derive(Clone)]
pub struct EventSink {
    tx: tokio::sync::mpsc::Sender<Queued>,
}

enum Queued {
    Event(crate::db::events::NewEvent),
    Flush(tokio::sync::oneshot::Sender<()>),
}

const QUEUE: usize = 16_384;

const WRITE_BATCH: usize = 512;

impl EventSink {
    /// The sink, with its writer run among the application's jobs.
    pub fn start(db: Db, jobs: &mut Jobs) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        jobs.spawn("event writer", write_events(db, rx));
        Self { tx }
    }

    pub async fn send(&self, e: crate::db::events::NewEvent) {
        match self.tx.try_send(Queued::Event(e)) {
            Ok(()) => {}
            // Full: wait for room rather than lose the event (the database is slow or down).
            Err(tokio::sync::mpsc::error::TrySendError::Full(q)) => {
                let _ = self.tx.send(q).await;
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("the event writer has stopped: event lost");
            }
        }
    }

    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Queued::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_events(db: Db, mut rx: tokio::sync::mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(q) = next.take() {
            match q {
                Queued::Event(e) => batch.push(e),
                Queued::Flush(done) => flushes.push(done),
            }
            if batch.len() < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        // Retried until written: an outage delays events, it does not drop them.
        let mut wait = Duration::from_millis(100);
        while !batch.is_empty() {
            match write_batch(&db, &batch).await {
                Ok(()) => batch.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "writing security events failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn write_batch(db: &Db, batch: &[crate::db::events::NewEvent]) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    for e in batch {
        crate::db::events::insert(&mut tx, e).await?;
    }
    tx.commit().await.quiet()
}
