//! Server configuration: typed [`Layer`]s from `tasklens.toml` (or the file given by
//! `--config` / `TASKLENS_CONFIG`, which clap reads), then `TASKLENS_*` environment
//! variables, then command-line flags, each over the one before; then validated
//! once into the settings of every part. Every problem is collected and reported at
//! once; secrets (`admin_token`, the database password) never print.

mod env;
mod layer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::plugin::builtin::shell::ShellSettings;
use engine::{EngineSettings, LogSinkSettings};
use gateway::{AppConfig, HttpSettings, WsSettings};
use storage::DatabaseSettings;

pub use layer::{Layer, LogFormat};

/// Options that were replaced, with what to use instead: named in the error, since
/// an unknown option is refused.
const REPLACED: &[(&str, &str)] = &[(
    "ws_mailbox_capacity",
    "ws_max_queued_bytes (the bytes a client may leave unread)",
)];

/// Beside the SQLite file; `./data` for PostgreSQL.
fn default_spool_dir(database_url: &str) -> PathBuf {
    if database_url.starts_with("postgres") {
        return PathBuf::from("data");
    }
    let path = Path::new(
        database_url
            .strip_prefix("sqlite://")
            .unwrap_or(database_url),
    );
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The hint added to an unknown option's error: what replaced it, or the nearest
/// known name.
fn unknown_hint(name: &str) -> String {
    if let Some((_, new)) = REPLACED
        .iter()
        .find(|(old, _)| name.eq_ignore_ascii_case(old))
    {
        return format!("replaced by {new}; see docs/configuration.md");
    }
    match nearest_setting(name) {
        Some(near) => format!("did you mean {near}? see docs/configuration.md"),
        None => "see docs/configuration.md for the list".to_owned(),
    }
}

/// The known setting closest to `name`, if one is close enough to be a typo of it.
fn nearest_setting(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    Layer::NAMES
        .iter()
        .map(|known| (edit_distance(&name, known), *known))
        .filter(|(d, known)| *d <= (known.len() / 4).max(1))
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes (setting names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Variables Kubernetes sets for a Service named `tasklens` (`TASKLENS_PORT`,
/// `TASKLENS_PORT_8080_TCP_ADDR`, `TASKLENS_SERVICE_HOST`, …): not ours, never fatal.
fn is_service_link(key: &str) -> bool {
    key == "TASKLENS_PORT"
        || key.starts_with("TASKLENS_PORT_")
        || key.starts_with("TASKLENS_SERVICE_")
}

/// The shortest admin token an operator may choose.
const MIN_ADMIN_TOKEN_CHARS: usize = 24;

/// `TASKLENS_*` variables that are not server options: the client commands', the
/// operator log's, and those of the project's own scripts, bench and tests, which a
/// developer may well have exported in the shell that starts the server. Any other
/// `TASKLENS_*` is refused, so that a typo cannot be silently ignored.
const OTHER_VARS: &[&str] = &[
    "TASKLENS_CONFIG",
    "TASKLENS_SERVER",
    "TASKLENS_TOKEN",
    "TASKLENS_CA_CERT",
    "TASKLENS_LOG",
    "TASKLENS_BIN",
    "TASKLENS_PG_BIN",
    "TASKLENS_WASM_TARGET_DIR",
    "TASKLENS_TESTKIT",
    "TASKLENS_BENCH_PYTHON",
];
const OTHER_PREFIX: &str = "TASKLENS_TEST_";

/// Values from the command line that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub ui_dir: Option<PathBuf>,
    pub role: Option<engine::NodeRole>,
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
    let (file, file_path) = read_file(config_file, &mut errors);
    let env = read_env(env, &mut errors);
    let flags = layer::from_flags(
        overrides.bind.clone(),
        overrides.database_url.clone(),
        overrides.ui_dir.clone(),
        overrides.role,
    );
    let merged = flags.over(env.over(file));
    let config = validate(merged, &mut errors);
    if !errors.is_empty() {
        if let Some(path) = file_path {
            errors.insert(0, format!("(configuration file: {})", path.display()));
        }
        return Err(errors);
    }
    Ok(config)
}

/// The `TASKLENS_*` settings of the environment, each variable read on its own.
fn read_env(env: &BTreeMap<String, String>, errors: &mut Vec<String>) -> Layer {
    let mut layer = Layer::default();
    for (key, value) in env {
        let Some(name) = key.strip_prefix("TASKLENS_") else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if Layer::NAMES.contains(&name.as_str()) {
            match layer::from_env(&name, value) {
                Ok(one) => layer = one.over(layer),
                Err(e) => errors.push(e),
            }
        } else if !(OTHER_VARS.contains(&key.as_str())
            || key.starts_with(OTHER_PREFIX)
            || is_service_link(key))
        {
            errors.push(format!("{key}: unknown setting ({})", unknown_hint(&name)));
        }
    }
    layer
}

/// Checks what types alone cannot (ranges, formats, how settings fit together) and
/// builds every part's settings; problems go to `errors`.
fn validate(layer: Layer, errors: &mut Vec<String>) -> AppConfig {
    for (name, value) in layer.numbers() {
        let (_, min, max) = Layer::RANGES
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("every number has a range");
        if !(*min..=*max).contains(&value) {
            errors.push(format!(
                "{name}: must be a whole number from {min} to {max}, not {value}"
            ));
        }
    }
    let database_url = layer
        .database_url
        .unwrap_or_else(|| DatabaseSettings::DEFAULT_URL.to_owned());
    if let Err(e) = storage::db::Target::parse(&database_url) {
        errors.push(format!("database_url: {e}"));
    }
    let bind = layer.bind.unwrap_or_else(|| HttpSettings::default().bind);
    let host_port = bind
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if bind.parse::<std::net::SocketAddr>().is_err() && !host_port {
        errors.push(format!(
            "bind: {bind:?} is not host:port (for example 127.0.0.1:8080)"
        ));
    }
    let admin_token = layer.admin_token.filter(|t| !t.expose().is_empty());
    if admin_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().chars().count() < MIN_ADMIN_TOKEN_CHARS)
    {
        errors.push(format!(
            "admin_token: use at least {MIN_ADMIN_TOKEN_CHARS} characters (for example `openssl rand -hex 20`)"
        ));
    }
    let tls = match (layer.tls_cert, layer.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(gateway::tls::TlsFiles { cert, key }),
        _ => {
            errors.push("tls_cert and tls_key: set both (to serve HTTPS) or neither".into());
            None
        }
    };
    let mut ws_allowed_origins = Vec::new();
    for origin in layer.ws_allowed_origins.unwrap_or_default() {
        let valid = origin.split_once("://").is_some_and(|(scheme, host)| {
            ["http", "https"].contains(&scheme)
                && !host.is_empty()
                && !host.contains(['/', ' ', '?', '#', ','])
        });
        if valid {
            ws_allowed_origins.push(origin);
        } else {
            errors.push(format!(
                "ws_allowed_origins: {origin:?} is not an origin like https://console.example.com (scheme and host, optional :port, no path)"
            ));
        }
    }
    let mut env_passthrough = Vec::new();
    for name in layer.shell_env_passthrough.unwrap_or_default() {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            errors.push(format!(
                "shell_env_passthrough: {name:?} is not an environment variable name (letters, digits and _, not starting with a digit)"
            ));
        } else if name.starts_with("TASKLENS_") {
            errors.push(format!(
                "shell_env_passthrough: {name} is the server's own setting and is never passed to commands"
            ));
        } else {
            env_passthrough.push(name);
        }
    }
    let node_id = layer.node_id.unwrap_or_else(host_name);
    let node_id_valid = (1..=64).contains(&node_id.len())
        && node_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c));
    if !node_id_valid {
        errors.push(format!(
            "node_id: {node_id:?} must be 1 to 64 letters, digits, '.', '-', '_' or ':'"
        ));
    }
    let role = layer.role.unwrap_or_default();
    if role != engine::NodeRole::All && storage::db::sqlite_file(&database_url).is_some() {
        errors.push(format!(
            "role: {} needs PostgreSQL, where several nodes share one database; on SQLite one server does everything (role all)",
            role.as_str()
        ));
    }
    let sink_defaults = LogSinkSettings::default();
    let sink = LogSinkSettings {
        flush_interval_ms: layer
            .flush_interval_ms
            .unwrap_or(sink_defaults.flush_interval_ms),
        batch_max_rows: layer
            .batch_max_rows
            .map_or(sink_defaults.batch_max_rows, |n| n as usize),
        buffer_max_rows: layer
            .buffer_max_rows
            .map_or(sink_defaults.buffer_max_rows, |n| n as usize),
        buffer_max_bytes: layer
            .buffer_max_bytes
            .unwrap_or(sink_defaults.buffer_max_bytes),
    };
    if sink.buffer_max_rows < sink.batch_max_rows {
        errors.push(format!(
            "buffer_max_rows ({}) must be at least batch_max_rows ({})",
            sink.buffer_max_rows, sink.batch_max_rows
        ));
    }
    let engine = EngineSettings::default();
    let spool_dir = layer
        .spool_dir
        .unwrap_or_else(|| default_spool_dir(&database_url));
    let mut database = DatabaseSettings::new(database_url);
    database.pool_max_size = layer
        .db_pool_size
        .map_or(database.pool_max_size, |n| n as u32);
    database.busy_timeout_ms = layer
        .db_busy_timeout_ms
        .map_or(database.busy_timeout_ms, |n| n as u32);
    let ws = WsSettings::default();
    let http = HttpSettings::default();
    let secs = |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
    AppConfig {
        database,
        engine: EngineSettings {
            sink,
            max_concurrent_tasks: layer
                .max_concurrent_tasks
                .map_or(engine.max_concurrent_tasks, |n| n as usize),
            handover_interval_ms: layer
                .handover_interval_ms
                .unwrap_or(engine.handover_interval_ms),
            max_queued_tasks: layer
                .max_queued_tasks
                .map_or(engine.max_queued_tasks, |n| n as usize),
            max_tasks_per_viewer: layer
                .max_tasks_per_viewer
                .map_or(engine.max_tasks_per_viewer, |n| n as usize),
            retention_days: layer.retention_days.filter(|d| *d > 0).map(|d| d as u32),
            retention_interval: engine.retention_interval,
            shutdown_grace: secs(layer.shutdown_grace_secs, engine.shutdown_grace),
            shell: ShellSettings {
                enabled: layer.shell_enabled.unwrap_or(false),
                env_passthrough,
            },
            worker_grace: secs(layer.worker_grace_secs, engine.worker_grace),
            shutdown_flush_timeout: secs(
                layer.shutdown_flush_timeout_secs,
                engine.shutdown_flush_timeout,
            ),
            spool: Some(engine::spool::Spool::new(spool_dir)),
            node_id,
            role,
            node_timeout: secs(layer.node_timeout_secs, engine.node_timeout),
        },
        http: HttpSettings {
            bind,
            ui_dir: layer.ui_dir.unwrap_or(http.ui_dir),
            ws: WsSettings {
                max_queued_bytes: layer.ws_max_queued_bytes.unwrap_or(ws.max_queued_bytes),
                coalesce_ms: layer.ws_coalesce_ms.unwrap_or(ws.coalesce_ms),
                max_connections: layer
                    .ws_max_connections
                    .map_or(ws.max_connections, |n| n as usize),
                max_connections_per_token: layer
                    .ws_max_connections_per_token
                    .map_or(ws.max_connections_per_token, |n| n as usize),
                worker_max_unacked_bytes: layer
                    .worker_max_unacked_bytes
                    .unwrap_or(ws.worker_max_unacked_bytes),
                ..ws
            },
            workers: layer.http_workers.map(|w| w as usize),
            ws_allowed_origins,
            export_stall: secs(layer.export_stall_secs, http.export_stall),
            auth_failures_per_minute: layer
                .auth_failures_per_minute
                .map_or(gateway::auth::DEFAULT_AUTH_FAILURES_PER_MINUTE, |n| {
                    n as u32
                }),
            access_log: layer.access_log.unwrap_or(false),
            metrics_public: layer.metrics_public.unwrap_or(false),
            tls,
        },
        admin_token,
        json_logs: layer.log_format == Some(LogFormat::Json),
    }
}

