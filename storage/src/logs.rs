//! Log records: batch insert, filtered keyset paging, per-source counts.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use diesel::dsl::{max, sql};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use protocol::{LogEntry, LogFilter, LogLevel, LogPage, SourceCount, TaskId, Timestamp};
use serde_json::value::RawValue;

use crate::db::{Backend, Conn};
use crate::models::{NewCountRow, NewLogRow};
use crate::schema::{task_log_counts, task_logs};
use crate::{with_conn, Result, StorageError};

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
/// PostgreSQL allows 65535 bound parameters per statement (fallback path only).
const POSTGRES_ROWS_PER_INSERT: usize = 9_000;

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
            entries.iter().map(move |entry| NewLogRow {
                task_id: task_id.as_bytes(),
                seq: entry.seq as i64,
                ts: entry.timestamp.as_micros(),
                level: entry.level.as_i16(),
                source: &entry.source,
                message: &entry.message,
                metadata: entry.metadata.as_deref().map(RawValue::get),
            })
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
                finish_counts!(c, rows, &count_rows, inserted);
                Ok::<_, StorageError>(inserted)
            })?
        }
    };
    Ok(inserted)
}

/// Inserts rows in statements of fixed sizes (1,024, 256, 64, 16, 4 and 1 rows; 7
/// parameters a row, within SQLite's 32,766), each
/// passed as an array: an array's insert has one SQL text whatever the rows, so
/// diesel keeps it prepared per connection and SQLite never parses it again, where
/// a statement per batch length would be parsed at every batch (a sixth of the
/// writer's time). At most 15 statements follow the full ones.
fn insert_sqlite_rows(c: &mut diesel::SqliteConnection, rows: &[NewLogRow<'_>]) -> Result<usize> {
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

/// Applies the SQL part of a filter ([`SqlNarrowing`]) to a boxed `task_logs` query,
/// whatever it selects. A macro because the query type differs per backend.
macro_rules! narrow {
    ($q:ident, $narrowing:ident) => {{
        let mut q = $q;
        if let Some(level) = $narrowing.min_level {
            q = q.filter(task_logs::level.ge(level));
        }
        if !$narrowing.sources.is_empty() {
            q = q.filter(task_logs::source.eq_any($narrowing.sources.clone()));
        }
        if let Some(since) = $narrowing.since {
            q = q.filter(task_logs::ts.ge(since));
        }
        if let Some(until) = $narrowing.until {
            q = q.filter(task_logs::ts.lt(until));
        }
        if let Some(pattern) = &$narrowing.like {
            q = q.filter(
                sql::<Bool>($narrowing.like_operator)
                    .bind::<Text, _>(pattern.clone())
                    .sql(" ESCAPE '\\'"),
            );
        }
        // At most two needles per condition (see MetaCondition::needles).
        for needles in &$narrowing.meta_needles {
            let contains = |needle: &String| {
                sql::<Bool>($narrowing.contains_function)
                    .sql("(metadata, ")
                    .bind::<Text, _>(needle.clone())
                    .sql(") > 0")
            };
            match needles.as_slice() {
                [one] => q = q.filter(contains(one)),
                [one, two, ..] => q = q.filter(contains(one).or(contains(two))),
                [] => {}
            }
        }
        q
    }};
}

type LogColumns = (i64, i64, i16, String, String, Option<String>);

/// What a record weighs for [`MAX_PAGE_BYTES`].
fn entry_bytes(entry: &LogEntry) -> usize {
    entry.message.len() + entry.source.len() + entry.metadata.as_ref().map_or(0, |m| m.get().len())
}

/// Reads one page of a task's log that matches `filter`.
///
/// # Errors
/// Database errors, or [`StorageError::Corrupt`] for a row that cannot be decoded.
pub fn page_logs(
    conn: &mut Conn,
    task: TaskId,
    filter: &LogFilter,
    query: &LogQuery,
) -> Result<LogPage> {
    let limit = query.limit.clamp(1, MAX_PAGE_LIMIT);
    let backward = query.before_seq.is_some();
    let mut cursor = query
        .before_seq
        .unwrap_or(query.after_seq)
        .min(i64::MAX as u64) as i64;
    let narrowing = SqlNarrowing::new(filter, conn.backend());
    let mut found: Vec<LogEntry> = Vec::with_capacity(limit.min(1024) + 1);
    let mut scanned = 0usize;
    let mut longest_row = 1usize;
    let mut found_bytes = 0usize;
    // Stopped because the page holds MAX_PAGE_BYTES.
    let mut full = false;
    let mut chunk = (limit + 1).min(FIRST_CHUNK_ROWS);
    let mut exhausted = false;
    let mut last_scanned: Option<i64> = None;

    while found.len() <= limit && !full && scanned < SCAN_BUDGET {
        let rows: Vec<LogColumns> = with_conn!(conn, c => {
            let mut q = task_logs::table
                .filter(task_logs::task_id.eq(task.as_bytes().as_slice()))
                .select((
                    task_logs::seq,
                    task_logs::ts,
                    task_logs::level,
                    task_logs::source,
                    task_logs::message,
                    task_logs::metadata,
                ))
                .into_boxed();
            q = if backward {
                q.filter(task_logs::seq.lt(cursor)).order(task_logs::seq.desc())
            } else {
                q.filter(task_logs::seq.gt(cursor)).order(task_logs::seq.asc())
            };
            q = narrow!(q, narrowing);
            q.limit(chunk as i64).load::<LogColumns>(c)?
        });
        let got = rows.len();
        scanned += got;
        let mut consumed = 0;
        for row in rows {
            consumed += 1;
            cursor = row.0;
            last_scanned = Some(row.0);
            let entry = decode_row(row)?;
            let bytes = entry_bytes(&entry);
            longest_row = longest_row.max(bytes);
            if filter.matches(&entry) {
                found.push(entry);
                found_bytes += bytes;
                if found.len() > limit {
                    break;
                }
                if found_bytes >= MAX_PAGE_BYTES {
                    full = true;
                    break;
                }
            }
        }
        if got < chunk {
            // The end of the log, unless the page filled up before its last row.
            exhausted = consumed == got && found.len() <= limit;
            break;
        }
        chunk = (CHUNK_BYTES / longest_row).clamp(FIRST_CHUNK_ROWS, MAX_CHUNK_ROWS);
    }

    let has_more = found.len() > limit || full || !exhausted;
    found.truncate(limit);
    // Where to continue: after the last record returned when the page is full,
    // otherwise after everything scanned, so that a poller skips what cannot match.
    let boundary = if (found.len() == limit || full) && has_more {
        found.last().map(|e| e.seq as i64)
    } else {
        last_scanned
    };
    if backward {
        found.reverse();
        Ok(LogPage {
            next_after_seq: found.last().map_or(query.after_seq, |e| e.seq),
            next_before_seq: Some(boundary.map_or(cursor as u64, |b| b as u64)),
            logs: found,
            has_more,
        })
    } else {
        Ok(LogPage {
            next_after_seq: boundary.map_or(query.after_seq, |b| b as u64),
            next_before_seq: None,
            logs: found,
            has_more,
        })
    }
}

/// The seqs of every record of a task that matches `filter`, ascending: the index the
/// console scrolls over (position in the filtered log → seq). Filters that SQL
/// evaluates exactly (level, sources, time range) read only the primary key; others
/// read the rows and confirm each with [`LogFilter::matches`].
///
/// At most `max + 1` seqs are read: more than `max` tells the caller the index is
/// too large to send, without reading the rest.
pub fn matching_seqs(
    conn: &mut Conn,
    task: TaskId,
    filter: &LogFilter,
    max: usize,
) -> Result<Vec<u64>> {
    // Seqs alone are small; whole rows (for filters SQL cannot decide) are loaded
    // no more than MAX_CHUNK_ROWS at a time.
    let sql_exact_chunk: i64 = 50_000;
    let sql_exact = filter.q.is_none() && filter.re.is_none() && filter.meta.is_empty();
    let chunk = if sql_exact {
        sql_exact_chunk
    } else {
        MAX_CHUNK_ROWS as i64
    };
    let narrowing = SqlNarrowing::new(filter, conn.backend());
    let mut out = Vec::new();
    let mut cursor = 0i64;
    loop {
        let base = |c: i64| {
            task_logs::task_id
                .eq(task.as_bytes().to_vec())
                .and(task_logs::seq.gt(c))
        };
        let got = if sql_exact {
            let seqs: Vec<i64> = with_conn!(conn, c => {
                let q = task_logs::table.select(task_logs::seq).filter(base(cursor)).into_boxed();
                let q = narrow!(q, narrowing);
                q.order(task_logs::seq.asc()).limit(chunk).load(c)?
            });
            out.extend(seqs.iter().map(|s| *s as u64));
            seqs.last().copied().map(|last| (last, seqs.len()))
        } else {
            let rows: Vec<LogColumns> = with_conn!(conn, c => {
                let q = task_logs::table
                    .select((
                        task_logs::seq,
                        task_logs::ts,
                        task_logs::level,
                        task_logs::source,
                        task_logs::message,
                        task_logs::metadata,
                    ))
                    .filter(base(cursor))
                    .into_boxed();
                let q = narrow!(q, narrowing);
                q.order(task_logs::seq.asc()).limit(chunk).load(c)?
            });
            let len = rows.len();
            let last = rows.last().map(|r| r.0);
            for row in rows {
                let entry = decode_row(row)?;
                if filter.matches(&entry) {
                    out.push(entry.seq);
                }
            }
            last.map(|last| (last, len))
        };
        if out.len() > max {
            out.truncate(max.saturating_add(1));
            return Ok(out);
        }
        match got {
            Some((last, len)) if len as i64 == chunk => cursor = last,
            _ => return Ok(out),
        }
    }
}

/// The part of a [`LogFilter`] that SQL evaluates, prepared once per request.
struct SqlNarrowing {
    min_level: Option<i16>,
    sources: Vec<String>,
    since: Option<i64>,
    until: Option<i64>,
    like: Option<String>,
    like_operator: &'static str,
    contains_function: &'static str,
    meta_needles: Vec<Vec<String>>,
}

impl SqlNarrowing {
    fn new(filter: &LogFilter, backend: Backend) -> Self {
        let caseless = filter
            .q
            .as_deref()
            .is_some_and(|q| !q.bytes().any(|b| b.is_ascii_alphabetic()));
        let (like_operator, contains_function) = match backend {
            // SQLite's LIKE ignores ASCII case, exactly like LogFilter's `q`.
            Backend::Sqlite => ("message LIKE ", "instr"),
            // With no letter to fold, the plain (cheaper) LIKE selects the same rows.
            Backend::Postgres if caseless => ("message LIKE ", "strpos"),
            // ILIKE ignores case at least for ASCII; matches() decides the rest.
            Backend::Postgres => ("message ILIKE ", "strpos"),
        };
        SqlNarrowing {
            min_level: filter.min_level.map(LogLevel::as_i16),
            sources: filter.sources.clone(),
            since: filter.since.map(Timestamp::as_micros),
            until: filter.until.map(Timestamp::as_micros),
            like: filter.q.as_deref().map(like_pattern),
            like_operator,
            contains_function,
            meta_needles: filter.meta.iter().map(|m| m.needles.clone()).collect(),
        }
    }
}

/// `%text%` with `\`, `%` and `_` escaped for `LIKE … ESCAPE '\'`.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for ch in text.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

fn decode_row((seq, ts, level, source, message, metadata): LogColumns) -> Result<LogEntry> {
    Ok(LogEntry {
        seq: seq as u64,
        timestamp: Timestamp(ts),
        level: LogLevel::from_i16(level)
            .ok_or_else(|| StorageError::Corrupt(format!("record {seq}: level {level}")))?,
        source: Arc::from(source),
        message,
        metadata: metadata
            .map(RawValue::from_string)
            .transpose()
            .map_err(|e| StorageError::Corrupt(format!("record {seq}: metadata: {e}")))?,
    })
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
/// partition of `task_logs`; on SQLite the whole database file, which they dominate.
pub fn stored_bytes(conn: &mut Conn) -> Result<u64> {
    #[derive(diesel::QueryableByName)]
    struct Bytes {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        bytes: i64,
    }
    let query = match conn.backend() {
        Backend::Postgres => {
            "SELECT (COALESCE(sum(pg_total_relation_size(inhrelid)), 0) \
             + pg_total_relation_size('task_logs'))::bigint AS bytes \
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("plain"), "%plain%");
    }
}
