//! The `settings` table: the runtime logging settings, one row per setting.

use diesel::prelude::*;
use protocol::LogSettings;

use crate::db::Conn;
use crate::schema::settings;
use crate::{with_conn, Result};

const APP_LOG_LEVEL: &str = "app_log_level";
const TASK_LOG_LEVEL: &str = "task_log_level";
const BELIEF_SCOPE_ENABLED: &str = "belief_scope_enabled";

/// The stored settings; defaults for anything never stored or unreadable (an
/// unreadable value is reported in the operator log, not fatal).
pub fn load_log_settings(conn: &mut Conn) -> Result<LogSettings> {
    let rows: Vec<(String, String)> = with_conn!(conn, c => settings::table
        .select((settings::name, settings::value))
        .load(c))?;
    let mut out = LogSettings::default();
    for (name, value) in rows {
        let ok = match name.as_str() {
            APP_LOG_LEVEL => value.parse().map(|v| out.app_log_level = v).is_ok(),
            TASK_LOG_LEVEL => value.parse().map(|v| out.task_log_level = v).is_ok(),
            BELIEF_SCOPE_ENABLED => value.parse().map(|v| out.belief_scope_enabled = v).is_ok(),
            _ => true,
        };
        if !ok {
            log::warn!(
                "setting={name} value={value:?} Stored setting is not valid; using the default."
            );
        }
    }
    Ok(out)
}

/// Stores all logging settings in one transaction.
pub fn save_log_settings(conn: &mut Conn, value: &LogSettings) -> Result<()> {
    let rows = [
        (APP_LOG_LEVEL, value.app_log_level.as_str().to_owned()),
        (TASK_LOG_LEVEL, value.task_log_level.as_str().to_owned()),
        (BELIEF_SCOPE_ENABLED, value.belief_scope_enabled.to_string()),
    ];
    with_conn!(conn, c => c.transaction(|c| {
        for (name, text) in &rows {
            diesel::insert_into(settings::table)
                .values((settings::name.eq(*name), settings::value.eq(text)))
                .on_conflict(settings::name)
                .do_update()
                .set(settings::value.eq(text))
                .execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    }))?;
    crate::changes::announce(conn, crate::changes::Change::Settings);
    Ok(())
}
