//! [`TaskManager`]: creates tasks, runs them (at most `max_concurrent_tasks` at once,
//! the rest wait in a FIFO queue), cancels them and shuts them all down.
//!
//! State: the plugin registry, the running tasks' actors, the queue. Messages:
//! [`StartTask`], [`RequestCancel`] and [`Shutdown`] from the gateway; [`TaskFinished`]
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
use crate::events::{LogsPersisted, LogsRejected};
use crate::logger::{now_micros, Outlet, TaskLogger};
use crate::plugin::{AnyPlugin, CancelToken, LogSettingsChanged, PluginRegistry};
use crate::remote::book::Workers;
use crate::settings::{LiveSettings, SettingsPublished};
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
pub struct RequestCancel {
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

/// A task whose actor runs.
pub(crate) struct Running {
    pub actor: Addr<TaskActor>,
    /// Runs on a worker (does not take one of `max_concurrent` places).
    pub remote: bool,
}

/// The largest params accepted, as serialised JSON: they are stored, listed and sent
/// to every watcher, so a task's description stays small; bulk input belongs in a
/// file or service the plugin reads.
pub const MAX_PARAMS_BYTES: usize = 64 * 1024;

pub struct TaskManager {
    pub(crate) db: Db,
    pub(crate) node: Arc<str>,
    pub(crate) registry: Arc<PluginRegistry>,
    pub(crate) live: LiveSettings,
    sink: Addr<LogSink>,
    gate: Arc<BufferGate>,
    pub(crate) events: EngineEvents,
    pub(crate) running: HashMap<TaskId, Running>,
    /// Running tasks of built-in plugins.
    local_running: usize,
    queue: VecDeque<Queued>,
    pub(crate) workers: Workers,
    pub(crate) worker_grace: Duration,
    /// Tasks accepted and being stored, not yet in `queue`.
    admitting: usize,
    /// Queued or running (or being stored) tasks per creator.
    pub(crate) active_by_creator: HashMap<String, usize>,
    max_concurrent: usize,
    max_queued: usize,
    max_per_viewer: usize,
    handover_interval: Duration,
    pub(crate) shutting_down: bool,
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
    /// How long a disconnected worker's tasks wait for it.
    pub worker_grace: Duration,
    /// This node's id, recorded on every task it takes.
    pub node: Arc<str>,
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
            local_running: 0,
            queue: VecDeque::new(),
            workers: Workers::default(),
            worker_grace: parts.worker_grace,
            node: parts.node,
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
    pub(crate) fn release(&mut self, creator: Option<&String>) {
        if let Some(who) = creator {
            if let Some(n) = self.active_by_creator.get_mut(who) {
                *n -= 1;
                if *n == 0 {
                    self.active_by_creator.remove(who);
                }
            }
        }
    }

    /// Starts what may start: tasks of built-in plugins while fewer than
    /// `max_concurrent` run, tasks of remote plugins while a worker offering them has
    /// a free place; each kind in queue order.
    pub(crate) fn start_queued(&mut self, ctx: &mut Context<Self>) {
        let mut i = 0;
        while i < self.queue.len() && !self.shutting_down {
            let name = &self.queue[i].info.plugin;
            if let Some(plugin) = self.registry.get(name) {
                if self.local_running < self.max_concurrent {
                    let Queued { info } = self.queue.remove(i).expect("index is valid");
                    let cancel = CancelToken::new();
                    let logger = self.new_logger(info.id, &cancel);
                    self.launch(info, plugin, logger, cancel, ctx);
                    continue;
                }
            } else if let Some(worker) = self.workers.pick(name) {
                let Queued { info } = self.queue.remove(i).expect("index is valid");
                self.launch_remote(info, worker, false, ctx);
                continue;
            }
            i += 1;
        }
    }

    /// Takes the queued tasks whose plugin is neither built in nor offered by any
    /// worker.
    pub(crate) fn take_orphaned(&mut self) -> Vec<TaskInfo> {
        let (registry, workers) = (&self.registry, &self.workers);
        let mut taken = Vec::new();
        self.queue.retain(|q| {
            let keep = registry.contains(&q.info.plugin) || workers.offered(&q.info.plugin);
            if !keep {
                taken.push(q.info.clone());
            }
            keep
        });
        taken
    }

    /// Ends a task that never ran (no longer queued): stores its final status and
    /// tells watchers.
    pub(crate) fn end_queued(&mut self, mut info: TaskInfo, status: TaskStatus, reason: String) {
        self.release(info.created_by.as_ref());
        let outcome = TaskOutcome {
            status,
            finished_at: Timestamp(now_micros()),
            result: None,
            error: Some(reason),
        };
        info.status = outcome.status;
        info.finished_at = Some(outcome.finished_at);
        info.error = outcome.error.clone();
        let (db, events, id) = (self.db.clone(), self.events.clone(), info.id);
        actix::spawn(async move {
            let written = crate::task::retry_forever("end a queued task", || {
                let outcome = outcome.clone();
                db.run(move |c| tasks::finish_task(c, id, &outcome))
            })
            .await;
            if written {
                events.status_changed(&info);
            }
        });
    }

