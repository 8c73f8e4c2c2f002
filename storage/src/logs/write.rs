//! Storing batches of records: one transaction per call, idempotent on retry.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use protocol::{LogEntry, TaskId};

use super::{level_bits, LogBatchRef, POSTGRES_ROWS_PER_INSERT};
use crate::db::Conn;
use crate::models::{NewCountRow, NewLogRow};
use crate::schema::task_logs;
use crate::{text_index, Result, StorageError};

/// Adds the batch to `task_log_counts`, or, when some rows were already stored (a
/// retry), recomputes the counts of the batch's tasks from `task_logs` so they stay
/// exact. A macro because the body is the same diesel code for both connection types.
macro_rules! finish_counts {
    ($c:ident, $rows:expr, $count_rows:expr, $inserted:expr) => {{
        use crate::schema::task_log_counts::dsl as counts;
        if $inserted == $rows.len() {
            for row in $count_rows {
                diesel::insert_into(counts::task_log_counts)
                    .values(row)
                    .on_conflict((counts::task_id, counts::source, counts::level))
                    .do_update()
                    .set(counts::count.eq(counts::count + row.count))
                    .execute($c)?;
            }
        } else {
            let tasks: HashSet<&[u8]> = $rows.iter().map(|r| r.task_id).collect();
            for task in tasks {
                let grouped: Vec<(String, i16, i64)> = task_logs::table
                    .filter(task_logs::task_id.eq(task))
                    .group_by((task_logs::source, task_logs::level))
                    .select((
                        task_logs::source,
                        task_logs::level,
                        diesel::dsl::count_star(),
                    ))
                    .load($c)?;
                diesel::delete(counts::task_log_counts.filter(counts::task_id.eq(task)))
                    .execute($c)?;
                for (source, level, count) in &grouped {
                    diesel::insert_into(counts::task_log_counts)
                        .values(NewCountRow {
                            task_id: task,
                            source,
                            level: *level,
                            count: *count,
                        })
                        .execute($c)?;
                }
            }
        }
    }};
}

/// Stores batches in one transaction. Returns how many rows were new.
///
/// # Errors
/// Any database error; nothing is stored then, and the caller retries the same
/// batches.
pub fn insert_log_batches(conn: &mut Conn, batches: &[LogBatchRef<'_>]) -> Result<usize> {
    let ids: Vec<(TaskId, &[LogEntry])> = batches.iter().map(|b| (b.task_id, b.entries)).collect();
    let rows: Vec<NewLogRow<'_>> = ids
        .iter()
        .flat_map(|(task_id, entries)| {
            entries
                .iter()
                .map(move |entry| NewLogRow::of(task_id.as_bytes(), entry))
        })
        .collect();
    if rows.is_empty() {
        return Ok(0);
    }
    let mut counts: HashMap<(&[u8], &str, i16), i64> = HashMap::new();
    for row in &rows {
        *counts
            .entry((row.task_id, row.source, row.level))
            .or_default() += 1;
    }
    let count_rows: Vec<NewCountRow<'_>> = counts
        .into_iter()
        .map(|((task_id, source, level), count)| NewCountRow {
            task_id,
            source,
            level,
            count,
        })
        .collect();

    let inserted = match conn {
        Conn::Sqlite(pooled) => {
            let c: &mut diesel::SqliteConnection = pooled;
            c.immediate_transaction(|c| {
                let inserted = insert_sqlite_rows(c, &rows)?;
                for (task, entries) in &ids {
                    for run in consecutive_runs(entries) {
                        text_index::note_unindexed(c, *task, run)?;
                    }
                    level_bits::note_sqlite(c, *task, entries, inserted == rows.len())?;
                }
                finish_counts!(c, rows, &count_rows, inserted);
                Ok::<_, StorageError>(inserted)
            })?
        }
        Conn::Postgres(pooled) => {
            let c: &mut diesel::PgConnection = pooled;
            c.transaction(|c| {
                // COPY is the fast path; it cannot skip duplicates, so a retried batch
                // whose first attempt did commit falls back to INSERT … ON CONFLICT.
                let copied = c.transaction(|c| {
                    diesel::copy_from(task_logs::table)
                        .from_insertable(&rows)
                        .execute(c)
                });
                let inserted = match copied {
                    Ok(n) => n,
                    Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    )) => {
                        let mut inserted = 0;
                        for chunk in rows.chunks(POSTGRES_ROWS_PER_INSERT) {
                            inserted += diesel::insert_into(task_logs::table)
                                .values(chunk)
                                .on_conflict_do_nothing()
                                .execute(c)?;
                        }
                        inserted
                    }
                    Err(e) => return Err(e.into()),
                };
                for (task, entries) in &ids {
                    for run in consecutive_runs(entries) {
                        text_index::postgres::note_unindexed(c, *task, run)?;
                    }
                    level_bits::note_postgres(c, *task, entries, inserted == rows.len())?;
                }
                finish_counts!(c, rows, &count_rows, inserted);
                Ok::<_, StorageError>(inserted)
            })?
        }
    };
    Ok(inserted)
}

/// The runs of consecutive seqs in a batch (one, unless the batch has gaps).
fn consecutive_runs(entries: &[LogEntry]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for seq in entries.iter().map(|e| e.seq.min(i64::MAX as u64) as i64) {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == seq => *last = seq,
            _ => runs.push((seq, seq)),
        }
    }
    runs
}

/// Inserts rows in statements of fixed sizes (1,024, 256, 64, 16, 4 and 1 rows; 10
/// parameters a row, within SQLite's 32,766), each
/// passed as an array: an array's insert has one SQL text whatever the rows, so
/// diesel keeps it prepared per connection and SQLite never parses it again, where
/// a statement per batch length would be parsed at every batch (a sixth of the
/// writer's time). At most 15 statements follow the full ones.
pub(crate) fn insert_sqlite_rows(
    c: &mut diesel::SqliteConnection,
    rows: &[NewLogRow<'_>],
) -> Result<usize> {
    let mut inserted = 0;
    let mut rest = rows;
    macro_rules! in_arrays_of {
        ($n:literal) => {
            while let Some((head, tail)) = rest.split_first_chunk::<$n>() {
                inserted += diesel::insert_into(task_logs::table)
                    .values(head)
                    .on_conflict_do_nothing()
                    .execute(c)?;
                rest = tail;
            }
        };
    }
    in_arrays_of!(1024);
    in_arrays_of!(256);
    in_arrays_of!(64);
    in_arrays_of!(16);
    in_arrays_of!(4);
    in_arrays_of!(1);
    Ok(inserted)
}
