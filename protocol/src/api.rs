//! REST bodies other than tasks and filters: log pages, source counts, logging
//! settings, plugins, tokens, cleanup and the error body every 4xx/5xx carries.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{LogEntry, LogLevel, TaskId, Timestamp};

/// What a token may do. `viewer` reads tasks and logs and runs non-privileged
/// plugins; `admin` may also change settings, delete, clean up, manage tokens and run
/// privileged plugins such as `shell`; `worker` may only connect to `/ws/worker` and
/// run tasks there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Admin,
    /// Connects to `/ws/worker` to run tasks of its plugins; nothing else.
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "admin" => Ok(Role::Admin),
            "worker" => Ok(Role::Worker),
            _ => Err(format!(
                "unknown role {s:?}: expected viewer, admin or worker"
            )),
        }
    }
}

/// `GET /api/tasks/{id}/logs` body.
///
/// Forward paging: pass `next_after_seq` as `after_seq` while `has_more`. A page may
/// hold fewer than `limit` entries while `has_more` is true (a regex filter scans a
/// bounded number of records per request). With `before_seq` the page holds the last
/// matches before it, oldest first, `has_more` says whether older ones exist and
/// `next_before_seq` continues backwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogPage {
    pub logs: Vec<LogEntry>,
    pub next_after_seq: u64,
    pub has_more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before_seq: Option<u64>,
    /// Present when the page stopped because it read as many stored records as one
    /// request may (a filter the text index cannot narrow, such as most `re`): how
    /// many it read. The page may then be short, even empty; continue from the next
    /// seq, or narrow the filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned: Option<u64>,
}

/// One group (foldable section) of a task's log, as `GET /api/tasks/{id}/logs/groups`
/// lists it (`protocol::group`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogGroup {
    /// Seq of the record that opened it (its `::group::NAME` line).
    pub seq: u64,
    /// The group around it, by the seq that opened that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// Its name, cut to [`MAX_GROUP_NAME_BYTES`].
    pub name: String,
    pub started: crate::Timestamp,
    /// Seq of the record that closed it; none while it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<crate::Timestamp>,
    /// Records inside it (nested groups' lines included), its own open and close
    /// records not counted.
    pub lines: u64,
    /// The most severe level inside it; none when it holds no line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst: Option<LogLevel>,
}

/// Longest group name a listing carries (the whole name is in its record).
pub const MAX_GROUP_NAME_BYTES: usize = 256;

/// A task's groups in seq order. `truncated`: the task has more than the listing
/// holds (its first groups are listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogGroups {
    pub groups: Vec<LogGroup>,
    pub truncated: bool,
}

/// One record found by `GET /api/logs/search`, with the task it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub task_id: crate::TaskId,
    pub plugin: String,
    pub log: LogEntry,
}

/// A page of `GET /api/logs/search`: hits newest task first, and within a task
/// the latest record first. Pass `next_cursor` as `cursor` while `has_more`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    pub has_more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// As in [`LogPage::scanned`]: present when the page stopped because it read as
    /// many stored records, or visited as many tasks, as one request may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned: Option<u64>,
}

/// One entry of `GET /api/tasks/{id}/logs/sources`: how many stored records a source
/// has, in all and per level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceCount {
    pub source: String,
    pub count: u64,
    pub levels: BTreeMap<LogLevel, u64>,
}

/// The runtime logging settings (`/api/settings/logging`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Level of the server's own (operator) log output.
    pub app_log_level: LogLevel,
    /// Records of tasks below this level are neither stored nor streamed.
    pub task_log_level: LogLevel,
    /// Whether `belief_scope` guards emit their Entry/Exit/Coherence records.
    pub belief_scope_enabled: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            app_log_level: LogLevel::Info,
            task_log_level: LogLevel::Info,
            belief_scope_enabled: true,
        }
    }
}

