//! [`AnyPlugin`]: what the engine holds of a plugin, whatever its form and params
//! type. [`Actorised`] makes one of an [`ActorPlugin`]; remote workers provide their
//! own (`crate::remote`).

use std::future::Future;
use std::pin::Pin;

use actix::prelude::*;
use protocol::PluginInfo;

use super::{ActorPlugin, CancelTask, LogSettingsChanged, PluginError, RunTask, TaskContext};

/// The outcome of a run, once the plugin answers [`RunTask`].
pub type Outcome = Pin<Box<dyn Future<Output = Result<serde_json::Value, PluginError>>>>;

/// A run under way: its outcome, and where its `CancelTask` and
/// `LogSettingsChanged` go.
pub struct PluginRun {
    pub outcome: Outcome,
    pub cancel: Recipient<CancelTask>,
    pub settings: Recipient<LogSettingsChanged>,
}

/// A plugin as the engine sees it.
pub trait AnyPlugin: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn privileged(&self) -> bool;
    /// What `GET /api/plugins` shows.
    fn info(&self) -> PluginInfo;
    /// Checks params before the task is created (a 400 with this message when not).
    fn validate(&self, params: &serde_json::Value) -> Result<(), String>;
    /// Starts one run on the current arbiter. Must be called inside an actix system.
    fn start(&self, ctx: TaskContext, params: &serde_json::Value) -> Result<PluginRun, String>;
}

/// Reads params as `P`, naming the field at fault (`count: invalid type: …`).
pub fn parse_params<P: serde::de::DeserializeOwned>(
    params: &serde_json::Value,
) -> Result<P, String> {
    let value = match params {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        object @ serde_json::Value::Object(_) => object.clone(),
        // serde would read a list as a struct's fields in order.
        other => return Err(format!("params must be a JSON object, not {other}")),
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

/// The JSON Schema of `P`, as published.
pub fn schema_of<P: schemars::JsonSchema>() -> serde_json::Value {
    schemars::schema_for!(P).to_value()
}

/// An [`ActorPlugin`] as an [`AnyPlugin`].
pub struct Actorised<P>(pub P);

impl<P: ActorPlugin> AnyPlugin for Actorised<P> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn privileged(&self) -> bool {
        self.0.privileged()
    }

    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: self.0.name().to_owned(),
            description: self.0.description().to_owned(),
            privileged: self.0.privileged(),
            legacy: self.0.is_legacy(),
            example_params: self.0.example_params(),
            params_schema: schema_of::<P::Params>(),
            workers: None,
        }
    }

    fn validate(&self, params: &serde_json::Value) -> Result<(), String> {
        let typed: P::Params = parse_params(params)?;
        self.0.check(&typed)
    }

    fn start(&self, ctx: TaskContext, params: &serde_json::Value) -> Result<PluginRun, String> {
        let params: P::Params = parse_params(params)?;
        let addr = self.0.actor().start();
        let reply = addr.send(RunTask { ctx, params });
        Ok(PluginRun {
            outcome: Box::pin(async move {
                reply.await.unwrap_or_else(|_| {
                    Err(PluginError::Failed(
                        "the plugin stopped without answering".into(),
                    ))
                })
            }),
            cancel: addr.clone().recipient(),
            settings: addr.recipient(),
        })
    }
}
