//! Log batches and the buffer gate.
//!
//! Records travel from a task's logger to the sink and the live hub as shared batches
//! (`Arc<LogBatch>`): one allocation and one message per batch, never per record.
//!
//! The [`BufferGate`] bounds how many records may be waiting to become durable. The
//! sink releases records once they are committed; an emitter that hands over a batch
//! while the bound is exceeded waits (on its own thread) until the sink catches up.
//! That is the backpressure: emitters are slowed, records are never dropped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use std::sync::Arc;

use protocol::{LogEntry, LogLevel, TaskId};

/// Consecutive records of one task, in seq order, with a summary of what they hold.
#[derive(Debug)]
pub struct LogBatch {
    pub task_id: TaskId,
    pub entries: Vec<LogEntry>,
    summary: BatchSummary,
}

/// What a batch holds, computed once when it is made, so that a reader (the live
/// hub) can tell from a level and a source list whether any of its records can match
/// and how many bytes those would cost on the wire, without looking at each record.
#[derive(Debug, Default)]
struct BatchSummary {
    /// Estimated wire bytes of the records at each level, indexed by `LogLevel`.
    bytes_by_level: [u64; 4],
    /// The distinct sources, in order of first appearance.
    sources: Vec<Arc<str>>,
}

/// Bytes a record takes in a JSON frame besides its message, source and metadata:
/// seq, timestamp, level and the punctuation around them.
const ENTRY_OVERHEAD_BYTES: u64 = 96;
/// What a record's place in a group adds: `"group":…`, `"mark":…`, `"worst":…`.
const GROUP_BYTES: u64 = 64;

/// An estimate of the bytes `entry` takes in a JSON frame (escaping aside).
pub fn wire_bytes(entry: &LogEntry) -> u64 {
    ENTRY_OVERHEAD_BYTES
        + entry.body.len() as u64
        + entry.source.len() as u64
        + if entry.group.is_some() || entry.mark.is_some() {
            GROUP_BYTES
        } else {
            0
        }
}

fn level_index(level: LogLevel) -> usize {
    match level {
        LogLevel::Debug => 0,
        LogLevel::Info => 1,
        LogLevel::Warning => 2,
        LogLevel::Error => 3,
    }
}

impl LogBatch {
    pub fn new(task_id: TaskId, entries: Vec<LogEntry>) -> Self {
        let mut summary = BatchSummary::default();
        for entry in &entries {
            summary.bytes_by_level[level_index(entry.level)] += wire_bytes(entry);
            // Pointer equality first: a task's records share their source's Arc.
            if !summary
                .sources
                .iter()
                .any(|s| Arc::ptr_eq(s, &entry.source) || *s == entry.source)
            {
                summary.sources.push(entry.source.clone());
            }
        }
        LogBatch {
            task_id,
            entries,
            summary,
        }
    }

    /// Estimated wire bytes of the records at `min_level` and above (all records
    /// without a level) whose source is among `sources` (any, when empty). Zero means
    /// that no record of the batch can pass such a filter. The level and source
    /// conditions are checked apart, so the estimate is an upper bound.
    pub fn bytes_passing(&self, min_level: Option<LogLevel>, sources: &[String]) -> u64 {
        if !sources.is_empty()
            && !self
                .summary
                .sources
                .iter()
                .any(|s| sources.iter().any(|wanted| **wanted == **s))
        {
            return 0;
        }
        let from = min_level.map_or(0, level_index);
        self.summary.bytes_by_level[from..].iter().sum()
    }

    /// Estimated bytes of all its records (what the buffer bound counts).
    pub fn bytes(&self) -> u64 {
        self.summary.bytes_by_level.iter().sum()
    }

    /// Seq of the last record (0 for an empty batch).
    pub fn last_seq(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.seq)
    }

    pub fn first_seq(&self) -> u64 {
        self.entries.first().map_or(0, |e| e.seq)
    }
}

/// Counts records (and their bytes) handed over but not yet durable, and holds
/// emitters back while there are more than `max_rows` of them or `max_bytes`. Emitters check it on every record (one atomic
/// load), whoever handed their records over, so a slow emitter whose batches leave
/// by timer is held back just like a fast one.
#[derive(Debug)]
pub struct BufferGate {
    pending: AtomicUsize,
    pending_bytes: AtomicU64,
    /// Records ever handed over: two readings that differ saw ingest in between.
    admitted: AtomicU64,
    lock: Mutex<()>,
    drained: Condvar,
    max_rows: usize,
    max_bytes: u64,
}

