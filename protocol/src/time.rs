//! Timestamps: UTC microseconds since the Unix epoch, the unit the database stores,
//! written on the wire as RFC 3339 with microseconds (`2026-11-25T11:30:02.123456Z`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
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
    fn accepts_offsets_and_rejects_garbage() {
        let t: Timestamp = "2025-11-25T12:30:02.123456+01:00".parse().unwrap();
        assert_eq!(t, Timestamp(1_764_070_202_123_456));
        assert!("yesterday".parse::<Timestamp>().is_err());
        assert!("2025-13-01T00:00:00Z".parse::<Timestamp>().is_err());
    }
}
