//! One followed task inside a WebSocket session: the history → live hand-off.
//!
//! Phases:
//! 1. `CatchUp`: pages of history are read from the database, after `after_seq`,
//!    until the end; the session is not registered with the hub yet, so memory stays
//!    bounded however long the history.
//! 2. `Joining`: entered just before `Follow` is sent, so live batches are buffered
//!    even when they overtake the hub's answer; the answer holds the task's
//!    not-yet-durable batches (`pending`); the database is read once more to its end
//!    (records that became durable meanwhile).
//! 3. `Live`: the pending and buffered batches are applied, `caught_up` is sent, and
//!    each live batch is applied as it arrives.
//!
//! `cursor` is the highest seq already handled (sent, or skipped by the filter); a
//! record at or below it is never sent again, so overlaps between database, pending
//! and live batches cannot produce duplicates, and since each phase starts where the
//! previous one ended there are no gaps.

use std::sync::Arc;

use engine::batch::LogBatch;
use protocol::{LogEntry, LogFilter, TaskId, TaskInfo, TaskStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    CatchUp,
    Joining,
    Live,
}

/// Entries of shared batches selected for sending, without copying them.
#[derive(Default)]
pub struct Outgoing {
    parts: Vec<(Arc<LogBatch>, Vec<u32>)>,
    count: usize,
}

impl Outgoing {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn take(&mut self) -> Vec<(Arc<LogBatch>, Vec<u32>)> {
        self.count = 0;
        std::mem::take(&mut self.parts)
    }

    /// The selected entries, in order.
    pub fn entries(parts: &[(Arc<LogBatch>, Vec<u32>)]) -> impl Iterator<Item = &LogEntry> {
        parts
            .iter()
            .flat_map(|(batch, idx)| idx.iter().map(move |i| &batch.entries[*i as usize]))
    }
}

pub struct Subscription {
    pub task_id: TaskId,
    pub filter: Arc<LogFilter>,
    /// Bumped on every (re)subscribe; answers for an older generation are stale.
    pub generation: u64,
    pub phase: Phase,
    pub cursor: u64,
    pending: Vec<Arc<LogBatch>>,
    buffered: Vec<Arc<LogBatch>>,
    buffered_bytes: u64,
    pub outgoing: Outgoing,
    /// The newest status known; sent after `caught_up` and on every change after.
    pub task: Option<TaskInfo>,
}

impl Subscription {
    pub fn new(task_id: TaskId, filter: LogFilter, after_seq: u64, generation: u64) -> Self {
        Subscription {
            task_id,
            filter: Arc::new(filter),
            generation,
            phase: Phase::CatchUp,
            cursor: after_seq,
            pending: Vec::new(),
            buffered: Vec::new(),
            buffered_bytes: 0,
            outgoing: Outgoing::default(),
            task: None,
        }
    }

    /// A page of history read from the database (already filtered, ascending).
    /// Returns the entries to send; `scanned_to` is the page's `next_after_seq`.
    pub fn history_page(&mut self, logs: Vec<LogEntry>, scanned_to: u64) -> Vec<LogEntry> {
        let cursor = self.cursor;
        let fresh: Vec<LogEntry> = logs.into_iter().filter(|e| e.seq > cursor).collect();
        self.cursor = self
            .cursor
            .max(scanned_to)
            .max(fresh.last().map_or(0, |e| e.seq));
        fresh
    }

    /// Called just before `Follow` is sent: from now on live batches may arrive (even
    /// before the hub's answer does) and are buffered.
    pub fn start_joining(&mut self) {
        self.phase = Phase::Joining;
    }

    /// The hub answered `Follow` with these not-yet-durable batches.
    pub fn joined(&mut self, pending: Vec<Arc<LogBatch>>) {
        self.pending = pending;
    }

    /// A live batch. Returns false when more than `max_buffered_bytes` (estimated
    /// wire bytes of what may pass the filter) was buffered while joining: the
    /// history did not end before the live stream ran that far ahead.
    pub fn live(&mut self, batch: Arc<LogBatch>, max_buffered_bytes: u64) -> bool {
        match self.phase {
            // Not registered yet; anything here predates the Follow and is covered by
            // the pending snapshot or the database.
            Phase::CatchUp => true,
            Phase::Joining => {
                self.buffered_bytes +=
                    batch.bytes_passing(self.filter.min_level, &self.filter.sources);
                self.buffered.push(batch);
                self.buffered_bytes <= max_buffered_bytes
            }
            Phase::Live => {
                self.select(batch);
                true
            }
        }
    }

