//! How log lines are shown, remembered per browser (`localStorage`), unlike the
//! filter, which belongs to the view and lives in its URL: the time column's mode
//! whether metadata is shown and whether long lines wrap.

use protocol::Timestamp;

const STORAGE_KEY: &str = "tasklens.view";

/// What the time column shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeMode {
    /// Wall-clock time in the browser's time zone.
    #[default]
    Local,
    Utc,
    /// Time since the task started.
    SinceStart,
    /// Time since the line above it in the view.
    SincePrevious,
}

impl TimeMode {
    pub const ALL: [TimeMode; 4] = [
        TimeMode::Local,
        TimeMode::Utc,
        TimeMode::SinceStart,
        TimeMode::SincePrevious,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimeMode::Local => "local",
            TimeMode::Utc => "utc",
            TimeMode::SinceStart => "start",
            TimeMode::SincePrevious => "delta",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TimeMode::Local => "Local time",
            TimeMode::Utc => "UTC",
            TimeMode::SinceStart => "Since start",
            TimeMode::SincePrevious => "Since previous line",
        }
    }

    pub fn parse(text: &str) -> Option<TimeMode> {
        TimeMode::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// The next mode, for the `t` key.
    pub fn next(self) -> TimeMode {
        let at = TimeMode::ALL.iter().position(|m| *m == self).unwrap_or(0);
        TimeMode::ALL[(at + 1) % TimeMode::ALL.len()]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewPrefs {
    pub time: TimeMode,
    pub show_meta: bool,
    /// Long lines wrap instead of running past the right edge.
    pub wrap: bool,
}

impl Default for ViewPrefs {
    fn default() -> Self {
        ViewPrefs {
            time: TimeMode::Local,
            show_meta: true,
            wrap: false,
        }
    }
}

impl ViewPrefs {
    /// Reads the stored form (`time=utc;meta=0;wrap=1`); anything unknown keeps its default,
    /// so a value written by another version never breaks the page.
    pub fn decode(text: &str) -> ViewPrefs {
        let mut prefs = ViewPrefs::default();
        for part in text.split(';') {
            match part.split_once('=') {
                Some(("time", mode)) => {
                    if let Some(mode) = TimeMode::parse(mode) {
                        prefs.time = mode;
                    }
                }
                Some(("meta", "0")) => prefs.show_meta = false,
                Some(("meta", "1")) => prefs.show_meta = true,
                Some(("wrap", "0")) => prefs.wrap = false,
                Some(("wrap", "1")) => prefs.wrap = true,
                _ => {}
            }
        }
        prefs
    }

    pub fn encode(&self) -> String {
        format!(
            "time={};meta={};wrap={}",
            self.time.as_str(),
            u8::from(self.show_meta),
            u8::from(self.wrap)
        )
    }

    /// The preferences this browser stored, or the defaults.
    pub fn load() -> ViewPrefs {
        storage()
            .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
            .map_or_else(ViewPrefs::default, |text| ViewPrefs::decode(&text))
    }

    /// Stores the preferences; a browser that refuses (private mode, quota) keeps
    /// them for this page only.
    pub fn save(&self) {
        if let Some(storage) = storage() {
            let _ = storage.set_item(STORAGE_KEY, &self.encode());
        }
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// `12:04:05.123` in UTC.
pub fn utc_clock(ts: Timestamp) -> String {
    let millis = ts.as_micros().div_euclid(1000);
    let of_day = millis.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000
    )
}

/// An offset in the time column: `+0.004s`, `+12.250s`, `+3m05.120s`,
/// `+2h03m05s`; `-` before the start (a clock that stepped back).
pub fn offset(micros: i64) -> String {
    let sign = if micros < 0 { '-' } else { '+' };
    let millis = micros.unsigned_abs() / 1000;
    let (h, m, s, ms) = (
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000,
    );
    if h > 0 {
        format!("{sign}{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{sign}{m}m{s:02}.{ms:03}s")
    } else {
        format!("{sign}{s}.{ms:03}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefs_round_trip_and_unknown_values_keep_defaults() {
        for time in TimeMode::ALL {
            for show_meta in [true, false] {
                for wrap in [true, false] {
                    let prefs = ViewPrefs {
                        time,
                        show_meta,
                        wrap,
                    };
                    assert_eq!(ViewPrefs::decode(&prefs.encode()), prefs);
                }
            }
        }
        assert_eq!(ViewPrefs::decode(""), ViewPrefs::default());
        assert_eq!(
            ViewPrefs::decode("time=mars;meta=2;wrap=yes;garbage"),
            ViewPrefs::default()
        );
        assert_eq!(
            ViewPrefs::decode("meta=0;time=delta").time,
            TimeMode::SincePrevious
        );
        assert!(ViewPrefs::decode("wrap=1").wrap);
        assert_eq!(TimeMode::SincePrevious.next(), TimeMode::Local);
    }

    #[test]
    fn times_are_written_in_their_mode() {
        // 2026-12-01T10:02:03.456789Z
        let ts = Timestamp(1_796_119_323_456_789);
        assert_eq!(utc_clock(ts), "10:02:03.456");
        assert_eq!(utc_clock(Timestamp(-1_000)), "23:59:59.999");
        assert_eq!(offset(4_000), "+0.004s");
        assert_eq!(offset(12_250_999), "+12.250s");
        assert_eq!(offset(185_120_000), "+3m05.120s");
        assert_eq!(offset(7_385_000_000), "+2h03m05s");
        assert_eq!(offset(-1_500_000), "-1.500s");
    }
}
