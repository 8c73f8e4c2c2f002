//! Reading a task's filtered log: keyset pages forwards and backwards, and the
//! console's index of matching seqs, through the text, metadata or level index where
//! one narrows.

use std::sync::Arc;

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Bool, SmallInt, Text};
use protocol::filter::RecordParts;
use protocol::{Body, GroupMark, LogEntry, LogFilter, LogLevel, LogPage, TaskId, Timestamp};

use super::{
    level_bits, LogQuery, CHUNK_BYTES, FIRST_CHUNK_ROWS, MAX_CHUNK_ROWS, MAX_PAGE_BYTES,
    MAX_PAGE_LIMIT, SCAN_BUDGET,
};
use crate::db::{Backend, Conn};
use crate::schema::task_logs;
use crate::{text_index, with_conn, Result, StorageError};

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
        for (operator, pattern) in &$narrowing.likes {
            q = q.filter(
                sql::<Bool>(operator)
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

/// A boxed query of a task's rows narrowed by the filter's SQL part, in paging
/// order. A macro for the same reason as [`narrow!`].
macro_rules! task_rows {
    ($task:expr, $narrowing:expr, $backward:expr) => {{
        let q = task_logs::table
            .filter(task_logs::task_id.eq($task.as_bytes().as_slice()))
            .select(LOG_COLUMNS)
            .into_boxed();
        let q = if $backward {
            q.order(task_logs::seq.desc())
        } else {
            q.order(task_logs::seq.asc())
        };
        let narrowing = $narrowing;
        narrow!(q, narrowing)
    }};
}

/// [`task_rows!`] with seqs strictly between the bounds.
macro_rules! rows_between {
    ($task:expr, $bounds:expr, $narrowing:expr, $backward:expr) => {{
        let (lo, hi): (i64, i64) = $bounds;
        task_rows!($task, $narrowing, $backward)
            .filter(task_logs::seq.gt(lo))
            .filter(task_logs::seq.lt(hi))
    }};
}

/// The lowest level the partial index `task_log_warnings` holds, and its condition
/// as a literal (with a bound parameter neither planner could prove that it applies).
const WARNING: i16 = 2;
const WARNINGS: &str = "level >= 2";

pub(crate) type LogColumns = (
    i64,
    i64,
    i16,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<i16>,
    Option<i16>,
);

/// The columns of a record, in [`LogColumns`] order.
pub(crate) const LOG_COLUMNS: (
    task_logs::seq,
    task_logs::ts,
    task_logs::level,
    task_logs::source,
    task_logs::message,
    task_logs::metadata,
    task_logs::group_seq,
    task_logs::group_mark,
    task_logs::group_worst,
) = (
    task_logs::seq,
    task_logs::ts,
    task_logs::level,
    task_logs::source,
    task_logs::message,
    task_logs::metadata,
    task_logs::group_seq,
    task_logs::group_mark,
    task_logs::group_worst,
);

/// What a record weighs for [`MAX_PAGE_BYTES`].
pub(crate) fn entry_bytes(entry: &LogEntry) -> usize {
    entry.body.len() + entry.source.len()
}

/// [`entry_bytes`] of the record a row holds.
fn row_bytes((_, _, _, source, message, metadata, ..): &LogColumns) -> usize {
    message.len() + source.len() + metadata.as_ref().map_or(0, String::len)
}

/// Whether `filter` selects the record a row holds, checked on its columns: rows
/// that do not pass are never built into records.
fn row_matches(
    filter: &LogFilter,
    (seq, ts, level, source, message, metadata, ..): &LogColumns,
) -> Result<bool> {
    let level = LogLevel::from_i16(*level)
        .ok_or_else(|| StorageError::Corrupt(format!("record {seq}: level {level}")))?;
    Ok(filter.matches_parts(&RecordParts {
        level,
        timestamp: Timestamp(*ts),
        source,
        message,
        metadata: metadata.as_deref(),
    }))
}

/// Reads one page of a task's log that matches `filter`.
///
/// When the filter has a `meta` condition or names a text (`q`, or literals its `re`
/// requires), the page reads the index's candidates instead of every row (see
/// [`text_index`]).
///
/// # Errors
/// Database errors, or [`StorageError::Corrupt`] for a row that cannot be decoded.
pub fn page_logs(
    conn: &mut Conn,
    task: TaskId,
    filter: &LogFilter,
    query: &LogQuery,
) -> Result<LogPage> {
    Ok(page_logs_within(conn, task, filter, query, SCAN_BUDGET)?.0)
}

/// [`page_logs`] reading at most about `budget` rows or candidates; also returns
/// how many it read.
pub(crate) fn page_logs_within(
    conn: &mut Conn,
    task: TaskId,
    filter: &LogFilter,
    query: &LogQuery,
    budget: usize,
) -> Result<(LogPage, usize)> {
    let limit = query.limit.clamp(1, MAX_PAGE_LIMIT);
    let backward = query.before_seq.is_some();
    let mut cursor = query
        .before_seq
        .unwrap_or(query.after_seq)
        .min(i64::MAX as u64) as i64;
    let mut narrowing = SqlNarrowing::for_task(filter, conn, task)?;
    let mut phases = Phases::new(conn, task, &mut narrowing, cursor, backward)?;
    let mut found: Vec<LogEntry> = Vec::with_capacity(limit.min(1024) + 1);
    let mut scanned = 0usize;
    let mut longest_row = 1usize;
    let mut found_bytes = 0usize;
    // Stopped because the page holds MAX_PAGE_BYTES.
    let mut full = false;
    let mut chunk = (limit + 1).min(FIRST_CHUNK_ROWS);
    let mut exhausted = false;
    let mut last_scanned: Option<i64> = None;

    'phases: while let Some(phase) = phases.current() {
        while found.len() <= limit && !full && scanned < budget {
            let read = read_chunk(conn, task, &narrowing, phase, cursor, backward, chunk)?;
            scanned += read.positions;
            let got = read.rows.len();
            let mut consumed = 0;
            for row in read.rows {
                consumed += 1;
                cursor = row.0;
                last_scanned = Some(row.0);
                let bytes = row_bytes(&row);
                longest_row = longest_row.max(bytes);
                if row_matches(filter, &row)? {
                    found.push(decode_row(row)?);
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
            let whole_chunk = consumed == got;
            if whole_chunk {
                if let Some(last) = read.last_position {
                    cursor = last;
                    last_scanned = Some(last);
                }
            }
            if read.positions < chunk {
                // The end of this phase, unless the page filled up before its end.
                if whole_chunk && found.len() <= limit && !full {
                    if phases.advance() {
                        continue 'phases;
                    }
                    exhausted = true;
                }
                break 'phases;
            }
            chunk = next_chunk(limit + 1 - found.len(), scanned, found.len(), longest_row);
        }
        break;
    }

    let has_more = found.len() > limit || full || !exhausted;
    let budget_spent = has_more && found.len() <= limit && !full;
    let read = scanned;
    let scanned = budget_spent.then_some(scanned as u64);
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
        let page = LogPage {
            next_after_seq: found.last().map_or(query.after_seq, |e| e.seq),
            next_before_seq: Some(boundary.map_or(cursor as u64, |b| b as u64)),
            logs: found,
            has_more,
            scanned,
        };
        Ok((page, read))
    } else {
        let page = LogPage {
            next_after_seq: boundary.map_or(query.after_seq, |b| b as u64),
            next_before_seq: None,
            logs: found,
            has_more,
            scanned,
        };
        Ok((page, read))
    }
}

/// How many positions a page's next read asks for, when `needed` more matches would
/// fill it (one past its limit, to know whether there is more) and `matched` of the
/// `read` positions so far matched: what the rate so far says it needs, with a margin,
/// and exactly `needed` when every position matched (as without a filter, where a
/// read of 1,000 would otherwise load twice that); never more than the old fixed
/// size: `CHUNK_BYTES` of rows as long as the longest seen, within 256 to 2,048 rows.
fn next_chunk(needed: usize, read: usize, matched: usize, longest_row: usize) -> usize {
    let most = (CHUNK_BYTES / longest_row).clamp(FIRST_CHUNK_ROWS, MAX_CHUNK_ROWS);
    let expected = if matched == read {
        needed
    } else {
        match needed.saturating_mul(read).checked_div(matched) {
            Some(at_rate) => at_rate.saturating_add(at_rate / 4).saturating_add(16),
            None => most,
        }
    };
    expected.clamp(1, most)
}

/// A page of the task's records among `candidates` (seqs, descending: every
/// candidate the text index holds for the filter below where the page begins, see
/// [`text_index::batch_candidates`]) that match `filter`, read backwards like
/// [`page_logs_within`] with `before_seq`; also returns how many candidates it read.
pub(crate) fn page_of_candidates(
    conn: &mut Conn,
    task: TaskId,
    filter: &LogFilter,
    candidates: &[i64],
    limit: usize,
) -> Result<(LogPage, usize)> {
    let limit = limit.clamp(1, MAX_PAGE_LIMIT);
    let narrowing = SqlNarrowing::new(filter, conn.backend());
    let mut found: Vec<LogEntry> = Vec::new();
    let mut found_bytes = 0usize;
    let mut read = 0usize;
    let mut chunk = (limit + 1).clamp(FIRST_CHUNK_ROWS, MAX_CHUNK_ROWS);
    let mut rest = candidates;
    'read: while !rest.is_empty() {
        let (seqs, after) = rest.split_at(chunk.min(rest.len()));
        rest = after;
        read += seqs.len();
        for row in rows_of_seqs(conn, task, &narrowing, seqs, true)? {
            if row_matches(filter, &row)? {
                found_bytes += row_bytes(&row);
                found.push(decode_row(row)?);
                if found.len() > limit || found_bytes >= MAX_PAGE_BYTES {
                    break 'read;
                }
            }
        }
        chunk = MAX_CHUNK_ROWS;
    }
    let has_more = found.len() > limit || found_bytes >= MAX_PAGE_BYTES;
    found.truncate(limit);
    let next_before_seq = found.last().map_or(0, |e| e.seq);
    found.reverse();
    let page = LogPage {
        next_after_seq: found.last().map_or(0, |e| e.seq),
        next_before_seq: Some(next_before_seq),
        logs: found,
        has_more,
        scanned: None,
    };
    Ok((page, read))
}

/// The task's rows of these seqs that `narrowing` allows, in seq order (`backward`:
/// descending).
fn rows_of_seqs(
    conn: &mut Conn,
    task: TaskId,
    narrowing: &SqlNarrowing,
    seqs: &[i64],
    backward: bool,
) -> Result<Vec<LogColumns>> {
    Ok(with_conn!(conn, c => task_rows!(task, narrowing, backward)
        .filter(task_logs::seq.eq_any(seqs.to_vec()))
        .load::<LogColumns>(c)?))
}

/// Under what the index holds a task's entries: SQLite's task key, or, on
/// PostgreSQL, the task id itself.
#[derive(Debug, Clone, Copy)]
enum IndexedUnder {
    Key(i64),
    TaskId,
}

/// Where a read takes its rows from: the index's candidates, or the task's rows in
/// seq order. Both are limited to the seqs in `(lo, hi)`.
#[derive(Debug, Clone, Copy)]
struct Phase {
    /// `Some((under, lookup))`: candidates from the text or metadata index, through
    /// `SqlNarrowing::index_lookups[lookup]`.
    indexed: Option<(IndexedUnder, usize)>,
    lo: i64,
    hi: i64,
}

/// The phases one read goes through, in paging order. With SQLite's index: the
/// indexed seqs, then the rare records past [`text_index::INDEXED_SEQS`], read
/// directly (the other way round backwards). PostgreSQL's index holds every seq.
struct Phases {
    list: Vec<Phase>,
    at: usize,
}

impl Phases {
    /// The phases of a read beginning at `start`. On SQLite, a text looked up is
    /// narrowed here to its rarest trigrams from `start` on, once for all of the
    /// read's chunks ([`text_index::rarest_terms`]).
    fn new(
        conn: &mut Conn,
        task: TaskId,
        narrowing: &mut SqlNarrowing,
        start: i64,
        backward: bool,
    ) -> Result<Self> {
        let lookups = &mut narrowing.index_lookups;
        let key = match conn {
            _ if lookups.is_empty() => None,
            Conn::Sqlite(c) => match text_index::task_key(c, task)? {
                Some(key) => {
                    let bounds = if backward {
                        (0, start.clamp(0, text_index::INDEXED_SEQS))
                    } else {
                        (
                            start.clamp(0, text_index::INDEXED_SEQS),
                            text_index::INDEXED_SEQS,
                        )
                    };
                    // Each text ranked once: the choice between lookups counts with
                    // the rarest terms, and the read's chunks look up the same.
                    for lookup in lookups.iter_mut() {
                        if let text_index::Candidates::Text(terms) = lookup {
                            *terms = text_index::rarest_terms(c, key, terms, bounds, backward)?;
                        }
                    }
                    let lookup = text_index::fewest(c, key, lookups)?;
                    Some((IndexedUnder::Key(key), lookup))
                }
                None => None,
            },
            Conn::Postgres(c) => {
                let lookup = text_index::postgres::fewest(c, task, lookups)?;
                return Ok(Phases {
                    list: vec![Phase {
                        indexed: Some((IndexedUnder::TaskId, lookup)),
                        lo: -1,
                        hi: i64::MAX,
                    }],
                    at: 0,
                });
            }
        };
        let list = match key {
            None => vec![Phase {
                indexed: None,
                lo: -1,
                hi: i64::MAX,
            }],
            Some(key) => {
                let indexed = Phase {
                    indexed: Some(key),
                    lo: -1,
                    hi: text_index::INDEXED_SEQS,
                };
                let past = Phase {
                    indexed: None,
                    lo: text_index::INDEXED_SEQS - 1,
                    hi: i64::MAX,
                };
                if backward {
                    vec![past, indexed]
                } else {
                    vec![indexed, past]
                }
            }
        };
        Ok(Phases { list, at: 0 })
    }

    fn current(&self) -> Option<Phase> {
        self.list.get(self.at).copied()
    }

    /// Moves to the next phase; false when there is none.
    fn advance(&mut self) -> bool {
        self.at += 1;
        self.at < self.list.len()
    }
}

/// What one read of a phase returned.
struct Chunk {
    /// Rows that passed the SQL narrowing, in paging order.
    rows: Vec<LogColumns>,
    /// How many seqs the read went over (rows, or index candidates); fewer than asked
    /// means the phase is done.
    positions: usize,
    /// The last seq it went over.
    last_position: Option<i64>,
}

/// Reads up to `chunk` positions of `phase` past `cursor`.
fn read_chunk(
    conn: &mut Conn,
    task: TaskId,
    narrowing: &SqlNarrowing,
    phase: Phase,
    cursor: i64,
    backward: bool,
    chunk: usize,
) -> Result<Chunk> {
    let bounds = if backward {
        (phase.lo, cursor.min(phase.hi))
    } else {
        (cursor.max(phase.lo), phase.hi)
    };
    if let Some((under, lookup)) = phase.indexed {
        let lookup = &narrowing.index_lookups[lookup];
        let order = Order { backward, chunk };
        return read_indexed(conn, task, under, lookup, narrowing, bounds, order);
    }
    if let Some(level) = narrowing.by_level {
        // The rows are read by their seqs alone, the rest of the filter left to
        // `matches`: given the other conditions too, PostgreSQL without statistics
        // (a task just written) scanned every row they allow. Records are only
        // added, or deleted whole with their task, so the rows of seqs just listed
        // are there to read without a transaction.
        let seqs = level_seqs(conn, task, level, bounds, Order { backward, chunk })?;
        let rows = if seqs.is_empty() {
            Vec::new()
        } else {
            rows_of_seqs(conn, task, SqlNarrowing::NONE, &seqs, backward)?
        };
        return Ok(Chunk {
            positions: seqs.len(),
            last_position: seqs.last().copied(),
            rows,
        });
    }
    let rows = with_conn!(conn, c => {
        let q = rows_between!(task, bounds, narrowing, backward);
        q.limit(chunk as i64).load::<LogColumns>(c)?
    });
    Ok(Chunk {
        positions: rows.len(),
        last_position: rows.last().map(|r| r.0),
        rows,
    })
}

#[derive(Debug, Clone, Copy)]
struct Order {
    backward: bool,
    chunk: usize,
}

#[derive(QueryableByName)]
struct LevelSeq {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = SmallInt)]
    level: i16,
}

