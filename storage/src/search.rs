//! Search across tasks: the records of every task that match a log filter, among
//! the tasks that match task conditions, newest task first and, within a task, the
//! latest record first.
//!
//! Tasks are visited in `(created_at, id)` order, descending, through the
//! `tasks_by_created` index, and each is read backwards like one task's log
//! ([`crate::logs`]: through the text index where the filter names a text). Where
//! it does, the candidates of a whole batch of tasks are read from the text index
//! at once ([`batch_candidates`]), and each task's page from its candidates: a rare
//! text costs one lookup for the batch rather than one per task, and tasks without
//! a candidate are passed over unread. A common text, with more candidates than
//! that read hands over, and tasks with records not indexed yet, are read task by
//! task. A filter with a level or sources skips the tasks whose record counts
//! (`task_log_counts`) show none at that level from those sources: "every ERROR
//! anywhere" visits only tasks that logged one. A cursor
//! says where a page stopped: a task and the seq to continue below. Records a task
//! logs after a page was read fall above the cursor, so paging while tasks log
//! neither repeats nor skips a record that was there when the search began.

use diesel::prelude::*;
use protocol::{LogFilter, SearchHit, TaskId, TaskStatus, Timestamp};

use crate::db::Conn;
use crate::logs::{
    entry_bytes, page_logs_within, page_of_candidates, LogQuery, MAX_PAGE_BYTES, SCAN_BUDGET,
};
use crate::schema::{task_log_counts, tasks};
use crate::text_index::{batch_candidates, task_of};
use crate::{with_conn, Result};

/// Largest page of hits a client may ask for.
pub const MAX_SEARCH_LIMIT: usize = 1_000;
/// Most tasks one page visits before it answers with what it found, so that a
/// search over many tasks with few matches is paged rather than unbounded.
pub const MAX_TASKS_VISITED: usize = 2_000;
/// Tasks read from `tasks` at a time.
const TASK_BATCH: i64 = 200;

/// Which tasks to search. Empty lists mean any.
#[derive(Debug, Clone, Default)]
pub struct TaskConditions {
    pub plugins: Vec<String>,
    pub statuses: Vec<TaskStatus>,
    /// Tasks created at or after this time.
    pub created_since: Option<Timestamp>,
    /// Tasks created before this time.
    pub created_until: Option<Timestamp>,
}

/// Where a search goes on: the records of `task` below `before_seq`, then older
/// tasks. Clients see it as an opaque string ([`SearchCursor::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCursor {
    pub created_at: i64,
    pub task: TaskId,
    pub before_seq: u64,
}

impl SearchCursor {
    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}",
            self.created_at,
            self.task.0.simple(),
            self.before_seq
        )
    }

    /// `None` for anything [`SearchCursor::encode`] did not make.
    pub fn decode(text: &str) -> Option<SearchCursor> {
        let mut parts = text.splitn(3, '.');
        let created_at = parts.next()?.parse().ok()?;
        let task = parts.next()?.parse().ok()?;
        let before_seq = parts.next()?.parse().ok()?;
        Some(SearchCursor {
            created_at,
            task,
            before_seq,
        })
    }
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub hits: Vec<SearchHit>,
    /// Where the next page starts; `None` when every task was searched.
    pub next: Option<SearchCursor>,
    /// Set when the page stopped on [`SCAN_BUDGET`] or [`MAX_TASKS_VISITED`]
    /// before it was full: the records it read.
    pub scanned: Option<u64>,
}

