//! Server → client frames. `logs` frames are written directly from shared batches
//! (no copy of any record); the rest go through `protocol::ServerMessage`.

use std::io::Write;
use std::sync::Arc;

use engine::batch::LogBatch;
use protocol::{LogEntry, ServerMessage, TaskId, TaskInfo};

use super::subscription::Outgoing;

fn begin_logs(task_id: TaskId, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    write!(out, r#"{{"type":"logs","task_id":"{task_id}","entries":["#).expect("writing to a Vec");
    out
}

fn push_entry(out: &mut Vec<u8>, first: &mut bool, entry: &LogEntry) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    serde_json::to_writer(&mut *out, entry).expect("entries serialise");
}

fn end(out: Vec<u8>) -> String {
    let mut out = out;
    out.extend_from_slice(b"]}");
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// A `logs` frame of owned entries (history).
pub fn logs(task_id: TaskId, entries: &[LogEntry]) -> String {
    let mut out = begin_logs(task_id, entries.len() * 160 + 64);
    let mut first = true;
    for entry in entries {
        push_entry(&mut out, &mut first, entry);
    }
    end(out)
}

/// A `logs` frame of entries selected from shared batches (live).
pub fn live_logs(task_id: TaskId, parts: &[(Arc<LogBatch>, Vec<u32>)]) -> String {
    let count: usize = parts.iter().map(|(_, idx)| idx.len()).sum();
    let mut out = begin_logs(task_id, count * 160 + 64);
    let mut first = true;
    for entry in Outgoing::entries(parts) {
        push_entry(&mut out, &mut first, entry);
    }
    end(out)
}

pub fn caught_up(task_id: TaskId, seq: u64) -> String {
    to_text(&ServerMessage::CaughtUp { task_id, seq })
}

pub fn task(task: &TaskInfo) -> String {
    to_text(&ServerMessage::Task { task: task.clone() })
}

pub fn error(message: impl Into<String>, task_id: Option<TaskId>) -> String {
    to_text(&ServerMessage::Error {
        message: message.into(),
        task_id,
    })
}

fn to_text(msg: &ServerMessage) -> String {
    serde_json::to_string(msg).expect("server messages serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{LogLevel, Timestamp};

    #[test]
    fn logs_frames_parse_as_server_messages() {
        let task_id = TaskId(uuid::Uuid::nil());
        let entry = LogEntry {
            seq: 3,
            timestamp: Timestamp(7),
            level: LogLevel::Error,
            source: Arc::from("api"),
            message: "boom \"quoted\"".into(),
            metadata: protocol::entry::encode_metadata(serde_json::json!({"k": 1})),
        };
        let batch = Arc::new(LogBatch {
            task_id,
            entries: vec![entry.clone(), entry.clone()],
        });
        for text in [
            logs(task_id, &[entry.clone(), entry.clone()]),
            live_logs(task_id, &[(batch, vec![0, 1])]),
        ] {
            let parsed: ServerMessage = serde_json::from_str(&text).unwrap();
            assert_eq!(
                parsed,
                ServerMessage::Logs {
                    task_id,
                    entries: vec![entry.clone(), entry.clone()]
                }
            );
        }
        let empty: ServerMessage = serde_json::from_str(&logs(task_id, &[])).unwrap();
        assert_eq!(
            empty,
            ServerMessage::Logs {
                task_id,
                entries: vec![]
            }
        );
    }
}