/// The first `chunk` seqs, in paging order, of the task's records at `min_level` or
/// above (WARNING at least) in `(lo, hi)`, from `task_log_warnings` alone (see
/// [`level_rows`]).
fn level_seqs(
    conn: &mut Conn,
    task: TaskId,
    min_level: i16,
    bounds: (i64, i64),
    order: Order,
) -> Result<Vec<i64>> {
    let mut seqs: Vec<i64> = level_rows(conn, task, min_level, bounds, order)?
        .into_iter()
        .map(|r| r.seq)
        .collect();
    // Stable sort: it merges the levels' runs, already sorted, in linear time. The
    // first `chunk` are complete: a level that filled its `chunk` alone reaches as
    // far as they do.
    if order.backward {
        seqs.sort_by(|a, b| b.cmp(a));
    } else {
        seqs.sort();
    }
    seqs.truncate(order.chunk);
    Ok(seqs)
}

/// Every seq of the task's records at `min_level` or above (WARNING at least),
/// ascending, into `sink` until it is full.
fn all_level_seqs(
    conn: &mut Conn,
    task: TaskId,
    min_level: i16,
    sink: &mut dyn FnMut(u64) -> bool,
) -> Result<()> {
    let order = Order {
        backward: false,
        chunk: 50_000,
    };
    let mut cursor = 0;
    loop {
        let rows = level_rows(conn, task, min_level, (cursor, i64::MAX), order)?;
        // Complete up to the lowest last seq of the levels that filled their chunk;
        // beyond it a level may have more. Each level is read at most once more.
        let mut complete = i64::MAX;
        for level in min_level..=LogLevel::Error.as_i16() {
            let of_level = rows.iter().filter(|r| r.level == level);
            if of_level.clone().count() == order.chunk {
                complete = complete.min(of_level.map(|r| r.seq).max().unwrap_or(i64::MAX));
            }
        }
        let mut part: Vec<u64> = rows
            .iter()
            .filter(|r| r.seq <= complete)
            .map(|r| r.seq as u64)
            .collect();
        part.sort();
        if !part.into_iter().all(&mut *sink) || complete == i64::MAX {
            return Ok(());
        }
        cursor = complete;
    }
}