/// Reads one page of hits: up to `limit` records matching `filter` in tasks
/// matching `conditions`, from `cursor` on.
///
/// # Errors
/// Database errors, or a record that cannot be decoded.
pub fn search_logs(
    conn: &mut Conn,
    filter: &LogFilter,
    conditions: &TaskConditions,
    cursor: Option<SearchCursor>,
    limit: usize,
) -> Result<Found> {
    let limit = limit.clamp(1, MAX_SEARCH_LIMIT);
    let mut hits: Vec<SearchHit> = Vec::new();
    let mut hit_bytes = 0usize;
    let mut scanned = 0usize;
    let mut visited = 0usize;
    let mut position = cursor;
    loop {
        let batch = tasks_from(conn, filter, conditions, position)?;
        let batch_len = batch.len();
        let batch: Vec<(TaskId, String, i64)> = batch
            .into_iter()
            .map(|(id, plugin, created_at)| Ok((task_of(&id)?, plugin, created_at)))
            .collect::<Result<_>>()?;
        let ids: Vec<TaskId> = batch.iter().map(|(task, ..)| *task).collect();
        let indexed = batch_candidates(conn, &ids, filter)?;
        for (task, plugin, created_at) in batch {
            let before_seq = match position {
                Some(p) if p.task == task => p.before_seq,
                _ => i64::MAX as u64,
            };
            // Seq 0 is never stored: below 1 there is nothing left of this task.
            let done_here = SearchCursor {
                created_at,
                task,
                before_seq: 0,
            };
            position = Some(done_here);
            if before_seq <= 1 {
                continue;
            }
            visited += 1;
            let room = limit - hits.len();
            let (page, read) = match &indexed {
                Some(indexed) if !indexed.read_alone.contains(&task) => {
                    let below = indexed.seqs.get(&task).map_or(&[][..], |seqs| {
                        let first = seqs.partition_point(|seq| *seq as u64 >= before_seq);
                        &seqs[first..]
                    });
                    page_of_candidates(conn, task, filter, below, room)?
                }
                _ => {
                    let query = LogQuery {
                        after_seq: 0,
                        before_seq: Some(before_seq),
                        limit: room,
                    };
                    let budget = SCAN_BUDGET.saturating_sub(scanned).max(1);
                    page_logs_within(conn, task, filter, &query, budget)?
                }
            };
            scanned += read;
            hit_bytes += page.logs.iter().map(entry_bytes).sum::<usize>();
            hits.extend(page.logs.into_iter().rev().map(|log| SearchHit {
                task_id: task,
                plugin: plugin.clone(),
                log,
            }));
            let stopped_early = page.scanned.is_some();
            if page.has_more {
                position = Some(SearchCursor {
                    before_seq: page.next_before_seq.unwrap_or(0),
                    ..done_here
                });
            }
            // A task's page that stopped on its bytes fills the search page too:
            // going on to the next task would pass over the rest of this one.
            let full = hits.len() >= limit || hit_bytes >= MAX_PAGE_BYTES;
            if full || stopped_early || visited >= MAX_TASKS_VISITED {
                return Ok(Found {
                    hits,
                    next: position,
                    scanned: (!full).then_some(scanned as u64),
                });
            }
        }
        if (batch_len as i64) < TASK_BATCH {
            return Ok(Found {
                hits,
                next: None,
                scanned: None,
            });
        }
    }
}

/// The next tasks in search order from `position` (that task included, so that
/// its remaining records are read), among those with records `filter`'s level and
/// sources can pass.
fn tasks_from(
    conn: &mut Conn,
    filter: &LogFilter,
    conditions: &TaskConditions,
    position: Option<SearchCursor>,
) -> Result<Vec<(Vec<u8>, String, i64)>> {
    let statuses: Vec<&str> = conditions.statuses.iter().map(|s| s.as_str()).collect();
    Ok(with_conn!(conn, c => {
        let mut q = tasks::table
            .select((tasks::id, tasks::plugin, tasks::created_at))
            .into_boxed();
        if !conditions.plugins.is_empty() {
            q = q.filter(tasks::plugin.eq_any(conditions.plugins.clone()));
        }
        if !statuses.is_empty() {
            q = q.filter(tasks::status.eq_any(statuses.clone()));
        }
        if let Some(since) = conditions.created_since {
            q = q.filter(tasks::created_at.ge(since.as_micros()));
        }
        if let Some(until) = conditions.created_until {
            q = q.filter(tasks::created_at.lt(until.as_micros()));
        }
        if filter.min_level.is_some() || !filter.sources.is_empty() {
            let mut counted = task_log_counts::table
                .select(task_log_counts::task_id)
                .filter(task_log_counts::count.gt(0))
                .into_boxed();
            if let Some(level) = filter.min_level {
                counted = counted.filter(task_log_counts::level.ge(level.as_i16()));
            }
            if !filter.sources.is_empty() {
                counted = counted.filter(task_log_counts::source.eq_any(filter.sources.clone()));
            }
            q = q.filter(tasks::id.eq_any(counted));
        }
        if let Some(p) = position {
            q = q.filter(
                tasks::created_at.lt(p.created_at).or(tasks::created_at
                    .eq(p.created_at)
                    .and(tasks::id.le(p.task.as_bytes().to_vec()))),
            );
        }
        q.order((tasks::created_at.desc(), tasks::id.desc()))
            .limit(TASK_BATCH)
            .load(c)?
    }))
}

#[cfg(test)]
mod tests {
    use super::SearchCursor;
    use protocol::TaskId;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = SearchCursor {
            created_at: 1_764_560_000_000_000,
            task: TaskId(uuid::Uuid::from_u128(
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            )),
            before_seq: 42,
        };
        assert_eq!(SearchCursor::decode(&cursor.encode()), Some(cursor));
        for bad in [
            "",
            "1.2",
            "x.0123456789abcdef0123456789abcdef.1",
            "1.nothex.1",
            "1.0123456789abcdef0123456789abcdef.-1",
        ] {
            assert_eq!(SearchCursor::decode(bad), None, "{bad}");
        }
    }
}
