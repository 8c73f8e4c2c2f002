//! [`LogSink`]: makes log records durable, in batches.
//!
//! State: the queue of handed-over batches not yet written, the one batch being
//! written (at most one flush is in flight, which is what SQLite's single writer
//! wants and keeps PostgreSQL inserts in order), counters of rows appended and rows
//! durable, and the callers waiting for a [`Flush`].
//!
//! Messages: [`AppendLogs`] from task loggers (plugin threads and task actors);
//! [`Flush`] from task actors (before a task may be marked finished) and from
//! shutdown; [`GetSinkStats`] for tests and diagnostics.
//!
//! A flush starts when the queue holds `batch_max_rows`, when the `flush_interval_ms`
//! timer fires, or when someone waits on [`Flush`]. The insert runs on a blocking
//! thread through `Db::run`. When it fails the batch goes back to the front of the
//! queue and is retried with exponential backoff (100 ms doubling to 5 s); nothing is
//! dropped, and the primary key `(task_id, seq)` makes the retry idempotent.
//!
//! A refusal is different: the database will never take those rows (the task's row
//! was deleted underneath, a value it cannot store). A refused batch of several
//! tasks is written again one task at a time; the task whose rows are refused on
//! their own has them moved to the spool's rejected file (shown and retried by
//! `tasklens spool`), counted as settled, and is reported (`LogsRejected`) so that
//! the manager stops it (it ends `failed`, saying why); what it sends afterwards
//! goes the same way. No other task waits on it.
//!
//! Backpressure: rows and their bytes are counted by the shared `BufferGate` from
//! hand-over until they are durable; emitters wait while more than `buffer_max_rows`
//! or `buffer_max_bytes` are pending. When the bound is reached while writes fail or
//! hang (a long outage), the sink spills: everything it holds is appended to the
//! spool, fsynced, and counted durable, so emitters go on at disk speed instead of
//! waiting for the database. Once a write succeeds again the spool is stored before
//! any newer batch, and removed.
//!
//! Final task statuses waiting for the database are held here too ([`OutcomePending`])
//! so that a shutdown during an outage spools them with the records.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use protocol::TaskId;
use storage::logs::insert_log_batches;
use storage::{Db, LogBatchRef};
use tokio::sync::oneshot;

use crate::batch::{BufferGate, LogBatch};
use crate::events::EngineEvents;
use crate::spool::Spool;
use storage::tasks::TaskOutcome;

/// How the sink batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSinkSettings {
    /// Longest a record waits in memory before a flush is started.
    pub flush_interval_ms: u64,
    /// Rows per database transaction at most; a full batch is flushed at once.
    pub batch_max_rows: usize,
    /// Rows that may wait to become durable before emitters are slowed.
    pub buffer_max_rows: usize,
    /// Bytes of records that may wait to become durable before emitters are slowed
    /// (records of 64 KiB would otherwise make `buffer_max_rows` gigabytes).
    pub buffer_max_bytes: u64,
}