/// The first `chunk` records, in paging order, of each level from `min_level` up
/// in `(lo, hi)`, from `task_log_warnings` alone, where each level is a range in seq
/// order (two levels at once would be sorted). One statement, so one snapshot:
/// read one after the other, a batch stored in between would show its ERRORs
/// without the WARNINGs before them, and a reader continuing after the ERRORs would
/// never see those. SQLite is told to use the index: without statistics its planner
/// walks the primary key, every record of the task, for the `ORDER BY seq`.
fn level_rows(
    conn: &mut Conn,
    task: TaskId,
    min_level: i16,
    (lo, hi): (i64, i64),
    Order { backward, chunk }: Order,
) -> Result<Vec<LevelSeq>> {
    let order = if backward { "DESC" } else { "ASC" };
    // Levels are literals, integers: with them the planner sees that the index
    // holds the rows asked for. The binds are numbered so every level reuses them.
    let (index, [task_id, after, before, limit]) = match conn.backend() {
        Backend::Sqlite => ("INDEXED BY task_log_warnings", ["?1", "?2", "?3", "?4"]),
        Backend::Postgres => ("", ["$1", "$2", "$3", "$4"]),
    };
    let sql = (min_level..=LogLevel::Error.as_i16())
        .map(|level| {
            format!(
                "SELECT seq, level FROM (SELECT seq, level FROM task_logs {index} \
                 WHERE task_id = {task_id} AND {WARNINGS} AND level = {level} \
                 AND seq > {after} AND seq < {before} \
                 ORDER BY seq {order} LIMIT {limit}) AS level_{level}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let q = diesel::sql_query(sql)
        .bind::<Binary, _>(task.as_bytes().as_slice())
        .bind::<BigInt, _>(lo)
        .bind::<BigInt, _>(hi)
        .bind::<BigInt, _>(chunk as i64);
    Ok(with_conn!(conn, c => q.load(c)?))
}

/// Candidates on average fewer than this many seqs apart are read as a range (see
/// [`read_indexed`]).
const DENSE_SPAN: usize = 16;

/// [`read_chunk`] through the text or metadata index: the index's candidates and
/// every record of the ranges it has not indexed yet. Both are read in one
/// snapshot, so that the indexer cannot move a record from one to the other between
/// the two reads; the rows of the seqs they name are there to read after it
/// (records are only added, or deleted whole with their task).
fn read_indexed(
    conn: &mut Conn,
    task: TaskId,
    under: IndexedUnder,
    lookup: &text_index::Candidates,
    narrowing: &SqlNarrowing,
    (lo, hi): (i64, i64),
    Order { backward, chunk }: Order,
) -> Result<Chunk> {
    let (ranges, candidates) = match (&mut *conn, under) {
        (Conn::Sqlite(c), IndexedUnder::Key(key)) => c.transaction(|c| {
            let ranges = text_index::unindexed_ranges(c, task, (lo, hi))?;
            let candidates = text_index::candidate_seqs(c, key, lookup, (lo, hi), backward, chunk)?;
            Ok::<_, StorageError>((ranges, candidates))
        })?,
        (Conn::Postgres(c), _) => c
            .build_transaction()
            .repeatable_read()
            .read_only()
            .run(|c| {
                use text_index::postgres;
                let ranges = postgres::unindexed_ranges(c, task, (lo, hi))?;
                let candidates =
                    postgres::candidate_seqs(c, task, lookup, (lo, hi), backward, chunk)?;
                Ok::<_, StorageError>((ranges, candidates))
            })?,
        (Conn::Sqlite(_), IndexedUnder::TaskId) => {
            unreachable!("SQLite's index is under task keys")
        }
    };
    let index_full = candidates.len() == chunk;
    // With more candidates to come, this read settles the seqs up to its last one.
    let (lo, hi) = match (candidates.last(), index_full, backward) {
        (Some(last), true, false) => (lo, last + 1),
        (Some(last), true, true) => (last - 1, hi),
        _ => (lo, hi),
    };
    let mut rows: Vec<LogColumns> = Vec::new();
    let mut a_range_was_cut = false;
    if let (Some(&first), Some(&last)) = (candidates.first(), candidates.last()) {
        let (low, high) = (first.min(last), first.max(last));
        if ((high - low) as u64) < (candidates.len() * DENSE_SPAN) as u64 {
            // Candidates close together (a common value or text) are read as one
            // range with the filter's SQL conditions, at most a chunk like the
            // ranges below: a lookup per seq cost twice that (docs/benchmarks.md).
            let bounds = (lo.max(low - 1), hi.min(high + 1));
            rows = with_conn!(conn, c => rows_between!(task, bounds, narrowing, backward)
                .limit(chunk as i64)
                .load::<LogColumns>(c)?);
            a_range_was_cut |= rows.len() == chunk;
        } else {
            rows = with_conn!(conn, c => rows_between!(task, (lo, hi), narrowing, backward)
                .filter(task_logs::seq.eq_any(candidates.clone()))
                .load::<LogColumns>(c)?);
        }
    }
    for (from, to) in ranges {
        let bounds = (lo.max(from - 1), hi.min(to + 1));
        let part = with_conn!(conn, c => rows_between!(task, bounds, narrowing, backward)
            .limit(chunk as i64)
            .load::<LogColumns>(c)?);
        a_range_was_cut |= part.len() == chunk;
        rows.extend(part);
    }
    if backward {
        rows.sort_unstable_by_key(|row| std::cmp::Reverse(row.0));
    } else {
        rows.sort_unstable_by_key(|row| row.0);
    }
    // A record noted again by a retried batch is both indexed and listed.
    rows.dedup_by_key(|row| row.0);
    let furthest = |rows: &[LogColumns]| {
        let row = rows.last().map(|r| r.0);
        let candidate = candidates.last().copied();
        if backward {
            row.into_iter().chain(candidate).min()
        } else {
            row.into_iter().chain(candidate).max()
        }
    };
    Ok(if rows.len() >= chunk || a_range_was_cut {
        rows.truncate(chunk);
        Chunk {
            positions: chunk,
            last_position: rows.last().map(|r| r.0),
            rows,
        }
    } else if index_full {
        Chunk {
            positions: chunk,
            last_position: candidates.last().copied(),
            rows,
        }
    } else {
        Chunk {
            positions: candidates.len().max(rows.len()),
            last_position: furthest(&rows),
            rows,
        }
    })
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
    let mut out = Vec::new();
    each_matching_seq(conn, task, filter, &mut |seq| {
        out.push(seq);
        out.len() <= max
    })?;
    Ok(out)
}

/// Hands every seq `filter` selects, ascending, to `sink` until it returns false
/// (full); see [`matching_seqs`].
fn each_matching_seq(
    conn: &mut Conn,
    task: TaskId,
    filter: &LogFilter,
    sink: &mut dyn FnMut(u64) -> bool,
) -> Result<()> {
    let mut narrowing = SqlNarrowing::for_task(filter, conn, task)?;
    if filter.q.is_some() || filter.re.is_some() || !filter.meta.is_empty() {
        return confirmed_seqs(conn, task, filter, &mut narrowing, sink);
    }
    // Through `task_log_warnings` (see `level_seqs`): its seqs alone when the level
    // is the whole filter, else its rows, confirmed.
    match narrowing.by_level {
        Some(_) if level_alone(filter).is_none() => {
            return confirmed_seqs(conn, task, filter, &mut narrowing, sink)
        }
        Some(level) => return all_level_seqs(conn, task, level, sink),
        None => {}
    }
    // SQL decides the filter: seqs alone are read, many at a time.
    let chunk: i64 = 50_000;
    let mut cursor = 0i64;
    loop {
        let seqs: Vec<i64> = with_conn!(conn, c => {
            let q = task_logs::table
                .select(task_logs::seq)
                .filter(task_logs::task_id.eq(task.as_bytes().as_slice()))
                .filter(task_logs::seq.gt(cursor))
                .into_boxed();
            let q = narrow!(q, narrowing);
            q.order(task_logs::seq.asc()).limit(chunk).load(c)?
        });
        if !seqs.iter().all(|s| sink(*s as u64)) {
            return Ok(());
        }
        match seqs.last() {
            Some(last) if seqs.len() as i64 == chunk => cursor = *last,
            _ => return Ok(()),
        }
    }
}

/// The seqs a filter selects, as ascending runs of consecutive seqs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeqRuns {
    /// `(first, last)`, inclusive, ascending, never touching.
    pub runs: Vec<(u64, u64)>,
    /// How many seqs the runs hold.
    pub count: u64,
}

impl SeqRuns {
    /// The runs of an ascending list of seqs.
    pub fn from_seqs(seqs: &[u64]) -> SeqRuns {
        let mut runs = SeqRuns::default();
        for &seq in seqs {
            runs.push(seq);
        }
        runs
    }

    /// Adds `seq`, above every seq so far.
    fn push(&mut self, seq: u64) {
        self.push_run(seq, seq);
    }

    /// Adds the seqs `first..=last`, above every seq so far.
    pub fn push_run(&mut self, first: u64, last: u64) {
        match self.runs.last_mut() {
            Some((_, end)) if *end + 1 == first => *end = last,
            _ => self.runs.push((first, last)),
        }
        self.count += last - first + 1;
    }

    /// Every seq, ascending.
    pub fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|(first, last)| *first..=*last)
    }
}

