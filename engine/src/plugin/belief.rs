//! `belief_scope`: a guard that brackets a piece of work in the task's log.
//!
//! Creating it writes `Entry`, dropping it writes `Exit`, and
//! [`BeliefScope::coherence`] writes `Coherence:OK` or `Coherence:FAILED`; all at
//! DEBUG, with `{"scope": NAME}` in the metadata. Nothing is written while the
//! `belief_scope_enabled` setting is off, and, like every record, nothing below the
//! `task_log_level` gate (INFO by default: set it to DEBUG to keep them).

use protocol::LogLevel;

use super::TaskLogger;

/// See the module documentation.
#[must_use = "the scope writes Exit when dropped; bind it to a variable"]
pub struct BeliefScope {
    logger: TaskLogger,
    name: String,
}

impl BeliefScope {
    pub fn new(logger: &TaskLogger, name: impl Into<String>) -> Self {
        let scope = BeliefScope {
            logger: logger.clone(),
            name: name.into(),
        };
        scope.write("Entry");
        scope
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records whether what the scope believed held.
    pub fn coherence(&self, ok: bool) {
        self.write(if ok {
            "Coherence:OK"
        } else {
            "Coherence:FAILED"
        });
    }

    fn write(&self, what: &str) {
        if self.logger.belief_scope_enabled() && self.logger.enabled(LogLevel::Debug) {
            self.logger
                .debug_with(what, serde_json::json!({ "scope": self.name }));
        }
    }
}

impl Drop for BeliefScope {
    fn drop(&mut self) {
        self.write("Exit");
    }
}

/// `let _scope = belief_scope(&ctx.logger, "load_dashboards");`
pub fn belief_scope(logger: &TaskLogger, name: impl Into<String>) -> BeliefScope {
    BeliefScope::new(logger, name)
}

impl TaskLogger {
    /// A [`BeliefScope`] writing through this logger (and its source).
    pub fn belief_scope(&self, name: impl Into<String>) -> BeliefScope {
        BeliefScope::new(self, name)
    }
}
