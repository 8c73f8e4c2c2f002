//! `demo_sync`: what a real plugin looks like. It pretends to sync `dashboards`
//! dashboards from a BI tool's REST API: its own records carry source `plugin`, the
//! API client's carry source `superset_api` (through `with_source`), every record
//! about a dashboard carries `dashboard_id` in its metadata, each dashboard is
//! bracketed by a `belief_scope`, and dashboard ids in `fail_on` fail the run.

use std::time::Duration;

use crate::plugin::{params, Plugin, PluginError, TaskContext};

pub struct DemoSync;

impl Plugin for DemoSync {
    fn name(&self) -> &str {
        "demo_sync"
    }

    fn description(&self) -> &str {
        "Example: syncs `dashboards` dashboards from a pretend BI API, logging from `plugin` and `superset_api` with metadata and belief scopes."
    }

    fn example_params(&self) -> serde_json::Value {
        serde_json::json!({"dashboards": 5, "delay_ms": 100})
    }

    fn validate(&self, value: &serde_json::Value) -> Result<(), String> {
        let map = params::object(value, &["dashboards", "delay_ms", "fail_on"])?;
        params::opt_u64(map, "dashboards", 10_000)?;
        params::opt_u64(map, "delay_ms", 60_000)?;
        params::opt_u64(map, "fail_on", u64::MAX)?;
        Ok(())
    }

    fn run(&self, ctx: TaskContext) -> Result<serde_json::Value, PluginError> {
        let map = params::object(&ctx.config, &["dashboards", "delay_ms", "fail_on"])?;
        let dashboards = params::opt_u64(map, "dashboards", 10_000)?.unwrap_or(5);
        let delay = Duration::from_millis(params::opt_u64(map, "delay_ms", 60_000)?.unwrap_or(0));
        let fail_on = params::opt_u64(map, "fail_on", u64::MAX)?;
        let api = ctx.logger.with_source("superset_api");
        let log = &ctx.logger;

        log.info(format!("Syncing {dashboards} dashboards."));
        for id in 1..=dashboards {
            let scope = log.belief_scope("sync_dashboard");
            api.info_with(
                format!("GET /api/v1/dashboard/{id} 200"),
                serde_json::json!({"dashboard_id": id, "status": 200}),
            );
            if ctx.cancel.wait_timeout(delay) {
                return Err(PluginError::Cancelled);
            }
            if id % 3 == 0 {
                api.warning_with(
                    format!("Dashboard {id} has charts with slow queries"),
                    serde_json::json!({"dashboard_id": id, "slow_charts": id % 5 + 1}),
                );
            }
            if Some(id) == fail_on {
                api.error_with(
                    format!("PUT /api/v1/dashboard/{id} 500 Internal Server Error"),
                    serde_json::json!({"dashboard_id": id, "status": 500}),
                );
                scope.coherence(false);
                return Err(PluginError::Failed(format!(
                    "dashboard {id} could not be saved"
                )));
            }
            scope.coherence(true);
        }
        log.info(format!("Synced {dashboards} dashboards."));
        Ok(serde_json::json!({ "dashboards": dashboards }))
    }
}