/// [`matching_seqs`] as runs. When the filter keeps every stored record of the task
/// (no text, metadata or time condition, and its level and sources leave out no
/// record the counts know of) and the stored seqs have no gap, the answer is one
/// run read from the counts and the ends of the primary key, without reading the
/// seqs; a task's whole log at the default level is that case.
///
/// The bound is on runs, not seqs: reading stops once `max_runs + 1` runs are
/// known, and more than `max_runs` runs tell the caller the index is too large to
/// send. Below it, `count` is exact however many seqs the runs hold.
pub fn matching_runs(
    conn: &mut Conn,
    task: TaskId,
    filter: &LogFilter,
    max_runs: usize,
) -> Result<SeqRuns> {
    let mut found = SeqRuns::default();
    each_matching_run(conn, task, filter, &mut |first, last| {
        found.push_run(first, last);
        found.runs.len() <= max_runs
    })?;
    Ok(found)
}

/// Hands the runs of [`matching_runs`] to `out`, ascending and never touching, until
/// it returns false: for callers that encode them as they come. A level filter alone
/// is read from the level bits (`level_bits`) when they cover the task.
pub fn each_matching_run(
    conn: &mut Conn,
    task: TaskId,
    filter: &LogFilter,
    out: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<()> {
    let mut runs = Coalesced {
        open: None,
        out,
        full: false,
    };
    let read = match (whole_log(conn, task, filter)?, level_alone(filter)) {
        (Some((first, last)), _) => {
            runs.push_run(first, last);
            true
        }
        (None, Some(level)) => {
            level_bits::each_level_run(conn, task, level, &mut |first, last| {
                runs.push_run(first, last)
            })?
        }
        (None, None) => false,
    };
    if !read {
        each_matching_seq(conn, task, filter, &mut |seq| runs.push_run(seq, seq))?;
    }
    runs.finish();
    Ok(())
}

/// Runs merged as they come: one is handed on once the next is seen not to touch it.
struct Coalesced<'a> {
    open: Option<(u64, u64)>,
    out: &'a mut dyn FnMut(u64, u64) -> bool,
    /// `out` wants no more.
    full: bool,
}