impl BufferGate {
    pub fn new(max_rows: usize, max_bytes: u64) -> Self {
        BufferGate {
            pending: AtomicUsize::new(0),
            pending_bytes: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            lock: Mutex::new(()),
            drained: Condvar::new(),
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Records `rows` of `bytes` as handed over. Never blocks.
    pub fn admit(&self, rows: usize, bytes: u64) {
        self.pending.fetch_add(rows, Ordering::SeqCst);
        self.pending_bytes.fetch_add(bytes, Ordering::SeqCst);
        self.admitted.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Records handed over since the gate was made.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Records `rows` of `bytes` as settled (durable, refused or spooled) and wakes
    /// waiting emitters.
    pub fn release(&self, rows: usize, bytes: u64) {
        self.pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                Some(p.saturating_sub(rows))
            })
            .ok();
        self.pending_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                Some(p.saturating_sub(bytes))
            })
            .ok();
        if !self.is_full() {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.drained.notify_all();
        }
    }

    /// Bytes handed over and not yet durable.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes.load(Ordering::SeqCst)
    }

    /// Records handed over and not yet durable.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// More than a bound is pending: emitters should wait.
    pub fn is_full(&self) -> bool {
        self.pending.load(Ordering::Relaxed) > self.max_rows
            || self.pending_bytes.load(Ordering::Relaxed) > self.max_bytes
    }

    /// Past twice a bound: even an emitter that gave up waiting waits now.
    fn is_far_over(&self) -> bool {
        self.pending.load(Ordering::Relaxed) > self.max_rows.saturating_mul(2)
            || self.pending_bytes.load(Ordering::Relaxed) > self.max_bytes.saturating_mul(2)
    }

    /// Blocks while more than the bound is pending. Re-checks `give_up` every 100 ms
    /// so that a cancelled task is not held by a slow database while it stops; but
    /// not past twice the bound, so that a plugin that ignores its cancellation and
    /// keeps logging cannot grow the buffer without end (the sink spills to the
    /// spool when the database is down, which makes room).
    pub fn wait_for_room(&self, give_up: impl Fn() -> bool) {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.is_full() && (self.is_far_over() || !give_up()) {
            guard = self
                .drained
                .wait_timeout(guard, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Body;
    use std::sync::Arc;
    use std::time::Instant;

    fn entry(seq: u64, level: LogLevel, source: &str) -> LogEntry {
        LogEntry {
            seq,
            timestamp: protocol::Timestamp(0),
            level,
            source: Arc::from(source),
            body: Body::new("0123456789".into(), None),
            group: None,
            mark: None,
            worst: None,
        }
    }

    #[test]
    fn the_summary_tells_which_filters_a_batch_can_pass_and_at_what_cost() {
        let batch = LogBatch::new(
            TaskId(uuid::Uuid::nil()),
            vec![
                entry(1, LogLevel::Info, "plugin"),
                entry(2, LogLevel::Warning, "api"),
                entry(3, LogLevel::Info, "api"),
            ],
        );
        let [plugin, api_warning, api_info] = [0, 1, 2].map(|i| wire_bytes(&batch.entries[i]));
        let all = plugin + api_warning + api_info;
        assert_eq!(batch.bytes_passing(None, &[]), all);
        assert_eq!(
            batch.bytes_passing(Some(LogLevel::Warning), &[]),
            api_warning
        );
        assert_eq!(batch.bytes_passing(Some(LogLevel::Error), &[]), 0);
        assert_eq!(batch.bytes_passing(None, &["stdout".into()]), 0);
        assert_eq!(
            batch.bytes_passing(None, &["stdout".into(), "api".into()]),
            all,
            "an upper bound: levels and sources are summarised apart"
        );
        assert_eq!(
            batch.bytes_passing(Some(LogLevel::Warning), &["plugin".into()]),
            api_warning
        );
    }

    #[test]
    fn an_emitter_waits_until_the_sink_releases() {
        let gate = Arc::new(BufferGate::new(10, u64::MAX));
        gate.admit(25, 0);
        let g = gate.clone();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            g.release(20, 0);
        });
        let start = Instant::now();
        gate.wait_for_room(|| false);
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert_eq!(gate.pending(), 5);
        releaser.join().unwrap();
    }

    #[test]
    fn bytes_bound_the_buffer_too() {
        let gate = BufferGate::new(1_000_000, 1_000);
        gate.admit(2, 900);
        assert!(!gate.is_full());
        gate.admit(1, 200);
        assert!(gate.is_full(), "three records, but over the bytes");
        gate.release(1, 200);
        assert!(!gate.is_full());
        assert_eq!((gate.pending(), gate.pending_bytes()), (2, 900));
    }

    #[test]
    fn give_up_ends_the_wait_up_to_twice_the_bound() {
        let gate = Arc::new(BufferGate::new(10, u64::MAX));
        gate.admit(15, 0);
        gate.wait_for_room(|| true);
        assert_eq!(gate.pending(), 15);
        // Past twice the bound, giving up does not help: the emitter waits for room.
        gate.admit(10, 0);
        let g = gate.clone();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            g.release(10, 0);
        });
        let start = Instant::now();
        gate.wait_for_room(|| true);
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert_eq!(gate.pending(), 15);
        releaser.join().unwrap();
    }
}
