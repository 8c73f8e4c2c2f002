//! [`TaskActor`]: one per running task.
//!
//! State: the task's row as last written, its plugin, its root logger and cancel
//! token. Messages: [`Execute`] (from `TaskManager`, once), [`Cancel`] and
//! [`LogSettingsChanged`] (from `TaskManager`). Lifecycle: on `Execute` it marks the
//! task running, starts the plugin's run ([`AnyPlugin::start`]: the plugin's actor
//! gets `RunTask`) and, on a short timer, hands the logger's buffered records over so
//! that followers see them within milliseconds. `Cancel` sets the cancel token and
//! sends the run `CancelTask`; settings changes are passed on to the run. When the
//! run answers it closes the logger, waits for the sink to make every record durable,
//! and only then writes the final status; then it tells the manager
//! ([`TaskFinished`]) and stops. Backpressure: none of its own; emitters are what the
//! buffer gate slows down.

use std::time::Duration;

use actix::prelude::*;
use protocol::{LogLevel, TaskInfo, TaskStatus, Timestamp};
use storage::tasks::{self, TaskOutcome};
use storage::Db;

use crate::events::EngineEvents;
use crate::logger::{now_micros, TaskLogger};
use crate::plugin::{
    AnyPlugin, CancelTask, CancelToken, LogSettingsChanged, PluginError, TaskContext,
};
use crate::sink::{error_chain, Flush, LogSink, OutcomePending};
use std::sync::Arc;

/// Source of the records the engine itself writes into a task's log.
pub const SYSTEM_SOURCE: &str = "system";

/// The largest task result stored, as JSON text: a result is one column of one row,
/// read with every task listing.
pub const MAX_RESULT_BYTES: usize = 1 << 20;

/// A result as it can be stored: one larger than [`MAX_RESULT_BYTES`] is replaced
/// by a note of its size (NULs and invalid UTF-8 cannot occur: it is JSON text,
/// where a NUL is written `\u0000`).
pub fn storable_result(value: serde_json::Value) -> serde_json::Value {
    let bytes = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
    if bytes <= MAX_RESULT_BYTES {
        return value;
    }
    serde_json::json!({
        "truncated": true,
        "bytes": bytes,
        "note": format!("the result was {bytes} bytes of JSON; at most {MAX_RESULT_BYTES} are stored"),
    })
}

/// Why a task is being cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReason {
    /// Someone asked (the name of their token, if known).
    Requested { by: Option<String> },
    /// The server is shutting down; the task ends as `interrupted`.
    Shutdown,
    /// The database refuses the task's records for good; the task ends `failed`.
    LogsRejected { reason: String },
}

/// Start the plugin.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Execute;

/// Ask the plugin to stop. Replies `None` when the cancel takes effect, or the
/// status the task is already ending with (its outcome is decided: a cancel now would
/// change nothing, though the status may not be written yet).
#[derive(Debug, Message)]
#[rtype(result = "Option<TaskStatus>")]
pub struct Cancel {
    pub reason: CancelReason,
}

/// End the task now, without waiting for its plugin (which is left to run out on its
/// thread; what it logs from then on is not kept). Sent at shutdown to tasks whose
/// plugins ignored cancellation for the grace period.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForceEnd;

/// A task has reached its final state (sent to the manager).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TaskFinished {
    pub task: TaskInfo,
}

pub struct TaskActor {
    info: TaskInfo,
    plugin: Arc<dyn AnyPlugin>,
    /// Where the run under way takes `CancelTask` and `LogSettingsChanged`.
    run_cancel: Option<Recipient<CancelTask>>,
    run_settings: Option<Recipient<LogSettingsChanged>>,
    logger: TaskLogger,
    cancel: CancelToken,
    cancel_reason: Option<CancelReason>,
    db: Db,
    sink: Addr<LogSink>,
    events: EngineEvents,
    finished: Recipient<TaskFinished>,
    handover_interval: Duration,
    /// Set once `finish` has begun, so a late plugin result or a second request to end
    /// cannot finish the task twice.
    finishing: bool,
    /// The status `finish` decided on.
    decided: Option<TaskStatus>,
}

/// What a [`TaskActor`] needs; grouped so the constructor stays readable.
pub struct TaskParts {
    pub info: TaskInfo,
    pub plugin: Arc<dyn AnyPlugin>,
    pub logger: TaskLogger,
    pub cancel: CancelToken,
    pub db: Db,
    pub sink: Addr<LogSink>,
    pub events: EngineEvents,
    pub finished: Recipient<TaskFinished>,
    pub handover_interval: Duration,
}