impl Coalesced<'_> {
    /// Adds `first..=last`, above every seq so far; false once `out` wants no more.
    fn push_run(&mut self, first: u64, last: u64) -> bool {
        if self.full {
            return false;
        }
        if let Some((_, end)) = &mut self.open {
            if *end + 1 == first {
                *end = last;
                return true;
            }
        }
        if let Some((f, l)) = self.open.replace((first, last)) {
            self.full = !(self.out)(f, l);
        }
        !self.full
    }

    fn finish(self) {
        match self.open {
            Some((first, last)) if !self.full => {
                (self.out)(first, last);
            }
            _ => {}
        }
    }
}

/// The filter's level when it is the filter's only condition.
fn level_alone(filter: &LogFilter) -> Option<i16> {
    let only = filter.q.is_none()
        && filter.re.is_none()
        && filter.meta.is_empty()
        && filter.sources.is_empty()
        && filter.since.is_none()
        && filter.until.is_none();
    filter.min_level.filter(|_| only).map(LogLevel::as_i16)
}

/// The task's whole log as one run, when `filter` keeps all of it and it has no gap.
fn whole_log(conn: &mut Conn, task: TaskId, filter: &LogFilter) -> Result<Option<(u64, u64)>> {
    if filter.q.is_some()
        || filter.re.is_some()
        || !filter.meta.is_empty()
        || filter.since.is_some()
        || filter.until.is_some()
    {
        return Ok(None);
    }
    // Counts first, then the ends: a batch stored in between only raises the top
    // end, which makes the two disagree rather than agree wrongly.
    let counts = super::source_counts(conn, task)?;
    let total: u64 = counts.iter().map(|c| c.count).sum();
    let kept: u64 = counts
        .iter()
        .filter(|c| filter.sources.is_empty() || filter.sources.contains(&c.source))
        .flat_map(|c| c.levels.iter())
        .filter(|(level, _)| filter.min_level.is_none_or(|min| **level >= min))
        .map(|(_, n)| n)
        .sum();
    if total == 0 || kept != total {
        return Ok(None);
    }
    // Two reads of one end each: SQLite reads a lone min() or max() from the end of
    // the primary key, but both in one statement from every row of the task.
    let (first, last) = (super::min_seq(conn, task)?, super::max_seq(conn, task)?);
    Ok(match (first, last) {
        (Some(first), last) if last >= first && last - first + 1 == total => Some((first, last)),
        _ => None,
    })
}

