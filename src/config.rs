//! Server configuration: defaults, then `tasklens.toml` (or the file given by
//! `--config` / `TASKLENS_CONFIG`), then `TASKLENS_*` environment variables, then
//! command-line flags. Every problem is collected and reported at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::{EngineSettings, LogSinkSettings};
use gateway::{AppConfig, HttpSettings, WsSettings};
use serde::Deserialize;
use storage::DatabaseSettings;

/// Every option, as read from the file (all optional; unknown keys are errors).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub bind: Option<String>,
    pub ui_dir: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub flush_interval_ms: Option<u64>,
    pub batch_max_rows: Option<u64>,
    pub buffer_max_rows: Option<u64>,
    pub handover_interval_ms: Option<u64>,
    pub max_concurrent_tasks: Option<u64>,
    pub retention_days: Option<u64>,
    pub db_pool_size: Option<u64>,
    pub db_busy_timeout_ms: Option<u64>,
    pub ws_mailbox_capacity: Option<u64>,
    pub ws_coalesce_ms: Option<u64>,
    pub http_workers: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
}

/// `(name, minimum, maximum)` of every numeric option.
const NUMBERS: &[(&str, u64, u64)] = &[
    ("flush_interval_ms", 1, 3_600_000),
    ("batch_max_rows", 1, 1_000_000),
    ("buffer_max_rows", 1_000, 100_000_000),
    ("handover_interval_ms", 1, 10_000),
    ("max_concurrent_tasks", 1, 10_000),
    ("retention_days", 0, 36_500),
    ("db_pool_size", 2, 1_000),
    ("db_busy_timeout_ms", 0, 600_000),
    ("ws_mailbox_capacity", 16, 1_000_000),
    ("ws_coalesce_ms", 1, 10_000),
    ("http_workers", 1, 1_024),
    ("shutdown_grace_secs", 1, 3_600),
];

const TEXTS: &[&str] = &["database_url", "bind", "ui_dir", "admin_token"];

/// Environment variables the client commands and tests read; not server options.
const OTHER_VARS: &[&str] = &[
    "TASKLENS_CONFIG",
    "TASKLENS_SERVER",
    "TASKLENS_TOKEN",
    "TASKLENS_LOG",
];

/// Values from the command line that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub ui_dir: Option<PathBuf>,
}

/// Reads and validates the configuration.
///
/// # Errors
/// Every problem found, one per line.
pub fn load(
    config_file: Option<&Path>,
    env: &BTreeMap<String, String>,
    overrides: &Overrides,
) -> Result<AppConfig, Vec<String>> {
    let mut errors = Vec::new();
    let (file, file_path) = match read_file(config_file, env) {
        Ok(found) => found,
        Err(e) => {
            errors.push(e);
            (FileConfig::default(), None)
        }
    };
    let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut number = |name: &'static str, v: Option<u64>| {
        if let Some(v) = v {
            values.insert(name, v.to_string());
        }
    };
    number("flush_interval_ms", file.flush_interval_ms);
    number("batch_max_rows", file.batch_max_rows);
    number("buffer_max_rows", file.buffer_max_rows);
    number("handover_interval_ms", file.handover_interval_ms);
    number("max_concurrent_tasks", file.max_concurrent_tasks);
    number("retention_days", file.retention_days);
    number("db_pool_size", file.db_pool_size);
    number("db_busy_timeout_ms", file.db_busy_timeout_ms);
    number("ws_mailbox_capacity", file.ws_mailbox_capacity);
    number("ws_coalesce_ms", file.ws_coalesce_ms);
    number("http_workers", file.http_workers);
    number("shutdown_grace_secs", file.shutdown_grace_secs);
    let mut text = |name: &'static str, v: Option<String>| {
        if let Some(v) = v {
            values.insert(name, v);
        }
    };
    text("database_url", file.database_url);
    text("bind", file.bind);
    text("ui_dir", file.ui_dir.map(|p| p.display().to_string()));
    text("admin_token", file.admin_token);

    for (key, value) in env {
        let Some(name) = key.strip_prefix("TASKLENS_") else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        let known = NUMBERS
            .iter()
            .map(|(n, _, _)| *n)
            .chain(TEXTS.iter().copied())
            .find(|n| *n == name);
        match known {
            Some(known) => {
                values.insert(known, value.clone());
            }
            None if OTHER_VARS.contains(&key.as_str())
                || key.starts_with("TASKLENS_TEST_")
                || key == "TASKLENS_PG_BIN" => {}
            None => errors.push(format!(
                "{key}: unknown setting (see docs/configuration.md for the list)"
            )),
        }
    }
    if let Some(v) = &overrides.bind {
        values.insert("bind", v.clone());
    }
    if let Some(v) = &overrides.database_url {
        values.insert("database_url", v.clone());
    }
    if let Some(v) = &overrides.ui_dir {
        values.insert("ui_dir", v.display().to_string());
    }

    let mut numbers: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, min, max) in NUMBERS {
        if let Some(raw) = values.get(name) {
            match raw.trim().replace('_', "").parse::<u64>() {
                Ok(n) if (*min..=*max).contains(&n) => {
                    numbers.insert(name, n);
                }
                _ => errors.push(format!(
                    "{name}: must be a whole number from {min} to {max}, not {raw:?}"
                )),
            }
        }
    }
    let get = |name: &str, default: u64| numbers.get(name).copied().unwrap_or(default);

    let database_url = values
        .get("database_url")
        .cloned()
        .unwrap_or_else(|| DatabaseSettings::DEFAULT_URL.to_owned());
    if let Err(e) = storage::db::Target::parse(&database_url) {
        errors.push(format!("database_url: {e}"));
    }
    let bind = values
        .get("bind")
        .cloned()
        .unwrap_or_else(|| HttpSettings::default().bind);
    if bind.parse::<std::net::SocketAddr>().is_err() && !bind.contains(':') {
        errors.push(format!(
            "bind: {bind:?} is not host:port (for example 127.0.0.1:8080)"
        ));
    }
    let admin_token = values.get("admin_token").cloned().filter(|t| !t.is_empty());
    if admin_token.as_ref().is_some_and(|t| t.trim().len() < 16) {
        errors.push("admin_token: use at least 16 characters".into());
    }
    let defaults = LogSinkSettings::default();
    let sink = LogSinkSettings {
        flush_interval_ms: get("flush_interval_ms", defaults.flush_interval_ms),
        batch_max_rows: get("batch_max_rows", defaults.batch_max_rows as u64) as usize,
        buffer_max_rows: get("buffer_max_rows", defaults.buffer_max_rows as u64) as usize,
    };
    if sink.buffer_max_rows < sink.batch_max_rows {
        errors.push(format!(
            "buffer_max_rows ({}) must be at least batch_max_rows ({})",
            sink.buffer_max_rows, sink.batch_max_rows
        ));
    }
    if !errors.is_empty() {
        if let Some(path) = file_path {
            errors.insert(0, format!("(configuration file: {})", path.display()));
        }
        return Err(errors);
    }
    let engine_defaults = EngineSettings::default();
    let mut database = DatabaseSettings::new(database_url);
    database.pool_max_size = get("db_pool_size", database.pool_max_size as u64) as u32;
    database.busy_timeout_ms = get("db_busy_timeout_ms", database.busy_timeout_ms as u64) as u32;
    let ws_defaults = WsSettings::default();
    Ok(AppConfig {
        database,
        engine: EngineSettings {
            sink,
            max_concurrent_tasks: get(
                "max_concurrent_tasks",
                engine_defaults.max_concurrent_tasks as u64,
            ) as usize,
            handover_interval_ms: get("handover_interval_ms", engine_defaults.handover_interval_ms),
            retention_days: numbers
                .get("retention_days")
                .copied()
                .filter(|d| *d > 0)
                .map(|d| d as u32),
            retention_interval: engine_defaults.retention_interval,
            shutdown_grace: numbers
                .get("shutdown_grace_secs")
                .map_or(engine_defaults.shutdown_grace, |s| {
                    std::time::Duration::from_secs(*s)
                }),
        },
        http: HttpSettings {
            bind,
            ui_dir: values
                .get("ui_dir")
                .map(PathBuf::from)
                .unwrap_or_else(|| HttpSettings::default().ui_dir),
            ws: WsSettings {
                mailbox_capacity: get("ws_mailbox_capacity", ws_defaults.mailbox_capacity as u64)
                    as usize,
                coalesce_ms: get("ws_coalesce_ms", ws_defaults.coalesce_ms),
                ..ws_defaults
            },
            workers: numbers.get("http_workers").map(|w| *w as usize),
        },
        admin_token,
    })
}

