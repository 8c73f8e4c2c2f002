//! Server → client frames. `logs` frames are written directly from shared batches
//! (no copy of any record); the rest go through `protocol::ServerMessage`.

use std::io::Write;
use std::sync::Arc;

use engine::batch::LogBatch;
use protocol::{LogEntry, ServerMessage, TaskId, TaskInfo};

use super::subscription::Outgoing;

fn begin_logs(kind: &str, task_id: TaskId, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    write!(
        out,
        r#"{{"type":"{kind}","task_id":"{task_id}","entries":["#
    )
    .expect("writing to a Vec");
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

/// Frames stop growing past this size (one record more may go over it), so that
/// clients with the usual 1 MiB message limit can read them.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// `kind` frames (`logs`, `matched`) holding `entries`, in order, each at most about
/// [`MAX_FRAME_BYTES`].
fn logs_frames<'a>(
    kind: &str,
    task_id: TaskId,
    entries: impl Iterator<Item = &'a LogEntry>,
) -> Vec<String> {
    let mut frames = Vec::new();
    let mut out = begin_logs(kind, task_id, 64 * 1024);
    let mut first = true;
    for entry in entries {
        if !first && out.len() >= MAX_FRAME_BYTES {
            frames.push(end(std::mem::replace(
                &mut out,
                begin_logs(kind, task_id, 64 * 1024),
            )));
            first = true;
        }
        push_entry(&mut out, &mut first, entry);
    }
    if !first {
        frames.push(end(out));
    }
    frames
}

/// `logs` frames of owned entries (history).
pub fn logs(task_id: TaskId, entries: &[LogEntry]) -> Vec<String> {
    logs_frames("logs", task_id, entries.iter())
}

/// `matched` frames: the records of a live batch that pass a live search.
pub fn matched<'a>(task_id: TaskId, entries: impl Iterator<Item = &'a LogEntry>) -> Vec<String> {
    logs_frames("matched", task_id, entries)
}

/// `logs` frames of entries selected from shared batches (live).
pub fn live_logs(task_id: TaskId, parts: &[(Arc<LogBatch>, Vec<u32>)]) -> Vec<String> {
    logs_frames("logs", task_id, Outgoing::entries(parts))
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
    use protocol::{Body, LogLevel, Timestamp};

    #[test]
    fn logs_frames_parse_as_server_messages() {
        let task_id = TaskId(uuid::Uuid::nil());
        let entry = LogEntry {
            seq: 3,
            timestamp: Timestamp(7),
            level: LogLevel::Error,
            source: Arc::from("api"),
            body: Body::new(
                "boom \"quoted\"".into(),
                protocol::entry::encode_metadata(serde_json::json!({"k": 1})).as_deref(),
            ),
            group: None,
            mark: None,
            worst: None,
        };
        let batch = Arc::new(LogBatch::new(task_id, vec![entry.clone(), entry.clone()]));
        for frames in [
            logs(task_id, &[entry.clone(), entry.clone()]),
            live_logs(task_id, &[(batch, vec![0, 1])]),
        ] {
            assert_eq!(frames.len(), 1);
            let parsed: ServerMessage = serde_json::from_str(&frames[0]).unwrap();
            assert_eq!(
                parsed,
                ServerMessage::Logs {
                    task_id,
                    entries: vec![entry.clone(), entry.clone()]
                }
            );
        }
        assert!(logs(task_id, &[]).is_empty(), "no frame for no entries");
    }

    #[test]
    fn large_batches_are_split_into_frames_of_about_a_mebibyte() {
        let task_id = TaskId(uuid::Uuid::nil());
        let entries: Vec<LogEntry> = (1..=300)
            .map(|seq| LogEntry {
                seq,
                timestamp: Timestamp(seq as i64),
                level: LogLevel::Info,
                source: Arc::from("api"),
                body: Body::new("x".repeat(10_000), None),
                group: None,
                mark: None,
                worst: None,
            })
            .collect();
        let frames = logs(task_id, &entries);
        assert!(frames.len() >= 3, "{} frames", frames.len());
        let mut seqs = Vec::new();
        for frame in &frames {
            assert!(frame.len() < MAX_FRAME_BYTES + 20_000);
            let ServerMessage::Logs { entries, .. } = serde_json::from_str(frame).unwrap() else {
                panic!("a logs frame")
            };
            seqs.extend(entries.iter().map(|e| e.seq));
        }
        assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    }
}
