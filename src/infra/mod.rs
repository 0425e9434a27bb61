//! The outside world: the Redis link the replicas share and what is announced on it, the
//! webhook that alerts are sent to, and the metrics registry that Prometheus scrapes.

pub mod alerts;
pub mod announce;
pub mod jobs;
pub mod metrics;
pub mod shared;
