//! [`TaskManager`]: creates tasks, runs them (at most `max_concurrent_tasks` at once,
//! the rest wait in a FIFO queue), cancels them and shuts them all down.
//!
//! State: the plugin registry, the running tasks' actors, the queue. Messages:
//! [`StartTask`], [`CancelTask`] and [`Shutdown`] from the gateway; [`TaskFinished`]
//! from task actors. A task is stored as `queued` before `StartTask` replies, so its
//! id is valid for every other endpoint at once. Backpressure: the queue is where
//! tasks wait, at most `max_queued_tasks` of them, and a viewer may have at most
//! `max_tasks_per_viewer` queued or running; params are at most
//! [`MAX_PARAMS_BYTES`]. Records are bounded by the sink's gate, not here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use protocol::{Role, TaskId, TaskInfo, TaskStatus, Timestamp};
use storage::tasks::{self, TaskOutcome};
use storage::Db;
use tokio::sync::oneshot;

use crate::batch::BufferGate;
use crate::events::EngineEvents;
use crate::logger::{now_micros, Outlet, TaskLogger};
use crate::plugin::{CancelToken, PluginRegistry};
use crate::settings::LiveSettings;
use crate::sink::LogSink;
use crate::task::{Cancel, CancelReason, Execute, ForceEnd, TaskActor, TaskFinished, TaskParts};
use crate::EngineError;

/// Create a task and queue it.
#[derive(Debug, Message)]
#[rtype(result = "Result<TaskInfo, EngineError>")]
pub struct StartTask {
    pub plugin: String,
    pub params: serde_json::Value,
    /// Name of the token that asked.
    pub created_by: Option<String>,
    pub role: Role,
}

/// Cancel a queued or running task.
#[derive(Debug, Message)]
#[rtype(result = "Result<CancelOutcome, EngineError>")]
pub struct CancelTask {
    pub id: TaskId,
    pub by: Option<String>,
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The task was queued and is now cancelled.
    Cancelled(TaskInfo),
    /// The task is running; its plugin has been asked to stop and the task will end
    /// as `cancelled` once its logs are durable.
    Requested,
}

/// Stop accepting tasks, interrupt queued and running ones, and resolve once every
/// task actor has written its final status. Tasks whose plugins have not stopped
/// after `grace` are ended without them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub grace: Duration,
}

/// Ids of the tasks running now.
#[derive(Debug, Message)]
#[rtype(result = "Vec<TaskId>")]
pub struct ListRunning;

struct Queued {
    info: TaskInfo,
}

/// The largest params accepted, as serialised JSON: they are stored, listed and sent
/// to every watcher, so a task's description stays small; bulk input belongs in a
/// file or service the plugin reads.
pub const MAX_PARAMS_BYTES: usize = 64 * 1024;

pub struct TaskManager {
    db: Db,
    registry: Arc<PluginRegistry>,
    live: LiveSettings,
    sink: Addr<LogSink>,
    gate: Arc<BufferGate>,
    events: EngineEvents,
    running: HashMap<TaskId, (Addr<TaskActor>, CancelToken)>,
    queue: VecDeque<Queued>,
    /// Tasks accepted and being stored, not yet in `queue`.
    admitting: usize,
    /// Queued or running (or being stored) tasks per creator.
    active_by_creator: HashMap<String, usize>,
    max_concurrent: usize,
    max_queued: usize,
    max_per_viewer: usize,
    handover_interval: Duration,
    shutting_down: bool,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
}

/// What a [`TaskManager`] needs.
pub struct ManagerParts {
    pub db: Db,
    pub registry: Arc<PluginRegistry>,
    pub live: LiveSettings,
    pub sink: Addr<LogSink>,
    pub gate: Arc<BufferGate>,
    pub events: EngineEvents,
    pub max_concurrent: usize,
    pub max_queued: usize,
    pub max_per_viewer: usize,
    pub handover_interval: Duration,
}

impl TaskManager {
    pub fn new(parts: ManagerParts) -> Self {
        TaskManager {
            db: parts.db,
            registry: parts.registry,
            live: parts.live,
            sink: parts.sink,
            gate: parts.gate,
            events: parts.events,
            running: HashMap::new(),
            queue: VecDeque::new(),
            admitting: 0,
            active_by_creator: HashMap::new(),
            max_concurrent: parts.max_concurrent.max(1),
            max_queued: parts.max_queued.max(1),
            max_per_viewer: parts.max_per_viewer.max(1),
            handover_interval: parts.handover_interval,
            shutting_down: false,
            shutdown_waiters: Vec::new(),
        }
    }

