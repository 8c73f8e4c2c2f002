//! Tasks: identity, lifecycle status and the REST bodies that describe them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// A task's id: a UUID, written in its hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub Uuid);

impl TaskId {
    /// The 16 bytes the database stores.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Inverse of [`TaskId::as_bytes`]; `None` unless exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Uuid::from_slice(bytes).ok().map(TaskId)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Text that is not a task id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTaskIdError(pub String);

impl fmt::Display for ParseTaskIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a task id (a UUID)", self.0)
    }
}

impl std::error::Error for ParseTaskIdError {}

impl FromStr for TaskId {
    type Err = ParseTaskIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(TaskId)
            .map_err(|_| ParseTaskIdError(s.to_owned()))
    }
}

/// Where a task is in its life. Terminal states are only entered once all of the
/// task's logs are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Running,
    Success,
    Failed,
    Cancelled,
    /// The server stopped (crash or kill) while the task was queued or running.
    Interrupted,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Success,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Success => "success",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Interrupted => "interrupted",
        }
    }

    /// True once the task can no longer change.
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskStatus::Queued | TaskStatus::Running)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of the six.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStatusError(pub String);

impl fmt::Display for ParseStatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown status {:?}: expected queued, running, success, failed, cancelled or interrupted",
            self.0
        )
    }
}

impl std::error::Error for ParseStatusError {}

impl FromStr for TaskStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == wanted)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskInfo {
    pub id: TaskId,
    pub plugin: String,
    pub params: serde_json::Value,
    pub status: TaskStatus,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// What the plugin returned, for a successful task.
    pub result: Option<serde_json::Value>,
    /// Why the task failed, was cancelled or was interrupted.
    pub error: Option<String>,
    /// Name of the token that started the task.
    pub created_by: Option<String>,
    /// `params` was left out (it is `null`) because it is larger than
    /// [`MAX_INLINE_PARAMS_BYTES`]: task lists and status frames carry small params
    /// only; `GET /api/tasks/{id}` has them all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub params_omitted: bool,
    /// The node that took the task (`node_id`): it runs it, or ran it; absent
    /// while the task waits in the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Queued tasks run highest priority first, then oldest first (0 unless set).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The lowest and highest `priority` a task may have.
pub const PRIORITIES: std::ops::RangeInclusive<i32> = -1000..=1000;

/// The largest params shown in task lists and status frames.
pub const MAX_INLINE_PARAMS_BYTES: usize = 4096;

impl TaskInfo {
    /// The task as lists and status frames show it: params larger than
    /// [`MAX_INLINE_PARAMS_BYTES`] left out.
    pub fn summary(&self) -> TaskInfo {
        let large = !self.params_omitted
            && serde_json::to_vec(&self.params).map_or(true, |v| v.len() > MAX_INLINE_PARAMS_BYTES);
        if !large {
            return self.clone();
        }
        TaskInfo {
            id: self.id,
            plugin: self.plugin.clone(),
            params: serde_json::Value::Null,
            status: self.status,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            result: self.result.clone(),
            error: self.error.clone(),
            created_by: self.created_by.clone(),
            params_omitted: true,
            node: self.node.clone(),
            priority: self.priority,
        }
    }
}

/// `POST /api/tasks` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub plugin: String,
    #[serde(default = "empty_object")]
    pub params: serde_json::Value,
    /// Higher runs first among queued tasks ([`PRIORITIES`]; 0 unless set).
    #[serde(default, deserialize_with = "named_priority")]
    pub priority: i32,
}

/// A priority, or an error that names the field (serde's alone does not).
fn named_priority<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    i32::deserialize(d).map_err(|e| serde::de::Error::custom(format!("priority: {e}")))
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// `GET /api/tasks` body: newest first; pass `next_before` as `before` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskList {
    pub tasks: Vec<TaskInfo>,
    pub next_before: Option<TaskId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>().unwrap(), status);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
        assert!("done".parse::<TaskStatus>().is_err());
        assert!(TaskStatus::Cancelled.is_terminal());
        assert!(!TaskStatus::Running.is_terminal());
    }

    #[test]
    fn task_ids_parse_and_reject() {
        let id: TaskId = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
        assert_eq!(id.to_string(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert_eq!(TaskId::from_slice(id.as_bytes()), Some(id));
        assert!("not-a-uuid".parse::<TaskId>().is_err());
    }

    #[test]
    fn new_task_defaults_params_and_rejects_unknown_fields() {
        let task: NewTask = serde_json::from_str(r#"{"plugin":"synthetic"}"#).unwrap();
        assert_eq!(task.params, serde_json::json!({}));
        assert!(serde_json::from_str::<NewTask>(r#"{"plugin":"x","parms":{}}"#).is_err());
    }
}
