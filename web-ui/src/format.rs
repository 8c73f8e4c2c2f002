//! Small display helpers.

use protocol::{TaskInfo, Timestamp};

/// Milliseconds since the epoch, now (browser clock).
pub fn now_millis() -> f64 {
    js_sys::Date::now()
}

/// `1.2s`, `3m05s`, `2h04m` (as the CLI writes them: `protocol::time::human_duration`).
pub fn human_duration(millis: f64) -> String {
    protocol::time::human_duration(millis / 1000.0)
}

/// How long a task ran, or has been running.
pub fn task_duration(task: &TaskInfo) -> String {
    let Some(start) = task.started_at else {
        return "—".into();
    };
    let end = task
        .finished_at
        .map_or_else(now_millis, |t| t.as_micros() as f64 / 1000.0);
    human_duration(end - start.as_micros() as f64 / 1000.0)
}

/// Local wall-clock time with milliseconds, as log lines show it.
pub fn clock(ts: Timestamp) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
        ts.as_micros() as f64 / 1000.0,
    ));
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        date.get_hours(),
        date.get_minutes(),
        date.get_seconds(),
        date.get_milliseconds()
    )
}

/// Local date and time, for task lists.
pub fn date_time(ts: Timestamp) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
        ts.as_micros() as f64 / 1000.0,
    ));
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes(),
        date.get_seconds()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(1234.0), "1.2s");
        assert_eq!(human_duration(185_000.0), "3m05s");
        assert_eq!(human_duration(7_440_000.0), "2h04m");
        assert_eq!(human_duration(-5.0), "0.0s");
    }
}
