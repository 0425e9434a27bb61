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
    /// A time as SQLAlchemy stores a naive UTC `DateTime` (`2024-05-01 12:30:00[.123456]`; a
    /// `T` separator and a UTC offset such as `+00`, `+00:00` or `Z` are also read).
    pub fn parse_sql(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let (date, rest) = raw.split_at_checked(10)?;
        let mut d = date.split('-').map(str::parse::<i32>);
        let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
        let date =
            time::Date::from_calendar_date(y, time::Month::try_from(m as u8).ok()?, day as u8)
                .ok()?;
        let rest = rest.strip_prefix([' ', 'T']).unwrap_or(rest);
        // The offset, if any: what follows the time of day.
        let end = rest.find(['+', '-', 'Z']).unwrap_or(rest.len());
        let (clock, offset) = rest.split_at(end);
        let offset_s = match offset {
            "" | "Z" => 0,
            o => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let digits: String = o[1..].chars().filter(char::is_ascii_digit).collect();
                let (h, m) = digits.split_at_checked(2)?;
                let m = if m.is_empty() {
                    0
                } else {
                    m.parse::<i64>().ok()?
                };
                sign * (h.parse::<i64>().ok()? * 3600 + m * 60)
            }
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut t = if hms.is_empty() {
            vec![]
        } else {
            hms.split(':').collect()
        };
        t.resize(3, "0");
        let (h, mi, s) = (
            t[0].parse::<u8>().ok()?,
            t[1].parse::<u8>().ok()?,
            t[2].parse::<u8>().ok()?,
        );
        let micros: u32 = if frac.is_empty() {
            0
        } else {
            let f: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
            f.parse().ok()?
        };
        let at = date.with_hms_micro(h, mi, s, micros).ok()?.assume_utc();
        let us = at.unix_timestamp_nanos() / 1_000 - i128::from(offset_s) * 1_000_000;
        i64::try_from(us).ok().map(Self)
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
    fn sqlalchemy_times_parse_as_utc() {
        let t = |s| Timestamp::parse_sql(s).map(|t| t.rfc3339());
        assert_eq!(
            t("2024-05-01 12:30:00"),
            Some("2024-05-01T12:30:00Z".into())
        );
        assert_eq!(
            t("2024-05-01 12:30:00.25"),
            Some("2024-05-01T12:30:00.25Z".into())
        );
        assert_eq!(
            t("2024-05-01T12:30:00.123456+02:00"),
            Some("2024-05-01T10:30:00.123456Z".into())
        );
        assert_eq!(
            t("2024-05-01 12:30:00+00"),
            Some("2024-05-01T12:30:00Z".into())
        );
        assert_eq!(t("2024-05-01"), Some("2024-05-01T00:00:00Z".into()));
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("2024-13-01 00:00:00"), None);
    }

    #[test]
    fn formats_as_utc_rfc3339() {
        assert_eq!(
            Timestamp::from_micros(1_500_000).rfc3339(),
            "1970-01-01T00:00:01.5Z"
        );
    }
}
