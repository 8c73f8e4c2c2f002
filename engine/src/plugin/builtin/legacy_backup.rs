//! `legacy_backup`: a plugin written against the old `execute(params)` signature. It
//! logs with the `log` crate's macros only; the engine attributes those records to the
//! running task with source `plugin`.

use crate::plugin::legacy::LegacyPlugin;

pub struct LegacyBackup;

/// `tables`: how many (0 to 10,000; 3 when absent). Nothing else is accepted. Old
/// plugins check their JSON by hand, as this one does.
fn tables(value: &serde_json::Value) -> Result<u64, String> {
    let map = value
        .as_object()
        .ok_or_else(|| format!("params must be a JSON object, not {value}"))?;
    if let Some(unknown) = map.keys().find(|k| *k != "tables") {
        return Err(format!("unknown parameter {unknown:?}; expected: tables"));
    }
    match map.get("tables") {
        None | Some(serde_json::Value::Null) => Ok(3),
        Some(v) => match v.as_u64() {
            Some(n) if n <= 10_000 => Ok(n),
            _ => Err(format!(
                "tables must be a whole number from 0 to 10000, not {v}"
            )),
        },
    }
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
