//! The plugin API: a plugin is an actor that runs tasks, spoken to in messages.
//!
//! For each task the engine starts the plugin's actor and sends it
//! [`RunTask`]` { ctx, params }`; the actor answers with the task's outcome (its
//! `result`, or a [`PluginError`]). While the task runs the engine may send
//! [`CancelTask`] (someone asked it to stop; `ctx.cancel` is set too) and
//! [`LogSettingsChanged`] (an admin changed the logging settings; `ctx.logger`
//! already applies them). Logging is `ctx.logger`: records carry source `plugin`,
//! `with_source("api")` gives a logger for another component, `*_with` adds JSON
//! metadata, `belief_scope` brackets a piece of work. Records go to the sink and the
//! live hub in batches, whatever form the plugin has.
//!
//! Three forms, from most to least general:
//! - [`ActorPlugin`]: an actix actor handling the three messages, for plugins that
//!   wait on timers, sockets or other actors without a thread of their own.
//! - [`BlockingPlugin`]: `fn run(&self, ctx, params)` on a thread of its own, for
//!   blocking and CPU-bound work ([`blocking`] wraps it in an actor).
//! - [`legacy::LegacyPlugin`]: the old `execute(params)` signature, logging through
//!   the `log` crate, captured into the task's log.
//!
//! Params are typed: each plugin names a `serde` type (unknown fields refused) whose
//! JSON Schema (`schemars`) `GET /api/plugins` publishes. The same messages, as JSON,
//! reach plugins in other processes: see `crate::remote`.
//!
//! - [`registry`]: the built-in plugins of a server, by name.
//! - [`erased`]: [`AnyPlugin`], what the engine holds of any plugin.
//! - [`belief`]: `belief_scope` guards (Entry / Exit / Coherence at DEBUG).
//! - [`builtin`]: `shell`, `synthetic`, `demo_sync` (an asynchronous actor) and the
//!   legacy `legacy_backup`.

pub mod belief;
pub mod blocking;
pub mod builtin;
pub mod erased;
pub mod legacy;
pub mod registry;

use actix::prelude::*;
use protocol::{LogSettings, TaskId};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

pub use crate::cancel::CancelToken;
pub use crate::logger::TaskLogger;
pub use belief::BeliefScope;
pub use blocking::BlockingPlugin;
pub use erased::{AnyPlugin, PluginRun};
pub use registry::PluginRegistry;

/// Everything a plugin gets for one run besides its params.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub task_id: TaskId,
    pub logger: TaskLogger,
    /// Set when the task is cancelled (before [`CancelTask`] arrives).
    pub cancel: CancelToken,
}

/// Run one task. Sent once, to a fresh actor; the reply is the task's outcome.
pub struct RunTask<P = serde_json::Value> {
    pub ctx: TaskContext,
    pub params: P,
}

impl<P: 'static> Message for RunTask<P> {
    type Result = Result<serde_json::Value, PluginError>;
}

/// Stop the task soon; answer [`RunTask`] with [`PluginError::Cancelled`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CancelTask {
    pub task_id: TaskId,
}

/// The logging settings changed while the task runs. `ctx.logger` applies them
/// already; a plugin that keeps its own gate (a worker in another process) uses them.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LogSettingsChanged {
    pub task_id: TaskId,
    pub settings: LogSettings,
}

/// How a run ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    /// The run failed; the message becomes the task's `error`.
    #[error("{0}")]
    Failed(String),
    /// The run stopped because the task was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The run was lost without failing (its worker went away); the task ends
    /// `interrupted` with this reason.
    #[error("{0}")]
    Interrupted(String),
}

impl PluginError {
    pub fn failed(message: impl std::fmt::Display) -> Self {
        PluginError::Failed(message.to_string())
    }
}

impl From<std::io::Error> for PluginError {
    fn from(e: std::io::Error) -> Self {
        PluginError::Failed(e.to_string())
    }
}

impl From<String> for PluginError {
    fn from(message: String) -> Self {
        PluginError::Failed(message)
    }
}

/// What every plugin says about itself.
pub trait Describe {
    /// Unique name, used in `POST /api/tasks` (`[a-z0-9_.-]+`).
    fn name(&self) -> &str;

    /// One sentence for humans.
    fn description(&self) -> &str;

    /// Only admins may run it (for plugins that run arbitrary code, like `shell`).
    fn privileged(&self) -> bool {
        false
    }

    /// Parameters that make a useful first run, shown by the console and `GET /api/plugins`.
    fn example_params(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    /// Written against the old `execute(params)` signature (set by its adapter).
    fn is_legacy(&self) -> bool {
        false
    }
}

/// A plugin whose tasks are run by an actor of its own.
///
/// The engine calls [`ActorPlugin::actor`] once per task, starts the actor on the
/// server's arbiter, sends it [`RunTask`] and awaits the reply. The actor should
/// stop itself once it has replied. Handlers run on the server's actor threads:
/// never block in them (use [`BlockingPlugin`] for blocking work) and never panic.
pub trait ActorPlugin: Describe + Send + Sync + 'static {
    /// The params, deserialised from the task's JSON (use
    /// `#[serde(deny_unknown_fields)]`); their schema is published.
    type Params: DeserializeOwned + JsonSchema + Send + 'static;
    type Actor: Actor<Context = Context<Self::Actor>>
        + Handler<RunTask<Self::Params>>
        + Handler<CancelTask>
        + Handler<LogSettingsChanged>;

    /// Checks what types cannot say (ranges, combinations); the error is shown to the
    /// user as a 400 before the task is created.
    fn check(&self, _params: &Self::Params) -> Result<(), String> {
        Ok(())
    }

    /// A fresh actor for one task.
    fn actor(&self) -> Self::Actor;
}