/// This machine's name: the default `node_id`, stable across restarts of the
/// server on it.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-_:".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect(),
        _ => "tasklens".to_owned(),
    }
}

/// The configuration file's settings; problems go to `errors`.
fn read_file(explicit: Option<&Path>, errors: &mut Vec<String>) -> (Layer, Option<PathBuf>) {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("tasklens.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return (Layer::default(), None)
        }
        Err(e) => {
            errors.push(format!("{}: cannot read: {e}", path.display()));
            return (Layer::default(), None);
        }
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            errors.push(format!("{}: {}", path.display(), e.to_string().trim()));
            return (Layer::default(), None);
        }
    };
    let layer = layer::from_toml(table, &path, unknown_hint, errors);
    (layer, Some(path))
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

    /// `load` with these variables and an empty file (not whatever `tasklens.toml`
    /// the working directory may hold).
    fn load_env(pairs: &[(&str, &str)]) -> Result<AppConfig, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        load(Some(&empty), &env(pairs), &Overrides::default())
    }

    #[test]
    fn defaults_apply_without_anything_set() {
        let config = load_env(&[]).unwrap();
        assert_eq!(config.http.bind, "127.0.0.1:8080");
        assert_eq!(config.database.url, DatabaseSettings::DEFAULT_URL);
        assert_eq!(config.engine.sink.flush_interval_ms, 2000);
        assert_eq!(config.engine.retention_days, None);
        assert!(config.admin_token.is_none());
        // An explicitly named file must exist.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.toml");
        let errors = load(Some(&missing), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(errors[0].contains("absent.toml: cannot read"), "{errors:?}");
    }

    #[test]
    fn every_number_is_checked_against_its_range() {
        for (name, min, max) in Layer::RANGES {
            let var = format!("TASKLENS_{}", name.to_ascii_uppercase());
            let mut bad = vec![(max + 1).to_string(), "x".into(), "-1".into(), "1.5".into()];
            if *min > 0 {
                bad.push((min - 1).to_string());
            }
            let want = format!("{name}: must be a whole number from {min} to {max}");
            for value in bad {
                let errors = load_env(&[(&var, &value)]).unwrap_err();
                assert!(
                    errors.iter().any(|e| e.starts_with(&want)),
                    "{var}={value}: {errors:?}"
                );
            }
        }
        // And from the file, where TOML's own types are checked too.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tasklens.toml");
        std::fs::write(
            &file,
            "flush_interval_ms = \"fast\"\nretention_days = 40000\nbind = 8080\n",
        )
        .unwrap();
        let all = load(Some(&file), &env(&[]), &Overrides::default())
            .unwrap_err()
            .join("\n");
        for expected in [
            "flush_interval_ms: must be a whole number from 1 to 3600000, not \"fast\"",
            "retention_days: must be a whole number from 0 to 36500, not 40000",
            "bind: must be a string, not 8080",
        ] {
            assert!(all.contains(expected), "{expected} missing from:\n{all}");
        }
    }

    #[test]
    fn kubernetes_service_variables_pass_and_typos_get_the_nearest_name() {
        let config = load_env(&[
            ("TASKLENS_PORT", "tcp://10.0.0.7:8080"),
            ("TASKLENS_PORT_8080_TCP", "tcp://10.0.0.7:8080"),
            ("TASKLENS_PORT_8080_TCP_ADDR", "10.0.0.7"),
            ("TASKLENS_SERVICE_HOST", "10.0.0.7"),
            ("TASKLENS_SERVICE_PORT", "8080"),
            ("TASKLENS_SERVICE_PORT_HTTP", "8080"),
        ]);
        assert!(config.is_ok(), "{config:?}");
        let errors = load_env(&[
            ("TASKLENS_FLUSH_INTERVAL", "100"),
            ("TASKLENS_SHELL_ENABLD", "true"),
            ("TASKLENS_NOTHING_LIKE_IT", "1"),
        ])
        .unwrap_err();
        let all = errors.join("\n");
        for expected in [
            "TASKLENS_FLUSH_INTERVAL: unknown setting (did you mean flush_interval_ms?",
            "TASKLENS_SHELL_ENABLD: unknown setting (did you mean shell_enabled?",
            "TASKLENS_NOTHING_LIKE_IT: unknown setting (see docs/configuration.md for the list)",
        ] {
            assert!(all.contains(expected), "{expected} missing from:\n{all}");
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn bind_must_be_host_and_port() {
        for bad in [
            "8080",
            "localhost",
            ":8080",
            "127.0.0.1:http",
            "127.0.0.1:70000",
            "",
        ] {
            let errors = load_env(&[("TASKLENS_BIND", bad)]).unwrap_err();
            assert!(
                errors.iter().any(|e| e.starts_with("bind: ")),
                "{bad:?}: {errors:?}"
            );
        }
        for good in ["127.0.0.1:0", "localhost:8080", "[::1]:9000", "0.0.0.0:80"] {
            let config = load_env(&[("TASKLENS_BIND", good)]);
            assert_eq!(config.map(|c| c.http.bind), Ok(good.to_owned()));
        }
    }

    #[test]
    fn a_buffer_smaller_than_a_batch_is_refused() {
        let errors = load_env(&[
            ("TASKLENS_BATCH_MAX_ROWS", "50000"),
            ("TASKLENS_BUFFER_MAX_ROWS", "20000"),
        ])
        .unwrap_err();
        assert_eq!(
            errors.last().map(String::as_str),
            Some("buffer_max_rows (20000) must be at least batch_max_rows (50000)"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_projects_own_variables_are_not_mistaken_for_typos() {
        let config = load_env(&[
            ("TASKLENS_BIN", "/x/tasklens"),
            ("TASKLENS_WASM_TARGET_DIR", "/x/wasm"),
            ("TASKLENS_PG_BIN", "/usr/lib/postgresql/15/bin"),
            ("TASKLENS_TEST_PG_URL", "postgres://x"),
            ("TASKLENS_SERVER", "http://127.0.0.1:1"),
            ("TASKLENS_TOKEN", "t"),
            ("TASKLENS_LOG", "info"),
        ]);
        assert!(config.is_ok(), "{:?}", config.err());
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

    #[test]
    fn shell_is_off_unless_enabled_and_passes_only_the_names_allowed() {
        let config = load_env(&[]).unwrap();
        assert_eq!(config.engine.shell, ShellSettings::default());
        assert!(!config.engine.shell.enabled);
        let config = load_env(&[
            ("TASKLENS_SHELL_ENABLED", "yes"),
            ("TASKLENS_SHELL_ENV_PASSTHROUGH", "HTTPS_PROXY, _X1,"),
        ])
        .unwrap();
        assert!(config.engine.shell.enabled);
        assert_eq!(config.engine.shell.env_passthrough, ["HTTPS_PROXY", "_X1"]);
        for (value, expected) in [("maybe", "shell_enabled"), ("", "shell_enabled")] {
            let errors = load_env(&[("TASKLENS_SHELL_ENABLED", value)]).unwrap_err();
            assert!(
                errors.join("\n").contains(expected),
                "{value:?}: {errors:?}"
            );
        }
        for bad in ["1ABC", "A-B", "A=B", "TASKLENS_ADMIN_TOKEN"] {
            let errors = load_env(&[("TASKLENS_SHELL_ENV_PASSTHROUGH", bad)]).unwrap_err();
            assert!(
                errors.join("\n").contains("shell_env_passthrough"),
                "{bad}: {errors:?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tasklens.toml");
        std::fs::write(
            &file,
            "shell_enabled = true\nshell_env_passthrough = [\"HTTPS_PROXY\"]\n",
        )
        .unwrap();
        let config = load(Some(&file), &env(&[]), &Overrides::default()).unwrap();
        assert!(config.engine.shell.enabled);
        assert_eq!(config.engine.shell.env_passthrough, ["HTTPS_PROXY"]);
        for bad in [
            "shell_enabled = \"yes\"\n",
            "shell_env_passthrough = \"A\"\n",
            "shell_env_passthrough = [1]\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            let errors = load(Some(&file), &env(&[]), &Overrides::default()).unwrap_err();
            assert!(errors.join("\n").contains("shell_"), "{bad}: {errors:?}");
        }
    }

    #[test]
    fn websocket_origins_must_be_origins() {
        let config = load_env(&[(
            "TASKLENS_WS_ALLOWED_ORIGINS",
            "https://console.example.com, http://10.0.0.5:8080",
        )])
        .unwrap();
        assert_eq!(
            config.http.ws_allowed_origins,
            ["https://console.example.com", "http://10.0.0.5:8080"]
        );
        for bad in [
            "console.example.com",
            "https://x/path",
            "ftp://x",
            "https://",
        ] {
            let errors = load_env(&[("TASKLENS_WS_ALLOWED_ORIGINS", bad)]).unwrap_err();
            assert!(
                errors.join("\n").contains("ws_allowed_origins"),
                "{bad}: {errors:?}"
            );
        }
    }

    #[test]
    fn admin_tokens_chosen_by_operators_are_at_least_24_characters() {
        let errors = load_env(&[("TASKLENS_ADMIN_TOKEN", &"x".repeat(23))]).unwrap_err();
        assert!(
            errors.join("\n").contains("at least 24 characters"),
            "{errors:?}"
        );
        let errors =
            load_env(&[("TASKLENS_ADMIN_TOKEN", &format!("  {}  ", "x".repeat(20)))]).unwrap_err();
        assert!(errors.join("\n").contains("admin_token"), "{errors:?}");
        let config = load_env(&[("TASKLENS_ADMIN_TOKEN", &"x".repeat(24))]).unwrap();
        assert_eq!(
            config.admin_token.as_ref().map(gateway::Secret::expose),
            Some("x".repeat(24).as_str())
        );
    }

    #[test]
    fn a_replaced_option_names_its_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tasklens.toml");
        std::fs::write(&file, "ws_mailbox_capacity = 256\n").unwrap();
        let errors = load(Some(&file), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(
            errors
                .join("\n")
                .contains("replaced by ws_max_queued_bytes"),
            "{errors:?}"
        );
        let errors = load(
            None,
            &env(&[("TASKLENS_WS_MAILBOX_CAPACITY", "256")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            errors
                .join("\n")
                .contains("replaced by ws_max_queued_bytes"),
            "{errors:?}"
        );
        let config = load(
            None,
            &env(&[("TASKLENS_WS_MAX_QUEUED_BYTES", "1048576")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.http.ws.max_queued_bytes, 1 << 20);
        for bad in ["1", "0x10", "2000000000"] {
            let errors = load(
                None,
                &env(&[("TASKLENS_WS_MAX_QUEUED_BYTES", bad)]),
                &Overrides::default(),
            )
            .unwrap_err();
            assert!(
                errors.join("\n").contains("ws_max_queued_bytes"),
                "{bad}: {errors:?}"
            );
        }
    }

    #[test]
    fn secrets_never_print() {
        let token = "a-secret-admin-token-of-32-chars!";
        let config = load_env(&[
            ("TASKLENS_ADMIN_TOKEN", token),
            (
                "TASKLENS_DATABASE_URL",
                "postgres://app:pg-pass-word@db.internal:5432/tasklens",
            ),
        ])
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(!shown.contains("pg-pass-word"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal"), "{shown}");
        assert_eq!(
            config.admin_token.as_ref().map(gateway::Secret::expose),
            Some(token)
        );
        assert_eq!(
            config.database.url,
            "postgres://app:pg-pass-word@db.internal:5432/tasklens"
        );
    }

    #[test]
    fn log_format_is_text_or_json_in_any_case() {
        assert!(!load_env(&[]).unwrap().json_logs);
        assert!(
            load_env(&[("TASKLENS_LOG_FORMAT", "JSON")])
                .unwrap()
                .json_logs
        );
        let errors = load_env(&[("TASKLENS_LOG_FORMAT", "xml")]).unwrap_err();
        assert_eq!(
            errors.last().map(String::as_str),
            Some("log_format: must be text or json, not \"xml\"")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tasklens.toml");
        std::fs::write(&file, "log_format = \"json\"\naccess_log = true\n").unwrap();
        let config = load(Some(&file), &env(&[]), &Overrides::default()).unwrap();
        assert!(config.json_logs && config.http.access_log);
        // The environment overrides the file, typed the same way.
        let config = load(
            Some(&file),
            &env(&[
                ("TASKLENS_LOG_FORMAT", "text"),
                ("TASKLENS_ACCESS_LOG", "off"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(!config.json_logs && !config.http.access_log);
        std::fs::write(&file, "log_format = 1\nmetrics_public = \"yes\"\n").unwrap();
        let all = load(Some(&file), &env(&[]), &Overrides::default())
            .unwrap_err()
            .join("\n");
        assert!(all.contains("log_format: "), "{all}");
        assert!(
            all.contains("metrics_public: must be true or false, not \"yes\""),
            "{all}"
        );
    }

    #[test]
    fn node_ids_are_names_and_default_to_the_host() {
        let config = load_env(&[]).unwrap();
        assert!(!config.engine.node_id.is_empty());
        let config = load_env(&[("TASKLENS_NODE_ID", "engine-2.eu:1")]).unwrap();
        assert_eq!(config.engine.node_id, "engine-2.eu:1");
        for bad in ["", "a b", "x/y", &"n".repeat(65)] {
            let errors = load_env(&[("TASKLENS_NODE_ID", bad)]).unwrap_err();
            assert!(
                errors.join("\n").contains("node_id: "),
                "{bad:?}: {errors:?}"
            );
        }
        let errors = load_env(&[("TASKLENS_NODE_TIMEOUT_SECS", "2")]).unwrap_err();
        assert!(
            errors.join("\n").contains("node_timeout_secs"),
            "{errors:?}"
        );
    }

    #[test]
    fn roles_split_a_postgresql_deployment_and_sqlite_has_one() {
        use engine::NodeRole;
        assert_eq!(load_env(&[]).unwrap().engine.role, NodeRole::All);
        let pg = ("TASKLENS_DATABASE_URL", "postgres://u@h/db");
        for (text, role) in [
            ("gateway", NodeRole::Gateway),
            (" Engine", NodeRole::Engine),
        ] {
            let config = load_env(&[pg, ("TASKLENS_ROLE", text)]).unwrap();
            assert_eq!(config.engine.role, role);
        }
        let errors = load_env(&[pg, ("TASKLENS_ROLE", "worker")]).unwrap_err();
        assert!(
            errors
                .join("\n")
                .contains("must be all, gateway or engine, not \"worker\""),
            "{errors:?}"
        );
        let errors = load_env(&[("TASKLENS_ROLE", "engine")]).unwrap_err();
        assert!(
            errors.join("\n").contains("role: engine needs PostgreSQL"),
            "{errors:?}"
        );
        // The flag wins over the environment.
        let config = load(
            None,
            &env(&[pg, ("TASKLENS_ROLE", "engine")]),
            &Overrides {
                role: Some(NodeRole::Gateway),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(config.engine.role, NodeRole::Gateway);
    }
}
