//! Old-signature plugins and the capture of `log` records into task logs.
//!
//! [`LegacyPlugin`] is the signature plugins had before the task logger existed:
//! `execute(params)`, logging through the `log` crate's macros. [`Legacy`] adapts one
//! to [`BlockingPlugin`] (params stay untyped JSON).
//!
//! The capture is the one piece of global state in the engine, because the `log`
//! facade has a single global logger. [`install`] (called once, in the binary's
//! `main`) makes [`CaptureLogger`] that logger: on a thread that is running a task's
//! plugin (marked by [`CaptureGuard`]), a `log` record becomes a record of that task
//! with source `plugin` and its `log` target in the metadata; anywhere else it is an
//! operator log line, filtered by `app_log_level`, written by `env_logger`. Threads the
//! plugin starts itself are not marked, so their `log` output goes to the operator log.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};

use protocol::{LogLevel, LogSettings};

use super::{BlockingPlugin, Describe, PluginError, TaskContext, TaskLogger};

/// A plugin with the pre-`TaskContext` signature.
pub trait LegacyPlugin: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    fn example_params(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    /// Checks parameters before the task is created (see [`BlockingPlugin::check`]).
    fn validate(&self, _params: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
    /// Runs the task; `log::info!` and friends go to the task's log.
    fn execute(&self, params: &serde_json::Value) -> Result<serde_json::Value, String>;
}

/// Adapts a [`LegacyPlugin`] to [`BlockingPlugin`].
pub struct Legacy<P>(pub P);

impl<P: LegacyPlugin> Describe for Legacy<P> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn description(&self) -> &str {
        self.0.description()
    }
    fn example_params(&self) -> serde_json::Value {
        self.0.example_params()
    }
    fn is_legacy(&self) -> bool {
        true
    }
}

impl<P: LegacyPlugin> BlockingPlugin for Legacy<P> {
    type Params = serde_json::Value;

    fn check(&self, params: &serde_json::Value) -> Result<(), String> {
        self.0.validate(params)
    }

    fn run(
        &self,
        _ctx: TaskContext,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, PluginError> {
        // The blocking adapter has marked this thread, so the plugin's `log` records
        // are already captured into the task's log.
        self.0.execute(&params).map_err(PluginError::Failed)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<TaskLogger>> = const { RefCell::new(None) };
}

/// Marks the current thread as running a task's plugin until dropped.
pub struct CaptureGuard(());

impl CaptureGuard {
    pub fn enter(logger: TaskLogger) -> Self {
        CURRENT.with(|c| *c.borrow_mut() = Some(logger));
        CaptureGuard(())
    }
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

static APP_LEVEL: AtomicU8 = AtomicU8::new(1);

/// The global `log` logger. See the module documentation.
pub struct CaptureLogger {
    inner: env_logger::Logger,
}

/// Installs [`CaptureLogger`] around `inner` as the global `log` logger.
///
/// # Errors
/// When a global logger was already set.
pub fn install(inner: env_logger::Logger) -> Result<(), log::SetLoggerError> {
    log::set_boxed_logger(Box::new(CaptureLogger { inner }))?;
    apply_levels(&LogSettings::default());
    Ok(())
}

/// Applies runtime levels: `app_log_level` to operator output, and the `log` facade's
/// maximum to the more verbose of the two levels so task records still arrive.
pub fn apply_levels(settings: &LogSettings) {
    APP_LEVEL.store(settings.app_log_level.as_i16() as u8, Ordering::Relaxed);
    let most_verbose = settings.app_log_level.min(settings.task_log_level);
    log::set_max_level(to_filter(most_verbose));
}

fn to_filter(level: LogLevel) -> log::LevelFilter {
    match level {
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Warning => log::LevelFilter::Warn,
        LogLevel::Error => log::LevelFilter::Error,
    }
}

fn from_log(level: log::Level) -> LogLevel {
    match level {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warning,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug | log::Level::Trace => LogLevel::Debug,
    }
}

fn app_level() -> LogLevel {
    LogLevel::from_i16(APP_LEVEL.load(Ordering::Relaxed) as i16).unwrap_or(LogLevel::Info)
}

impl log::Log for CaptureLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let level = from_log(metadata.level());
        let in_task = CURRENT.with(|c| c.borrow().as_ref().map(|l| l.enabled(level)));
        in_task.unwrap_or_else(|| level >= app_level() && self.inner.enabled(metadata))
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = from_log(record.level());
        // Taken out while writing, so anything the engine logs meanwhile on this
        // thread goes to the operator log instead of recursing.
        let task = CURRENT.with(|c| c.borrow_mut().take());
        match task {
            Some(logger) => {
                if logger.enabled(level) {
                    logger.log_with(
                        level,
                        record.args().to_string(),
                        serde_json::json!({ "target": record.target() }),
                    );
                }
                CURRENT.with(|c| *c.borrow_mut() = Some(logger));
            }
            None => {
                if level >= app_level() && self.inner.enabled(record.metadata()) {
                    self.inner.log(record);
                }
            }
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}
