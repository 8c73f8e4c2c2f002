//! The worker protocol (`/ws/worker`, version 1): JSON text messages tagged by
//! `type`. Specified in docs/api.md; these types are its one definition in Rust.

use serde::{Deserialize, Serialize};

use crate::{LogLevel, LogSettings, TaskId, TaskStatus, Timestamp};

/// A message from a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkerMessage {
    Hello {
        protocol: u32,
        worker_id: String,
        #[serde(default)]
        name: Option<String>,
        capacity: usize,
        #[serde(default)]
        plugins: Vec<PluginOffer>,
        #[serde(default)]
        resume: Vec<TaskId>,
    },
    Logs {
        task_id: TaskId,
        entries: Vec<WorkerEntry>,
    },
    Finish {
        task_id: TaskId,
        status: FinishStatus,
        #[serde(default)]
        result: Option<serde_json::Value>,
        #[serde(default)]
        error: Option<String>,
    },
    Submit {
        plugin: String,
        #[serde(default)]
        params: serde_json::Value,
    },
}

/// A plugin a worker offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginOffer {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub params_schema: Option<serde_json::Value>,
    #[serde(default)]
    pub example_params: Option<serde_json::Value>,
}

/// A record as a worker sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerEntry {
    pub seq: u64,
    pub timestamp: Timestamp,
    pub level: LogLevel,
    #[serde(default)]
    pub source: Option<String>,
    pub message: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// How a worker says a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishStatus {
    Success,
    Failed,
    Cancelled,
}

/// A message to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorkerMessage {
    Welcome {
        protocol: u32,
        worker_id: String,
        max_unacked_bytes: u64,
        settings: LogSettings,
        resumed: Vec<ResumedTask>,
        gone: Vec<TaskId>,
    },
    Run {
        task_id: TaskId,
        plugin: String,
        params: serde_json::Value,
        settings: LogSettings,
    },
    Cancel {
        task_id: TaskId,
    },
    Settings {
        task_id: TaskId,
        settings: LogSettings,
    },
    Ack {
        task_id: TaskId,
        seq: u64,
    },
    Done {
        task_id: TaskId,
        status: TaskStatus,
    },
    Error {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_id: Option<TaskId>,
        fatal: bool,
    },
}

/// A task a reconnecting worker picks up again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumedTask {
    pub task_id: TaskId,
    /// Every record up to here is durable.
    pub acked_seq: u64,
    /// The server has every record up to here.
    pub last_seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_messages_are_strict() {
        let hello: WorkerMessage = serde_json::from_str(
            r#"{"type":"hello","protocol":1,"worker_id":"w1","capacity":2,"plugins":[{"name":"p"}]}"#,
        )
        .unwrap();
        assert!(matches!(hello, WorkerMessage::Hello { capacity: 2, .. }));
        for bad in [
            r#"{"type":"hello","protocol":1,"worker_id":"w1"}"#,
            r#"{"type":"hello","protocol":1,"worker_id":"w1","capacity":-1}"#,
            r#"{"type":"logs","task_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","entries":[{"seq":1,"timestamp":"now","level":"INFO","message":"m"}]}"#,
            r#"{"type":"finish","task_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","status":"great"}"#,
            r#"{"type":"dance"}"#,
        ] {
            assert!(serde_json::from_str::<WorkerMessage>(bad).is_err(), "{bad}");
        }
    }
}
