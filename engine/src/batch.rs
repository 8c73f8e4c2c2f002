//! Log batches and the buffer gate.
//!
//! Records travel from a task's logger to the sink and the live hub as shared batches
//! (`Arc<LogBatch>`): one allocation and one message per batch, never per record.
//!
//! The [`BufferGate`] bounds how many records may be waiting to become durable. The
//! sink releases records once they are committed; an emitter that hands over a batch
//! while the bound is exceeded waits (on its own thread) until the sink catches up.
//! That is the backpressure: emitters are slowed, records are never dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use protocol::{LogEntry, TaskId};

/// Consecutive records of one task, in seq order.
#[derive(Debug)]
pub struct LogBatch {
    pub task_id: TaskId,
    pub entries: Vec<LogEntry>,
}

impl LogBatch {
    /// Seq of the last record (0 for an empty batch).
    pub fn last_seq(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.seq)
    }

    pub fn first_seq(&self) -> u64 {
        self.entries.first().map_or(0, |e| e.seq)
    }
}

/// Counts records handed over but not yet durable, and holds emitters back while
/// there are more than `max_rows`. Emitters check it on every record (one atomic
/// load), whoever handed their records over, so a slow emitter whose batches leave
/// by timer is held back just like a fast one.
#[derive(Debug)]
pub struct BufferGate {
    pending: AtomicUsize,
    lock: Mutex<()>,
    drained: Condvar,
    max_rows: usize,
}

impl BufferGate {
    pub fn new(max_rows: usize) -> Self {
        BufferGate {
            pending: AtomicUsize::new(0),
            lock: Mutex::new(()),
            drained: Condvar::new(),
            max_rows: max_rows.max(1),
        }
    }

    /// Records `rows` as handed over. Never blocks.
    pub fn admit(&self, rows: usize) {
        self.pending.fetch_add(rows, Ordering::SeqCst);
    }

    /// Records `rows` as durable and wakes waiting emitters.
    pub fn release(&self, rows: usize) {
        let before = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                Some(p.saturating_sub(rows))
            })
            .unwrap_or(0);
        if before.saturating_sub(rows) <= self.max_rows {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.drained.notify_all();
        }
    }

    /// Records handed over and not yet durable.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// More than the bound is pending: emitters should wait.
    pub fn is_full(&self) -> bool {
        self.pending.load(Ordering::Relaxed) > self.max_rows
    }

    /// Blocks while more than the bound is pending. Re-checks `give_up` every 100 ms
    /// so that a cancelled task is not held by a database that is down.
    pub fn wait_for_room(&self, give_up: impl Fn() -> bool) {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.is_full() && !give_up() {
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
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn an_emitter_waits_until_the_sink_releases() {
        let gate = Arc::new(BufferGate::new(10));
        gate.admit(25);
        let g = gate.clone();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            g.release(20);
        });
        let start = Instant::now();
        gate.wait_for_room(|| false);
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert_eq!(gate.pending(), 5);
        releaser.join().unwrap();
    }

    #[test]
    fn give_up_ends_the_wait() {
        let gate = BufferGate::new(1);
        gate.admit(5);
        gate.wait_for_room(|| true);
        assert_eq!(gate.pending(), 5);
    }
}