/// [`matching_seqs`] for filters SQL cannot decide: rows (or the text or metadata
/// index's candidates) are read in chunks and each is confirmed with [`LogFilter::matches`].
fn confirmed_seqs(
    conn: &mut Conn,
    task: TaskId,
    filter: &LogFilter,
    narrowing: &mut SqlNarrowing,
    sink: &mut dyn FnMut(u64) -> bool,
) -> Result<()> {
    let mut phases = Phases::new(conn, task, narrowing, 0, false)?;
    let mut cursor = 0i64;
    while let Some(phase) = phases.current() {
        let read = read_chunk(conn, task, narrowing, phase, cursor, false, MAX_CHUNK_ROWS)?;
        for row in read.rows {
            if row_matches(filter, &row)? && !sink(row.0 as u64) {
                return Ok(());
            }
        }
        if let Some(last) = read.last_position {
            cursor = last;
        }
        if read.positions < MAX_CHUNK_ROWS && !phases.advance() {
            break;
        }
    }
    Ok(())
}

/// The part of a [`LogFilter`] that SQL evaluates, prepared once per request.
struct SqlNarrowing {
    min_level: Option<i16>,
    sources: Vec<String>,
    since: Option<i64>,
    until: Option<i64>,
    /// `message LIKE|ILIKE pattern` conditions: `q`'s and those of the literals `re`
    /// requires.
    likes: Vec<(&'static str, String)>,
    contains_function: &'static str,
    meta_needles: Vec<Vec<String>>,
    /// What the text and metadata index can look up for the filter (see
    /// [`text_index`]); empty when it cannot narrow it.
    index_lookups: Vec<text_index::Candidates>,
    /// The filter's level, when the records are found through `task_log_warnings`
    /// (see [`SqlNarrowing::for_task`]).
    by_level: Option<i16>,
}

impl SqlNarrowing {
    /// Narrows nothing.
    const NONE: &SqlNarrowing = &SqlNarrowing {
        min_level: None,
        sources: Vec::new(),
        since: None,
        until: None,
        likes: Vec::new(),
        contains_function: "",
        meta_needles: Vec::new(),
        index_lookups: Vec::new(),
        by_level: None,
    };