impl Default for LogSinkSettings {
    fn default() -> Self {
        LogSinkSettings {
            flush_interval_ms: 2_000,
            batch_max_rows: 20_000,
            buffer_max_rows: 200_000,
            buffer_max_bytes: 256 << 20,
        }
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a write may hang, with the buffer full, before the sink spills.
const SPILL_AFTER: Duration = Duration::from_secs(1);

/// Whether the writer is keeping up, for readiness checks: shared, read without a
/// message so that a probe never waits behind a busy sink.
#[derive(Debug, Default)]
pub struct WriterHealth {
    failures: AtomicU32,
    /// Durations of flushes (seconds) not yet taken by a metrics scrape; bounded.
    durations: std::sync::Mutex<Vec<f64>>,
    /// When the write in flight began (µs since the epoch; 0 when none is).
    writing_since: AtomicI64,
    /// Final task statuses waiting for the database.
    outcomes: std::sync::atomic::AtomicUsize,
}

impl WriterHealth {
    /// Consecutive failed flushes (0 while writes succeed).
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Final task statuses waiting for the database.
    pub fn pending_outcomes(&self) -> usize {
        self.outcomes.load(Ordering::Relaxed)
    }

    /// Takes the flush durations recorded since the last call.
    pub fn take_durations(&self) -> Vec<f64> {
        std::mem::take(&mut *self.durations.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn record_duration(&self, seconds: f64) {
        let mut durations = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        // Nobody scrapes: keep the latest ones only.
        if durations.len() >= 10_000 {
            durations.drain(..5_000);
        }
        durations.push(seconds);
    }

    /// Whether writes are not getting through: the last one failed, or the one in
    /// flight has taken longer than `slow` (a database that does not answer).
    pub fn stuck(&self, slow: std::time::Duration) -> bool {
        let since = self.writing_since.load(Ordering::Relaxed);
        self.failures() > 0
            || (since > 0 && crate::logger::now_micros() - since > slow.as_micros() as i64)
    }
}

/// Takes a handed-over batch.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AppendLogs {
    pub batch: Arc<LogBatch>,
}

/// Resolves once the records of `task` (of every task, for `None`) handed over so
/// far are settled: stored, refused for good, or spooled at shutdown. Records
/// spilled during an outage settle only once the drain has stored them.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Flush {
    pub task: Option<TaskId>,
}

/// Writes everything not yet durable (queued, and the batch being written, whose
/// outcome is unknown) to the spool, and counts it settled. For shutdown, once the
/// database has had its time; replies with the rows spooled.
#[derive(Debug, Message)]
#[rtype(result = "std::io::Result<usize>")]
pub struct SpoolAll {
    pub spool: crate::spool::Spool,
}

/// A task's final status is waiting to be written; spooled with the records if the
/// process must stop first.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct OutcomePending {
    pub task_id: TaskId,
    /// `None` once the status is written.
    pub outcome: Option<TaskOutcome>,
}

/// Tries the records the database refused again (`POST /api/spool/retry`).
#[derive(Debug, Message)]
#[rtype(result = "Result<crate::spool::Retried, crate::EngineError>")]
pub struct RetryRejected;

/// Counters, for tests and diagnostics.
#[derive(Debug, Message)]
#[rtype(result = "SinkStats")]
pub struct GetSinkStats;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub appended_rows: u64,
    pub durable_rows: u64,
    /// Rows of tasks whose records the database refuses for good (not stored).
    pub rejected_rows: u64,
    /// Rows written to the spool (at shutdown, or during a long outage).
    pub spooled_rows: u64,
    /// Spooled rows stored in the database since (while running).
    pub unspooled_rows: u64,
    pub queued_rows: usize,
    pub flushes: u64,
    pub failed_flushes: u64,
}

pub struct LogSink {
    db: Db,
    settings: LogSinkSettings,
    gate: Arc<BufferGate>,
    events: EngineEvents,
    queue: VecDeque<Arc<LogBatch>>,
    queued_rows: usize,
    in_flight: bool,
    /// The batches being written (kept for [`SpoolAll`]).
    writing: Vec<Arc<LogBatch>>,
    retry_scheduled: bool,
    consecutive_failures: u32,
    health: Arc<WriterHealth>,
    stats: SinkStats,
    /// Rows handed over and not yet settled, per task. A waiter on a task resolves
    /// when its entry is gone, whatever order other tasks' rows settle in.
    unsettled: HashMap<TaskId, u64>,
    waiters: Vec<(Option<TaskId>, oneshot::Sender<()>)>,
    /// Flushes left to write one task at a time, after a batch of several tasks was
    /// refused: so that one task's refused rows cannot hold the others back.
    isolating: usize,
    /// Tasks whose records the database refused; what they still send is set aside.
    rejected: HashSet<TaskId>,
    spool: Option<Spool>,
    /// This node's id, when other nodes are told of stored records (PostgreSQL).
    announce_as: Option<Arc<str>>,
    /// Tasks other nodes' sessions follow, until when: written every
    /// [`WATCHED_FLUSH`] rather than every `flush_interval_ms`.
    watched: HashMap<TaskId, std::time::Instant>,
    /// Until when another node searches every task's records live: all are written
    /// every [`WATCHED_FLUSH`].
    searched_until: Option<std::time::Instant>,
    /// The batch in flight was spooled: its outcome no longer counts.
    spilled_writing: bool,
    /// The spool may hold what this process spilled and did not store yet.
    spool_unstored: bool,
    /// Rows spilled and not yet stored, per task (still `unsettled`).
    spilled: HashMap<TaskId, u64>,
    /// `spilled` when the drain in flight began: what it is storing.
    draining: Option<HashMap<TaskId, u64>>,
    /// Final statuses not yet written.
    outcomes: HashMap<TaskId, TaskOutcome>,
    /// A retry of the refused records runs.
    retrying: bool,
    /// Set once everything was spooled at shutdown: what still arrives is spooled
    /// at once, since the process is about to exit.
    shutdown_spool: Option<Spool>,
}

