//! Log records: batch insert ([`write`]), filtered keyset paging ([`read`]), the
//! groups of a task ([`groups`]), per-source counts.
//!
//! Inserts are idempotent: `(task_id, seq)` is the primary key, so a batch retried
//! after an ambiguous failure skips the rows that were already stored, and the counts
//! of any task whose rows were skipped are recomputed from `task_logs`.
//!
//! Reads never use `OFFSET`: pages continue from a seq (`after_seq` forwards,
//! `before_seq` backwards). The SQL narrows by every condition it can evaluate
//! cheaply (level, sources, time range, `q` through `LIKE`, metadata through a
//! substring of the stored JSON), and every row it returns then passes
//! [`LogFilter::matches`], so the result is exactly what the live stream would send.

pub(crate) mod groups;
mod level_bits;
pub(crate) mod read;
pub(crate) mod write;

use std::collections::BTreeMap;

use diesel::dsl::max;
use diesel::prelude::*;
use protocol::{LogEntry, LogLevel, SourceCount, TaskId};

use crate::db::{Backend, Conn};
use crate::schema::{task_log_counts, task_logs};
use crate::{with_conn, Result, StorageError};

pub use groups::{list_groups, MAX_GROUPS};
pub use read::{each_matching_run, matching_runs, matching_seqs, page_logs, SeqRuns};
pub(crate) use read::{entry_bytes, page_logs_within, page_of_candidates};
pub use write::insert_log_batches;

/// Largest page a client may ask for.
pub const MAX_PAGE_LIMIT: usize = 10_000;
/// Most rows one page request reads from the database before it answers with what it
/// found (`has_more` stays true). Bounds the work of filters that SQL cannot narrow,
/// such as `re`.
pub const SCAN_BUDGET: usize = 100_000;
/// A page stops growing once the records in it hold this many bytes (messages,
/// sources and metadata; one record more may pass it), so that 10,000 lines of
/// 64 KiB each cannot make a 650 MB answer; `has_more` then says to go on.
pub const MAX_PAGE_BYTES: usize = 8 << 20;
/// Bytes one database read of a page aims at: the first read is small, later ones
/// are sized by the longest row seen so far.
const CHUNK_BYTES: usize = 4 << 20;
const FIRST_CHUNK_ROWS: usize = 256;
/// The most whole rows one read loads, whatever the rows seen so far: with messages
/// and metadata at their caps (64 KiB each) that is 256 MiB at worst.
const MAX_CHUNK_ROWS: usize = 2_048;
/// PostgreSQL allows 65535 bound parameters per statement, 10 a row (fallback path only).
const POSTGRES_ROWS_PER_INSERT: usize = 6_000;

/// A run of consecutive records of one task, as handed to the database.
#[derive(Debug, Clone, Copy)]
pub struct LogBatchRef<'a> {
    pub task_id: TaskId,
    pub entries: &'a [LogEntry],
}

/// Which part of a task's filtered log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogQuery {
    /// Forward paging: records with seq > this.
    pub after_seq: u64,
    /// Backward paging: the last matches with seq < this (takes precedence).
    pub before_seq: Option<u64>,
    /// Most records to return, 1..=[`MAX_PAGE_LIMIT`].
    pub limit: usize,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            after_seq: 0,
            before_seq: None,
            limit: 1000,
        }
    }
}

/// Per-source record counts of a task, in all and per level, sorted by source.
pub fn source_counts(conn: &mut Conn, task: TaskId) -> Result<Vec<SourceCount>> {
    let rows: Vec<(String, i16, i64)> = with_conn!(conn, c => {
        task_log_counts::table
            .filter(task_log_counts::task_id.eq(task.as_bytes().as_slice()))
            .select((task_log_counts::source, task_log_counts::level, task_log_counts::count))
            .load(c)?
    });
    let mut by_source: BTreeMap<String, SourceCount> = BTreeMap::new();
    for (source, level, count) in rows {
        let level = LogLevel::from_i16(level)
            .ok_or_else(|| StorageError::Corrupt(format!("count row with level {level}")))?;
        let entry = by_source
            .entry(source.clone())
            .or_insert_with(|| SourceCount {
                source,
                count: 0,
                levels: BTreeMap::new(),
            });
        entry.count += count as u64;
        *entry.levels.entry(level).or_default() += count as u64;
    }
    Ok(by_source.into_values().collect())
}

/// The task's first stored seq, if it has a record.
pub fn min_seq(conn: &mut Conn, task: TaskId) -> Result<Option<u64>> {
    let first: Option<i64> = with_conn!(conn, c => {
        task_logs::table
            .filter(task_logs::task_id.eq(task.as_bytes().as_slice()))
            .select(diesel::dsl::min(task_logs::seq))
            .first(c)?
    });
    Ok(first.map(|s| s as u64))
}

/// The highest stored seq of a task (0 when it has none).
pub fn max_seq(conn: &mut Conn, task: TaskId) -> Result<u64> {
    let top: Option<i64> = with_conn!(conn, c => {
        task_logs::table
            .filter(task_logs::task_id.eq(task.as_bytes().as_slice()))
            .select(max(task_logs::seq))
            .first(c)?
    });
    Ok(top.unwrap_or(0) as u64)
}

/// How many records of a task are stored.
pub fn count_logs(conn: &mut Conn, task: TaskId) -> Result<u64> {
    Ok(source_counts(conn, task)?.iter().map(|s| s.count).sum())
}

/// Bytes on disk of the log records with their indexes: on PostgreSQL every
/// partition of `task_logs` and the text and metadata index tables; on SQLite the
/// whole database file, which they dominate.
pub fn stored_bytes(conn: &mut Conn) -> Result<u64> {
    #[derive(diesel::QueryableByName)]
    struct Bytes {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        bytes: i64,
    }
    let query = match conn.backend() {
        Backend::Postgres => {
            "SELECT (COALESCE(sum(pg_total_relation_size(inhrelid)), 0) \
             + pg_total_relation_size('task_logs') \
             + pg_total_relation_size('task_log_trigrams') \
             + pg_total_relation_size('task_log_trigram_counts') \
             + pg_total_relation_size('task_log_pairs') \
             + pg_total_relation_size('task_log_unindexed'))::bigint AS bytes \
             FROM pg_inherits WHERE inhparent = 'task_logs'::regclass"
        }
        Backend::Sqlite => {
            "SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()"
        }
    };
    let row: Bytes = with_conn!(conn, c => diesel::sql_query(query).get_result(c))?;
    Ok(row.bytes.max(0) as u64)
}

/// Makes the space of deleted records reusable now instead of when autovacuum gets
/// to it (PostgreSQL `VACUUM task_logs`; nothing on SQLite, which reuses free pages
/// as it goes). For measuring what a `DELETE` really costs.
pub fn vacuum(conn: &mut Conn) -> Result<()> {
    if let Conn::Postgres(c) = conn {
        use diesel::connection::SimpleConnection;
        c.batch_execute("VACUUM task_logs")?;
    }
    Ok(())
}
