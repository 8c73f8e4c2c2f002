//! The database with nothing of Tasklens around it, for the bench's floors: what the
//! parts underneath do at best on this machine, measured in the same run as
//! Tasklens itself, so that a figure can be read as a ratio of its floor.
//!
//! [`insert_rows`] stores `task_logs` rows the fastest way each backend has, in one
//! transaction (SQLite: prepared inserts of fixed row counts, as the writer does;
//! PostgreSQL: one `COPY`), without counts, index notes or retry handling. [`read_rows`] is the keyset read of
//! a page with no filter.

use diesel::prelude::*;
use protocol::{LogEntry, TaskId};

use crate::db::Conn;
use crate::logs::read::{decode_row, LogColumns, LOG_COLUMNS};
use crate::models::NewLogRow;
use crate::schema::task_logs;
use crate::Result;

/// Stores `entries` as rows of `task` in one transaction.
///
/// # Errors
/// Any database error (a row already stored included).
pub fn insert_rows(conn: &mut Conn, task: TaskId, entries: &[LogEntry]) -> Result<()> {
    let rows: Vec<NewLogRow<'_>> = entries
        .iter()
        .map(|entry| NewLogRow::of(task.as_bytes(), entry))
        .collect();
    match conn {
        Conn::Sqlite(c) => c.immediate_transaction(|c| {
            for row in &rows {
                diesel::insert_into(task_logs::table)
                    .values(row)
                    .execute(c)?;
            }
            Ok::<_, diesel::result::Error>(())
        })?,
        Conn::Postgres(c) => c.transaction(|c| {
            diesel::copy_from(task_logs::table)
                .from_insertable(&rows)
                .execute(c)
                .map(|_| ())
        })?,
    }
    Ok(())
}

/// The first `limit` rows of `task` after `after_seq`, in seq order.
///
/// # Errors
/// Database errors, or a row that cannot be decoded.
pub fn read_rows(
    conn: &mut Conn,
    task: TaskId,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<LogEntry>> {
    let rows: Vec<LogColumns> = crate::with_conn!(conn, c => {
        task_logs::table
            .filter(task_logs::task_id.eq(task.as_bytes().as_slice()))
            .filter(task_logs::seq.gt(after_seq as i64))
            .order(task_logs::seq.asc())
            .select(LOG_COLUMNS)
            .limit(limit as i64)
            .load(c)?
    });
    rows.into_iter().map(decode_row).collect()
}