impl LogSink {
    pub fn new(
        db: Db,
        settings: LogSinkSettings,
        gate: Arc<BufferGate>,
        events: EngineEvents,
        spool: Option<Spool>,
    ) -> Self {
        LogSink {
            db,
            settings,
            gate,
            events,
            queue: VecDeque::new(),
            queued_rows: 0,
            in_flight: false,
            writing: Vec::new(),
            retry_scheduled: false,
            consecutive_failures: 0,
            health: Arc::default(),
            stats: SinkStats::default(),
            unsettled: HashMap::new(),
            waiters: Vec::new(),
            isolating: 0,
            rejected: HashSet::new(),
            spool,
            announce_as: None,
            watched: HashMap::new(),
            searched_until: None,
            spilled_writing: false,
            spool_unstored: false,
            spilled: HashMap::new(),
            draining: None,
            outcomes: HashMap::new(),
            retrying: false,
            shutdown_spool: None,
        }
    }

    /// Tells the other nodes, as `node`, of every write (for their live followers).
    pub fn announcing_as(mut self, node: Arc<str>) -> Self {
        self.announce_as = Some(node);
        self
    }

    /// Counts `rows` of `task` as settled (stored, refused, or spooled at shutdown).
    fn settle(&mut self, task: TaskId, rows: u64) {
        if let Some(left) = self.unsettled.get_mut(&task) {
            *left = left.saturating_sub(rows);
            if *left == 0 {
                self.unsettled.remove(&task);
            }
        }
    }

    fn settle_batches(&mut self, batches: &[Arc<LogBatch>]) {
        for batch in batches {
            self.settle(batch.task_id, batch.entries.len() as u64);
        }
    }

