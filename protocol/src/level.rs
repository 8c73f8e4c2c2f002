//! Log levels. `DEBUG < INFO < WARNING < ERROR`; parsing accepts any case and `WARN`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Severity of a log record. The derived `Ord` follows severity, so a level filter
/// ("this level and above") is `entry.level >= filter_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

/// A level name that is none of DEBUG, INFO, WARNING (WARN) or ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLevelError(pub String);

impl fmt::Display for ParseLevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown level {:?}: expected DEBUG, INFO, WARNING (or WARN) or ERROR",
            self.0
        )
    }
}

impl std::error::Error for ParseLevelError {}

impl LogLevel {
    /// Every level, lowest first.
    pub const ALL: [LogLevel; 4] = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warning,
        LogLevel::Error,
    ];

    /// The canonical upper-case name, as stored and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }

    /// The small integer the database stores (0 = DEBUG … 3 = ERROR).
    pub fn as_i16(self) -> i16 {
        self as i16
    }

    /// Inverse of [`LogLevel::as_i16`]; `None` for a value no level has.
    pub fn from_i16(value: i16) -> Option<Self> {
        Self::ALL.get(usize::try_from(value).ok()?).copied()
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARNING" | "WARN" => Ok(LogLevel::Warning),
            "ERROR" => Ok(LogLevel::Error),
            _ => Err(ParseLevelError(s.to_owned())),
        }
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_warn() {
        assert_eq!("debug".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert_eq!("Info".parse::<LogLevel>().unwrap(), LogLevel::Info);
        assert_eq!("WARN".parse::<LogLevel>().unwrap(), LogLevel::Warning);
        assert_eq!("warning".parse::<LogLevel>().unwrap(), LogLevel::Warning);
        assert_eq!(" ERROR ".parse::<LogLevel>().unwrap(), LogLevel::Error);
        let err = "verbose".parse::<LogLevel>().unwrap_err();
        assert!(err.to_string().contains("verbose"));
    }

    #[test]
    fn order_follows_severity() {
        assert!(LogLevel::Debug < LogLevel::Info);
        assert!(LogLevel::Info < LogLevel::Warning);
        assert!(LogLevel::Warning < LogLevel::Error);
    }

    #[test]
    fn serde_writes_upper_case_and_reads_leniently() {
        assert_eq!(
            serde_json::to_string(&LogLevel::Warning).unwrap(),
            "\"WARNING\""
        );
        let level: LogLevel = serde_json::from_str("\"warn\"").unwrap();
        assert_eq!(level, LogLevel::Warning);
        assert!(serde_json::from_str::<LogLevel>("\"loud\"").is_err());
        assert!(serde_json::from_str::<LogLevel>("3").is_err());
    }

    #[test]
    fn i16_round_trip() {
        for level in LogLevel::ALL {
            assert_eq!(LogLevel::from_i16(level.as_i16()), Some(level));
        }
        assert_eq!(LogLevel::from_i16(4), None);
        assert_eq!(LogLevel::from_i16(-1), None);
    }
}
