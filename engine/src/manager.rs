//! [`TaskManager`]: creates tasks, runs them (at most `max_concurrent_tasks` at once,
//! the rest wait in the queue), cancels them and shuts them all down.
//!
//! State: the plugin registry, the running tasks' actors, the places held by claims
//! under way. Messages: [`StartTask`], [`RequestCancel`] and [`Shutdown`] from the
//! gateway; [`ClaimQueued`] and [`CancelRequested`] from other nodes; [`TaskFinished`]
//! from task actors. The queue is the database's (`storage::queue`), shared by every
//! node: a task is stored `queued` before `StartTask` replies, so its id is valid for
//! every other endpoint at once, and a node claims queued tasks whenever it has room
//! for their plugin (at a task's end, a worker's arrival, another node's notice and a
//! slow poll). Backpressure: at most `max_queued_tasks` tasks wait, and a viewer may
//! have at most `max_tasks_per_viewer` queued or running; params are at most
//! [`MAX_PARAMS_BYTES`]. Records are bounded by the sink's gate, not here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use protocol::{Role, TaskId, TaskInfo, TaskStatus, Timestamp};
use storage::queue::{self, Admission, Refusal, Whereabouts};
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
    /// Higher runs first among queued tasks (`protocol::PRIORITIES`).
    pub priority: i32,
}

/// [`StartTask`] for a remote plugin that no worker of this node offers but one of
/// another node's does (`params_schema` as that node published it): the task is
/// queued for that node to claim.
#[derive(Debug, Message)]
#[rtype(result = "Result<TaskInfo, EngineError>")]
pub struct StartOfferedElsewhere {
    pub start: StartTask,
    pub params_schema: serde_json::Value,
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
    Cancelled(Box<TaskInfo>),
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

/// Tasks wait in the queue (another node announced them): claim what there is room for.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ClaimQueued;

/// Another node was asked to cancel a task: cancel it if it runs here.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CancelRequested {
    pub task: TaskId,
    pub by: Option<String>,
}

/// How often the queue is looked at without a notice: a safety net for notices
/// missed while a node's listening connection was down.
const QUEUE_POLL: Duration = Duration::from_secs(2);