    fn wake_waiters(&mut self) {
        let unsettled = &self.unsettled;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(task, _)| match task {
                Some(task) => !unsettled.contains_key(task),
                None => unsettled.is_empty(),
            });
        self.waiters = waiting;
        for (_, tx) in ready {
            let _ = tx.send(());
        }
    }

    /// Gives up on `task`'s records: the database refuses them for good. They go to
    /// the spool's rejected file, are released from the gate and counted as
    /// settled, the task is reported so that it ends, and what it sends from now on
    /// goes the same way.
    fn reject(&mut self, task: TaskId, taken: Vec<Arc<LogBatch>>, reason: String) {
        let mut refused = taken;
        let mut rest = VecDeque::with_capacity(self.queue.len());
        for batch in self.queue.drain(..) {
            if batch.task_id == task {
                refused.push(batch);
            } else {
                rest.push_back(batch);
            }
        }
        self.queue = rest;
        let (rows, bytes) = rows_and_bytes(refused.iter());
        self.queued_rows = rows_and_bytes(self.queue.iter()).0;
        let kept = self.set_aside(&refused, &reason);
        self.gate.release(rows, bytes);
        self.stats.rejected_rows += rows as u64;
        self.settle_batches(&refused);
        log::error!(
            "task_id={task} rows={rows} error=\"{reason}\" The database refuses this task's log records; {kept} the task is stopped. Other tasks are not affected."
        );
        if self.rejected.insert(task) {
            self.events.logs_rejected(task, reason);
        }
        self.wake_waiters();
    }

    /// Writes refused records to the rejected file; says where they went.
    fn set_aside(&self, batches: &[Arc<LogBatch>], reason: &str) -> &'static str {
        let Some(spool) = &self.spool else {
            return "they are dropped (no spool directory) and";
        };
        match spool.write_rejected(batches, reason) {
            Ok(_) => "they are kept in the spool's rejected file (see `tasklens spool`) and",
            Err(e) => {
                log::error!(
                    "path={} error=\"{err}\" Refused records could not be set aside; they are dropped.",
                    spool.rejected_path().display(),
                    err = crate::sink::error_chain(&e)
                );
                "they are dropped (the spool cannot be written) and"
            }
        }
    }

    /// Whether writes are failing or hanging while the buffer is full: time to spill.
    fn should_spill(&self) -> bool {
        // A drain that takes its time is the database working, not failing.
        let hanging = self.draining.is_none() && self.health.stuck(SPILL_AFTER);
        self.spool.is_some()
            && self.gate.is_full()
            && (self.consecutive_failures > 0 || hanging)
            && (!self.queue.is_empty() || (!self.writing.is_empty() && !self.spilled_writing))
    }

    /// Moves everything held (queued, and the batch being written unless it already
    /// was) to the spool, where it is durable, and lets emitters go on.
    fn spill(&mut self) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        let mut all: Vec<Arc<LogBatch>> = Vec::new();
        if !self.spilled_writing {
            all.extend(self.writing.iter().cloned());
        }
        all.extend(self.queue.iter().cloned());
        match spool.write(&all, &[]) {
            Ok(rows) => {
                self.queue.clear();
                self.queued_rows = 0;
                self.spilled_writing = !self.writing.is_empty();
                self.spool_unstored = true;
                self.gate.release(rows, rows_and_bytes(all.iter()).1);
                self.stats.spooled_rows += rows as u64;
                for batch in &all {
                    *self.spilled.entry(batch.task_id).or_default() +=
                        batch.entries.len() as u64;
                }
                log::warn!(
                    "rows={rows} path={} The database is not taking records and the buffer is full; they are spooled to disk and will be stored when it returns.",
                    spool.path().display()
                );
                self.report_durable(&all);
                self.wake_waiters();
            }
            Err(e) => log::error!(
                "path={} error=\"{err}\" Spilling to the spool failed; records stay in memory and emitters wait.",
                spool.path().display(),
                err = crate::sink::error_chain(&e)
            ),
        }
    }

    /// Tells listeners how far each task's records are durable.
    fn report_durable(&self, batches: &[Arc<LogBatch>]) {
        let mut last: HashMap<TaskId, u64> = HashMap::new();
        for batch in batches {
            let seq = last.entry(batch.task_id).or_default();
            *seq = (*seq).max(batch.last_seq());
        }
        for (task_id, seq) in last {
            self.events.logs_persisted(task_id, seq);
        }
    }

    /// Stores what this process spilled, before any newer batch.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        self.in_flight = true;
        self.spool_unstored = false;
        self.draining = Some(std::mem::take(&mut self.spilled));
        self.health
            .writing_since
            .store(crate::logger::now_micros(), Ordering::Relaxed);
        let db = self.db.clone();
        ctx.spawn(
            async move { crate::spool::replay(&db, &spool).await }
                .into_actor(self)
                .map(|result, act, ctx| act.drain_done(result, ctx)),
        );
    }

    fn drain_done(
        &mut self,
        result: Result<crate::spool::Replayed, crate::EngineError>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight = false;
        self.health.writing_since.store(0, Ordering::Relaxed);
        let drained = self.draining.take().unwrap_or_default();
        match result {
            Ok(done) => {
                self.stats.unspooled_rows += done.rows as u64;
                // What was spilled while the drain ran is stored too unless a spool
                // file is left (then the next drain stores it).
                let mut stored = drained;
                if self.spool.as_ref().is_some_and(|s| s.path().exists()) {
                    self.spool_unstored = true;
                } else {
                    for (task, rows) in self.spilled.drain() {
                        *stored.entry(task).or_default() += rows;
                    }
                }
                for (task, rows) in stored {
                    self.settle(task, rows);
                }
                self.wake_waiters();
                log::info!(
                    "rows={} The records spooled during the outage are now stored.",
                    done.rows
                );
                for (task, reason) in done.refused {
                    if self.rejected.insert(task) {
                        self.events.logs_rejected(task, reason);
                    }
                }
                self.maybe_flush(ctx);
            }
            Err(error) => {
                for (task, rows) in drained {
                    *self.spilled.entry(task).or_default() += rows;
                }
                self.spool_unstored = true;
                self.write_failed(&error, 0, ctx);
            }
        }
    }

    /// The handle readiness checks read.
    pub fn health(&self) -> Arc<WriterHealth> {
        self.health.clone()
    }

    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        if self.should_spill() {
            self.spill();
        }
        if self.in_flight || self.retry_scheduled {
            return;
        }
        if self.spool_unstored {
            self.drain(ctx);
            return;
        }
        if self.queue.is_empty() {
            return;
        }
        let mut taken = Vec::new();
        let mut rows = 0;
        if self.isolating > 0 {
            // One task's batches, in their order; the others keep their places.
            let task = self.queue.front().expect("not empty").task_id;
            let mut rest = VecDeque::with_capacity(self.queue.len());
            for batch in self.queue.drain(..) {
                let len = batch.entries.len();
                if batch.task_id == task
                    && (rows == 0 || rows + len <= self.settings.batch_max_rows)
                {
                    rows += len;
                    taken.push(batch);
                } else {
                    rest.push_back(batch);
                }
            }
            self.queue = rest;
        } else {
            while let Some(batch) = self.queue.front() {
                let len = batch.entries.len();
                if rows > 0 && rows + len > self.settings.batch_max_rows {
                    break;
                }
                rows += len;
                taken.push(self.queue.pop_front().expect("front exists"));
            }
        }
        self.queued_rows -= rows;
        self.in_flight = true;
        self.writing = taken.clone();
        self.health
            .writing_since
            .store(crate::logger::now_micros(), Ordering::Relaxed);
        let db = self.db.clone();
        let writing = taken.clone();
        let announce_as = self.announce_as.clone();
        ctx.spawn(
            async move {
                db.run_writer(move |conn| {
                    let refs: Vec<LogBatchRef<'_>> = writing
                        .iter()
                        .map(|b| LogBatchRef {
                            task_id: b.task_id,
                            entries: &b.entries,
                        })
                        .collect();
                    let inserted = insert_log_batches(conn, &refs)?;
                    if let Some(node) = &announce_as {
                        // Before the write counts as done, so a task's final status
                        // (written after its records) is announced after them too.
                        announce_stored(conn, &writing, node);
                    }
                    Ok(inserted)
                })
                .await
            }
            .into_actor(self)
            .map(move |result, act, ctx| act.flush_done(taken, rows, result, ctx)),
        );
    }

    fn flush_done(
        &mut self,
        taken: Vec<Arc<LogBatch>>,
        rows: usize,
        result: storage::Result<usize>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight = false;
        self.writing.clear();
        if std::mem::take(&mut self.spilled_writing) {
            // Already durable in the spool, which is stored next: whatever this write
            // did changes nothing but whether the database is back.
            self.health.writing_since.store(0, Ordering::Relaxed);
            match result {
                Ok(_) => self.recovered(),
                Err(ref e) if e.is_refusal() => {}
                Err(ref e) => return self.write_failed(e, 0, ctx),
            }
            self.maybe_flush(ctx);
            return;
        }
        let began = self.health.writing_since.load(Ordering::Relaxed);
        if began > 0 {
            self.health
                .record_duration((crate::logger::now_micros() - began) as f64 / 1e6);
        }
        self.health.writing_since.store(0, Ordering::Relaxed);
        self.isolating = self.isolating.saturating_sub(1);
        match result {
            Err(error) if error.is_refusal() => {
                let tasks: HashSet<TaskId> = taken.iter().map(|b| b.task_id).collect();
                let chain = error_chain(&error);
                if tasks.len() == 1 {
                    let task = taken[0].task_id;
                    self.reject(task, taken, chain);
                } else {
                    // Which task's rows are refused? Write them one task at a time.
                    log::warn!(
                        "tasks={} error=\"{chain}\" The database refused a batch; writing its tasks one at a time to find whose records it refuses.",
                        tasks.len()
                    );
                    for batch in taken.into_iter().rev() {
                        self.queue.push_front(batch);
                    }
                    self.queued_rows += rows;
                    self.isolating = tasks.len();
                }
                self.maybe_flush(ctx);
            }
            Ok(_) => {
                self.recovered();
                self.stats.flushes += 1;
                self.stats.durable_rows += rows as u64;
                self.gate.release(rows, rows_and_bytes(taken.iter()).1);
                self.report_durable(&taken);
                self.settle_batches(&taken);
                self.wake_waiters();
                if self.isolating > 0
                    || self.queued_rows >= self.settings.batch_max_rows
                    || !self.waiters.is_empty()
                {
                    self.maybe_flush(ctx);
                }
            }
            Err(error) => {
                for batch in taken.into_iter().rev() {
                    self.queue.push_front(batch);
                }
                self.queued_rows += rows;
                self.write_failed(&error, rows, ctx);
            }
        }
    }

    /// A write succeeded: the database is back if it was away.
    fn recovered(&mut self) {
        if self.consecutive_failures > 0 {
            log::info!(
                "failures={} Log storage recovered; buffered records are being written.",
                self.consecutive_failures
            );
        }
        self.consecutive_failures = 0;
        self.health.failures.store(0, Ordering::Relaxed);
    }

    /// A write failed for a reason that may pass: count it, spill if the buffer is
    /// full, and try again after the backoff.
    fn write_failed(
        &mut self,
        error: &dyn std::error::Error,
        rows: usize,
        ctx: &mut Context<Self>,
    ) {
        self.consecutive_failures += 1;
        self.health
            .failures
            .store(self.consecutive_failures, Ordering::Relaxed);
        self.stats.failed_flushes += 1;
        let delay = backoff(self.consecutive_failures);
        let chain = error_chain(error);
        if self.consecutive_failures == 1 {
            log::warn!(
                "rows={rows} retry_in_ms={} error=\"{chain}\" Writing log records failed; they stay buffered and will be retried.",
                delay.as_millis()
            );
        } else if self.consecutive_failures.is_multiple_of(10) {
            log::error!(
                "failures={} buffered_rows={} error=\"{chain}\" Log storage is still failing; records are held in memory (spooled to disk once the buffer is full) and emitters are slowed.",
                self.consecutive_failures,
                self.queued_rows
            );
        }
        if self.should_spill() {
            self.spill();
        }
        self.retry_scheduled = true;
        ctx.run_later(delay, |act, ctx| {
            act.retry_scheduled = false;
            act.maybe_flush(ctx);
        });
    }
}

