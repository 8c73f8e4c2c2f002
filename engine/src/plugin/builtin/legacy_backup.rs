//! `legacy_backup`: a plugin written against the old `execute(params)` signature. It
//! logs with the `log` crate's macros only; the engine attributes those records to the
//! running task with source `plugin`.

use crate::plugin::legacy::LegacyPlugin;

pub struct LegacyBackup;

impl LegacyPlugin for LegacyBackup {
    fn name(&self) -> &str {
        "legacy_backup"
    }

    fn description(&self) -> &str {
        "Example of the old execute(params) signature: pretends to back up `tables` tables, logging through the log crate."
    }

    fn example_params(&self) -> serde_json::Value {
        serde_json::json!({"tables": 3})
    }

    fn execute(&self, params: &serde_json::Value) -> Result<serde_json::Value, String> {
        let tables = match params.get("tables") {
            None => 3,
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= 10_000)
                .ok_or_else(|| format!("tables must be a whole number from 0 to 10000, not {v}"))?,
        };
        log::info!("Backup started for {tables} tables");
        for table in 0..tables {
            log::debug!("Dumping table_{table}");
            if table % 2 == 1 {
                log::warn!("table_{table} is large; backup may be slow");
            }
        }
        log::info!("Backup finished");
        Ok(serde_json::json!({ "tables": tables }))
    }
}