/// Room to claim queued tasks into: `limit` tasks of any of `plugins`, for the
/// built-in plugins (`remote: None`) or for workers offering the one `remote` plugin.
#[derive(Debug, Clone)]
struct Want {
    plugins: Vec<String>,
    limit: usize,
    remote: Option<String>,
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
    /// Claims under way, and the places they hold until their tasks start.
    claims: usize,
    reserved_local: usize,
    reserved_remote: HashMap<String, usize>,
    /// A claim was asked for while one was under way.
    claim_again: bool,
    /// Cancels of tasks that may be in a claim under way.
    cancel_on_claim: HashMap<TaskId, Option<String>>,
    /// Remote plugins offered at the last look (to notice one no longer offered).
    pub(crate) remote_plugins: HashSet<String>,
    /// Whether this node runs built-in plugins (a gateway does not).
    runs_builtin: bool,
    pub(crate) workers: Workers,
    pub(crate) worker_grace: Duration,
    pub(crate) node_timeout: Duration,
    max_concurrent: usize,
    max_queued: usize,
    max_per_viewer: usize,
    handover_interval: Duration,
    pub(crate) shutting_down: bool,
    /// A look for cancels asked through other nodes is under way.
    looking_for_cancels: bool,
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
    /// How long a silent node is still counted alive.
    pub node_timeout: Duration,
    /// Whether this node runs built-in plugins.
    pub runs_builtin: bool,
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
            claims: 0,
            reserved_local: 0,
            reserved_remote: HashMap::new(),
            claim_again: false,
            cancel_on_claim: HashMap::new(),
            remote_plugins: HashSet::new(),
            runs_builtin: parts.runs_builtin,
            workers: Workers::default(),
            worker_grace: parts.worker_grace,
            node_timeout: parts.node_timeout,
            looking_for_cancels: false,
            node: parts.node,
            max_concurrent: parts.max_concurrent.max(1),
            max_queued: parts.max_queued.max(1),
            max_per_viewer: parts.max_per_viewer.max(1),
            handover_interval: parts.handover_interval,
            shutting_down: false,
            shutdown_waiters: Vec::new(),
        }
    }

    /// What this node has room to claim now, less what claims under way hold.
    fn wants(&self) -> Vec<Want> {
        let mut wants = Vec::new();
        let free = self
            .max_concurrent
            .saturating_sub(self.local_running + self.reserved_local);
        if self.runs_builtin && free > 0 {
            wants.push(Want {
                plugins: self.registry.names(),
                limit: free,
                remote: None,
            });
        }
        for (plugin, free) in self.workers.free_by_plugin() {
            let free = free.saturating_sub(self.reserved_remote.get(&plugin).copied().unwrap_or(0));
            if free > 0 {
                wants.push(Want {
                    plugins: vec![plugin.clone()],
                    limit: free,
                    remote: Some(plugin),
                });
            }
        }
        wants
    }

    fn hold(&mut self, wants: &[Want]) {
        self.claims += 1;
        for want in wants {
            match &want.remote {
                None => self.reserved_local += want.limit,
                Some(plugin) => {
                    *self.reserved_remote.entry(plugin.clone()).or_default() += want.limit
                }
            }
        }
    }

    fn unhold(&mut self, wants: &[Want], ctx: &mut Context<Self>) {
        self.claims -= 1;
        for want in wants {
            match &want.remote {
                None => self.reserved_local -= want.limit,
                Some(plugin) => {
                    if let Some(n) = self.reserved_remote.get_mut(plugin) {
                        *n -= want.limit;
                        if *n == 0 {
                            self.reserved_remote.remove(plugin);
                        }
                    }
                }
            }
        }
        if self.claims == 0 {
            self.cancel_on_claim.clear();
            if std::mem::take(&mut self.claim_again) {
                self.claim_queued(ctx);
            }
        }
    }

    /// Claims queued tasks this node has room for and starts them; one claim at a
    /// time (one asked for meanwhile follows it).
    pub(crate) fn claim_queued(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        if self.claims > 0 {
            self.claim_again = true;
            return;
        }
        let wants = self.wants();
        if wants.is_empty() {
            return;
        }
        self.hold(&wants);
        let (db, node, asked) = (self.db.clone(), self.node.clone(), wants.clone());
        ctx.spawn(
            async move { db.run(move |c| Ok(claim_all(c, &node, &asked))).await }
                .into_actor(self)
                .map(move |claimed, act, ctx| {
                    match claimed {
                        Ok(claimed) => act.start_claimed(claimed, ctx),
                        Err(e) => log::warn!(
                            "error=\"{err}\" Could not claim queued tasks; trying again shortly.",
                            err = crate::sink::error_chain(&e)
                        ),
                    }
                    act.unhold(&wants, ctx);
                }),
        );
    }

    /// Starts tasks just claimed; those it cannot start now go back to the queue.
    fn start_claimed(&mut self, claimed: Vec<TaskInfo>, ctx: &mut Context<Self>) {
        let mut back = Vec::new();
        for info in claimed {
            if let Some(by) = self.cancel_on_claim.remove(&info.id) {
                self.end_queued(info, TaskStatus::Cancelled, cancelled_before_start(&by));
            } else if self.shutting_down {
                back.push(info.id);
            } else if let Some(plugin) = self.registry.get(&info.plugin) {
                let cancel = CancelToken::new();
                let logger = self.new_logger(info.id, &cancel);
                self.launch(info, plugin, logger, cancel, ctx);
            } else if let Some(worker) = self.workers.pick(&info.plugin) {
                self.launch_remote(info, worker, false, ctx);
            } else {
                back.push(info.id);
            }
        }
        if !back.is_empty() {
            let (db, node) = (self.db.clone(), self.node.clone());
            actix::spawn(async move {
                if let Err(e) = db.run(move |c| queue::release(c, &node, &back)).await {
                    log::warn!(
                        "error=\"{err}\" Could not put claimed tasks back in the queue; they go back when this node restarts or is declared dead.",
                        err = crate::sink::error_chain(&e),
                    );
                }
            });
        }
    }

    /// Cancels `id` if it runs here.
    fn cancel_running(&self, id: TaskId, by: &Option<String>) -> bool {
        let Some(Running { actor, .. }) = self.running.get(&id) else {
            return false;
        };
        actor.do_send(Cancel {
            reason: CancelReason::Requested { by: by.clone() },
        });
        true
    }

    /// Ends a task that never ran (no longer queued): stores its final status and
    /// tells watchers.
    pub(crate) fn end_queued(&mut self, mut info: TaskInfo, status: TaskStatus, reason: String) {
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

/// The error text of a task cancelled (by `by`) while it waited.
fn cancelled_before_start(by: &Option<String>) -> String {
    match by {
        Some(who) => format!("cancelled by {who} before it started"),
        None => "cancelled before it started".into(),
    }
}

/// Claims for `node` what `wants` has room for, each want in turn. A claim that
/// fails ends the round with what was claimed before it, which is this node's now
/// and must be started; the failure is logged, and the queue is looked at again
/// shortly.
fn claim_all(c: &mut storage::Conn, node: &str, wants: &[Want]) -> Vec<TaskInfo> {
    let mut claimed = Vec::new();
    for want in wants {
        match queue::claim(c, node, &want.plugins, want.limit) {
            Ok(tasks) => claimed.extend(tasks),
            Err(e) => {
                log::warn!(
                    "error=\"{err}\" Could not claim queued tasks; trying again shortly.",
                    err = crate::sink::error_chain(&e)
                );
                break;
            }
        }
    }
    claimed
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
        node: None,
        priority: 0,
    }
}