/// Records and estimated bytes of some batches.
fn rows_and_bytes<'a>(batches: impl Iterator<Item = &'a Arc<LogBatch>>) -> (usize, u64) {
    batches.fold((0, 0), |(rows, bytes), b| {
        (rows + b.entries.len(), bytes + b.bytes())
    })
}

fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    (RETRY_FIRST * factor).min(RETRY_MAX)
}

/// An error and all its causes on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Actor for LogSink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = Duration::from_millis(self.settings.flush_interval_ms.max(1));
        ctx.run_interval(every, |act, ctx| act.maybe_flush(ctx));
        if self.announce_as.is_some() {
            ctx.run_interval(WATCHED_FLUSH, |act, ctx| {
                let now = std::time::Instant::now();
                let searched = act.searched_until.is_some_and(|until| until > now);
                if act.watched.is_empty() && !searched {
                    return;
                }
                act.watched.retain(|_, until| *until > now);
                if (searched && !act.queue.is_empty())
                    || act
                        .queue
                        .iter()
                        .any(|b| act.watched.contains_key(&b.task_id))
                {
                    act.maybe_flush(ctx);
                }
            });
        }
    }
}

/// How often the records of a task other nodes follow are written.
const WATCHED_FLUSH: Duration = Duration::from_millis(100);

