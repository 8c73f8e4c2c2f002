//! Timestamps: UTC microseconds since the Unix epoch, the unit the database stores,
//! written on the wire as RFC 3339 with microseconds (`2026-11-25T11:30:02.123456Z`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
/// The parts of a local time, for `parse_time_input`'s `offset_at`.
pub use chrono::{Datelike, NaiveDateTime, Timelike};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time with microsecond resolution, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// The same instant as a chrono value (saturating at chrono's range).
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    pub fn from_datetime(time: DateTime<Utc>) -> Self {
        Timestamp(time.timestamp_micros())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        )
    }
}

/// Text that is not an RFC 3339 time (`2026-11-25T10:00:00Z`, offsets allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTimestampError(pub String);

impl fmt::Display for ParseTimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an RFC 3339 time such as 2026-11-25T10:00:00Z",
            self.0
        )
    }
}

impl std::error::Error for ParseTimestampError {}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
            .map_err(|_| ParseTimestampError(s.to_owned()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Furthest back a time ago may reach.
const MAX_AGO_SECS: i64 = 100 * 365 * 86_400;

/// A time as a person types it: RFC 3339 (`2026-12-01T10:00:00Z`, any offset); a
/// date and time without a zone (`2026-12-01 10:00`, `2026-12-01T10:00:30.5`, or
/// a date alone for its midnight), read at the offset east of UTC, in seconds,
/// that `offset_at` gives for that local time (so a date across a daylight-saving
/// change gets its own); or a time ago before `now` (`30s`, `10m`, `2h`, `3d`,
/// `1w`). The CLI and the console read `--since` and the view's time range
/// through it.
pub fn parse_time_input(
    text: &str,
    now: Timestamp,
    offset_at: impl Fn(NaiveDateTime) -> Option<i32>,
) -> Result<Timestamp, String> {
    let text = text.trim();
    let unit = |c: char| match c.to_ascii_lowercase() {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3_600),
        'd' => Some(86_400),
        'w' => Some(604_800),
        _ => None,
    };
    if let Some((digits, factor)) = text
        .char_indices()
        .last()
        .and_then(|(at, c)| unit(c).map(|f| (&text[..at], f)))
        .filter(|(digits, _)| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
    {
        let seconds = digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .filter(|n| *n <= MAX_AGO_SECS)
            .ok_or_else(|| format!("{text:?} is too long ago (at most 100 years)"))?;
        return Ok(Timestamp(now.0 - seconds * 1_000_000));
    }
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    naive
        .and_then(|n| {
            chrono::FixedOffset::east_opt(offset_at(n)?)?
                .from_local_datetime(&n)
                .single()
        })
        .map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
        .ok_or_else(|| {
            format!(
                "expected a time such as 2026-12-01T10:00:00Z or 2026-12-01 10:00, or a time ago such as 10m, 2h or 3d; not {text:?}"
            )
        })
}

/// A length of time as people read it: `4.2s`, `1m05s`, `2h03m` or `3d04h` (two
/// units at most, the larger first). The CLI and the console both show durations
/// through it.
pub fn human_duration(secs: f64) -> String {
    let whole = secs.max(0.0) as u64;
    match whole {
        0..=59 => format!("{:.1}s", secs.max(0.0)),
        60..=3_599 => format!("{}m{:02}s", whole / 60, whole % 60),
        3_600..=86_399 => format!("{}h{:02}m", whole / 3_600, whole % 3_600 / 60),
        _ => format!("{}d{:02}h", whole / 86_400, whole % 86_400 / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_two_largest_units() {
        assert_eq!(human_duration(4.24), "4.2s");
        assert_eq!(human_duration(65.0), "1m05s");
        assert_eq!(human_duration(3_599.9), "59m59s");
        assert_eq!(human_duration(7_380.0), "2h03m");
        assert_eq!(
            human_duration(3.0 * 86_400.0 + 4.0 * 3_600.0 + 59.0),
            "3d04h"
        );
        assert_eq!(human_duration(-1.0), "0.0s");
    }

    #[test]
    fn writes_rfc3339_with_micros_and_reads_it_back() {
        let t = Timestamp(1_764_070_202_123_456);
        let text = t.to_string();
        assert_eq!(text, "2025-11-25T11:30:02.123456Z");
        assert_eq!(text.parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn typed_times_are_absolute_zoneless_or_ago() {
        let now = Timestamp(1_796_083_200_000_000); // 2026-12-01T00:00:00Z
        let at = |s: &str, offset: i32| parse_time_input(s, now, |_| Some(offset));
        assert_eq!(at("10m", 0), Ok(Timestamp(now.0 - 600_000_000)));
        assert_eq!(at(" 2H ", 0), Ok(Timestamp(now.0 - 7_200_000_000)));
        assert_eq!(at("1w", 0), Ok(Timestamp(now.0 - 7 * 86_400_000_000)));
        assert_eq!(at("0s", 0), Ok(now));
        assert_eq!(at("2026-12-01T00:00:00Z", 3_600), Ok(now));
        assert_eq!(at("2026-12-01T01:00:00+01:00", 0), Ok(now));
        // Without a zone, at the offset given: 01:00 at UTC+1 is midnight UTC.
        assert_eq!(at("2026-12-01 01:00", 3_600), Ok(now));
        assert_eq!(at("2026-12-01T01:00:00", 3_600), Ok(now));
        assert_eq!(
            at("2026-11-30 23:00:00.5", -3_600),
            Ok(Timestamp(now.0 + 500_000))
        );
        assert_eq!(at("2026-12-01", 0), Ok(now));
        for bad in [
            "",
            "m",
            "10",
            "10x",
            "-5m",
            "1.5h",
            "99999999999w",
            "yesterday",
            "2026-13-01",
            "2026-12-01 25:00",
        ] {
            assert!(at(bad, 0).is_err(), "{bad}");
        }
        assert!(
            at("2026-12-01 10:00", 100_000).is_err(),
            "an offset beyond a day"
        );
        // Each local time at its own offset: winter and summer sides of a change.
        let dst = |n: NaiveDateTime| Some(if n.month() >= 4 { 7_200 } else { 3_600 });
        assert_eq!(
            parse_time_input("2026-03-01 01:00", now, dst),
            Ok("2026-03-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_time_input("2026-06-01 02:00", now, dst),
            Ok("2026-06-01T00:00:00Z".parse().unwrap())
        );
        assert!(
            parse_time_input("2026-06-01 02:00", now, |_| None).is_err(),
            "no such local time"
        );
    }

    #[test]
    fn accepts_offsets_and_rejects_garbage() {
        let t: Timestamp = "2025-11-25T12:30:02.123456+01:00".parse().unwrap();
        assert_eq!(t, Timestamp(1_764_070_202_123_456));
        assert!("yesterday".parse::<Timestamp>().is_err());
        assert!("2025-13-01T00:00:00Z".parse::<Timestamp>().is_err());
    }
}