    /// [`SqlNarrowing::new`] for a read of `task`, deciding whether it goes through
    /// `task_log_warnings`: always for a WARNING or ERROR level alone, which the
    /// index answers by itself; with sources or a time range only when the index
    /// holds at most a tenth of the task's records (from its counts), since each
    /// record found there is then fetched on its own and the rest of the filter
    /// checked on it (so too with a text too short for the text index); never with
    /// a text or metadata condition the text or metadata index looks up, which
    /// narrows better.
    fn for_task(filter: &LogFilter, conn: &mut Conn, task: TaskId) -> Result<Self> {
        let mut narrowing = SqlNarrowing::new(filter, conn.backend());
        let Some(level) = narrowing.min_level.filter(|level| *level >= WARNING) else {
            return Ok(narrowing);
        };
        if !narrowing.index_lookups.is_empty() {
            return Ok(narrowing);
        }
        let alone = narrowing.sources.is_empty()
            && narrowing.since.is_none()
            && narrowing.until.is_none()
            && narrowing.likes.is_empty()
            && narrowing.meta_needles.is_empty();
        let few = alone || {
            let counts = super::source_counts(conn, task)?;
            let total: u64 = counts.iter().map(|c| c.count).sum();
            let indexed: u64 = counts
                .iter()
                .flat_map(|c| c.levels.iter())
                .filter(|(l, _)| l.as_i16() >= level)
                .map(|(_, n)| n)
                .sum();
            indexed.saturating_mul(10) <= total
        };
        narrowing.by_level = few.then_some(level);
        Ok(narrowing)
    }