/// How long a [`WatchedElsewhere`] lasts; the watching node repeats it sooner.
const WATCH_LASTS: Duration = Duration::from_secs(30);

/// Another node has followers of `task` (it may run here).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WatchedElsewhere {
    pub task: TaskId,
}

impl Handler<WatchedElsewhere> for LogSink {
    type Result = ();

    fn handle(&mut self, msg: WatchedElsewhere, _: &mut Context<Self>) {
        // Only tasks with records here matter; the others' entries expire.
        if self.watched.len() < 10_000 || self.unsettled.contains_key(&msg.task) {
            self.watched
                .insert(msg.task, std::time::Instant::now() + WATCH_LASTS);
        }
    }
}

/// Another node searches every task's records live (`subscribe_all`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SearchedElsewhere;

impl Handler<SearchedElsewhere> for LogSink {
    type Result = ();

    fn handle(&mut self, _: SearchedElsewhere, _: &mut Context<Self>) {
        self.searched_until = Some(std::time::Instant::now() + WATCH_LASTS);
    }
}

impl Handler<AppendLogs> for LogSink {
    type Result = ();

    fn handle(&mut self, msg: AppendLogs, ctx: &mut Context<Self>) {
        let rows = msg.batch.entries.len();
        self.stats.appended_rows += rows as u64;
        if self.rejected.contains(&msg.batch.task_id) {
            self.set_aside(
                std::slice::from_ref(&msg.batch),
                "its task's earlier records were refused",
            );
            self.gate.release(rows, msg.batch.bytes());
            self.stats.rejected_rows += rows as u64;
            return;
        }
        if let Some(spool) = &self.shutdown_spool {
            match spool.write(std::slice::from_ref(&msg.batch), &[]) {
                Ok(_) => {
                    self.gate.release(rows, msg.batch.bytes());
                    self.stats.spooled_rows += rows as u64;
                    return;
                }
                Err(e) => log::error!(
                    "rows={rows} error=\"{err}\" Records that arrived after the shutdown spool could not be spooled; they are kept in memory.",
                    err = crate::sink::error_chain(&e)
                ),
            }
        }
        *self.unsettled.entry(msg.batch.task_id).or_default() += rows as u64;
        self.queued_rows += rows;
        self.queue.push_back(msg.batch);
        if self.queued_rows >= self.settings.batch_max_rows || self.should_spill() {
            self.maybe_flush(ctx);
        }
    }
}

