//! Engine errors. The gateway maps each to a status code: the first group are the
//! caller's doing (4xx), the rest are the server's (5xx).

use protocol::{TaskId, TaskStatus};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown plugin {0:?}")]
    UnknownPlugin(String),
    #[error("plugin {0:?} may only be run by an admin")]
    PrivilegedPlugin(String),
    #[error("invalid params for plugin {plugin:?}: {reason}")]
    BadParams { plugin: String, reason: String },
    #[error("params are {bytes} bytes of JSON; at most {max} are accepted")]
    ParamsTooLarge { bytes: usize, max: usize },
    #[error("priority {0} is out of range: use a whole number from -1000 to 1000")]
    BadPriority(i32),
    #[error("{queued} tasks are already waiting to run (max_queued_tasks); try again once some have started")]
    QueueFull { queued: usize },
    #[error("{who:?} already has {active} tasks queued or running, the most a viewer may have (max_tasks_per_viewer); wait for some to end")]
    TooManyTasks { who: String, active: usize },
    #[error("task {0} not found")]
    TaskNotFound(TaskId),
    #[error("task {id} has already ended ({status})")]
    TaskEnded { id: TaskId, status: TaskStatus },
    /// A worker connection broke the protocol or asked for what it may not have.
    #[error("{0}")]
    Worker(String),
    #[error("the server is shutting down and accepts no new tasks")]
    ShuttingDown,
    #[error("a retry of the refused records is already running")]
    RetryRunning,
    #[error("the spool file {0}")]
    Spool(String),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error("engine actor unavailable: {0}")]
    Mailbox(#[from] actix::MailboxError),
}