fn read_file(
    explicit: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<(FileConfig, Option<PathBuf>), String> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match env.get("TASKLENS_CONFIG") {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from("tasklens.toml"), false),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok((FileConfig::default(), None))
        }
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    toml::from_str(&text)
        .map(|file| (file, Some(path.clone())))
        .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_without_anything_set() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.toml");
        let env = env(&[]);
        // A missing default file is fine; an explicit missing file is an error.
        assert!(load(Some(&missing), &env, &Overrides::default()).is_err());
        let cwd_default = load(None, &env, &Overrides::default());
        if let Ok(config) = cwd_default {
            assert_eq!(config.http.bind, "127.0.0.1:8080");
        }
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tasklens.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9000\"\nflush_interval_ms = 500\nretention_days = 30\n",
        )
        .unwrap();
        let config = load(
            Some(&file),
            &env(&[
                ("TASKLENS_FLUSH_INTERVAL_MS", "250"),
                ("TASKLENS_DATABASE_URL", "postgres://u@h/db"),
            ]),
            &Overrides {
                bind: Some("127.0.0.1:0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(config.http.bind, "127.0.0.1:0");
        assert_eq!(config.engine.sink.flush_interval_ms, 250);
        assert_eq!(config.engine.retention_days, Some(30));
        assert_eq!(config.database.url, "postgres://u@h/db");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tasklens.toml");
        std::fs::write(&file, "flush_interval_ms = 0\n").unwrap();
        let errors = load(
            Some(&file),
            &env(&[
                ("TASKLENS_BATCH_MAX_ROWS", "lots"),
                ("TASKLENS_DATABSE_URL", "x"),
                ("TASKLENS_DATABASE_URL", "mysql://h/db"),
                ("TASKLENS_ADMIN_TOKEN", "short"),
            ]),
            &Overrides::default(),
        )
        .unwrap_err();
        let all = errors.join("\n");
        for expected in [
            "flush_interval_ms",
            "batch_max_rows",
            "TASKLENS_DATABSE_URL",
            "database_url",
            "admin_token",
        ] {
            assert!(all.contains(expected), "{expected} missing from:\n{all}");
        }
    }

    #[test]
    fn unknown_file_keys_and_bad_toml_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tasklens.toml");
        std::fs::write(&file, "flush_interval = 5\n").unwrap();
        let errors = load(Some(&file), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(errors.join("\n").contains("flush_interval"), "{errors:?}");
        std::fs::write(&file, "bind = [").unwrap();
        assert!(load(Some(&file), &env(&[]), &Overrides::default()).is_err());
    }
}