    /// Checks the queue and the creator's share before a task is accepted.
    fn admit(&self, msg: &StartTask) -> Result<(), EngineError> {
        let waiting = self.queue.len() + self.admitting;
        if self.running.len() + waiting >= self.max_concurrent && waiting >= self.max_queued {
            return Err(EngineError::QueueFull { queued: waiting });
        }
        if msg.role != Role::Admin {
            let who = msg.created_by.clone().unwrap_or_default();
            let active = self.active_by_creator.get(&who).copied().unwrap_or(0);
            if active >= self.max_per_viewer {
                return Err(EngineError::TooManyTasks { who, active });
            }
        }
        Ok(())
    }

    /// A task of `creator` left the queue or ended.
    fn release(&mut self, creator: Option<&String>) {
        if let Some(who) = creator {
            if let Some(n) = self.active_by_creator.get_mut(who) {
                *n -= 1;
                if *n == 0 {
                    self.active_by_creator.remove(who);
                }
            }
        }
    }

    fn start_queued(&mut self, ctx: &mut Context<Self>) {
        while self.running.len() < self.max_concurrent && !self.shutting_down {
            let Some(Queued { info }) = self.queue.pop_front() else {
                break;
            };
            let Some(plugin) = self.registry.get(&info.plugin) else {
                continue; // registry is fixed at start; a queued task's plugin exists
            };
            let cancel = CancelToken::new();
            let logger = TaskLogger::new(
                info.id,
                self.live.clone(),
                cancel.clone(),
                Outlet {
                    sink: self.sink.clone().recipient(),
                    events: self.events.clone(),
                    gate: self.gate.clone(),
                },
            );
            let id = info.id;
            let actor = TaskActor::new(TaskParts {
                info,
                plugin,
                logger,
                cancel: cancel.clone(),
                db: self.db.clone(),
                sink: self.sink.clone(),
                events: self.events.clone(),
                finished: ctx.address().recipient(),
                handover_interval: self.handover_interval,
            })
            .start();
            actor.do_send(Execute);
            self.running.insert(id, (actor, cancel));
        }
    }

    fn resolve_shutdown_if_idle(&mut self) {
        if self.shutting_down && self.running.is_empty() {
            for tx in self.shutdown_waiters.drain(..) {
                let _ = tx.send(());
            }
        }
    }
}

impl Actor for TaskManager {
    type Context = Context<Self>;
}

impl Handler<StartTask> for TaskManager {
    type Result = ResponseActFuture<Self, Result<TaskInfo, EngineError>>;

    fn handle(&mut self, msg: StartTask, _: &mut Context<Self>) -> Self::Result {
        let checked = (|| {
            if self.shutting_down {
                return Err(EngineError::ShuttingDown);
            }
            let plugin = self
                .registry
                .get(&msg.plugin)
                .ok_or_else(|| EngineError::UnknownPlugin(msg.plugin.clone()))?;
            if plugin.privileged() && msg.role != Role::Admin {
                return Err(EngineError::PrivilegedPlugin(msg.plugin.clone()));
            }
            let bytes = serde_json::to_vec(&msg.params).map_or(usize::MAX, |v| v.len());
            if bytes > MAX_PARAMS_BYTES {
                return Err(EngineError::ParamsTooLarge {
                    bytes,
                    max: MAX_PARAMS_BYTES,
                });
            }
            self.admit(&msg)?;
            plugin
                .validate(&msg.params)
                .map_err(|reason| EngineError::BadParams {
                    plugin: msg.plugin.clone(),
                    reason,
                })?;
            Ok(TaskInfo {
                id: TaskId(uuid::Uuid::now_v7()),
                plugin: msg.plugin.clone(),
                params: msg.params.clone(),
                status: TaskStatus::Queued,
                created_at: Timestamp(now_micros()),
                started_at: None,
                finished_at: None,
                result: None,
                error: None,
                created_by: msg.created_by.clone(),
                params_omitted: false,
            })
        })();
        let info = match checked {
            Ok(info) => info,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        self.admitting += 1;
        if let Some(who) = &info.created_by {
            *self.active_by_creator.entry(who.clone()).or_default() += 1;
        }
        let db = self.db.clone();
        let stored = info.clone();
        Box::pin(
            async move { db.run(move |c| tasks::insert_task(c, &stored)).await }
                .into_actor(self)
                .map(move |inserted, act, ctx| {
                    act.admitting -= 1;
                    if inserted.is_err() || act.shutting_down {
                        act.release(info.created_by.as_ref());
                    }
                    inserted?;
                    if act.shutting_down {
                        // Shutdown began while the task was being stored.
                        let db = act.db.clone();
                        let id = info.id;
                        let outcome = TaskOutcome {
                            status: TaskStatus::Interrupted,
                            finished_at: Timestamp(now_micros()),
                            result: None,
                            error: Some("the server shut down before the task started".into()),
                        };
                        actix::spawn(async move {
                            let _ = db.run(move |c| tasks::finish_task(c, id, &outcome)).await;
                        });
                        return Err(EngineError::ShuttingDown);
                    }
                    act.events.status_changed(&info);
                    act.queue.push_back(Queued { info: info.clone() });
                    act.start_queued(ctx);
                    Ok(info)
                }),
        )
    }
}

impl Handler<CancelTask> for TaskManager {
    type Result = ResponseActFuture<Self, Result<CancelOutcome, EngineError>>;

