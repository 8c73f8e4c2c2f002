//! [`RemoteTask`]: the plugin actor of one task that runs on a worker.
//!
//! State: the task, the link to its worker's connection (none while the worker is
//! away), the pending answer to `RunTask`. It takes the messages any plugin takes
//! and carries them to the worker ([`ToWorker`]); the manager tells it when the
//! worker answered ([`RemoteOutcome`]), when the link changed ([`Relink`]) and when
//! the worker's grace ran out ([`GiveUp`]). A cancel while the worker is away ends
//! the task at once; a cancel the worker does not confirm within the grace ends it
//! too. It stops once it has answered.

use std::time::Duration;

use actix::prelude::*;
use protocol::TaskId;
use tokio::sync::oneshot;

use super::{ToWorker, WorkerLink};
use crate::plugin::{CancelTask, LogSettingsChanged, PluginError, RunTask};
use crate::settings::LiveSettings;

type Outcome = Result<serde_json::Value, PluginError>;

pub struct RemoteTask {
    task_id: TaskId,
    plugin: String,
    link: Option<WorkerLink>,
    live: LiveSettings,
    grace: Duration,
    reply: Option<oneshot::Sender<Outcome>>,
    cancel_requested: bool,
}

/// The worker answered `run` with `finish`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteOutcome(pub Outcome);

/// The worker's connection changed: `None` while it is away.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Relink(pub Option<WorkerLink>);

/// The worker did not come back in time.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct GiveUp {
    pub reason: String,
}

impl RemoteTask {
    pub fn new(
        task_id: TaskId,
        plugin: String,
        link: WorkerLink,
        live: LiveSettings,
        grace: Duration,
    ) -> Self {
        RemoteTask {
            task_id,
            plugin,
            link: Some(link),
            live,
            grace,
            reply: None,
            cancel_requested: false,
        }
    }

    fn answer(&mut self, outcome: Outcome, ctx: &mut Context<Self>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
        }
        ctx.stop();
    }

    fn send_cancel(&mut self, ctx: &mut Context<Self>) {
        let Some(link) = &self.link else {
            self.answer(Err(PluginError::Cancelled), ctx);
            return;
        };
        link.to.do_send(ToWorker::Cancel {
            task_id: self.task_id,
        });
        ctx.run_later(self.grace, |act, ctx| {
            log::warn!(
                "task_id={} The worker did not confirm the cancel in time; the task ends without it.",
                act.task_id
            );
            act.answer(Err(PluginError::Cancelled), ctx);
        });
    }
}

impl Actor for RemoteTask {
    type Context = Context<Self>;
}

impl Handler<RunTask> for RemoteTask {
    type Result = ResponseFuture<Outcome>;

    fn handle(&mut self, msg: RunTask, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.reply = Some(tx);
        if let Some(link) = &self.link {
            link.to.do_send(ToWorker::Run {
                ctx: msg.ctx,
                plugin: self.plugin.clone(),
                params: msg.params,
                settings: self.live.get(),
            });
        }
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(PluginError::Interrupted(
                    "the worker's task ended without an answer".into(),
                ))
            })
        })
    }
}

impl Handler<CancelTask> for RemoteTask {
    type Result = ();

    fn handle(&mut self, _: CancelTask, ctx: &mut Context<Self>) {
        if !self.cancel_requested {
            self.cancel_requested = true;
            self.send_cancel(ctx);
        }
    }
}

impl Handler<LogSettingsChanged> for RemoteTask {
    type Result = ();

    fn handle(&mut self, msg: LogSettingsChanged, _: &mut Context<Self>) {
        if let Some(link) = &self.link {
            link.to.do_send(ToWorker::Settings {
                task_id: self.task_id,
                settings: msg.settings,
            });
        }
    }
}

impl Handler<RemoteOutcome> for RemoteTask {
    type Result = ();

    fn handle(&mut self, msg: RemoteOutcome, ctx: &mut Context<Self>) {
        self.answer(msg.0, ctx);
    }
}

impl Handler<Relink> for RemoteTask {
    type Result = ();

    fn handle(&mut self, msg: Relink, ctx: &mut Context<Self>) {
        self.link = msg.0;
        if self.link.is_some() {
            if self.cancel_requested {
                self.send_cancel(ctx);
            } else {
                // What changed while the worker was away.
                let settings = self.live.get();
                if let Some(link) = &self.link {
                    link.to.do_send(ToWorker::Settings {
                        task_id: self.task_id,
                        settings,
                    });
                }
            }
        } else if self.cancel_requested {
            self.answer(Err(PluginError::Cancelled), ctx);
        }
    }
}

impl Handler<GiveUp> for RemoteTask {
    type Result = ();

    fn handle(&mut self, msg: GiveUp, ctx: &mut Context<Self>) {
        self.answer(Err(PluginError::Interrupted(msg.reason)), ctx);
    }
}
