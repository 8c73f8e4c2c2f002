//! [`TaskLogger`]: how plugin code writes to its task's log.
//!
//! Each record gets the task's next `seq` and a timestamp at emission, under one
//! short lock, after the level gate (`task_log_level`): a record below it is neither
//! numbered, stored nor streamed. Records collect in a buffer that is handed over as
//! one shared batch, to the sink and the live hub, when it holds [`HANDOVER_ROWS`]
//! records or when the task actor's timer fires (every few milliseconds), so there
//! is no actor message per record. The hand-over happens under the same lock as the
//! numbering, so batches leave in seq order.
//!
//! Groups (`protocol::group`) are placed where records are numbered, here, for the
//! task's own records and a worker's alike. A group's marks pass the level gate
//! (a section stays a section whatever is shown inside it), and the groups still
//! open when the task ends are closed by records of their own.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix::Recipient;
use protocol::entry::{cap_message, sanitize_source};
use protocol::group::{self, Groups};
use protocol::{Body, LogEntry, LogLevel, TaskId, Timestamp};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::batch::{BufferGate, LogBatch};
use crate::cancel::CancelToken;
use crate::events::EngineEvents;
use crate::settings::LiveSettings;
use crate::sink::AppendLogs;

/// Records per hand-over at most: large enough that messages are rare, small enough
/// that a fast task's followers see records within milliseconds.
pub const HANDOVER_ROWS: usize = 1024;

/// The source of records written through a task's own logger.
pub const DEFAULT_SOURCE: &str = "plugin";

/// Writes records to one task's log. Cheap to clone; clones share the task's
/// sequence and buffer. `with_source` gives a logger for another component.
#[derive(Clone)]
pub struct TaskLogger {
    core: Arc<LoggerCore>,
    source: Arc<str>,
}

impl std::fmt::Debug for TaskLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLogger")
            .field("task_id", &self.core.task_id)
            .field("source", &self.source)
            .finish()
    }
}

/// Where handed-over batches go.
#[derive(Clone)]
pub(crate) struct Outlet {
    pub sink: Recipient<AppendLogs>,
    pub events: EngineEvents,
    pub gate: Arc<BufferGate>,
}

struct LoggerCore {
    task_id: TaskId,
    settings: LiveSettings,
    cancel: CancelToken,
    outlet: Outlet,
    state: Mutex<LoggerState>,
}

struct LoggerState {
    next_seq: u64,
    last_ts: i64,
    buffer: Vec<LogEntry>,
    closed: bool,
    dropped_after_close: u64,
    groups: Groups,
}

impl TaskLogger {
    pub(crate) fn new(
        task_id: TaskId,
        settings: LiveSettings,
        cancel: CancelToken,
        outlet: Outlet,
    ) -> Self {
        TaskLogger {
            core: Arc::new(LoggerCore {
                task_id,
                settings,
                cancel,
                outlet,
                state: Mutex::new(LoggerState {
                    next_seq: 0,
                    last_ts: 0,
                    buffer: Vec::new(),
                    closed: false,
                    dropped_after_close: 0,
                    groups: Groups::default(),
                }),
            }),
            source: Arc::from(DEFAULT_SOURCE),
        }
    }

    pub fn task_id(&self) -> TaskId {
        self.core.task_id
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// A logger whose records carry `source` (cleaned: see
    /// `protocol::entry::sanitize_source`).
    pub fn with_source(&self, source: &str) -> TaskLogger {
        TaskLogger {
            core: self.core.clone(),
            source: Arc::from(sanitize_source(source, DEFAULT_SOURCE).as_ref()),
        }
    }

    /// Would a record at `level` be kept? Use it to skip building expensive messages.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level >= self.core.settings.task_level()
    }