    fn new(filter: &LogFilter, backend: Backend) -> Self {
        let like_operator = |text: &str| match backend {
            // SQLite's LIKE ignores ASCII case, exactly like LogFilter's `q`.
            Backend::Sqlite => "message LIKE ",
            // With no letter to fold, the plain (cheaper) LIKE selects the same rows.
            Backend::Postgres if !text.bytes().any(|b| b.is_ascii_alphabetic()) => "message LIKE ",
            // ILIKE ignores case at least for ASCII; matches() decides the rest.
            Backend::Postgres => "message ILIKE ",
        };
        // The regex's literals however short: `re=99$` has its database skip the
        // 19 rows in 20 without `99` instead of handing them over to be decoded.
        let mut texts = filter.q_texts();
        for literal in filter.regex_literals() {
            if !texts.contains(&literal) {
                texts.push(literal);
            }
        }
        let likes: Vec<(&'static str, String)> = texts
            .iter()
            .map(|text| (like_operator(text), like_pattern(text)))
            .collect();
        SqlNarrowing {
            min_level: filter.min_level.map(LogLevel::as_i16),
            sources: filter.sources.clone(),
            since: filter.since.map(Timestamp::as_micros),
            until: filter.until.map(Timestamp::as_micros),
            likes,
            contains_function: match backend {
                Backend::Sqlite => "instr",
                Backend::Postgres => "strpos",
            },
            meta_needles: filter.meta.iter().map(|m| m.needles.clone()).collect(),
            index_lookups: text_index::Candidates::for_filter(filter, backend),
            by_level: None,
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

pub(crate) fn decode_row(
    (seq, ts, level, source, message, metadata, group, mark, worst): LogColumns,
) -> Result<LogEntry> {
    let corrupt = |what: String| StorageError::Corrupt(format!("record {seq}: {what}"));
    Ok(LogEntry {
        seq: seq as u64,
        timestamp: Timestamp(ts),
        level: LogLevel::from_i16(level).ok_or_else(|| corrupt(format!("level {level}")))?,
        source: Arc::from(source),
        body: Body::with_metadata_text(message, metadata.as_deref())
            .map_err(|e| corrupt(format!("metadata: {e}")))?,
        group: group.map(|g| g as u64),
        mark: mark
            .map(|m| GroupMark::from_i16(m).ok_or_else(|| corrupt(format!("group mark {m}"))))
            .transpose()?,
        worst: worst
            .map(|w| LogLevel::from_i16(w).ok_or_else(|| corrupt(format!("group level {w}"))))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("plain"), "%plain%");
    }

    #[test]
    fn a_pages_next_read_asks_for_what_the_match_rate_says_it_needs() {
        // Every row matched (no filter): exactly the rest of the page.
        assert_eq!(next_chunk(745, 256, 256, 100), 745);
        // One in ten matched: ten times the rest, with a margin.
        assert_eq!(next_chunk(100, 1_000, 100, 100), 1_266);
        // Nothing matched yet: as much as one read may load.
        assert_eq!(next_chunk(1_001, 256, 0, 100), MAX_CHUNK_ROWS);
        // Long rows bound it by bytes, however many are needed.
        assert_eq!(next_chunk(1_001, 256, 256, 64 << 10), FIRST_CHUNK_ROWS);
        // A rare match asks for more than one read may load: that much.
        assert_eq!(next_chunk(10_001, 100_000, 1, 100), MAX_CHUNK_ROWS);
    }
}