    pub(crate) fn new_logger(&self, id: TaskId, cancel: &CancelToken) -> TaskLogger {
        TaskLogger::new(
            id,
            self.live.clone(),
            cancel.clone(),
            Outlet {
                sink: self.sink.clone().recipient(),
                events: self.events.clone(),
                gate: self.gate.clone(),
            },
        )
    }

    /// Starts the task's actor with `plugin`.
    pub(crate) fn launch(
        &mut self,
        info: TaskInfo,
        plugin: Arc<dyn AnyPlugin>,
        logger: TaskLogger,
        cancel: CancelToken,
        ctx: &mut Context<Self>,
    ) {
        let id = info.id;
        let remote = self.workers.runs.contains_key(&id);
        let actor = TaskActor::new(TaskParts {
            info,
            plugin,
            logger,
            cancel,
            db: self.db.clone(),
            sink: self.sink.clone(),
            events: self.events.clone(),
            finished: ctx.address().recipient(),
            handover_interval: self.handover_interval,
        })
        .start();
        actor.do_send(Execute);
        if !remote {
            self.local_running += 1;
        }
        self.running.insert(id, Running { actor, remote });
    }

    fn resolve_shutdown_if_idle(&mut self) {
        if self.shutting_down && self.running.is_empty() {
            for tx in self.shutdown_waiters.drain(..) {
                let _ = tx.send(());
            }
        }
    }
}

/// A task as created, queued.
pub(crate) fn new_task(
    plugin: &str,
    params: serde_json::Value,
    created_by: Option<String>,
) -> TaskInfo {
    TaskInfo {
        id: TaskId(uuid::Uuid::now_v7()),
        plugin: plugin.to_owned(),
        params,
        status: TaskStatus::Queued,
        created_at: Timestamp(now_micros()),
        started_at: None,
        finished_at: None,
        result: None,
        error: None,
        created_by,
        params_omitted: false,
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
            let plugin = self.registry.get(&msg.plugin);
            let offer = self.workers.offer(&msg.plugin);
            if plugin.is_none() && offer.is_none() {
                return Err(EngineError::UnknownPlugin(msg.plugin.clone()));
            }
            if plugin.as_ref().is_some_and(|p| p.privileged()) && msg.role != Role::Admin {
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
            match (&plugin, offer) {
                (Some(plugin), _) => plugin.validate(&msg.params),
                (None, Some(offer)) => {
                    crate::remote::check_against_schema(&offer.params_schema, &msg.params)
                }
                (None, None) => Ok(()),
            }
            .map_err(|reason| EngineError::BadParams {
                plugin: msg.plugin.clone(),
                reason,
            })?;
            Ok(new_task(
                &msg.plugin,
                msg.params.clone(),
                msg.created_by.clone(),
            ))
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
        let node = self.node.clone();
        Box::pin(
            async move {
                db.run(move |c| tasks::insert_task(c, &stored, Some(&node)))
                    .await
            }
            .into_actor(self)
            .map(move |inserted, act, ctx| {
                act.admitting -= 1;
                if inserted.is_err() {
                    act.release(info.created_by.as_ref());
                }
                inserted?;
                if act.shutting_down {
                    // Shutdown began while the task was being stored.
                    act.end_queued(
                        info,
                        TaskStatus::Interrupted,
                        "the server shut down before the task started".into(),
                    );
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

impl Handler<RequestCancel> for TaskManager {
    type Result = ResponseActFuture<Self, Result<CancelOutcome, EngineError>>;

    fn handle(&mut self, msg: RequestCancel, _: &mut Context<Self>) -> Self::Result {
        if let Some(Running { actor, .. }) = self.running.get(&msg.id) {
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
        if let Some(running) = self.running.remove(&msg.task.id) {
            if !running.remote {
                debug_assert!(self.local_running > 0);
                self.local_running = self.local_running.saturating_sub(1);
            }
        }
        self.remote_finished(&msg.task);
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
            for running in act.running.values() {
                running.actor.do_send(ForceEnd);
            }
        });
        let queued: Vec<TaskInfo> = self.queue.drain(..).map(|q| q.info).collect();
        for running in self.running.values() {
            running.actor.do_send(Cancel {
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

impl Handler<SettingsPublished> for TaskManager {
    type Result = ();

    /// Passes new logging settings on to every running task's plugin.
    fn handle(&mut self, msg: SettingsPublished, _: &mut Context<Self>) {
        for (id, running) in &self.running {
            running.actor.do_send(LogSettingsChanged {
                task_id: *id,
                settings: msg.0,
            });
        }
    }
}

impl Handler<LogsPersisted> for TaskManager {
    type Result = ();

    /// Tells a remote task's worker what is durable, so it can drop it.
    fn handle(&mut self, msg: LogsPersisted, _: &mut Context<Self>) {
        self.remote_durable(msg.task_id, msg.up_to_seq);
    }
}

impl Handler<LogsRejected> for TaskManager {
    type Result = ();

    /// The database refuses a task's records: stop the task, which then ends failed.
    fn handle(&mut self, msg: LogsRejected, _: &mut Context<Self>) {
        if let Some(running) = self.running.get(&msg.task_id) {
            running.actor.do_send(Cancel {
                reason: CancelReason::LogsRejected { reason: msg.reason },
            });
        }
    }
}