/// One entry of `GET /api/plugins`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginInfo {
    pub name: String,
    pub description: String,
    /// Only admins may run it.
    pub privileged: bool,
    /// Written against the old `execute(params)` signature.
    pub legacy: bool,
    /// Parameters that make a useful first run, for forms and docs.
    pub example_params: serde_json::Value,
    /// A JSON Schema of the params (`{}` when the plugin says nothing of them).
    #[serde(default)]
    pub params_schema: serde_json::Value,
    /// For a plugin of remote workers: the ids of the connected workers offering it
    /// (empty while none is). Built-in plugins have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<String>>,
}

/// `GET /api/workers`: a remote worker, connected or away within its grace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerInfo {
    /// Chosen by the worker, kept across its reconnects.
    pub id: String,
    pub name: String,
    /// The name of the token it connected with.
    pub token: String,
    /// False while it is away (its tasks wait for it until `worker_grace_secs`).
    pub connected: bool,
    pub connected_at: Timestamp,
    /// Tasks it runs at once at most.
    pub capacity: usize,
    /// Tasks it runs now.
    pub running: usize,
    /// The plugins it offers.
    pub plugins: Vec<String>,
}

/// `GET /api/nodes`: a server process sharing the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeInfo {
    /// `node_id` (the host name unless set).
    pub id: String,
    /// `all` (serves and runs tasks), `gateway` (serves) or `engine` (runs tasks).
    pub role: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    /// Tasks it ran at its last heartbeat.
    pub running: u64,
    /// Heard within `node_timeout_secs`; a node that is not has had its tasks
    /// ended `interrupted` by a survivor.
    pub alive: bool,
}

/// `GET /api/spool`: what waits in the server's spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpoolReport {
    /// Bytes of records and statuses spooled during an outage or at shutdown, not
    /// yet in the database (stored by the server on its own once it can).
    pub pending_bytes: u64,
    /// Records the database refuses for good, in all.
    pub rejected_rows: u64,
    /// The same per task, oldest first (at most 1,000 tasks).
    pub rejected: Vec<RejectedTask>,
}

/// Records of one task the database refuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectedTask {
    pub task_id: TaskId,
    pub rows: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The database's reason, as first given.
    pub reason: String,
}

/// `POST /api/spool/retry`: what trying the refused records again did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpoolRetry {
    pub stored_rows: u64,
    pub refused_rows: u64,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// `POST /api/tokens` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
}

/// `POST /api/tokens` answer: the only time the token's secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    pub name: String,
    pub role: Role,
    pub token: String,
}

/// A token as `GET /api/tokens` lists it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
}

/// `GET /api/me`: who the presented token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    pub name: String,
    pub role: Role,
}

/// `POST /api/cleanup` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    /// Finished tasks created more than this many days ago are deleted with their logs.
    pub older_than_days: u32,
}

/// `POST /api/cleanup` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CleanupReport {
    pub deleted_tasks: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_counts_write_levels_by_name() {
        let count = SourceCount {
            source: "api".into(),
            count: 3,
            levels: [(LogLevel::Info, 2), (LogLevel::Error, 1)]
                .into_iter()
                .collect(),
        };
        let text = serde_json::to_string(&count).unwrap();
        assert_eq!(
            text,
            r#"{"source":"api","count":3,"levels":{"INFO":2,"ERROR":1}}"#
        );
        assert_eq!(serde_json::from_str::<SourceCount>(&text).unwrap(), count);
    }

    #[test]
    fn settings_reject_unknown_fields_and_bad_levels() {
        let ok: LogSettings = serde_json::from_str(
            r#"{"app_log_level":"info","task_log_level":"WARN","belief_scope_enabled":false}"#,
        )
        .unwrap();
        assert_eq!(ok.task_log_level, LogLevel::Warning);
        assert!(serde_json::from_str::<LogSettings>(
            r#"{"app_log_level":"INFO","task_log_level":"INFO","belief_scope_enabled":true,"x":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<LogSettings>(
            r#"{"app_log_level":"NOISY","task_log_level":"INFO","belief_scope_enabled":true}"#
        )
        .is_err());
    }

    #[test]
    fn roles_parse() {
        assert_eq!("Admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }
}
