//! Plugins in other processes: remote workers.
//!
//! A worker connection (the gateway's `/ws/worker` session) says [`WorkerHello`] to
//! the `TaskManager` with what it offers and a [`WorkerLink`] to reach it. The
//! manager keeps the workers in a [`book::Workers`] and hands a queued task of a
//! remote plugin to the connected worker offering it with the most free places. The
//! task then runs like any other: a `TaskActor`, the task's logger, the sink, the
//! hub. Its plugin is a [`proxy::RemoteTask`] actor, which takes the same
//! `RunTask`, `CancelTask` and `LogSettingsChanged` as an in-process plugin and
//! carries them to the connection as [`ToWorker`] messages (the session writes them
//! as JSON). Records come back through the session straight into the task's logger
//! (`TaskLogger::append_numbered`, idempotent by seq); the worker's `finish` comes
//! back as [`WorkerFinished`]. When a connection drops ([`WorkerGone`]) its tasks
//! wait `worker_grace` for a `hello` with the same `worker_id` that resumes them,
//! then end `interrupted`.

pub mod book;
mod handlers;

pub use handlers::MAX_SUBMITTED_PER_WORKER;
pub mod proxy;

use actix::prelude::*;
use protocol::{LogSettings, PluginInfo, TaskId, TaskInfo, TaskStatus, WorkerInfo};

use crate::plugin::{PluginError, TaskContext};
use crate::EngineError;

/// The protocol versions this server speaks.
pub const PROTOCOL_VERSIONS: [u32; 1] = [1];

/// Identifies one connection of a worker (a worker that reconnects gets a new one).
pub type ConnId = u64;

/// How the manager and a task's proxy reach a worker connection.
#[derive(Clone)]
pub struct WorkerLink {
    pub conn: ConnId,
    pub to: Recipient<ToWorker>,
}

impl std::fmt::Debug for WorkerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerLink")
            .field("conn", &self.conn)
            .finish()
    }
}

/// What the engine sends a worker connection.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum ToWorker {
    /// Start a task (`RunTask` carried over): `ctx.logger` takes its records.
    Run {
        ctx: TaskContext,
        plugin: String,
        params: serde_json::Value,
        settings: LogSettings,
    },
    /// `CancelTask` carried over.
    Cancel { task_id: TaskId },
    /// `LogSettingsChanged` carried over.
    Settings {
        task_id: TaskId,
        settings: LogSettings,
    },
    /// Every record of the task up to `seq` is durable.
    Durable { task_id: TaskId, seq: u64 },
    /// The task's final status is stored.
    Done { task_id: TaskId, status: TaskStatus },
    /// Another connection said hello with this worker's id and took its tasks.
    Replaced,
    /// A `submit` of this connection was refused.
    Refused { message: String },
}

/// What a worker offers.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginOffer {
    pub name: String,
    pub description: String,
    pub params_schema: serde_json::Value,
    pub example_params: serde_json::Value,
}

/// A worker connection introduces itself (the `hello` message).
#[derive(Debug, Message)]
#[rtype(result = "Result<Welcome, EngineError>")]
pub struct WorkerHello {
    pub worker_id: String,
    pub name: String,
    /// The name of the token it connected with.
    pub token: String,
    pub capacity: usize,
    pub plugins: Vec<PluginOffer>,
    /// Tasks it was running when its previous connection dropped.
    pub resume: Vec<TaskId>,
    pub link: WorkerLink,
}

/// The answer to [`WorkerHello`].
#[derive(Debug)]
pub struct Welcome {
    pub resumed: Vec<Resumed>,
    pub gone: Vec<TaskId>,
    pub settings: LogSettings,
}

/// A task a reconnecting worker picks up again.
#[derive(Debug)]
pub struct Resumed {
    pub ctx: TaskContext,
    /// Every record up to here is durable.
    pub acked_seq: u64,
}

/// A worker connection ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WorkerGone {
    pub worker_id: String,
    pub conn: ConnId,
}