type PluginOutcome = Result<serde_json::Value, PluginError>;

impl TaskActor {
    pub fn new(parts: TaskParts) -> Self {
        TaskActor {
            info: parts.info,
            plugin: parts.plugin,
            run_cancel: None,
            run_settings: None,
            logger: parts.logger,
            cancel: parts.cancel,
            cancel_reason: None,
            db: parts.db,
            sink: parts.sink,
            events: parts.events,
            finished: parts.finished,
            handover_interval: parts.handover_interval,
            finishing: false,
            decided: None,
        }
    }

    fn start_plugin(&mut self, ctx: &mut Context<Self>) {
        let run_ctx = TaskContext {
            task_id: self.info.id,
            logger: self.logger.clone(),
            cancel: self.cancel.clone(),
        };
        match self.plugin.start(run_ctx, &self.info.params) {
            Err(reason) => self.finish(Err(PluginError::Failed(reason)), ctx),
            Ok(run) => {
                self.run_cancel = Some(run.cancel);
                self.run_settings = Some(run.settings);
                ctx.spawn(
                    run.outcome
                        .into_actor(self)
                        .map(|outcome, act, ctx| act.finish(outcome, ctx)),
                );
            }
        }
    }

    fn finish(&mut self, outcome: PluginOutcome, ctx: &mut Context<Self>) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        self.run_cancel = None;
        self.run_settings = None;
        let (status, result, error) = match outcome {
            Ok(value) => (TaskStatus::Success, Some(value), None),
            Err(PluginError::Cancelled) => self.cancelled_outcome(),
            Err(_) if self.cancel_reason.is_some() => self.cancelled_outcome(),
            Err(PluginError::Failed(message)) => (TaskStatus::Failed, None, Some(message)),
            Err(PluginError::Interrupted(message)) => {
                (TaskStatus::Interrupted, None, Some(message))
            }
        };
        self.decided = Some(status);
        // A plugin's (or a worker's) error text is stored as it is: a NUL, which
        // PostgreSQL refuses, would keep the final status from ever being written.
        let error = error.map(protocol::entry::cap_message);
        let result = result.map(storable_result);
        self.logger.close_groups();
        let system = self.logger.with_source(SYSTEM_SOURCE);
        match status {
            TaskStatus::Failed => system.log_nonblocking(
                LogLevel::Error,
                format!("Task failed: {}", error.as_deref().unwrap_or("")),
                serde_json::Value::Null,
            ),
            TaskStatus::Cancelled | TaskStatus::Interrupted => system.log_nonblocking(
                LogLevel::Warning,
                error.clone().unwrap_or_default(),
                serde_json::Value::Null,
            ),
            _ => {}
        }
        self.logger.close();
        let sink = self.sink.clone();
        let db = self.db.clone();
        let id = self.info.id;
        ctx.spawn(
            async move {
                // The status may only change once every record is durable, and the
                // task finishes then, not when its plugin returned.
                let mut outcome = TaskOutcome {
                    status,
                    finished_at: Timestamp(now_micros()),
                    result,
                    error,
                };
                // Held by the sink until written: spooled with the records if the
                // process must stop before the database takes them.
                sink.do_send(OutcomePending {
                    task_id: id,
                    outcome: Some(outcome.clone()),
                });
                let _ = sink.send(Flush { task: Some(id) }).await;
                outcome.finished_at = Timestamp(now_micros());
                let changed = retry_forever("finish task", || {
                    let outcome = outcome.clone();
                    db.run(move |c| tasks::finish_task(c, id, &outcome))
                })
                .await;
                sink.do_send(OutcomePending {
                    task_id: id,
                    outcome: None,
                });
                (changed, outcome)
            }
            .into_actor(self)
            .map(move |(changed, written), act, ctx| {
                if changed {
                    act.info.status = written.status;
                    act.info.finished_at = Some(written.finished_at);
                    act.info.result = written.result;
                    act.info.error = written.error;
                } else {
                    log::warn!(
                        "task_id={} The task had already been ended elsewhere.",
                        act.info.id
                    );
                }
                log::info!(
                    "task_id={} plugin={} status={} records={} Task finished.",
                    act.info.id,
                    act.info.plugin,
                    act.info.status,
                    act.logger.last_seq()
                );
                act.events.status_changed(&act.info);
                act.finished.do_send(TaskFinished {
                    task: act.info.clone(),
                });
                ctx.stop();
            }),
        );
    }

    fn cancelled_outcome(&self) -> (TaskStatus, Option<serde_json::Value>, Option<String>) {
        match &self.cancel_reason {
            Some(CancelReason::Shutdown) => (
                TaskStatus::Interrupted,
                None,
                Some("the server shut down before the task finished".into()),
            ),
            Some(CancelReason::LogsRejected { reason }) => (
                TaskStatus::Failed,
                None,
                Some(format!(
                    "the database refuses this task's log records ({reason}); the task was stopped"
                )),
            ),
            Some(CancelReason::Requested { by: Some(who) }) => (
                TaskStatus::Cancelled,
                None,
                Some(format!("cancelled by {who}")),
            ),
            _ => (TaskStatus::Cancelled, None, Some("cancelled".into())),
        }
    }
}

