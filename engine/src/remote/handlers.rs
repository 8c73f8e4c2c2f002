//! The task manager's side of remote workers: hello, disconnects and grace, answers,
//! submitted tasks, acknowledgements, and the lists the API shows.

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use protocol::{PluginInfo, TaskId, TaskInfo, TaskStatus, Timestamp};
use storage::tasks::{self, TaskOutcome};

use super::book::{RemoteRun, Worker};
use super::proxy::{GiveUp, Relink, RemoteOutcome, RemoteTask};
use super::{
    ConnId, ListRemotePlugins, ListWorkers, Resumed, ToWorker, Welcome, WorkerFinished, WorkerGone,
    WorkerHello, WorkerSubmit,
};
use crate::logger::now_micros;
use crate::manager::{new_task, TaskManager};
use crate::plugin::erased::PluginRun;
use crate::plugin::{AnyPlugin, CancelToken, RunTask, TaskContext};
use crate::EngineError;

/// Tasks one worker may have submitted and not yet finished.
pub const MAX_SUBMITTED_PER_WORKER: usize = 16;

impl TaskManager {
    /// Starts `info` on `worker`.
    pub(crate) fn launch_remote(
        &mut self,
        info: TaskInfo,
        worker: String,
        submitted: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(link) = self.workers.link_of(&worker).cloned() else {
            return;
        };
        let cancel = CancelToken::new();
        let logger = self.new_logger(info.id, &cancel);
        let proxy = RemoteTask::new(
            info.id,
            info.plugin.clone(),
            link,
            self.live.clone(),
            self.worker_grace,
        )
        .start();
        self.workers.assign(
            info.id,
            RemoteRun {
                worker,
                proxy: proxy.clone(),
                ctx: TaskContext {
                    task_id: info.id,
                    logger: logger.clone(),
                    cancel: cancel.clone(),
                },
                acked: 0,
                submitted,
            },
        );
        let plugin = Arc::new(OnWorker {
            name: info.plugin.clone(),
            proxy,
        });
        self.launch(info, plugin, logger, cancel, ctx);
    }

    /// A task ended: if it ran on a worker, free its place and tell the worker.
    pub(crate) fn remote_finished(&mut self, task: &TaskInfo) {
        if let Some(run) = self.workers.release(task.id) {
            if let Some(link) = self.workers.link_of(&run.worker) {
                link.to.do_send(ToWorker::Done {
                    task_id: task.id,
                    status: task.status,
                });
            }
            self.drop_orphaned_queued();
        }
    }

    /// Ends queued tasks of remote plugins that no worker offers any more: they
    /// would otherwise hold their places in the queue for ever.
    fn drop_orphaned_queued(&mut self) {
        let offered = self.workers.offered_names();
        let gone: Vec<String> = self.remote_plugins.difference(&offered).cloned().collect();
        self.remote_plugins = offered;
        if gone.is_empty() {
            return;
        }
        let (db, events) = (self.db.clone(), self.events.clone());
        let (node, timeout) = (self.node.clone(), self.node_timeout);
        actix::spawn(async move {
            // A worker of another node offering it still takes them.
            let elsewhere = match super::offered_elsewhere(&db, &node, timeout).await {
                Ok(offers) => offers,
                Err(e) => {
                    log::warn!(
                        "error=\"{err}\" Could not ask which plugins other nodes offer; queued tasks left queued.",
                        err = crate::sink::error_chain(&e)
                    );
                    return;
                }
            };
            for plugin in gone {
                if elsewhere.iter().any(|p| p.name == plugin) {
                    continue;
                }
                let outcome = TaskOutcome {
                    status: TaskStatus::Interrupted,
                    finished_at: Timestamp(now_micros()),
                    result: None,
                    error: Some(format!(
                        "no worker offers plugin {plugin:?} any more; start one and run the task again"
                    )),
                };
                match db
                    .run(move |c| storage::queue::end_unclaimed_of(c, &plugin, &outcome))
                    .await
                {
                    Ok(ended) => ended.iter().for_each(|info| events.status_changed(info)),
                    Err(e) => log::warn!(
                        "error=\"{err}\" Could not end the queued tasks of a plugin no worker offers.",
                        err = crate::sink::error_chain(&e)
                    ),
                }
            }
        });
    }

    pub(crate) fn remote_durable(&mut self, task_id: TaskId, seq: u64) {
        let Some(run) = self.workers.runs.get_mut(&task_id) else {
            return;
        };
        run.acked = run.acked.max(seq);
        let worker = run.worker.clone();
        if let Some(link) = self.workers.link_of(&worker) {
            link.to.do_send(ToWorker::Durable { task_id, seq });
        }
    }

