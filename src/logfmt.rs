//! The operator log as JSON, one object per line (`log_format = "json"`).
//!
//! Tasklens' log lines start with `key=value` fields (`task_id=… rows=12 error="…"`)
//! followed by a sentence; in JSON the fields become an object of their own, so a
//! log pipeline can filter on them without parsing the text.

use std::io::Write;

use serde_json::{Map, Value};

/// Splits `text` into its leading `key=value` fields and the message after them.
pub fn split_fields(text: &str) -> (Map<String, Value>, &str) {
    let mut fields = Map::new();
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start();
        let Some(eq) = trimmed.find('=') else { break };
        let key = &trimmed[..eq];
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            break;
        }
        let after = &trimmed[eq + 1..];
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            // Up to the next unescaped quote.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let Some(end) = end else { break };
            (quoted[..end].replace("\\\"", "\""), &quoted[end + 1..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        fields.insert(key.to_owned(), Value::String(value));
        rest = next;
    }
    (fields, rest.trim_start())
}

/// Writes one record as a JSON line.
pub fn write_json(buf: &mut impl Write, record: &log::Record<'_>) -> std::io::Result<()> {
    let text = record.args().to_string();
    let (fields, message) = split_fields(&text);
    let line = serde_json::json!({
        "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": record.level().as_str(),
        "target": record.target(),
        "message": message,
        "fields": fields,
    });
    writeln!(buf, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_fields_are_split_from_the_sentence() {
        let (fields, message) = split_fields(
            r#"task_id=01a2 rows=12 error="disk \"full\" now" Writing log records failed; they stay buffered."#,
        );
        assert_eq!(fields["task_id"], "01a2");
        assert_eq!(fields["rows"], "12");
        assert_eq!(fields["error"], r#"disk "full" now"#);
        assert_eq!(message, "Writing log records failed; they stay buffered.");
        let (fields, message) = split_fields("GET /api/tasks 200 1234 0.5ms");
        assert!(fields.is_empty());
        assert_eq!(message, "GET /api/tasks 200 1234 0.5ms");
        let (fields, message) = split_fields(r#"error="unterminated Then text."#);
        assert!(fields.is_empty(), "a broken quote leaves the text as it is");
        assert_eq!(message, r#"error="unterminated Then text."#);
    }
}
