//! WebSocket frames (`/ws`), JSON text messages tagged by `type`.
//!
//! Client → server: `auth`, `subscribe`, `set_filter`, `unsubscribe`,
//! `subscribe_tasks`, `unsubscribe_tasks`, `subscribe_all`, `unsubscribe_all`.
//! Server → client: `logs` (history first, then live, in seq order, without gaps or
//! duplicates), `caught_up` (once history has been sent), `task` (status changes),
//! `matched` (live records of any task that pass the `subscribe_all` filter),
//! `error` (the connection stays up).

use serde::{Deserialize, Serialize};

use crate::{FilterSpec, LogEntry, TaskId, TaskInfo};

/// A message from client to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Authenticate a connection opened without a token (must come first).
    Auth {
        token: String,
    },
    /// Follow a task's logs: records with seq > `after_seq` that match `filter`.
    Subscribe {
        task_id: TaskId,
        #[serde(default)]
        filter: FilterSpec,
        #[serde(default)]
        after_seq: u64,
    },
    /// Replace the filter of a followed task; history is sent again for the new
    /// filter, from `after_seq`.
    SetFilter {
        task_id: TaskId,
        #[serde(default)]
        filter: FilterSpec,
        #[serde(default)]
        after_seq: u64,
    },
    Unsubscribe {
        task_id: TaskId,
    },
    /// Receive a `task` message for every status change of every task.
    SubscribeTasks {},
    UnsubscribeTasks {},
    /// A live search over every task running on this node: from now on, its records
    /// that pass `filter` come as `matched` frames (no history: that is
    /// `GET /api/logs/search`). Sending it again replaces the filter.
    SubscribeAll {
        #[serde(default)]
        filter: FilterSpec,
    },
    UnsubscribeAll {},
}

/// A message from server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Logs {
        task_id: TaskId,
        entries: Vec<LogEntry>,
    },
    /// All history up to `seq` has been sent; what follows is live.
    CaughtUp {
        task_id: TaskId,
        seq: u64,
    },
    Task {
        task: TaskInfo,
    },
    /// Live records of one task that pass the connection's `subscribe_all` filter,
    /// in seq order.
    Matched {
        task_id: TaskId,
        entries: Vec<LogEntry>,
    },
    Error {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_id: Option<TaskId>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_defaults_and_strictness() {
        let msg: ClientMessage = serde_json::from_str(
            r#"{"type":"subscribe","task_id":"67e55044-10b1-426f-9247-bb680e5fe0c8"}"#,
        )
        .unwrap();
        let ClientMessage::Subscribe {
            filter, after_seq, ..
        } = msg
        else {
            panic!("expected subscribe, got {msg:?}")
        };
        assert_eq!(after_seq, 0);
        assert_eq!(filter, FilterSpec::default());

        for bad in [
            r#"{"type":"subscribe"}"#,
            r#"{"type":"shout"}"#,
            r#"{"task_id":"67e55044-10b1-426f-9247-bb680e5fe0c8"}"#,
            r#"{"type":"unsubscribe","task_id":"nope"}"#,
            r#"{"type":"subscribe","task_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","filter":{"level":"LOUD"}}"#,
            r#"{"type":"subscribe","task_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<ClientMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn logs_with_metadata_parse_inside_the_tagged_enum() {
        let text = r#"{"type":"logs","task_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","entries":[{"seq":1,"timestamp":"2025-11-25T11:30:02.123456Z","level":"INFO","source":"api","message":"m","metadata":{"dashboard_id":3}}]}"#;
        let ServerMessage::Logs { entries, .. } = serde_json::from_str(text).unwrap() else {
            panic!("expected logs")
        };
        assert_eq!(entries[0].metadata().unwrap(), r#"{"dashboard_id":3}"#);
    }

    #[test]
    fn server_messages_are_tagged() {
        let msg = ServerMessage::CaughtUp {
            task_id: "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap(),
            seq: 9,
        };
        assert_eq!(
            serde_json::to_string(&msg).unwrap(),
            r#"{"type":"caught_up","task_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","seq":9}"#
        );
    }
}