/// Retries a database operation until it succeeds, with backoff. For writes that must
/// happen (a task's final status) whatever the database's state.
pub(crate) async fn retry_forever<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = storage::Result<T>>,
{
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        match op().await {
            Ok(value) => return value,
            Err(e) => {
                attempts += 1;
                if attempts == 1 || attempts.is_multiple_of(10) {
                    log::warn!("attempts={attempts} error=\"{}\" Database write \"{what}\" failed; retrying.", error_chain(&e));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl Actor for TaskActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.handover_interval, |act, _| act.logger.flush());
    }
}

impl Handler<Execute> for TaskActor {
    type Result = ();

    fn handle(&mut self, _: Execute, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let id = self.info.id;
        let started = Timestamp(now_micros());
        ctx.spawn(
            async move {
                retry_forever("mark task running", || {
                    db.run(move |c| tasks::mark_running(c, id, started))
                })
                .await
            }
            .into_actor(self)
            .map(move |marked, act, ctx| {
                if !marked {
                    // Cancelled while queued: the manager has already ended it.
                    act.logger.close();
                    act.finished.do_send(TaskFinished {
                        task: act.info.clone(),
                    });
                    ctx.stop();
                    return;
                }
                act.info.status = TaskStatus::Running;
                act.info.started_at = Some(started);
                act.events.status_changed(&act.info);
                log::info!(
                    "task_id={} plugin={} Task started.",
                    act.info.id,
                    act.info.plugin
                );
                if act.cancel_reason.is_some() {
                    act.finish(Err(PluginError::Cancelled), ctx);
                } else {
                    act.start_plugin(ctx);
                }
            }),
        );
    }
}

impl Handler<ForceEnd> for TaskActor {
    type Result = ();

    fn handle(&mut self, _: ForceEnd, ctx: &mut Context<Self>) {
        if self.finishing {
            return;
        }
        log::warn!(
            "task_id={} plugin={} The plugin did not stop when asked; the task is ended without it.",
            self.info.id,
            self.info.plugin
        );
        if self.cancel_reason.is_none() {
            self.cancel_reason = Some(CancelReason::Shutdown);
        }
        self.finish(
            Err(PluginError::Failed(
                "the plugin did not stop when asked".into(),
            )),
            ctx,
        );
    }
}

impl Handler<Cancel> for TaskActor {
    type Result = Option<TaskStatus>;

    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) -> Option<TaskStatus> {
        if self.decided.is_some() {
            return self.decided;
        }
        if self.cancel_reason.is_none() {
            self.cancel_reason = Some(msg.reason);
            self.cancel.cancel();
            if let Some(run) = &self.run_cancel {
                run.do_send(CancelTask {
                    task_id: self.info.id,
                });
            }
        }
        None
    }
}

impl Handler<LogSettingsChanged> for TaskActor {
    type Result = ();

    fn handle(&mut self, msg: LogSettingsChanged, _: &mut Context<Self>) {
        if let Some(run) = &self.run_settings {
            run.do_send(LogSettingsChanged {
                task_id: self.info.id,
                settings: msg.settings,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_too_large_to_store_is_replaced_by_its_size() {
        let small = serde_json::json!({"rows": 3, "text": "a\u{0}b"});
        assert_eq!(storable_result(small.clone()), small);
        let large = serde_json::json!({"blob": "x".repeat(MAX_RESULT_BYTES)});
        let stored = storable_result(large);
        assert_eq!(stored["truncated"], true);
        assert_eq!(stored["bytes"], MAX_RESULT_BYTES + 11);
        assert!(serde_json::to_vec(&stored).unwrap().len() < 200);
    }
}