    /// The database has been read to its end after joining: apply the pending and
    /// buffered batches and go live.
    pub fn go_live(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let buffered = std::mem::take(&mut self.buffered);
        self.buffered_bytes = 0;
        for batch in pending.into_iter().chain(buffered) {
            self.select(batch);
        }
        self.phase = Phase::Live;
    }

    fn select(&mut self, batch: Arc<LogBatch>) {
        let mut picked = Vec::new();
        for (i, entry) in batch.entries.iter().enumerate() {
            if entry.seq <= self.cursor {
                continue;
            }
            self.cursor = entry.seq;
            if self.filter.matches(entry) {
                picked.push(i as u32);
            }
        }
        if !picked.is_empty() {
            self.outgoing.count += picked.len();
            self.outgoing.parts.push((batch, picked));
        }
    }

    /// Records a status unless it is older than the one known (queued < running <
    /// final): a database read and a status message can arrive in either order.
    pub fn note_status(&mut self, task: TaskInfo) {
        let rank = |t: &TaskInfo| match t.status {
            TaskStatus::Queued => 0,
            TaskStatus::Running => 1,
            _ => 2,
        };
        if self
            .task
            .as_ref()
            .is_none_or(|known| rank(&task) >= rank(known))
        {
            self.task = Some(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Body, FilterSpec, LogLevel, Timestamp};

    fn batch(task: TaskId, seqs: std::ops::RangeInclusive<u64>) -> Arc<LogBatch> {
        Arc::new(LogBatch::new(
            task,
            seqs.map(|seq| LogEntry {
                seq,
                timestamp: Timestamp(seq as i64),
                level: if seq % 2 == 0 {
                    LogLevel::Error
                } else {
                    LogLevel::Info
                },
                source: Arc::from("plugin"),
                body: Body::new(format!("m{seq}"), None),
                group: None,
                mark: None,
                worst: None,
            })
            .collect(),
        ))
    }

    fn sent(sub: &mut Subscription) -> Vec<u64> {
        let parts = sub.outgoing.take();
        Outgoing::entries(&parts).map(|e| e.seq).collect()
    }

    /// Overlapping history, pending and live batches: every seq once, in order.
    #[test]
    fn overlaps_never_duplicate_and_phases_leave_no_gaps() {
        let task = TaskId(uuid::Uuid::nil());
        let mut sub = Subscription::new(task, LogFilter::default(), 0, 1);
        let db1 = batch(task, 1..=10);
        let page = sub.history_page(db1.entries.clone(), 10);
        assert_eq!(page.len(), 10);
        // Live batches before the Follow are ignored.
        assert!(sub.live(batch(task, 11..=12), 1 << 20));
        sub.start_joining();
        // A live batch may overtake the hub's answer to Follow.
        assert!(sub.live(batch(task, 21..=22), 1 << 20));
        sub.joined(vec![batch(task, 9..=15), batch(task, 16..=20)]);
        // The database had become durable up to 13 meanwhile.
        let page = sub.history_page(batch(task, 11..=13).entries.clone(), 13);
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [11, 12, 13]);
        sub.go_live();
        assert_eq!(sent(&mut sub), (14..=22).collect::<Vec<_>>());
        assert!(sub.live(batch(task, 20..=25), 1 << 20));
        assert_eq!(sent(&mut sub), [23, 24, 25]);
        assert_eq!(sub.cursor, 25);
    }

    #[test]
    fn the_filter_applies_to_live_records_and_the_cursor_still_advances() {
        let task = TaskId(uuid::Uuid::nil());
        let filter = LogFilter::parse(&FilterSpec {
            level: Some(LogLevel::Error),
            ..Default::default()
        })
        .unwrap();
        let mut sub = Subscription::new(task, filter, 5, 1);
        sub.start_joining();
        sub.joined(vec![]);
        sub.go_live();
        sub.live(batch(task, 1..=9), 1 << 20);
        assert_eq!(sent(&mut sub), [6, 8]);
        assert_eq!(sub.cursor, 9);
    }

    #[test]
    fn buffering_too_much_while_joining_is_reported() {
        let task = TaskId(uuid::Uuid::nil());
        let mut sub = Subscription::new(task, LogFilter::default(), 0, 1);
        sub.start_joining();
        let first = batch(task, 1..=10);
        let bound = first.bytes_passing(None, &[]) * 3 / 2;
        assert!(sub.live(first, bound));
        assert!(!sub.live(batch(task, 11..=20), bound));
    }
}