/// A worker says how a task of its ended (the `finish` message).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct WorkerFinished {
    pub worker_id: String,
    pub conn: ConnId,
    pub task_id: TaskId,
    pub outcome: Result<serde_json::Value, PluginError>,
}

/// A worker creates a task that runs on itself (the `submit` message).
#[derive(Debug, Message)]
#[rtype(result = "Result<TaskInfo, EngineError>")]
pub struct WorkerSubmit {
    pub worker_id: String,
    pub conn: ConnId,
    pub plugin: String,
    pub params: serde_json::Value,
    pub created_by: String,
}

/// The workers connected now, or away within their grace.
#[derive(Debug, Message)]
#[rtype(result = "Vec<WorkerInfo>")]
pub struct ListWorkers;

/// The plugins workers offer (those of workers away within their grace too).
#[derive(Debug, Message)]
#[rtype(result = "Vec<PluginInfo>")]
pub struct ListRemotePlugins;

/// The remote plugins the workers of the other nodes heard within `timeout` offer
/// (as each published them, see `NodeActor`), by name; none on SQLite.
///
/// # Errors
/// A database error.
pub async fn offered_elsewhere(
    db: &storage::Db,
    node: &str,
    timeout: std::time::Duration,
) -> Result<Vec<protocol::PluginInfo>, storage::StorageError> {
    if db.backend() == storage::Backend::Sqlite {
        return Ok(Vec::new()); // one node only
    }
    let (node, timeout) = (node.to_owned(), timeout.as_micros() as i64);
    let now = protocol::Timestamp(crate::logger::now_micros());
    let lists = db
        .run(move |c| storage::nodes::plugins_elsewhere(c, &node, now, timeout))
        .await?;
    let mut by_name = std::collections::BTreeMap::new();
    for list in lists {
        // Written by another node of this version; a list it cannot read is skipped.
        let Ok(offers) = serde_json::from_str::<Vec<protocol::PluginInfo>>(&list) else {
            continue;
        };
        for offer in offers {
            by_name.entry(offer.name.clone()).or_insert(offer);
        }
    }
    Ok(by_name.into_values().collect())
}

/// Checks params against the top level of a worker's schema: an object, with the
/// keys `required` lists, and no others when `additionalProperties` is false.
pub fn check_against_schema(
    schema: &serde_json::Value,
    params: &serde_json::Value,
) -> Result<(), String> {
    let object = match params {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => return check_against_schema(schema, &serde_json::json!({})),
        other => return Err(format!("params must be a JSON object, not {other}")),
    };
    if let Some(required) = schema.get("required").and_then(|r| r.as_array()) {
        if let Some(missing) = required
            .iter()
            .filter_map(|k| k.as_str())
            .find(|k| !object.contains_key(*k))
        {
            return Err(format!("missing field `{missing}`"));
        }
    }
    if schema.get("additionalProperties") == Some(&serde_json::Value::Bool(false)) {
        let known = schema.get("properties").and_then(|p| p.as_object());
        if let Some(unknown) = object
            .keys()
            .find(|k| !known.is_some_and(|props| props.contains_key(*k)))
        {
            return Err(format!("unknown field `{unknown}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_are_checked_against_the_top_of_a_workers_schema() {
        let schema = json!({"type": "object", "required": ["id"], "properties": {"id": {}, "n": {}}, "additionalProperties": false});
        assert!(check_against_schema(&schema, &json!({"id": 1})).is_ok());
        assert!(check_against_schema(&schema, &json!({"id": 1, "n": 2})).is_ok());
        assert_eq!(
            check_against_schema(&schema, &json!({"n": 2})),
            Err("missing field `id`".into())
        );
        assert_eq!(
            check_against_schema(&schema, &json!({"id": 1, "x": 2})),
            Err("unknown field `x`".into())
        );
        assert!(check_against_schema(&schema, &json!([1])).is_err());
        assert!(check_against_schema(&json!({}), &json!({"anything": 1})).is_ok());
        assert!(check_against_schema(&json!({}), &serde_json::Value::Null).is_ok());
    }
}