    /// Whether `belief_scope` records are currently wanted.
    pub fn belief_scope_enabled(&self) -> bool {
        self.core.settings.belief_scope_enabled()
    }

    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        if self.enabled(level) {
            self.emit(level, Body::from_message::<()>(message.into(), None), true);
        }
    }

    /// A record with metadata (a JSON object; other values are wrapped as
    /// `{"value": …}`).
    pub fn log_with(
        &self,
        level: LogLevel,
        message: impl Into<String>,
        metadata: serde_json::Value,
    ) {
        if self.enabled(level) {
            self.emit(
                level,
                Body::from_message(message.into(), Some(&metadata)),
                true,
            );
        }
    }

    /// The fast path for busy emitters: the message is formatted (only when the level
    /// is kept) straight into the record's one buffer.
    ///
    /// ```ignore
    /// ctx.logger.log_fmt(LogLevel::Info, format_args!("copied {n} rows"));
    /// ```
    pub fn log_fmt(&self, level: LogLevel, message: std::fmt::Arguments<'_>) {
        if self.enabled(level) {
            self.emit(level, Body::emitted::<()>(message, None), true);
        }
    }

    /// As [`TaskLogger::log_fmt`], with metadata serialised from any `Serialize` value
    /// (a struct of the record's fields, say) into the same buffer, without building a
    /// `serde_json::Value` first. A non-object is wrapped as `{"value": …}`.
    pub fn log_fmt_with<M: Serialize + ?Sized>(
        &self,
        level: LogLevel,
        message: std::fmt::Arguments<'_>,
        metadata: &M,
    ) {
        if self.enabled(level) {
            self.emit(level, Body::emitted(message, Some(metadata)), true);
        }
    }

    /// A record with metadata already serialised (must be a JSON object).
    /// A `::group::` or `::endgroup::` line passes whatever the level.
    pub fn log_raw(&self, level: LogLevel, message: String, metadata: Option<Box<RawValue>>) {
        if self.enabled(level) || group::marker(&message).is_some() {
            self.emit(
                level,
                Body::new(cap_message(message), metadata.as_deref()),
                true,
            );
        }
    }

    /// A record of a body built by `Body::emitted` or `Body::from_message` (which
    /// apply the record rules). A `::group::` or `::endgroup::` line passes whatever
    /// the level.
    pub fn log_body(&self, level: LogLevel, body: Body) {
        if self.enabled(level) || group::marker(body.message()).is_some() {
            self.emit(level, body, true);
        }
    }

    /// Opens a group named `name` (a foldable section, `protocol::group`) until the
    /// guard is dropped, which closes the innermost open group:
    ///
    /// ```ignore
    /// let _deps = ctx.logger.group("Install dependencies");
    /// ctx.logger.info("resolving");
    /// ```
    ///
    /// The name is the rest of one line: line breaks become spaces.
    #[must_use = "the group closes when the guard is dropped"]
    pub fn group(&self, name: &str) -> GroupGuard {
        let name = name.replace(['\n', '\r'], " ");
        self.emit(
            LogLevel::Info,
            Body::emitted::<()>(format_args!("{}{}", group::OPEN_PREFIX, name.trim()), None),
            true,
        );
        GroupGuard {
            logger: self.clone(),
        }
    }

    pub fn debug(&self, message: impl Into<String>) {
        self.log(LogLevel::Debug, message)
    }
    pub fn info(&self, message: impl Into<String>) {
        self.log(LogLevel::Info, message)
    }
    pub fn warning(&self, message: impl Into<String>) {
        self.log(LogLevel::Warning, message)
    }
    pub fn error(&self, message: impl Into<String>) {
        self.log(LogLevel::Error, message)
    }
    pub fn debug_with(&self, message: impl Into<String>, metadata: serde_json::Value) {
        self.log_with(LogLevel::Debug, message, metadata)
    }
    pub fn info_with(&self, message: impl Into<String>, metadata: serde_json::Value) {
        self.log_with(LogLevel::Info, message, metadata)
    }
    pub fn warning_with(&self, message: impl Into<String>, metadata: serde_json::Value) {
        self.log_with(LogLevel::Warning, message, metadata)
    }
    pub fn error_with(&self, message: impl Into<String>, metadata: serde_json::Value) {
        self.log_with(LogLevel::Error, message, metadata)
    }

    /// A record from the engine itself (on an actor thread): never waits for room.
    pub(crate) fn log_nonblocking(
        &self,
        level: LogLevel,
        message: String,
        metadata: serde_json::Value,
    ) {
        if self.enabled(level) {
            self.emit(level, Body::from_message(message, Some(&metadata)), false);
        }
    }

    /// Numbers and buffers a record whose body already obeys the record rules (built
    /// by `Body::emitted` or `Body::from_message`, or capped).
    fn emit(&self, level: LogLevel, body: Body, may_wait: bool) {
        {
            let mut st = self.core.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.closed {
                st.dropped_after_close += 1;
                if st.dropped_after_close == 1 {
                    log::warn!(
                        "task_id={} A record was written after the task finished and was not kept (a thread the plugin started outlived it).",
                        self.core.task_id
                    );
                }
                return;
            }
            st.next_seq += 1;
            let now = now_micros().max(st.last_ts);
            st.last_ts = now;
            let seq = st.next_seq;
            let mut entry = LogEntry {
                seq,
                timestamp: Timestamp(now),
                level,
                source: self.source.clone(),
                body,
                group: None,
                mark: None,
                worst: None,
            };
            st.groups.place(&mut entry);
            st.buffer.push(entry);
            if st.buffer.len() >= HANDOVER_ROWS {
                self.core.hand_over_locked(&mut st);
            }
        }
        // Only a plugin's own thread waits: on an actor thread (an actor plugin, the
        // engine's own records) waiting would stall the very sink that makes room.
        if may_wait && self.core.outlet.gate.is_full() && actix::System::try_current().is_none() {
            let cancel = &self.core.cancel;
            self.core
                .outlet
                .gate
                .wait_for_room(|| cancel.is_cancelled());
        }
    }

    /// Takes records numbered elsewhere (by a remote worker), in seq order: those whose
    /// seq this task already has are skipped, the rest must continue the sequence
    /// without a gap. Never blocks: the worker's own window of unacknowledged records
    /// bounds what it sends. Returns how many were new. Their bodies must already obey
    /// the record rules (built by `Body::from_message`: the message capped, the
    /// metadata an object).
    ///
    /// # Errors
    /// A seq that does not follow the last one, or a task that has ended; nothing of
    /// `entries` from that record on is kept.
    pub fn append_numbered(&self, entries: Vec<LogEntry>) -> Result<usize, AppendError> {
        let mut st = self.core.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.closed {
            return Err(AppendError::Ended);
        }
        let mut added = 0;
        for mut entry in entries {
            if entry.seq <= st.next_seq {
                continue;
            }
            if entry.seq != st.next_seq + 1 {
                let last = st.next_seq;
                if added > 0 {
                    self.core.hand_over_locked(&mut st);
                }
                return Err(AppendError::Gap {
                    seq: entry.seq,
                    last,
                });
            }
            // A clock ahead of the server's would date the engine's own records after it.
            entry.timestamp.0 = entry.timestamp.0.min(now_micros());
            st.next_seq = entry.seq;
            st.last_ts = st.last_ts.max(entry.timestamp.0);
            st.groups.place(&mut entry);
            st.buffer.push(entry);
            added += 1;
            if st.buffer.len() >= HANDOVER_ROWS {
                self.core.hand_over_locked(&mut st);
            }
        }
        Ok(added)
    }

    /// Hands the buffered records over now (never blocks).
    pub fn flush(&self) {
        let mut st = self.core.state.lock().unwrap_or_else(|e| e.into_inner());
        self.core.hand_over_locked(&mut st);
    }

    /// Closes the groups still open, each with a record of its own, so that what
    /// the engine says of the task's end stands outside them.
    pub(crate) fn close_groups(&self) {
        let mut st = self.core.state.lock().unwrap_or_else(|e| e.into_inner());
        close_groups_locked(&mut st);
    }

    /// Closes the groups still open, hands over what is left and refuses further
    /// records. Returns the last seq.
    pub(crate) fn close(&self) -> u64 {
        let mut st = self.core.state.lock().unwrap_or_else(|e| e.into_inner());
        close_groups_locked(&mut st);
        self.core.hand_over_locked(&mut st);
        st.closed = true;
        st.next_seq
    }

    /// Seq of the last record emitted so far.
    pub fn last_seq(&self) -> u64 {
        self.core
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_seq
    }
}

