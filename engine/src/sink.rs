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
//! Backpressure: rows are counted by the shared `BufferGate` from hand-over until they
//! are durable; emitters wait while more than `buffer_max_rows` are pending, so the
//! queue cannot grow without bound while the database is slow or down.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use protocol::TaskId;
use storage::logs::insert_log_batches;
use storage::{Db, LogBatchRef};
use tokio::sync::oneshot;

use crate::batch::{BufferGate, LogBatch};
use crate::events::EngineEvents;

/// How the sink batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSinkSettings {
    /// Longest a record waits in memory before a flush is started.
    pub flush_interval_ms: u64,
    /// Rows per database transaction at most; a full batch is flushed at once.
    pub batch_max_rows: usize,
    /// Rows that may wait to become durable before emitters are slowed.
    pub buffer_max_rows: usize,
}

impl Default for LogSinkSettings {
    fn default() -> Self {
        LogSinkSettings {
            flush_interval_ms: 2_000,
            batch_max_rows: 20_000,
            buffer_max_rows: 200_000,
        }
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether the writer is keeping up, for readiness checks: shared, read without a
/// message so that a probe never waits behind a busy sink.
#[derive(Debug, Default)]
pub struct WriterHealth {
    failures: AtomicU32,
}

impl WriterHealth {
    /// Consecutive failed flushes (0 while writes succeed).
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Takes a handed-over batch.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AppendLogs {
    pub batch: Arc<LogBatch>,
}

/// Resolves once every record appended before it is durable.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Counters, for tests and diagnostics.
#[derive(Debug, Message)]
#[rtype(result = "SinkStats")]
pub struct GetSinkStats;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub appended_rows: u64,
    pub durable_rows: u64,
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
    retry_scheduled: bool,
    consecutive_failures: u32,
    health: Arc<WriterHealth>,
    stats: SinkStats,
    waiters: Vec<(u64, oneshot::Sender<()>)>,
}

impl LogSink {
    pub fn new(
        db: Db,
        settings: LogSinkSettings,
        gate: Arc<BufferGate>,
        events: EngineEvents,
    ) -> Self {
        LogSink {
            db,
            settings,
            gate,
            events,
            queue: VecDeque::new(),
            queued_rows: 0,
            in_flight: false,
            retry_scheduled: false,
            consecutive_failures: 0,
            health: Arc::default(),
            stats: SinkStats::default(),
            waiters: Vec::new(),
        }
    }

    /// The handle readiness checks read.
    pub fn health(&self) -> Arc<WriterHealth> {
        self.health.clone()
    }

    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.retry_scheduled || self.queue.is_empty() {
            return;
        }
        let mut taken = Vec::new();
        let mut rows = 0;
        while let Some(batch) = self.queue.front() {
            let len = batch.entries.len();
            if rows > 0 && rows + len > self.settings.batch_max_rows {
                break;
            }
            rows += len;
            taken.push(self.queue.pop_front().expect("front exists"));
        }
        self.queued_rows -= rows;
        self.in_flight = true;
        let db = self.db.clone();
        let writing = taken.clone();
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
                    insert_log_batches(conn, &refs)
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
        match result {
            Ok(_) => {
                if self.consecutive_failures > 0 {
                    log::info!(
                        "failures={} Log storage recovered; buffered records are being written.",
                        self.consecutive_failures
                    );
                }
                self.consecutive_failures = 0;
                self.health.failures.store(0, Ordering::Relaxed);
                self.stats.flushes += 1;
                self.stats.durable_rows += rows as u64;
                self.gate.release(rows);
                let mut last: HashMap<TaskId, u64> = HashMap::new();
                for batch in &taken {
                    let seq = last.entry(batch.task_id).or_default();
                    *seq = (*seq).max(batch.last_seq());
                }
                for (task_id, seq) in last {
                    self.events.logs_persisted(task_id, seq);
                }
                let durable = self.stats.durable_rows;
                let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
                    .into_iter()
                    .partition(|(target, _)| *target <= durable);
                self.waiters = waiting;
                for (_, tx) in ready {
                    let _ = tx.send(());
                }
                if self.queued_rows >= self.settings.batch_max_rows || !self.waiters.is_empty() {
                    self.maybe_flush(ctx);
                }
            }
            Err(error) => {
                self.consecutive_failures += 1;
                self.health
                    .failures
                    .store(self.consecutive_failures, Ordering::Relaxed);
                self.stats.failed_flushes += 1;
                let delay = backoff(self.consecutive_failures);
                let chain = error_chain(&error);
                if self.consecutive_failures == 1 {
                    log::warn!(
                        "rows={rows} retry_in_ms={} error=\"{chain}\" Writing log records failed; they stay buffered and will be retried.",
                        delay.as_millis()
                    );
                } else if self.consecutive_failures.is_multiple_of(10) {
                    log::error!(
                        "failures={} buffered_rows={} error=\"{chain}\" Log storage is still failing; records are held in memory and emitters are slowed.",
                        self.consecutive_failures,
                        self.queued_rows + rows
                    );
                }
                for batch in taken.into_iter().rev() {
                    self.queue.push_front(batch);
                }
                self.queued_rows += rows;
                self.retry_scheduled = true;
                ctx.run_later(delay, |act, ctx| {
                    act.retry_scheduled = false;
                    act.maybe_flush(ctx);
                });
            }
        }
    }
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
    }
}

impl Handler<AppendLogs> for LogSink {
    type Result = ();

    fn handle(&mut self, msg: AppendLogs, ctx: &mut Context<Self>) {
        let rows = msg.batch.entries.len();
        self.stats.appended_rows += rows as u64;
        self.queued_rows += rows;
        self.queue.push_back(msg.batch);
        if self.queued_rows >= self.settings.batch_max_rows {
            self.maybe_flush(ctx);
        }
    }
}

impl Handler<Flush> for LogSink {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let target = self.stats.appended_rows;
        if self.stats.durable_rows >= target {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push((target, tx));
        self.maybe_flush(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(30), RETRY_MAX);
    }
}
