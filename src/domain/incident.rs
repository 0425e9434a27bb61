//! The closed vocabulary of incidents: their levels, in rising order, and their statuses.

pub const LEVELS: [&str; 4] = ["low", "medium", "high", "critical"];
pub const STATUSES: [&str; 3] = ["open", "contained", "resolved"];

/// A level's place in `LEVELS` (an unknown one ranks lowest).
pub fn level_rank(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0)
}