/// An open group of a task's log; dropping it closes the innermost open group
/// ([`TaskLogger::group`]).
#[derive(Debug)]
pub struct GroupGuard {
    logger: TaskLogger,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.logger.emit(
            LogLevel::Info,
            Body::new(group::CLOSE_LINE.to_owned(), None),
            true,
        );
    }
}

fn close_groups_locked(st: &mut LoggerState) {
    if st.closed {
        return;
    }
    while st.groups.depth() > 0 {
        st.next_seq += 1;
        let now = now_micros().max(st.last_ts);
        st.last_ts = now;
        let mut entry = LogEntry {
            seq: st.next_seq,
            timestamp: Timestamp(now),
            level: LogLevel::Info,
            source: Arc::from(crate::task::SYSTEM_SOURCE),
            body: Body::new(group::CLOSE_LINE.to_owned(), None),
            group: None,
            mark: None,
            worst: None,
        };
        st.groups.place(&mut entry);
        st.buffer.push(entry);
    }
}

impl LoggerCore {
    fn hand_over_locked(&self, st: &mut LoggerState) {
        if st.buffer.is_empty() {
            return;
        }
        // The next buffer starts at this batch's size: a fast emitter never regrows it,
        // a slow one does not hold a large empty buffer.
        let capacity = st.buffer.len().clamp(16, HANDOVER_ROWS);
        let entries = std::mem::replace(&mut st.buffer, Vec::with_capacity(capacity));
        let rows = entries.len();
        let batch = Arc::new(LogBatch::new(self.task_id, entries));
        self.outlet.gate.admit(rows, batch.bytes());
        self.outlet.sink.do_send(AppendLogs {
            batch: batch.clone(),
        });
        self.outlet.events.logs_appended(&batch);
    }
}

/// Why [`TaskLogger::append_numbered`] refused records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("seq {seq} does not follow {last}: records must be numbered 1, 2, 3, … without gaps")]
    Gap { seq: u64, last: u64 },
    #[error("the task has ended and takes no more records")]
    Ended,
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
