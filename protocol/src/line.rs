//! A record as one line of text, the one layout shared by the text export
//! (`/logs/export?format=text`), the CLI and the console's "copy":
//! `2026-11-25T11:30:02.123456Z WARNING [superset_api] message {"dashboard_id":3}`.

use crate::{LogEntry, LogLevel};

/// The line as plain text: the level padded to 7 characters, the message without
/// terminal escape sequences, the metadata as stored.
pub fn text_line(entry: &LogEntry) -> String {
    let mut line = format!(
        "{} {:<7} [{}] {}",
        entry.timestamp,
        entry.level.as_str(),
        entry.source,
        strip_escapes(entry.message())
    );
    if let Some(meta) = entry.metadata() {
        line.push(' ');
        line.push_str(meta);
    }
    line
}

/// The same layout for a terminal: the level coloured, the metadata dimmed, and the
/// message with its own colours.
pub fn terminal_line(entry: &LogEntry) -> String {
    let colour = match entry.level {
        LogLevel::Debug => "\x1b[2m",
        LogLevel::Info => "\x1b[32m",
        LogLevel::Warning => "\x1b[33m",
        LogLevel::Error => "\x1b[1;31m",
    };
    let mut line = format!(
        "{} {colour}{:<7}\x1b[0m [{}] {}",
        entry.timestamp,
        entry.level.as_str(),
        entry.source,
        entry.message()
    );
    if let Some(meta) = entry.metadata() {
        line.push_str(&format!(" \x1b[2m{meta}\x1b[0m"));
    }
    line
}

/// `input` without terminal escape sequences: CSI (`ESC [ … final`, colours and
/// cursor moves), OSC (`ESC ] … BEL` or `ESC ] … ESC \`, titles and links) and
/// two-character escapes.
pub fn strip_escapes(input: &str) -> String {
    if !input.contains('\u{1b}') {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for p in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&p) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(p) = chars.next() {
                    if p == '\u{7}' || (p == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::entry::encode_metadata;
    use crate::{Body, Timestamp};

    fn entry(level: LogLevel, message: &str, meta: bool) -> LogEntry {
        LogEntry {
            seq: 7,
            timestamp: Timestamp(1_764_070_202_123_456),
            level,
            source: Arc::from("superset_api"),
            body: Body::new(
                message.into(),
                encode_metadata(serde_json::json!({"dashboard_id": 3}))
                    .as_deref()
                    .filter(|_| meta),
            ),
            group: None,
            mark: None,
            worst: None,
        }
    }

    #[test]
    fn one_layout_plain_or_for_a_terminal() {
        let warn = entry(
            LogLevel::Warning,
            "slow \u{1b}[31mred\u{1b}[0m response",
            true,
        );
        assert_eq!(
            text_line(&warn),
            "2025-11-25T11:30:02.123456Z WARNING [superset_api] slow red response {\"dashboard_id\":3}"
        );
        assert_eq!(
            text_line(&entry(LogLevel::Info, "ok", false)),
            "2025-11-25T11:30:02.123456Z INFO    [superset_api] ok"
        );
        assert_eq!(
            terminal_line(&warn),
            "2025-11-25T11:30:02.123456Z \u{1b}[33mWARNING\u{1b}[0m [superset_api] slow \u{1b}[31mred\u{1b}[0m response \u{1b}[2m{\"dashboard_id\":3}\u{1b}[0m"
        );
        assert_eq!(strip_escapes(&terminal_line(&warn)), text_line(&warn));
    }

    #[test]
    fn escape_sequences_of_every_kind_are_removed() {
        assert_eq!(
            strip_escapes("\u{1b}[38;5;208morange\u{1b}[48;2;1;2;3mbg\u{1b}[K\u{1b}]0;title\u{7}!"),
            "orangebg!"
        );
        assert_eq!(
            strip_escapes("a\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\b"),
            "alinkb"
        );
        assert_eq!(strip_escapes("lone \u{1b}"), "lone ");
        assert_eq!(strip_escapes("\u{1b}cplain ünïcode"), "plain ünïcode");
    }
}
