//! One log record as stored and streamed, and the rules every record obeys
//! (source names, size caps) wherever it was produced.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{GroupMark, LogLevel, Timestamp};

/// Longest source name kept; longer names are cut.
pub const MAX_SOURCE_CHARS: usize = 64;
/// Largest message kept; longer messages are cut and say how much was cut.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest metadata object kept (serialised); a larger one is replaced by a marker.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// One log record of one task.
///
/// `(task_id, seq)` identifies it; the task id is not repeated here because records
/// always travel in the context of their task (a page, a frame, a batch).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    /// Per-task sequence number, 1, 2, 3, … in emission order, without gaps.
    pub seq: u64,
    pub timestamp: Timestamp,
    pub level: LogLevel,
    /// The component that spoke (`plugin`, `stdout`, `superset_api`, …).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub source: Arc<str>,
    pub message: String,
    /// A JSON object, kept as the exact text it was serialised to once at emission.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "raw_from_any"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Box<RawValue>>,
    /// Seq of the record that opened the innermost group this one is in (for an
    /// `open` record the group around it, for a `close` record the group it
    /// closes). Set where records are numbered (`group::Groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u64>,
    /// Whether this record opens or closes a group (`::group::NAME`, `::endgroup::`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<GroupMark>,
    /// On a `close` record: the most severe level inside the group (none when it
    /// held no line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst: Option<LogLevel>,
}

/// Reads metadata through `serde_json::Value`, so that entries also deserialise inside
/// tagged enums (`ServerMessage`), where serde buffers the input and a `RawValue`
/// cannot be read directly.
fn raw_from_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    value
        .filter(|v| !v.is_null())
        .map(|v| serde_json::value::to_raw_value(&v).map_err(serde::de::Error::custom))
        .transpose()
}

impl PartialEq for LogEntry {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
            && self.timestamp == other.timestamp
            && self.level == other.level
            && self.source == other.source
            && self.message == other.message
            && self.metadata.as_ref().map(|m| m.get()) == other.metadata.as_ref().map(|m| m.get())
            && self.group == other.group
            && self.mark == other.mark
            && self.worst == other.worst
    }
}

impl Eq for LogEntry {}

impl LogEntry {
    /// The metadata parsed into a JSON value (`None` when the record has none).
    pub fn metadata_value(&self) -> Option<serde_json::Value> {
        self.metadata
            .as_ref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }
}

/// Turns any text into a valid source name: trimmed, at most [`MAX_SOURCE_CHARS`]
/// characters, with commas (the filter separator) and control characters replaced by
/// `_`. An empty name becomes `fallback`.
pub fn sanitize_source<'a>(name: &'a str, fallback: &'a str) -> Cow<'a, str> {
    let name = name.trim();
    if name.is_empty() {
        return Cow::Borrowed(fallback);
    }
    let clean = name.chars().count() <= MAX_SOURCE_CHARS
        && !name.chars().any(|c| c == ',' || c.is_control());
    if clean {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.chars()
            .take(MAX_SOURCE_CHARS)
            .map(|c| if c == ',' || c.is_control() { '_' } else { c })
            .collect(),
    )
}

/// Makes text storable everywhere: NUL characters, which PostgreSQL's `TEXT` refuses
/// (and which would make every retry of a batch fail), become U+FFFD.
pub fn storable_text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// Caps a message at [`MAX_MESSAGE_BYTES`] (on a character boundary), noting how many
/// bytes were cut so a reader knows the line was longer, and makes it storable
/// ([`storable_text`]).
pub fn cap_message(message: String) -> String {
    let mut message = storable_text(message);
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut cut = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = message.len() - cut;
    message.truncate(cut);
    message.push_str(&format!(" … [truncated {dropped} bytes]"));
    message
}

/// Serialises metadata for storage: objects as they are, any other value wrapped as
/// `{"value": …}`, null as none, and an object over [`MAX_METADATA_BYTES`] replaced by
/// `{"truncated_bytes": N}` so that one huge record cannot swamp the pipeline.
pub fn encode_metadata(value: serde_json::Value) -> Option<Box<RawValue>> {
    let value = match value {
        serde_json::Value::Null => return None,
        serde_json::Value::Object(map) if map.is_empty() => return None,
        object @ serde_json::Value::Object(_) => object,
        other => serde_json::json!({ "value": other }),
    };
    let text = serde_json::to_string(&value).ok()?;
    let text = if text.len() > MAX_METADATA_BYTES {
        format!("{{\"truncated_bytes\":{}}}", text.len())
    } else {
        text
    };
    RawValue::from_string(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_are_cleaned() {
        assert_eq!(sanitize_source("  api ", "plugin"), "api");
        assert_eq!(sanitize_source("", "plugin"), "plugin");
        assert_eq!(sanitize_source("a,b\nc", "plugin"), "a_b_c");
        assert_eq!(sanitize_source(&"x".repeat(100), "plugin").len(), 64);
    }

    #[test]
    fn long_messages_are_capped_on_a_char_boundary() {
        let short = "hello".to_owned();
        assert_eq!(cap_message(short.clone()), short);
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let capped = cap_message(long);
        assert!(capped.len() < MAX_MESSAGE_BYTES + 40);
        assert!(capped.ends_with(&format!(
            "[truncated {} bytes]",
            MAX_MESSAGE_BYTES * 2 - MAX_MESSAGE_BYTES
        )));
    }

    #[test]
    fn nul_characters_are_replaced() {
        assert_eq!(cap_message("a\0b".into()), "a\u{FFFD}b");
        assert_eq!(storable_text("clean".into()), "clean");
    }

    #[test]
    fn metadata_is_always_an_object_or_none() {
        assert!(encode_metadata(serde_json::Value::Null).is_none());
        assert!(encode_metadata(serde_json::json!({})).is_none());
        assert_eq!(
            encode_metadata(serde_json::json!({"b": 1, "a": "x"}))
                .unwrap()
                .get(),
            r#"{"a":"x","b":1}"#
        );
        assert_eq!(
            encode_metadata(serde_json::json!(5)).unwrap().get(),
            r#"{"value":5}"#
        );
        let huge = serde_json::json!({ "blob": "x".repeat(MAX_METADATA_BYTES) });
        assert!(encode_metadata(huge)
            .unwrap()
            .get()
            .starts_with("{\"truncated_bytes\":"));
    }

    #[test]
    fn entries_round_trip_through_json() {
        let entry = LogEntry {
            seq: 7,
            timestamp: Timestamp(1_764_070_202_123_456),
            level: LogLevel::Warning,
            source: Arc::from("api"),
            message: "slow response".into(),
            metadata: encode_metadata(serde_json::json!({"dashboard_id": 3})),
            group: None,
            mark: None,
            worst: None,
        };
        let text = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            text,
            r#"{"seq":7,"timestamp":"2025-11-25T11:30:02.123456Z","level":"WARNING","source":"api","message":"slow response","metadata":{"dashboard_id":3}}"#
        );
        let back: LogEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, entry);
    }
}
