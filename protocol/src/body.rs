//! [`Body`]: a record's message and metadata, kept in one allocation.
//!
//! Records are made on the plugin's own thread, hundreds of thousands a second, and
//! freed on the writer's; every allocation there is time taken from the task. So a
//! record's message and its metadata's JSON text share one buffer, which
//! [`Body::emitted`] fills in one go: the message formatted straight into it, the
//! metadata serialised straight after.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::entry::{cap_message, MAX_METADATA_BYTES};

/// Room a new body starts with: a typical record (a line of text and a few metadata
/// fields) fits without growing the buffer.
const TYPICAL_BYTES: usize = 128;

/// A record's message, then its metadata (a JSON object) if it has any, in one buffer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Body {
    text: String,
    /// Where the message ends and the metadata's JSON text begins.
    message_len: usize,
}

impl Body {
    /// A body of `message` and `metadata` as they are, in `message`'s buffer.
    pub fn new(message: String, metadata: Option<&RawValue>) -> Body {
        let mut text = message;
        let message_len = text.len();
        if let Some(metadata) = metadata {
            text.push_str(metadata.get());
        }
        Body { text, message_len }
    }

    /// A body of `message` and metadata read back as JSON text (from storage, say),
    /// checked to be one JSON value.
    ///
    /// # Errors
    /// `metadata` is not JSON.
    pub fn with_metadata_text(
        message: String,
        metadata: Option<&str>,
    ) -> Result<Body, serde_json::Error> {
        let metadata = metadata
            .map(serde_json::from_str::<&RawValue>)
            .transpose()?;
        Ok(Body::new(message, metadata))
    }

    /// The body of a record being emitted, written in one go: `message` formatted and
    /// made storable (capped, no NUL: `entry::cap_message`), then `metadata`
    /// serialised as `entry::encode_metadata` does (an object as it is, any other
    /// value wrapped as `{"value": …}`, null or `{}` as none, one over
    /// `MAX_METADATA_BYTES` replaced by `{"truncated_bytes": N}`). Metadata that fails
    /// to serialise (a hand-written `Serialize` may refuse) becomes
    /// `{"metadata_error": "…"}` rather than costing the line.
    pub fn emitted<M: Serialize + ?Sized>(
        message: fmt::Arguments<'_>,
        metadata: Option<&M>,
    ) -> Body {
        let text = match message.as_str() {
            Some(fixed) => {
                let mut text = String::with_capacity(TYPICAL_BYTES.max(fixed.len() + 32));
                text.push_str(fixed);
                text
            }
            None => {
                let mut text = String::with_capacity(TYPICAL_BYTES);
                // Only a `Display` impl that reports an error fails here; the line keeps
                // what it wrote, as the rest of the record is still worth having.
                let _ = text.write_fmt(message);
                text
            }
        };
        Body::from_message(text, metadata)
    }

    /// As [`Body::emitted`], for a message already in a `String` (whose buffer the
    /// metadata joins).
    pub fn from_message<M: Serialize + ?Sized>(message: String, metadata: Option<&M>) -> Body {
        let text = cap_message(message);
        let message_len = text.len();
        let Some(metadata) = metadata else {
            return Body { text, message_len };
        };
        let mut bytes = text.into_bytes();
        let mut out = Capped::new(&mut bytes);
        let written = match serde_json::to_writer(&mut out, metadata) {
            Ok(()) => out.total,
            Err(e) => {
                bytes.truncate(message_len);
                let note = serde_json::json!({ "metadata_error": e.to_string() });
                let mut out = Capped::new(&mut bytes);
                serde_json::to_writer(&mut out, &note).expect("a JSON value serialises");
                out.total
            }
        };
        normalise_metadata(&mut bytes, message_len, written);
        let text =
            String::from_utf8(bytes).expect("formatted text and serde_json's output are UTF-8");
        Body { text, message_len }
    }

    pub fn message(&self) -> &str {
        &self.text[..self.message_len]
    }

    /// The metadata's JSON text (an object), if the record has metadata.
    pub fn metadata(&self) -> Option<&str> {
        Some(&self.text[self.message_len..]).filter(|m| !m.is_empty())
    }

    /// Bytes of message and metadata together.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The message, its buffer reused.
    pub fn into_message(self) -> String {
        let mut text = self.text;
        text.truncate(self.message_len);
        text
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("message", &self.message())
            .field("metadata", &self.metadata())
            .finish()
    }
}

/// What wraps metadata that is not an object: `{"value":` before it, `}` after.
const WRAP_OPEN: &[u8] = b"{\"value\":";

/// Appends serde_json's output to a buffer up to [`MAX_METADATA_BYTES`] and counts
/// the rest: metadata too large to keep costs its length, not its size in memory.
struct Capped<'a> {
    out: &'a mut Vec<u8>,
    room: usize,
    /// Bytes serialised, kept or not.
    total: usize,
}

impl<'a> Capped<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Capped {
            out,
            room: MAX_METADATA_BYTES,
            total: 0,
        }
    }
}

impl std::io::Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let kept = buf.len().min(self.room);
        self.out.extend_from_slice(&buf[..kept]);
        self.room -= kept;
        self.total += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Applies the metadata rules (see [`Body::emitted`]) to the JSON text that starts at
