//! The one owner of an application's background jobs: every loop and writer the server runs
//! besides its listeners is spawned here, and `shutdown` stops and joins them all, so that none
//! outlives the application (a test server dropped in one process leaves no task behind).

use std::future::Future;

use tokio::task::{AbortHandle, JoinSet};

#[derive(Default)]
pub struct Jobs {
    set: JoinSet<()>,
    names: Vec<&'static str>,
}

impl Jobs {
    /// Runs `job` until it ends or `shutdown` stops it; the handle stops it earlier.
    pub fn spawn(
        &mut self,
        name: &'static str,
        job: impl Future<Output = ()> + Send + 'static,
    ) -> AbortHandle {
        self.names.push(name);
        self.set.spawn(job)
    }

    /// The jobs spawned, by name, in order (for the log and the tests).
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Stops every job and waits until each has ended. Called last: whatever must be written
    /// (events, the last seal, queued alerts) is written before, by its owner.
    pub async fn shutdown(mut self) {
        self.set.abort_all();
        while let Some(done) = self.set.join_next().await {
            if let Err(e) = done
                && e.is_panic()
            {
                tracing::error!(error = %e, "a background job panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn shutdown_stops_and_joins_every_job() {
        let mut jobs = Jobs::default();
        let dropped: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::default()).collect();
        for d in &dropped {
            let guard = SetOnDrop(d.clone());
            jobs.spawn("forever", async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        }
        jobs.spawn("ends", async {});
        assert_eq!(jobs.names(), ["forever", "forever", "forever", "ends"]);
        jobs.shutdown().await;
        // Joined, not merely asked to stop: every job's state is dropped when shutdown returns.
        assert!(dropped.iter().all(|d| d.load(Ordering::SeqCst)));
    }
}
