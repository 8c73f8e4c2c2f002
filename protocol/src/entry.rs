//! One log record as stored and streamed, and the rules every record obeys
//! (source names, size caps) wherever it was produced.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::body::Body;
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
/// always travel in the context of their task (a page, a frame, a batch). Its JSON
/// form is [`EntryFields`]: the message and metadata, kept together in a [`Body`],
/// travel as two fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "EntryFields")]
pub struct LogEntry {
    /// Per-task sequence number, 1, 2, 3, … in emission order, without gaps.
    pub seq: u64,
    pub timestamp: Timestamp,
    pub level: LogLevel,
    /// The component that spoke (`plugin`, `stdout`, `superset_api`, …).
    pub source: Arc<str>,
    /// The message and the metadata (a JSON object, kept as the exact text it was
    /// serialised to once at emission).
    pub body: Body,
    /// Seq of the record that opened the innermost group this one is in (for an
    /// `open` record the group around it, for a `close` record the group it
    /// closes). Set where records are numbered (`group::Groups`).
    pub group: Option<u64>,
    /// Whether this record opens or closes a group (`::group::NAME`, `::endgroup::`).
    pub mark: Option<GroupMark>,
    /// On a `close` record: the most severe level inside the group (none when it
    /// held no line).
    pub worst: Option<LogLevel>,
}

/// A [`LogEntry`] as JSON: what clients send and read.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = LogEntry))]
pub struct EntryFields {
    /// Per-task sequence number, 1, 2, 3, … in emission order, without gaps.
    pub seq: u64,
    pub timestamp: Timestamp,
    pub level: LogLevel,
    /// The component that spoke (`plugin`, `stdout`, `superset_api`, …).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub source: Arc<str>,
    pub message: String,
    /// A JSON object.
    #[serde(default, deserialize_with = "raw_from_any")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Box<RawValue>>,
    /// Seq of the record that opened the innermost group this one is in.
    #[serde(default)]
    pub group: Option<u64>,
    /// Whether this record opens or closes a group.
    #[serde(default)]
    pub mark: Option<GroupMark>,
    /// On a `close` record: the most severe level inside the group.
    #[serde(default)]
    pub worst: Option<LogLevel>,
}

impl From<EntryFields> for LogEntry {
    fn from(f: EntryFields) -> LogEntry {
        LogEntry {
            seq: f.seq,
            timestamp: f.timestamp,
            level: f.level,
            source: f.source,
            body: Body::new(f.message, f.metadata.as_deref()),
            group: f.group,
            mark: f.mark,
            worst: f.worst,
        }
    }
}

impl Serialize for LogEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("LogEntry", 9)?;
        s.serialize_field("seq", &self.seq)?;
        s.serialize_field("timestamp", &self.timestamp)?;
        s.serialize_field("level", &self.level)?;
        s.serialize_field("source", &*self.source)?;
        s.serialize_field("message", self.body.message())?;
        match self.body.metadata() {
            // The text is checked again rather than trusted: a `RawValue` can only be
            // had by parsing, and this way a corrupt body is an error, not bad JSON.
            Some(json) => s.serialize_field(
                "metadata",
                serde_json::from_str::<&RawValue>(json).map_err(serde::ser::Error::custom)?,
            )?,
            None => s.skip_field("metadata")?,
        }
        optional_field(&mut s, "group", &self.group)?;
        optional_field(&mut s, "mark", &self.mark)?;
        optional_field(&mut s, "worst", &self.worst)?;
        s.end()
    }
}

fn optional_field<S: serde::ser::SerializeStruct, T: Serialize>(
    s: &mut S,
    name: &'static str,
    value: &Option<T>,
) -> Result<(), S::Error> {
    match value {
        Some(value) => s.serialize_field(name, value),
        None => s.skip_field(name),
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for LogEntry {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        <EntryFields as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for LogEntry {
    fn name() -> Cow<'static, str> {
        <EntryFields as utoipa::ToSchema>::name()
    }

    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
        <EntryFields as utoipa::ToSchema>::schemas(schemas)
    }
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

impl LogEntry {
    pub fn message(&self) -> &str {
        self.body.message()
    }

    /// The metadata's JSON text (an object), if the record has metadata.
    pub fn metadata(&self) -> Option<&str> {
        self.body.metadata()
    }

    /// The metadata parsed into a JSON value (`None` when the record has none).
    pub fn metadata_value(&self) -> Option<serde_json::Value> {
        self.metadata()
            .and_then(|raw| serde_json::from_str(raw).ok())
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
    let body = Body::emitted(format_args!(""), Some(&value));
    body.metadata()
        .map(|json| RawValue::from_string(json.to_owned()).expect("a body's metadata is JSON"))
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
            body: Body::emitted(
                format_args!("slow response"),
                Some(&serde_json::json!({"dashboard_id": 3})),
            ),
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