/// `start` of `bytes`, `written` bytes long of which at most [`MAX_METADATA_BYTES`]
/// were kept, in place.
fn normalise_metadata(bytes: &mut Vec<u8>, start: usize, written: usize) {
    let wrap = match &bytes[start..] {
        b"null" | b"{}" => {
            bytes.truncate(start);
            return;
        }
        [b'{', ..] => false,
        _ => true,
    };
    let len = written + if wrap { WRAP_OPEN.len() + 1 } else { 0 };
    if len > MAX_METADATA_BYTES {
        bytes.truncate(start);
        // The kept part of a large value is let go, not held with the marker.
        bytes.shrink_to(start + 32);
        write!(bytes, "{{\"truncated_bytes\":{len}}}").expect("writing to a Vec succeeds");
    } else if wrap {
        bytes.splice(start..start, WRAP_OPEN.iter().copied());
        bytes.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::MAX_MESSAGE_BYTES;

    fn emitted(message: &str, metadata: serde_json::Value) -> Body {
        Body::emitted(format_args!("{message}"), Some(&metadata))
    }

    #[test]
    fn message_and_metadata_read_back_from_one_buffer() {
        let body = Body::emitted(
            format_args!("record {}", 7),
            Some(&serde_json::json!({"i": 7})),
        );
        assert_eq!(body.message(), "record 7");
        assert_eq!(body.metadata(), Some(r#"{"i":7}"#));
        assert_eq!(body.len(), "record 7".len() + r#"{"i":7}"#.len());
        let plain = Body::emitted::<()>(format_args!("plain"), None);
        assert_eq!((plain.message(), plain.metadata()), ("plain", None));
        assert_eq!(plain.clone().into_message(), "plain");
        assert_eq!(body.into_message(), "record 7");
    }

    #[test]
    fn emitted_metadata_is_always_an_object_or_none() {
        let huge = serde_json::json!({ "blob": "x".repeat(MAX_METADATA_BYTES) });
        let huge_len = serde_json::to_string(&huge).unwrap().len();
        let truncated = format!(r#"{{"truncated_bytes":{huge_len}}}"#);
        for (value, expected) in [
            (serde_json::Value::Null, None),
            (serde_json::json!({}), None),
            (
                serde_json::json!({"b": 1, "a": "x"}),
                Some(r#"{"a":"x","b":1}"#),
            ),
            (serde_json::json!(5), Some(r#"{"value":5}"#)),
            (serde_json::json!("text"), Some(r#"{"value":"text"}"#)),
            (
                serde_json::json!([1, {"a": 2}]),
                Some(r#"{"value":[1,{"a":2}]}"#),
            ),
            (huge, Some(truncated.as_str())),
        ] {
            let body = emitted("m", value.clone());
            assert_eq!(body.metadata(), expected, "{value}");
            assert_eq!(body.message(), "m");
        }
    }

    #[test]
    fn metadata_too_large_is_never_held_whole() {
        let blob = "x".repeat(16 * MAX_METADATA_BYTES);
        let body = emitted("m", serde_json::json!({ "blob": blob }));
        let expected = format!(
            r#"{{"truncated_bytes":{}}}"#,
            blob.len() + r#"{"blob":""}"#.len()
        );
        assert_eq!(body.metadata(), Some(expected.as_str()));
        assert!(
            body.text.capacity() < 2 * TYPICAL_BYTES,
            "{}",
            body.text.capacity()
        );
        // A non-object just under the cap goes over it once wrapped.
        let near = "y".repeat(MAX_METADATA_BYTES - 4);
        let body = emitted("m", serde_json::json!(near));
        let wrapped = near.len() + 2 + WRAP_OPEN.len() + 1;
        assert_eq!(
            body.metadata(),
            Some(format!(r#"{{"truncated_bytes":{wrapped}}}"#).as_str())
        );
    }

    #[test]
    fn emitted_messages_are_capped_and_storable() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let body = emitted(&long, serde_json::json!({"k": 1}));
        assert_eq!(body.message(), cap_message(long));
        assert_eq!(body.metadata(), Some(r#"{"k":1}"#));
        let body = Body::emitted::<()>(format_args!("a\0b"), None);
        assert_eq!(body.message(), "a\u{FFFD}b");
        // A fixed message (no arguments) takes the same path.
        assert_eq!(
            Body::emitted::<()>(format_args!("fixed"), None).message(),
            "fixed"
        );
    }

    #[test]
    fn metadata_that_cannot_serialise_is_noted_not_lost() {
        // serde_json refuses maps whose keys are not strings.
        let bad: BTreeMap<Vec<u8>, u8> = BTreeMap::from([(vec![1], 2)]);
        let body = Body::emitted(format_args!("kept"), Some(&bad));
        assert_eq!(body.message(), "kept");
        let note: serde_json::Value = serde_json::from_str(body.metadata().unwrap()).unwrap();
        assert!(
            note["metadata_error"].as_str().unwrap().contains("key"),
            "{note}"
        );
    }

    #[test]
    fn metadata_text_from_storage_is_checked() {
        let body = Body::with_metadata_text("m".to_owned(), Some(r#"{"a":[1,2]}"#)).unwrap();
        assert_eq!(body.metadata(), Some(r#"{"a":[1,2]}"#));
        assert!(Body::with_metadata_text("m".to_owned(), Some("{not json")).is_err());
        let none = Body::with_metadata_text("m".to_owned(), None).unwrap();
        assert_eq!(none.metadata(), None);
    }
}