    fn hello(&mut self, msg: WorkerHello, ctx: &mut Context<Self>) -> Result<Welcome, EngineError> {
        if self.shutting_down {
            return Err(EngineError::ShuttingDown);
        }
        if let Some(taken) = msg.plugins.iter().find(|p| self.registry.contains(&p.name)) {
            return Err(EngineError::Worker(format!(
                "plugin {:?} is built into the server; offer it under another name",
                taken.name
            )));
        }
        if let Some(taken) = msg.plugins.iter().find(|p| {
            self.workers
                .owner_of(&p.name)
                .is_some_and(|owner| owner != msg.token)
        }) {
            return Err(EngineError::Worker(format!(
                "plugin {:?} is offered by workers of another token",
                taken.name
            )));
        }
        let epoch = self.workers.next_epoch();
        if let Some(existing) = self.workers.workers.get_mut(&msg.worker_id) {
            if existing.token != msg.token {
                return Err(EngineError::Worker(format!(
                    "worker_id {:?} belongs to a worker of another token",
                    msg.worker_id
                )));
            }
            if let Some(old) = existing.link.take() {
                old.to.do_send(ToWorker::Replaced);
            }
            existing.away_epoch = epoch;
        }
        let worker = self
            .workers
            .workers
            .entry(msg.worker_id.clone())
            .or_insert_with(|| Worker {
                id: msg.worker_id.clone(),
                name: String::new(),
                token: msg.token.clone(),
                capacity: 0,
                plugins: Vec::new(),
                link: None,
                connected_at: Timestamp(now_micros()),
                tasks: HashSet::new(),
                submitted: 0,
                submitting: 0,
                away_epoch: epoch,
            });
        worker.name = msg.name;
        worker.capacity = msg.capacity;
        worker.plugins = msg.plugins;
        worker.link = Some(msg.link.clone());
        worker.connected_at = Timestamp(now_micros());
        let held: Vec<TaskId> = worker.tasks.iter().copied().collect();
        let wanted: HashSet<TaskId> = msg.resume.iter().copied().collect();
        let mut resumed = Vec::new();
        for task in held {
            let Some(run) = self.workers.runs.get(&task) else {
                continue;
            };
            if wanted.contains(&task) {
                run.proxy.do_send(Relink(Some(msg.link.clone())));
                resumed.push(Resumed {
                    ctx: run.ctx.clone(),
                    acked_seq: run.acked,
                });
            } else {
                run.proxy.do_send(GiveUp {
                    reason: "the worker reconnected without this task".into(),
                });
            }
        }
        let gone = msg
            .resume
            .iter()
            .filter(|t| !resumed.iter().any(|r| r.ctx.task_id == **t))
            .copied()
            .collect();
        log::info!(
            "worker={} conn={} capacity={} resumed={} Worker connected.",
            msg.worker_id,
            msg.link.conn,
            msg.capacity,
            resumed.len()
        );
        self.remote_plugins = self.workers.offered_names();
        self.claim_queued(ctx);
        Ok(Welcome {
            resumed,
            gone,
            settings: self.live.get(),
        })
    }

    fn gone(&mut self, msg: WorkerGone, ctx: &mut Context<Self>) {
        let epoch = self.workers.next_epoch();
        let Some(worker) = self.workers.workers.get_mut(&msg.worker_id) else {
            return;
        };
        if worker.link.as_ref().is_none_or(|l| l.conn != msg.conn) {
            return; // replaced by a newer connection already
        }
        worker.link = None;
        worker.away_epoch = epoch;
        if worker.tasks.is_empty() {
            self.workers.workers.remove(&msg.worker_id);
            log::info!("worker={} Worker disconnected.", msg.worker_id);
            self.drop_orphaned_queued();
            return;
        }
        let epoch = worker.away_epoch;
        log::warn!(
            "worker={} tasks={} grace_secs={} Worker disconnected; its tasks wait for it.",
            msg.worker_id,
            worker.tasks.len(),
            self.worker_grace.as_secs()
        );
        for task in &worker.tasks {
            if let Some(run) = self.workers.runs.get(task) {
                run.proxy.do_send(Relink(None));
            }
        }
        let grace = self.worker_grace;
        let id = msg.worker_id;
        ctx.run_later(grace, move |act, _| {
            let Some(worker) = act.workers.workers.get(&id) else {
                return;
            };
            if worker.link.is_some() || worker.away_epoch != epoch {
                return;
            }
            let reason = format!(
                "the worker {:?} disconnected and did not come back within {} s",
                worker.name,
                grace.as_secs()
            );
            for task in &worker.tasks {
                if let Some(run) = act.workers.runs.get(task) {
                    run.proxy.do_send(GiveUp {
                        reason: reason.clone(),
                    });
                }
            }
        });
    }
}

/// A remote task's plugin, as its `TaskActor` sees it: the proxy actor made for it.
struct OnWorker {
    name: String,
    proxy: Addr<RemoteTask>,
}

impl AnyPlugin for OnWorker {
    fn name(&self) -> &str {
        &self.name
    }

