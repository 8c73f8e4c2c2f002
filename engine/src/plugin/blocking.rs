//! [`BlockingPlugin`]: a plugin whose `run` blocks, on a thread of its own, and the
//! actor that carries it ([`BlockingActor`]).
//!
//! On [`RunTask`] the actor starts a thread named for the task, marks it for `log`
//! capture (see [`super::legacy`]), runs the plugin there and answers with what
//! `run` returned (a panic becomes a failure with its message). [`CancelTask`] sets
//! `ctx.cancel`, which `run` is expected to poll. The actor stops once it has answered.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::prelude::*;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::legacy::CaptureGuard;
use super::{
    ActorPlugin, CancelTask, CancelToken, Describe, LogSettingsChanged, PluginError, RunTask,
    TaskContext,
};

/// A plugin that runs each task on a thread of its own.
pub trait BlockingPlugin: Describe + Send + Sync + 'static {
    type Params: DeserializeOwned + JsonSchema + Send + 'static;

    /// See [`ActorPlugin::check`].
    fn check(&self, _params: &Self::Params) -> Result<(), String> {
        Ok(())
    }

    /// Runs the task. The returned value is stored as the task's `result`. Check
    /// `ctx.cancel` in long loops and return `Err(PluginError::Cancelled)` when set.
    fn run(&self, ctx: TaskContext, params: Self::Params)
        -> Result<serde_json::Value, PluginError>;
}

/// A [`BlockingPlugin`] as an [`ActorPlugin`].
pub struct Blocking<P>(pub Arc<P>);

impl<P: BlockingPlugin> Describe for Blocking<P> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn description(&self) -> &str {
        self.0.description()
    }
    fn privileged(&self) -> bool {
        self.0.privileged()
    }
    fn example_params(&self) -> serde_json::Value {
        self.0.example_params()
    }
    fn is_legacy(&self) -> bool {
        self.0.is_legacy()
    }
}

impl<P: BlockingPlugin> ActorPlugin for Blocking<P> {
    type Params = P::Params;
    type Actor = BlockingActor<P>;

    fn check(&self, params: &P::Params) -> Result<(), String> {
        self.0.check(params)
    }

    fn actor(&self) -> BlockingActor<P> {
        BlockingActor {
            plugin: self.0.clone(),
            cancel: None,
        }
    }
}

/// Runs one task of a [`BlockingPlugin`] on a thread.
pub struct BlockingActor<P> {
    plugin: Arc<P>,
    cancel: Option<CancelToken>,
}

impl<P: BlockingPlugin> Actor for BlockingActor<P> {
    type Context = Context<Self>;
}

impl<P: BlockingPlugin> Handler<RunTask<P::Params>> for BlockingActor<P> {
    type Result = ResponseActFuture<Self, Result<serde_json::Value, PluginError>>;

    fn handle(&mut self, msg: RunTask<P::Params>, _: &mut Context<Self>) -> Self::Result {
        self.cancel = Some(msg.ctx.cancel.clone());
        let (tx, rx) = oneshot::channel();
        let plugin = self.plugin.clone();
        let name = format!("task-{}", &msg.ctx.task_id.to_string()[..8]);
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let _capture = CaptureGuard::enter(msg.ctx.logger.clone());
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| plugin.run(msg.ctx, msg.params)))
                    .unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        Err(PluginError::Failed(format!("the plugin panicked: {what}")))
                    });
            let _ = tx.send(outcome);
        });
        Box::pin(
            async move {
                if let Err(e) = spawned {
                    return Err(PluginError::Failed(format!("cannot start a thread: {e}")));
                }
                rx.await.unwrap_or_else(|_| {
                    Err(PluginError::Failed(
                        "the plugin thread ended without a result".into(),
                    ))
                })
            }
            .into_actor(self)
            .map(|outcome, _, ctx| {
                ctx.stop();
                outcome
            }),
        )
    }
}

impl<P: BlockingPlugin> Handler<CancelTask> for BlockingActor<P> {
    type Result = ();

    fn handle(&mut self, _: CancelTask, _: &mut Context<Self>) {
        if let Some(cancel) = &self.cancel {
            cancel.cancel();
        }
    }
}

impl<P: BlockingPlugin> Handler<LogSettingsChanged> for BlockingActor<P> {
    type Result = ();

    // The task's logger reads the live settings on every record.
    fn handle(&mut self, _: LogSettingsChanged, _: &mut Context<Self>) {}
}
