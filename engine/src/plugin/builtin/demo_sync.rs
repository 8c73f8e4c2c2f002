//! `demo_sync`: what a real plugin looks like, written as an asynchronous actor (no
//! thread: it waits on actor timers). It pretends to sync `dashboards` dashboards
//! from a BI tool's REST API: its own records carry source `plugin`, the API
//! client's carry source `superset_api` (through `with_source`), every record about
//! a dashboard carries `dashboard_id` in its metadata, each dashboard is bracketed
//! by a `belief_scope`, and the dashboard id `fail_on` fails the run.
//!
//! Lifecycle of its actor: `RunTask` stores the reply and starts the first
//! dashboard; each dashboard's "request" takes `delay_ms` on a timer; `CancelTask`
//! drops the pending timer and answers `Cancelled`; the actor stops once it has
//! answered.

use std::time::Duration;

use actix::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::plugin::{
    ActorPlugin, BeliefScope, CancelTask, Describe, LogSettingsChanged, PluginError, RunTask,
    TaskContext, TaskLogger,
};

pub struct DemoSync;

/// `demo_sync`'s params; every one is optional.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DemoSyncParams {
    /// Dashboards to sync (at most 10,000).
    pub dashboards: u64,
    /// Milliseconds each dashboard's request takes (at most 60,000).
    pub delay_ms: u64,
    /// A dashboard id whose save fails, failing the run.
    pub fail_on: Option<u64>,
}

impl Default for DemoSyncParams {
    fn default() -> Self {
        DemoSyncParams {
            dashboards: 5,
            delay_ms: 0,
            fail_on: None,
        }
    }
}

impl Describe for DemoSync {
    fn name(&self) -> &str {
        "demo_sync"
    }

    fn description(&self) -> &str {
        "Example: syncs `dashboards` dashboards from a pretend BI API, logging from `plugin` and `superset_api` with metadata and belief scopes."
    }

    fn example_params(&self) -> serde_json::Value {
        serde_json::json!({"dashboards": 5, "delay_ms": 100})
    }
}

impl ActorPlugin for DemoSync {
    type Params = DemoSyncParams;
    type Actor = DemoSyncRun;

    fn check(&self, p: &DemoSyncParams) -> Result<(), String> {
        if p.dashboards > 10_000 {
            return Err(format!(
                "dashboards must be at most 10000, not {}",
                p.dashboards
            ));
        }
        if p.delay_ms > 60_000 {
            return Err(format!(
                "delay_ms must be at most 60000, not {}",
                p.delay_ms
            ));
        }
        Ok(())
    }

    fn actor(&self) -> DemoSyncRun {
        DemoSyncRun { run: None }
    }
}

/// One `demo_sync` task.
pub struct DemoSyncRun {
    run: Option<Progress>,
}

struct Progress {
    log: TaskLogger,
    api: TaskLogger,
    params: DemoSyncParams,
    /// The dashboard being synced, and its scope.
    current: u64,
    scope: Option<BeliefScope>,
    pending: Option<SpawnHandle>,
    reply: oneshot::Sender<Result<serde_json::Value, PluginError>>,
}

impl DemoSyncRun {
    /// Starts dashboard `id`'s request, or ends the run after the last one.
    fn begin(&mut self, id: u64, ctx: &mut Context<Self>) {
        let Some(run) = self.run.as_mut() else { return };
        if id > run.params.dashboards {
            let n = run.params.dashboards;
            run.log.info(format!("Synced {n} dashboards."));
            self.end(Ok(serde_json::json!({ "dashboards": n })), ctx);
            return;
        }
        run.current = id;
        run.scope = Some(run.log.belief_scope("sync_dashboard"));
        run.api.info_with(
            format!("GET /api/v1/dashboard/{id} 200"),
            serde_json::json!({"dashboard_id": id, "status": 200}),
        );
        let delay = Duration::from_millis(run.params.delay_ms);
        run.pending = Some(ctx.run_later(delay, |act, ctx| act.complete(ctx)));
    }

    /// Dashboard `current`'s request has answered.
    fn complete(&mut self, ctx: &mut Context<Self>) {
        let Some(run) = self.run.as_mut() else { return };
        run.pending = None;
        let id = run.current;
        if id % 3 == 0 {
            run.api.warning_with(
                format!("Dashboard {id} has charts with slow queries"),
                serde_json::json!({"dashboard_id": id, "slow_charts": id % 5 + 1}),
            );
        }
        let failed = run.params.fail_on == Some(id);
        if failed {
            run.api.error_with(
                format!("PUT /api/v1/dashboard/{id} 500 Internal Server Error"),
                serde_json::json!({"dashboard_id": id, "status": 500}),
            );
        }
        if let Some(scope) = run.scope.take() {
            scope.coherence(!failed);
        }
        if failed {
            self.end(
                Err(PluginError::Failed(format!(
                    "dashboard {id} could not be saved"
                ))),
                ctx,
            );
        } else {
            self.begin(id + 1, ctx);
        }
    }

    fn end(&mut self, outcome: Result<serde_json::Value, PluginError>, ctx: &mut Context<Self>) {
        if let Some(mut run) = self.run.take() {
            if let Some(timer) = run.pending.take() {
                ctx.cancel_future(timer);
            }
            drop(run.scope.take());
            let _ = run.reply.send(outcome);
        }
        ctx.stop();
    }
}

impl Actor for DemoSyncRun {
    type Context = Context<Self>;
}

impl Handler<RunTask<DemoSyncParams>> for DemoSyncRun {
    type Result = ResponseFuture<Result<serde_json::Value, PluginError>>;

    fn handle(&mut self, msg: RunTask<DemoSyncParams>, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        let TaskContext { logger, .. } = msg.ctx;
        logger.info(format!("Syncing {} dashboards.", msg.params.dashboards));
        self.run = Some(Progress {
            api: logger.with_source("superset_api"),
            log: logger,
            params: msg.params,
            current: 0,
            scope: None,
            pending: None,
            reply,
        });
        self.begin(1, ctx);
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                Err(PluginError::Failed(
                    "the plugin stopped without answering".into(),
                ))
            })
        })
    }
}

impl Handler<CancelTask> for DemoSyncRun {
    type Result = ();

    fn handle(&mut self, _: CancelTask, ctx: &mut Context<Self>) {
        self.end(Err(PluginError::Cancelled), ctx);
    }
}

impl Handler<LogSettingsChanged> for DemoSyncRun {
    type Result = ();

    // `ctx.logger` applies the settings itself.
    fn handle(&mut self, _: LogSettingsChanged, _: &mut Context<Self>) {}
}