    fn privileged(&self) -> bool {
        false
    }

    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: self.name.clone(),
            description: String::new(),
            privileged: false,
            legacy: false,
            example_params: serde_json::json!({}),
            params_schema: serde_json::json!({}),
            workers: None,
        }
    }

    fn validate(&self, _: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    fn start(&self, ctx: TaskContext, params: &serde_json::Value) -> Result<PluginRun, String> {
        let reply = self.proxy.send(RunTask {
            ctx,
            params: params.clone(),
        });
        Ok(PluginRun {
            outcome: Box::pin(async move {
                reply.await.unwrap_or_else(|_| {
                    Err(crate::PluginError::Interrupted(
                        "the worker's task ended without an answer".into(),
                    ))
                })
            }),
            cancel: self.proxy.clone().recipient(),
            settings: self.proxy.clone().recipient(),
        })
    }
}

impl Handler<WorkerHello> for TaskManager {
    type Result = Result<Welcome, EngineError>;

    fn handle(&mut self, msg: WorkerHello, ctx: &mut Context<Self>) -> Self::Result {
        self.hello(msg, ctx)
    }
}

impl Handler<WorkerGone> for TaskManager {
    type Result = ();

    fn handle(&mut self, msg: WorkerGone, ctx: &mut Context<Self>) {
        self.gone(msg, ctx);
    }
}

impl Handler<WorkerFinished> for TaskManager {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: WorkerFinished, _: &mut Context<Self>) -> Self::Result {
        let Some(run) = self.workers.run_on(msg.task_id, &msg.worker_id, msg.conn) else {
            // The session checked the task; this connection was replaced meanwhile.
            log::warn!(
                "worker={} task_id={} A finish from a replaced connection was ignored.",
                msg.worker_id,
                msg.task_id
            );
            return Err(EngineError::Worker(format!(
                "task {} is not running on this connection",
                msg.task_id
            )));
        };
        run.proxy.do_send(RemoteOutcome(msg.outcome));
        Ok(())
    }
}

impl Handler<WorkerSubmit> for TaskManager {
    type Result = ResponseActFuture<Self, Result<TaskInfo, EngineError>>;

    fn handle(&mut self, msg: WorkerSubmit, _: &mut Context<Self>) -> Self::Result {
        let conn = msg.conn;
        let worker = msg.worker_id.clone();
        let checked = (|| {
            if self.shutting_down {
                return Err(EngineError::ShuttingDown);
            }
            if self.registry.contains(&msg.plugin) {
                return Err(EngineError::Worker(format!(
                    "plugin {:?} is built into the server; a worker cannot submit it",
                    msg.plugin
                )));
            }
            let bytes = serde_json::to_vec(&msg.params).map_or(usize::MAX, |v| v.len());
            if bytes > crate::manager::MAX_PARAMS_BYTES {
                return Err(EngineError::ParamsTooLarge {
                    bytes,
                    max: crate::manager::MAX_PARAMS_BYTES,
                });
            }
            let entry = self
                .workers
                .workers
                .get_mut(&msg.worker_id)
                .filter(|w| w.link.as_ref().is_some_and(|l| l.conn == msg.conn))
                .ok_or_else(|| EngineError::Worker("say hello first".into()))?;
            if entry.submitted + entry.submitting >= MAX_SUBMITTED_PER_WORKER {
                return Err(EngineError::Worker(format!(
                    "at most {MAX_SUBMITTED_PER_WORKER} submitted tasks may be unfinished at once"
                )));
            }
            entry.submitting += 1;
            Ok(new_task(&msg.plugin, msg.params, Some(msg.created_by)))
        })();
        let info = match checked {
            Ok(info) => info,
            Err(e) => {
                self.refuse_submit(&worker, conn, &e);
                return Box::pin(fut::ready(Err(e)));
            }
        };
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
                if let Some(entry) = act.workers.workers.get_mut(&worker) {
                    entry.submitting = entry.submitting.saturating_sub(1);
                }
                if let Err(e) = inserted {
                    let e = EngineError::from(e);
                    act.refuse_submit(&worker, conn, &e);
                    return Err(e);
                }
                act.events.status_changed(&info);
                let current = act.workers.link_of(&worker).is_some_and(|l| l.conn == conn);
                if act.shutting_down || !current {
                    act.end_queued(
                        info,
                        TaskStatus::Interrupted,
                        "its worker went away before it started".into(),
                    );
                    return Err(EngineError::Worker("the connection ended".into()));
                }
                act.launch_remote(info.clone(), worker, true, ctx);
                Ok(info)
            }),
        )
    }
}

impl TaskManager {
    /// Tells the submitting connection why its `submit` was refused.
    fn refuse_submit(&self, worker: &str, conn: ConnId, error: &EngineError) {
        if let Some(link) = self.workers.link_of(worker).filter(|l| l.conn == conn) {
            link.to.do_send(ToWorker::Refused {
                message: format!("submit refused: {error}"),
            });
        }
    }
}

impl Handler<ListWorkers> for TaskManager {
    type Result = MessageResult<ListWorkers>;

    fn handle(&mut self, _: ListWorkers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.workers.list())
    }
}

impl Handler<ListRemotePlugins> for TaskManager {
    type Result = MessageResult<ListRemotePlugins>;

    fn handle(&mut self, _: ListRemotePlugins, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.workers.catalog())
    }
}
