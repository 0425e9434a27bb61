//! Time as the application sees it: microseconds since the Unix epoch, UTC, set in Rust (not by the database).

use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self((now.unix_timestamp_nanos() / 1_000) as i64)
    }
    pub fn from_micros(us: i64) -> Self {
        Self(us)
    }
    pub fn micros(self) -> i64 {
        self.0
    }
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    pub fn plus_seconds(self, s: u64) -> Self {
        Self(self.0.saturating_add((s as i64).saturating_mul(1_000_000)))
    }
    /// RFC 3339 in UTC, e.g. `2026-11-28T10:00:00.123456Z`.
    pub fn rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_utc_rfc3339() {
        assert_eq!(
            Timestamp::from_micros(1_500_000).rfc3339(),
            "1970-01-01T00:00:01.5Z"
        );
    }
}
