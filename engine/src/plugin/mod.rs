//! The plugin API.
//!
//! A [`Plugin`] runs one task. Its [`Plugin::run`] is called on a thread of its own
//! with a [`TaskContext`]: the task id, a [`TaskLogger`] (records carry source
//! `plugin`; `with_source("api")` gives one for another component), the task's
//! parameters (`config`) and a [`CancelToken`]. Blocking and CPU-bound work are fine
//! there. `log` crate macros called on that thread are captured into the task's log
//! too (see [`legacy`]), which is how old plugins written against
//! `execute(params)` ([`legacy::LegacyPlugin`]) keep working unchanged.
//!
//! - [`registry`]: the plugins a server offers, by name.
//! - [`belief`]: `belief_scope` guards (Entry / Exit / Coherence at DEBUG).
//! - [`builtin`]: `shell`, `synthetic`, `demo_sync` and the legacy `legacy_backup`.

pub mod belief;
pub mod builtin;
pub mod legacy;
pub mod registry;

use protocol::TaskId;

pub use crate::cancel::CancelToken;
pub use crate::logger::TaskLogger;
pub use belief::BeliefScope;
pub use registry::PluginRegistry;

/// Everything a plugin gets for one run.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub task_id: TaskId,
    pub logger: TaskLogger,
    /// The task's parameters, as given to `POST /api/tasks`.
    pub config: serde_json::Value,
    pub cancel: CancelToken,
}

/// How a run ended when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The run failed; the message becomes the task's `error`.
    #[error("{0}")]
    Failed(String),
    /// The run stopped because the task was cancelled.
    #[error("cancelled")]
    Cancelled,
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

/// A kind of task the engine can run.
pub trait Plugin: Send + Sync + 'static {
    /// Unique name, used in `POST /api/tasks` (`[a-z0-9_-]+` by convention).
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

    /// Checks parameters before the task is created; the error is shown to the user
    /// as a 400. Runs on an actor thread: keep it quick and non-blocking.
    fn validate(&self, _params: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    /// Runs the task on its own thread. The returned value is stored as the task's
    /// `result`. Check `ctx.cancel` in long loops and return
    /// `Err(PluginError::Cancelled)` when it is set.
    fn run(&self, ctx: TaskContext) -> Result<serde_json::Value, PluginError>;

    /// Written against the old `execute(params)` signature (set by the adapter).
    fn is_legacy(&self) -> bool {
        false
    }
}

/// Helpers for validating JSON parameters with clear messages.
pub mod params {
    use serde_json::{Map, Value};

    /// The parameters as an object, with only `allowed` keys.
    pub fn object<'a>(
        params: &'a Value,
        allowed: &[&str],
    ) -> Result<&'a Map<String, Value>, String> {
        let map = params
            .as_object()
            .ok_or_else(|| format!("params must be a JSON object, not {params}"))?;
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "unknown parameter {unknown:?}; expected one of: {}",
                allowed.join(", ")
            ));
        }
        Ok(map)
    }

    /// An optional non-negative integer no larger than `max`.
    pub fn opt_u64(map: &Map<String, Value>, key: &str, max: u64) -> Result<Option<u64>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let n = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| format!("{key} must be a whole number ≥ 0, not {v}"))?;
                if n > max {
                    return Err(format!("{key} must be at most {max}, not {n}"));
                }
                Ok(Some(n))
            }
        }
    }

    /// An optional non-negative number.
    pub fn opt_f64(map: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let n = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|n: &f64| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| format!("{key} must be a number ≥ 0, not {v}"))?;
                Ok(Some(n))
            }
        }
    }

    /// An optional list of non-empty strings.
    pub fn opt_strings(map: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item.as_str() {
                    Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
                    _ => Err(format!(
                        "{key} must be a list of non-empty strings; {item} is not one"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(v) => Err(format!("{key} must be a list of strings, not {v}")),
        }
    }
}
