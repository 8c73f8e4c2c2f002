//! What the engine publishes to the outside (the gateway's `LogHub`), through
//! `Recipient`s handed in at start, so the engine never depends on who listens.

use std::sync::Arc;

use actix::prelude::*;
use protocol::{TaskId, TaskInfo};

use crate::batch::LogBatch;

/// A batch of records was emitted (not yet durable). Sent as records are handed
/// over, so live followers see them before the database does.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LogsAppended {
    pub batch: Arc<LogBatch>,
}

/// Every record of `task_id` up to `up_to_seq` is durable.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct LogsPersisted {
    pub task_id: TaskId,
    pub up_to_seq: u64,
}

/// The database refuses a task's records for good (see `LogSink`): the task must end.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LogsRejected {
    pub task_id: TaskId,
    pub reason: String,
}

/// A task was created or changed status.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct TaskStatusChanged {
    pub task: TaskInfo,
}

/// Where engine events go; each listener is optional.
#[derive(Clone, Default)]
pub struct EngineEvents {
    pub logs: Option<Recipient<LogsAppended>>,
    pub persisted: Option<Recipient<LogsPersisted>>,
    pub status: Option<Recipient<TaskStatusChanged>>,
    /// The engine's own listener for durability (the task manager, which
    /// acknowledges remote workers' records); set by `Engine::start`.
    pub(crate) durable: Option<Recipient<LogsPersisted>>,
    /// Where refusals go (the task manager); set by `Engine::start`.
    pub(crate) rejected: Option<Recipient<LogsRejected>>,
    /// On PostgreSQL, where status changes are announced to the other nodes, and
    /// this node's id; set by `Engine::start`.
    pub(crate) announce: Option<(storage::changes::Announcer, Arc<str>)>,
}

impl EngineEvents {
    /// Announces status changes through `announcer`, as `node` (PostgreSQL).
    pub fn announce_through(&mut self, announcer: storage::changes::Announcer, node: Arc<str>) {
        self.announce = Some((announcer, node));
    }

    pub fn logs_appended(&self, batch: &Arc<LogBatch>) {
        if let Some(r) = &self.logs {
            r.do_send(LogsAppended {
                batch: batch.clone(),
            });
        }
    }

    pub fn logs_persisted(&self, task_id: TaskId, up_to_seq: u64) {
        if let Some(r) = &self.persisted {
            r.do_send(LogsPersisted { task_id, up_to_seq });
        }
        if let Some(r) = &self.durable {
            r.do_send(LogsPersisted { task_id, up_to_seq });
        }
    }

    pub fn logs_rejected(&self, task_id: TaskId, reason: String) {
        if let Some(r) = &self.rejected {
            r.do_send(LogsRejected { task_id, reason });
        }
    }

    pub fn status_changed(&self, task: &TaskInfo) {
        if let Some(r) = &self.status {
            r.do_send(TaskStatusChanged { task: task.clone() });
        }
        if let Some((announcer, node)) = &self.announce {
            announcer.send(storage::changes::Change::Status {
                task: task.id,
                node: node.to_string(),
            });
        }
    }
}