impl Actor for TaskManager {
    type Context = Context<Self>;

    /// Takes what waits (left by a previous run or by other nodes), then looks again
    /// now and then.
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.claim_queued(ctx);
        ctx.run_interval(QUEUE_POLL, |act, ctx| {
            act.claim_queued(ctx);
            act.look_for_cancels(ctx);
        });
    }
}

impl Handler<StartTask> for TaskManager {
    type Result = ResponseActFuture<Self, Result<TaskInfo, EngineError>>;

    fn handle(&mut self, msg: StartTask, _: &mut Context<Self>) -> Self::Result {
        self.admit(msg, None)
    }
}

impl Handler<StartOfferedElsewhere> for TaskManager {
    type Result = ResponseActFuture<Self, Result<TaskInfo, EngineError>>;

    fn handle(&mut self, msg: StartOfferedElsewhere, _: &mut Context<Self>) -> Self::Result {
        self.admit(msg.start, Some(&msg.params_schema))
    }
}

impl TaskManager {
    /// Checks a new task, stores it queued, and claims it at once when there is room.
    fn admit(
        &mut self,
        msg: StartTask,
        elsewhere: Option<&serde_json::Value>,
    ) -> ResponseActFuture<Self, Result<TaskInfo, EngineError>> {
        let checked = (|| {
            if self.shutting_down {
                return Err(EngineError::ShuttingDown);
            }
            let plugin = self.registry.get(&msg.plugin);
            let offer = self.workers.offer(&msg.plugin);
            if plugin.is_none() && offer.is_none() && elsewhere.is_none() {
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
            match (&plugin, offer) {
                (Some(plugin), _) => plugin.validate(&msg.params),
                (None, Some(offer)) => {
                    crate::remote::check_against_schema(&offer.params_schema, &msg.params)
                }
                (None, None) => elsewhere.map_or(Ok(()), |schema| {
                    crate::remote::check_against_schema(schema, &msg.params)
                }),
            }
            .map_err(|reason| EngineError::BadParams {
                plugin: msg.plugin.clone(),
                reason,
            })?;
            if !protocol::task::PRIORITIES.contains(&msg.priority) {
                return Err(EngineError::BadPriority(msg.priority));
            }
            let mut info = new_task(&msg.plugin, msg.params.clone(), msg.created_by.clone());
            info.priority = msg.priority;
            Ok(info)
        })();
        let info = match checked {
            Ok(info) => info,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let admission = Admission {
            max_waiting: self.max_queued,
            max_per_creator: (msg.role != Role::Admin).then_some(self.max_per_viewer),
        };
        // The new task is claimed in the same trip when there is room for it.
        let wants = if self.shutting_down {
            Vec::new()
        } else {
            self.wants()
        };
        self.hold(&wants);
        let (db, node, asked, stored) = (
            self.db.clone(),
            self.node.clone(),
            wants.clone(),
            info.clone(),
        );
        Box::pin(
            async move {
                db.run(move |c| match queue::enqueue(c, &stored, admission)? {
                    Err(refusal) => Ok(Err(refusal)),
                    Ok(()) => {
                        // The task is stored now: a claim that fails leaves it queued
                        // for a later one, and must not tell the caller it was not.
                        let claimed = claim_all(c, &node, &asked);
                        if !claimed.iter().any(|t| t.id == stored.id) {
                            queue::announce_waiting(c);
                        }
                        Ok(Ok(claimed))
                    }
                })
                .await
            }
            .into_actor(self)
            .map(move |queued, act, ctx| {
                let queued = queued.map_err(EngineError::from).and_then(|q| {
                    q.map_err(|refusal| match refusal {
                        Refusal::QueueFull { waiting } => {
                            EngineError::QueueFull { queued: waiting }
                        }
                        Refusal::TooManyTasks { active } => EngineError::TooManyTasks {
                            who: info.created_by.clone().unwrap_or_default(),
                            active,
                        },
                    })
                });
                let result = queued.map(|claimed| {
                    act.events.status_changed(&info);
                    let taken = claimed.iter().any(|t| t.id == info.id);
                    act.start_claimed(claimed, ctx);
                    (info, taken)
                });
                act.unhold(&wants, ctx);
                let (info, taken) = result?;
                if !taken {
                    // No room in this trip (or a claim under way held it): look again
                    // once there is.
                    act.claim_queued(ctx);
                }
                Ok(info)
            }),
        )
    }
}

impl TaskManager {
    /// Cancels the tasks running here that someone asked another node to cancel:
    /// the notice does that at once; this finds those whose notice was missed.
    fn look_for_cancels(&mut self, ctx: &mut Context<Self>) {
        if self.looking_for_cancels
            || self.running.is_empty()
            || self.db.backend() == storage::Backend::Sqlite
        {
            return;
        }
        self.looking_for_cancels = true;
        let (db, node) = (self.db.clone(), self.node.clone());
        ctx.spawn(
            async move { db.run(move |c| queue::cancels_asked_of(c, &node)).await }
                .into_actor(self)
                .map(|asked, act, _| {
                    act.looking_for_cancels = false;
                    match asked {
                        Ok(asked) => {
                            for (task, by) in asked {
                                act.cancel_running(task, &by);
                            }
                        }
                        Err(e) => log::warn!(
                            "error=\"{err}\" Could not look for cancels asked through other nodes; looking again soon.",
                            err = crate::sink::error_chain(&e)
                        ),
                    }
                }),
        );
    }
}

/// Where a cancel found its task.
enum Found {
    /// Queued, unclaimed, and now cancelled.
    Cancelled(Option<Box<TaskInfo>>),
    /// Claimed by this node.
    Here,
    /// Claimed by another node, which has been asked to cancel it.
    Elsewhere,
    Gone(Option<TaskStatus>),
}

impl Handler<RequestCancel> for TaskManager {
    type Result = ResponseActFuture<Self, Result<CancelOutcome, EngineError>>;

    fn handle(&mut self, msg: RequestCancel, _: &mut Context<Self>) -> Self::Result {
        let Some(Running { actor, .. }) = self.running.get(&msg.id) else {
            return self.cancel_stored(msg.id, msg.by);
        };
        // The actor knows whether its outcome is already decided: then the task has
        // ended (or is writing that it has), and the cancel is refused as for any ended
        // task, even before this manager hears of the end.
        let sent = actor.send(Cancel {
            reason: CancelReason::Requested { by: msg.by.clone() },
        });
        let (id, by) = (msg.id, msg.by);
        Box::pin(
            sent.into_actor(self)
                .then(move |answer, act, _| -> Self::Result {
                    match answer {
                        Ok(None) => Box::pin(fut::ready(Ok(CancelOutcome::Requested))),
                        Ok(Some(status)) => {
                            Box::pin(fut::ready(Err(EngineError::TaskEnded { id, status })))
                        }
                        // Stopped in between: it has ended, and written how.
                        Err(_) => act.cancel_stored(id, by),
                    }
                }),
        )
    }
}

impl TaskManager {
    /// A cancel of a task this node does not run: ends it if still queued, asks the
    /// node that claimed it, or says how it ended.
    fn cancel_stored(
        &mut self,
        id: TaskId,
        by: Option<String>,
    ) -> ResponseActFuture<Self, Result<CancelOutcome, EngineError>> {
        let (db, me, asked_by) = (self.db.clone(), self.node.clone(), by.clone());
        let outcome = TaskOutcome {
            status: TaskStatus::Cancelled,
            finished_at: Timestamp(now_micros()),
            result: None,
            error: Some(cancelled_before_start(&by)),
        };
        let found = move |c: &mut storage::Conn| -> storage::Result<Found> {
            // A claim may take it between the two looks; then the second finds its node.
            for _ in 0..3 {
                if queue::end_unclaimed(c, id, &outcome)? {
                    return Ok(Found::Cancelled(tasks::get_task(c, id)?.map(Box::new)));
                }
                match queue::whereabouts(c, id)? {
                    Whereabouts::Unclaimed => continue,
                    Whereabouts::ClaimedBy(node) if *node == *me => return Ok(Found::Here),
                    Whereabouts::ClaimedBy(_) => {
                        queue::ask_owner_to_cancel(c, id, asked_by, outcome.finished_at)?;
                        return Ok(Found::Elsewhere);
                    }
                    Whereabouts::Ended(status) => return Ok(Found::Gone(Some(status))),
                    Whereabouts::Missing => return Ok(Found::Gone(None)),
                }
            }
            Ok(Found::Elsewhere)
        };
        Box::pin(
            async move { db.run(found).await }
                .into_actor(self)
                .map(move |found, act, _| match found? {
                    Found::Cancelled(Some(info)) => {
                        act.events.status_changed(&info);
                        Ok(CancelOutcome::Cancelled(info))
                    }
                    Found::Cancelled(None) | Found::Gone(None) => {
                        Err(EngineError::TaskNotFound(id))
                    }
                    Found::Here => {
                        if !act.cancel_running(id, &by) {
                            act.cancel_on_claim.insert(id, by);
                        }
                        Ok(CancelOutcome::Requested)
                    }
                    Found::Elsewhere => Ok(CancelOutcome::Requested),
                    Found::Gone(Some(status)) => Err(EngineError::TaskEnded { id, status }),
                }),
        )
    }
}

impl Handler<CancelRequested> for TaskManager {
    type Result = ();

    fn handle(&mut self, msg: CancelRequested, _: &mut Context<Self>) {
        if !self.cancel_running(msg.task, &msg.by) && self.claims > 0 {
            self.cancel_on_claim.insert(msg.task, msg.by);
        }
    }
}

impl Handler<ClaimQueued> for TaskManager {
    type Result = ();

    fn handle(&mut self, _: ClaimQueued, ctx: &mut Context<Self>) {
        self.claim_queued(ctx);
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
        self.claim_queued(ctx);
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
        // Tasks still queued stay in the queue, for another node or the next start.
        for running in self.running.values() {
            running.actor.do_send(Cancel {
                reason: CancelReason::Shutdown,
            });
        }
        let (tx, rx) = oneshot::channel();
        self.shutdown_waiters.push(tx);
        self.resolve_shutdown_if_idle();
        Box::pin(async move {
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
