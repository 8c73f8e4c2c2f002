//! Row types: `XxxRow` is read, `NewXxxRow` is written (borrowed, so a batch insert
//! copies nothing).

use diesel::prelude::*;
use protocol::{TaskId, TaskInfo, TaskStatus, Timestamp};

use crate::schema::{api_tokens, task_log_counts, task_log_level_bits, task_logs, tasks};
use crate::StorageError;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tasks)]
pub struct TaskRow {
    pub id: Vec<u8>,
    pub plugin: String,
    pub params: String,
    pub status: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_by: Option<String>,
    pub node_id: Option<String>,
    pub priority: i32,
}

impl TryFrom<TaskRow> for TaskInfo {
    type Error = StorageError;

    fn try_from(row: TaskRow) -> Result<Self, Self::Error> {
        let id = TaskId::from_slice(&row.id)
            .ok_or_else(|| StorageError::Corrupt(format!("task id of {} bytes", row.id.len())))?;
        let status: TaskStatus = row
            .status
            .parse()
            .map_err(|e| StorageError::Corrupt(format!("task {id}: {e}")))?;
        let json = |text: &str| {
            serde_json::from_str(text)
                .map_err(|e| StorageError::Corrupt(format!("task {id}: JSON column: {e}")))
        };
        Ok(TaskInfo {
            id,
            plugin: row.plugin,
            params: json(&row.params)?,
            status,
            created_at: Timestamp(row.created_at),
            started_at: row.started_at.map(Timestamp),
            finished_at: row.finished_at.map(Timestamp),
            result: row.result.as_deref().map(json).transpose()?,
            error: row.error,
            created_by: row.created_by,
            params_omitted: false,
            node: row.node_id,
            priority: row.priority,
        })
    }
}

/// A task as lists read it: `params` only when small (`None` when left out).
#[derive(Debug, Clone, Queryable)]
pub struct TaskSummaryRow {
    pub id: Vec<u8>,
    pub plugin: String,
    pub params: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_by: Option<String>,
    pub node_id: Option<String>,
    pub priority: i32,
}

impl TryFrom<TaskSummaryRow> for TaskInfo {
    type Error = StorageError;

    fn try_from(row: TaskSummaryRow) -> Result<Self, Self::Error> {
        let omitted = row.params.is_none();
        let mut task = TaskInfo::try_from(TaskRow {
            id: row.id,
            plugin: row.plugin,
            params: row.params.unwrap_or_else(|| "null".into()),
            status: row.status,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            result: row.result,
            error: row.error,
            created_by: row.created_by,
            node_id: row.node_id,
            priority: row.priority,
        })?;
        task.params_omitted = omitted;
        Ok(task)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = tasks, treat_none_as_default_value = false)]
pub struct NewTaskRow<'a> {
    pub id: &'a [u8],
    pub plugin: &'a str,
    pub params: &'a str,
    pub status: &'a str,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
    pub created_by: Option<&'a str>,
    pub node_id: Option<&'a str>,
    pub priority: i32,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = task_logs, treat_none_as_default_value = false)]
pub struct NewLogRow<'a> {
    pub task_id: &'a [u8],
    pub seq: i64,
    pub ts: i64,
    pub level: i16,
    pub source: &'a str,
    pub message: &'a str,
    pub metadata: Option<&'a str>,
    pub group_seq: Option<i64>,
    pub group_mark: Option<i16>,
    pub group_worst: Option<i16>,
}

impl<'a> NewLogRow<'a> {
    /// The row of `entry`, a record of the task whose id bytes are `task_id`.
    pub fn of(task_id: &'a [u8], entry: &'a protocol::LogEntry) -> Self {
        NewLogRow {
            task_id,
            seq: entry.seq as i64,
            ts: entry.timestamp.as_micros(),
            level: entry.level.as_i16(),
            source: &entry.source,
            message: entry.message(),
            metadata: entry.metadata(),
            group_seq: entry.group.map(|seq| seq as i64),
            group_mark: entry.mark.map(protocol::GroupMark::as_i16),
            group_worst: entry.worst.map(protocol::LogLevel::as_i16),
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = task_log_counts)]
pub struct NewCountRow<'a> {
    pub task_id: &'a [u8],
    pub source: &'a str,
    pub level: i16,
    pub count: i64,
}

/// A row of `task_log_level_bits` (see `logs::level_bits`).
#[derive(Debug, Insertable)]
#[diesel(table_name = task_log_level_bits)]
pub struct NewLevelBits<'a> {
    pub task_id: &'a [u8],
    pub level: i16,
    pub block: i64,
    pub bits: &'a [u8],
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    pub name: String,
    pub role: String,
    pub token_hash: String,
    pub created_at: i64,
}