    fn handle(&mut self, msg: CancelTask, _: &mut Context<Self>) -> Self::Result {
        if let Some((actor, _)) = self.running.get(&msg.id) {
            actor.do_send(Cancel {
                reason: CancelReason::Requested { by: msg.by },
            });
            return Box::pin(fut::ready(Ok(CancelOutcome::Requested)));
        }
        let db = self.db.clone();
        let id = msg.id;
        if let Some(pos) = self.queue.iter().position(|q| q.info.id == id) {
            let Queued { mut info } = self.queue.remove(pos).expect("position is valid");
            self.release(info.created_by.as_ref());
            let outcome = TaskOutcome {
                status: TaskStatus::Cancelled,
                finished_at: Timestamp(now_micros()),
                result: None,
                error: Some(match &msg.by {
                    Some(who) => format!("cancelled by {who} before it started"),
                    None => "cancelled before it started".into(),
                }),
            };
            let written = outcome.clone();
            return Box::pin(
                async move { db.run(move |c| tasks::finish_task(c, id, &written)).await }
                    .into_actor(self)
                    .map(move |res, act, _| {
                        res?;
                        info.status = outcome.status;
                        info.finished_at = Some(outcome.finished_at);
                        info.error = outcome.error;
                        act.events.status_changed(&info);
                        Ok(CancelOutcome::Cancelled(info))
                    }),
            );
        }
        Box::pin(
            async move { db.run(move |c| tasks::get_task(c, id)).await }
                .into_actor(self)
                .map(move |found, _, _| match found? {
                    None => Err(EngineError::TaskNotFound(id)),
                    Some(task) => Err(EngineError::TaskEnded {
                        id,
                        status: task.status,
                    }),
                }),
        )
    }
}

impl Handler<TaskFinished> for TaskManager {
    type Result = ();

    fn handle(&mut self, msg: TaskFinished, ctx: &mut Context<Self>) {
        self.running.remove(&msg.task.id);
        self.release(msg.task.created_by.as_ref());
        self.start_queued(ctx);
        self.resolve_shutdown_if_idle();
    }
}

impl Handler<Shutdown> for TaskManager {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        self.shutting_down = true;
        ctx.run_later(msg.grace, |act, _| {
            for (actor, _) in act.running.values() {
                actor.do_send(ForceEnd);
            }
        });
        let queued: Vec<TaskInfo> = self.queue.drain(..).map(|q| q.info).collect();
        for (actor, _) in self.running.values() {
            actor.do_send(Cancel {
                reason: CancelReason::Shutdown,
            });
        }
        let (tx, rx) = oneshot::channel();
        self.shutdown_waiters.push(tx);
        self.resolve_shutdown_if_idle();
        let db = self.db.clone();
        let events = self.events.clone();
        Box::pin(async move {
            for mut info in queued {
                let outcome = TaskOutcome {
                    status: TaskStatus::Interrupted,
                    finished_at: Timestamp(now_micros()),
                    result: None,
                    error: Some("the server shut down before the task started".into()),
                };
                let written = outcome.clone();
                let id = info.id;
                if db
                    .run(move |c| tasks::finish_task(c, id, &written))
                    .await
                    .is_ok()
                {
                    info.status = outcome.status;
                    info.finished_at = Some(outcome.finished_at);
                    info.error = outcome.error;
                    events.status_changed(&info);
                }
            }
            let _ = rx.await;
        })
    }
}

impl Handler<ListRunning> for TaskManager {
    type Result = MessageResult<ListRunning>;

    fn handle(&mut self, _: ListRunning, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.running.keys().copied().collect())
    }
}
