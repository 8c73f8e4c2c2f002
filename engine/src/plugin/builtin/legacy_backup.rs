//! `legacy_backup`: a plugin written against the old `execute(params)` signature. It
//! logs with the `log` crate's macros only; the engine attributes those records to the
//! running task with source `plugin`.

use crate::plugin::legacy::LegacyPlugin;
use crate::plugin::params;

pub struct LegacyBackup;

/// `tables`: how many (0 to 10,000; 3 when absent). Nothing else is accepted.
fn tables(value: &serde_json::Value) -> Result<u64, String> {
    let map = params::object(value, &["tables"])?;
    Ok(params::opt_u64(map, "tables", 10_000)?.unwrap_or(3))
}

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

    fn validate(&self, params: &serde_json::Value) -> Result<(), String> {
        tables(params).map(|_| ())
    }

    fn execute(&self, params: &serde_json::Value) -> Result<serde_json::Value, String> {
        let tables = tables(params)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_checked_before_the_task_is_created() {
        assert_eq!(tables(&serde_json::json!({})), Ok(3));
        assert_eq!(tables(&serde_json::json!({"tables": 7})), Ok(7));
        for bad in [
            serde_json::json!({"tables": -1}),
            serde_json::json!({"tables": 10_001}),
            serde_json::json!({"tables": 3, "blob": "x"}),
            serde_json::json!([1, 2]),
            serde_json::json!("tables"),
        ] {
            assert!(LegacyBackup.validate(&bad).is_err(), "{bad}");
        }
    }
}
