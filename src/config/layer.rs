//! [`Layer`]: the settings one source gives (the file, the environment, the
//! command line), every one optional, typed, and known by name. Sources are read
//! into layers key by key, so that every bad key is reported, then stacked with
//! [`Layer::over`].

use std::path::{Path, PathBuf};

use gateway::Secret;
use serde::de::value::MapDeserializer;
use serde::{Deserialize, Deserializer};

use super::env::{EnvError, EnvValue};

/// `log_format`: how the server writes its own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(serde::de::Error::custom(format!(
                "must be text or json, not {text:?}"
            ))),
        }
    }
}

/// Declares the settings once: the struct, its names, the numbers' ranges, and
/// how two layers stack.
macro_rules! layer {
    (
        numbers { $($n:ident: $min:literal ..= $max:literal),* $(,)? }
        others { $($o:ident: $t:ty),* $(,)? }
    ) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Layer {
            $(pub $n: Option<u64>,)*
            $(pub $o: Option<$t>,)*
        }

        impl Layer {
            /// Every setting's name.
            pub const NAMES: &'static [&'static str] =
                &[$(stringify!($n),)* $(stringify!($o),)*];

            /// `(name, minimum, maximum)` of every number.
            pub const RANGES: &'static [(&'static str, u64, u64)] =
                &[$((stringify!($n), $min, $max),)*];

            /// Each number that is set, by name.
            pub fn numbers(&self) -> Vec<(&'static str, u64)> {
                let mut set = Vec::new();
                $(if let Some(v) = self.$n { set.push((stringify!($n), v)); })*
                set
            }

            /// `self`'s settings where it has them, `lower`'s elsewhere.
            pub fn over(self, lower: Layer) -> Layer {
                Layer {
                    $($n: self.$n.or(lower.$n),)*
                    $($o: self.$o.or(lower.$o),)*
                }
            }
        }
    };
}

layer! {
    numbers {
        flush_interval_ms: 1 ..= 3_600_000,
        batch_max_rows: 1 ..= 1_000_000,
        buffer_max_rows: 1_000 ..= 100_000_000,
        buffer_max_bytes: 1_048_576 ..= 68_719_476_736,
        handover_interval_ms: 1 ..= 10_000,
        max_concurrent_tasks: 1 ..= 10_000,
        max_queued_tasks: 1 ..= 1_000_000,
        max_tasks_per_viewer: 1 ..= 1_000_000,
        retention_days: 0 ..= 36_500,
        db_pool_size: 2 ..= 1_000,
        db_busy_timeout_ms: 0 ..= 600_000,
        ws_max_queued_bytes: 65_536 ..= 1_073_741_824,
        ws_coalesce_ms: 1 ..= 10_000,
        ws_max_connections: 1 ..= 1_000_000,
        ws_max_connections_per_token: 1 ..= 1_000_000,
        http_workers: 1 ..= 1_024,
        shutdown_grace_secs: 1 ..= 3_600,
        auth_failures_per_minute: 1 ..= 100_000,
        export_stall_secs: 1 ..= 3_600,
        worker_grace_secs: 1 ..= 86_400,
        shutdown_flush_timeout_secs: 1 ..= 3_600,
        worker_max_unacked_bytes: 1_048_576 ..= 1_073_741_824,
        node_timeout_secs: 3 ..= 3_600,
    }
    others {
        database_url: String,
        bind: String,
        ui_dir: PathBuf,
        admin_token: Secret,
        spool_dir: PathBuf,
        log_format: LogFormat,
        tls_cert: PathBuf,
        tls_key: PathBuf,
        shell_enabled: bool,
        access_log: bool,
        metrics_public: bool,
        shell_env_passthrough: Vec<String>,
        ws_allowed_origins: Vec<String>,
        node_id: String,
        role: engine::NodeRole,
    }
}

/// What a value should have been, in words, from serde's message.
fn expected(name: &str, serde_message: &str, shown: &str) -> String {
    if let Some((_, min, max)) = Layer::RANGES.iter().find(|(n, _, _)| *n == name) {
        return format!("must be a whole number from {min} to {max}, not {shown}");
    }
    let kind = if serde_message.contains("expected a boolean") {
        "must be true or false"
    } else if serde_message.contains("expected a sequence") || shown.starts_with('[') {
        "must be a list of strings like [\"HTTPS_PROXY\"]"
    } else if serde_message.contains("expected a string") {
        "must be a string"
    } else {
        return serde_message.to_owned();
    };
    format!("{kind}, not {shown}")
}

/// The settings of a TOML table, each key read on its own; problems (unknown keys
/// with `hint`, wrong types) go to `errors`.
pub fn from_toml(
    table: toml::Table,
    path: &Path,
    hint: impl Fn(&str) -> String,
    errors: &mut Vec<String>,
) -> Layer {
    let mut layer = Layer::default();
    for (key, value) in table {
        if !Layer::NAMES.contains(&key.as_str()) {
            errors.push(format!(
                "{}: unknown key {key:?} ({})",
                path.display(),
                hint(&key)
            ));
            continue;
        }
        let shown = value.to_string();
        let mut single = toml::Table::new();
        single.insert(key.clone(), value);
        match toml::Value::Table(single).try_into::<Layer>() {
            Ok(one) => layer = one.over(layer),
            Err(e) => errors.push(format!("{key}: {}", expected(&key, e.message(), &shown))),
        }
    }
    layer
}

/// The setting `name` (a known name) with the environment value `value`.
pub fn from_env(name: &str, value: &str) -> Result<Layer, String> {
    let single = std::iter::once((name.to_owned(), EnvValue(value.to_owned())));
    Layer::deserialize(MapDeserializer::<_, EnvError>::new(single))
        .map_err(|e| format!("{name}: {}", expected(name, &e.0, &format!("{value:?}"))))
}

/// The settings given on the command line.
pub fn from_flags(
    bind: Option<String>,
    database_url: Option<String>,
    ui_dir: Option<PathBuf>,
    role: Option<engine::NodeRole>,
) -> Layer {
    Layer {
        bind,
        database_url,
        ui_dir,
        role,
        ..Layer::default()
    }
}