impl Handler<Flush> for LogSink {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let settled = match msg.task {
            Some(task) => !self.unsettled.contains_key(&task),
            None => self.unsettled.is_empty(),
        };
        if settled {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push((msg.task, tx));
        self.maybe_flush(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<SpoolAll> for LogSink {
    type Result = std::io::Result<usize>;

    fn handle(&mut self, msg: SpoolAll, _: &mut Context<Self>) -> Self::Result {
        let mut all: Vec<Arc<LogBatch>> = if self.spilled_writing {
            Vec::new()
        } else {
            self.writing.clone()
        };
        all.extend(self.queue.iter().cloned());
        let outcomes: Vec<(TaskId, TaskOutcome)> =
            self.outcomes.iter().map(|(t, o)| (*t, o.clone())).collect();
        // Nothing is taken out before it is on disk: a failed write keeps it all.
        let rows = msg.spool.write(&all, &outcomes)?;
        self.queue.clear();
        self.outcomes.clear();
        self.health.outcomes.store(0, Ordering::Relaxed);
        if !outcomes.is_empty() {
            log::warn!(
                "tasks={} Final task statuses the database did not take are spooled; they are written at the next start.",
                outcomes.len()
            );
        }
        self.queued_rows = 0;
        // The batch in flight is spooled: its outcome no longer counts (it may land as
        // well; the replay then skips its rows).
        self.spilled_writing = !self.writing.is_empty();
        self.gate.release(rows, rows_and_bytes(all.iter()).1);
        // Settled, spilled records included: they reach the database at the next
        // start. From now on whatever arrives goes to the spool at once.
        self.stats.spooled_rows += rows as u64;
        self.unsettled.clear();
        self.spilled.clear();
        self.shutdown_spool = Some(msg.spool);
        self.wake_waiters();
        Ok(rows)
    }
}

impl Handler<OutcomePending> for LogSink {
    type Result = ();

    fn handle(&mut self, msg: OutcomePending, _: &mut Context<Self>) {
        match msg.outcome {
            Some(outcome) => {
                if let Some(spool) = &self.shutdown_spool {
                    if spool.write(&[], &[(msg.task_id, outcome.clone())]).is_ok() {
                        return;
                    }
                }
                self.outcomes.insert(msg.task_id, outcome)
            }
            None => self.outcomes.remove(&msg.task_id),
        };
        self.health
            .outcomes
            .store(self.outcomes.len(), Ordering::Relaxed);
    }
}

impl Handler<RetryRejected> for LogSink {
    type Result = ResponseActFuture<Self, Result<crate::spool::Retried, crate::EngineError>>;

    fn handle(&mut self, _: RetryRejected, _: &mut Context<Self>) -> Self::Result {
        if self.retrying {
            return Box::pin(fut::ready(Err(crate::EngineError::RetryRunning)));
        }
        self.retrying = true;
        let db = self.db.clone();
        let spool = self.spool.clone();
        Box::pin(
            async move {
                match spool {
                    Some(spool) => crate::spool::retry_rejected(&db, &spool).await,
                    None => Ok(crate::spool::Retried::default()),
                }
            }
            .into_actor(self)
            .map(|result, act, _| {
                act.retrying = false;
                result
            }),
        )
    }
}

impl Handler<GetSinkStats> for LogSink {
    type Result = MessageResult<GetSinkStats>;

    fn handle(&mut self, _: GetSinkStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(SinkStats {
            queued_rows: self.queued_rows,
            ..self.stats
        })
    }
}

/// Announces, for each task in `written`, the seqs now stored: from the lowest
/// written to the highest.
fn announce_stored(conn: &mut storage::Conn, written: &[Arc<LogBatch>], node: &str) {
    let mut seqs: HashMap<TaskId, (u64, u64)> = HashMap::new();
    for batch in written.iter().filter(|b| !b.entries.is_empty()) {
        let (first, last) = seqs
            .entry(batch.task_id)
            .or_insert((batch.first_seq(), batch.last_seq()));
        *first = (*first).min(batch.first_seq());
        *last = (*last).max(batch.last_seq());
    }
    for (task, (first, seq)) in seqs {
        storage::changes::announce(
            conn,
            storage::changes::Change::Logs {
                task,
                first: Some(first),
                seq,
                node: node.to_owned(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operator logs print errors through `error_chain`: a storage error's own text
    /// says only which operation failed, its cause says why.
    #[test]
    fn an_error_chain_names_every_cause() {
        let e = storage::StorageError::Query(diesel::result::Error::NotFound);
        assert_eq!(e.to_string(), "database query failed");
        assert_eq!(error_chain(&e), "database query failed: Record not found");
    }

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(30), RETRY_MAX);
    }
}
