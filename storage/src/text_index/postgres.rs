//! The metadata index on PostgreSQL: `task_log_pairs` (migration
//! `2026-12-02-000003_meta_index`), keyed by task id, filled behind ingest from
//! `task_log_unindexed` as on SQLite. Only records with metadata are noted, so logs
//! without any cost ingest nothing. Several engine nodes may index at once: each
//! step locks the ranges it takes and skips those another holds.
//!
//! PostgreSQL has no text index: a trigram GIN index cost ingest two thirds of its
//! rate and narrowed nothing within a task (docs/benchmarks.md).

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Text};
use protocol::TaskId;

use super::{pairs_of_rows, Candidates, Count, Key, Metadata, Position, Range, ESTIMATE_CAP};
use crate::Result;

/// Pair entries inserted per statement: two arrays of at most this many elements.
const ENTRIES_PER_INSERT: usize = 10_000;

/// Notes the seq range of a stored batch's records that carry metadata, if any, as
/// not yet indexed. Part of the batch's transaction.
pub fn note_unindexed(c: &mut PgConnection, task: TaskId, (first, last): (i64, i64)) -> Result<()> {
    note_range(c, task.as_bytes(), (first, last))
}

fn note_range(c: &mut PgConnection, task: &[u8], (first, last): (i64, i64)) -> Result<()> {
    diesel::sql_query(
        "INSERT INTO task_log_unindexed (task_id, from_seq, to_seq) VALUES ($1, $2, $3) \
         ON CONFLICT (task_id, from_seq) \
         DO UPDATE SET to_seq = greatest(task_log_unindexed.to_seq, excluded.to_seq)",
    )
    .bind::<Binary, _>(task)
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .execute(c)?;
    Ok(())
}

/// Ranges one step takes at most.
const RANGES_PER_STEP: usize = 64;

/// Indexes the metadata of up to about `step` pending records, newest tasks and
/// ranges first, in one transaction. Returns about how many records it took: 0 when
/// nothing is pending or every pending range is another node's. Indexing a record
/// twice (a range noted again by a retried batch) adds nothing.
pub fn index_pending(c: &mut PgConnection, step: usize) -> Result<usize> {
    c.transaction(|c| {
        let mut covered = 0usize;
        for _ in 0..RANGES_PER_STEP {
            if covered >= step {
                break;
            }
            // One range at a time, so that another node's step skips only the ranges
            // this one works on. Locked until this step commits: a writer noting the
            // same range again (a retried batch) waits for it, then notes it anew.
            let range: Option<Range> = diesel::sql_query(
                "SELECT task_id, from_seq, to_seq FROM task_log_unindexed \
                 ORDER BY task_id DESC, from_seq DESC LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .get_result(c)
            .optional()?;
            let Some(range) = range else {
                break;
            };
            let room = step - covered;
            let rows: Vec<Metadata> = diesel::sql_query(
                "SELECT seq, metadata FROM task_logs WHERE task_id = $1 AND seq >= $2 \
                 AND seq <= $3 AND metadata IS NOT NULL ORDER BY seq LIMIT $4",
            )
            .bind::<Binary, _>(&range.task_id)
            .bind::<BigInt, _>(range.from_seq)
            .bind::<BigInt, _>(range.to_seq)
            .bind::<BigInt, _>(room as i64)
            .load(c)?;
            let last = match rows.last() {
                Some(row) if rows.len() == room => row.seq,
                _ => range.to_seq,
            };
            // A range whose records have no metadata (or are gone) still counts, so
            // that a step always ends.
            covered += rows.len().max(1);
            let entries = pairs_of_rows(rows);
            for part in entries.chunks(ENTRIES_PER_INSERT) {
                let (pairs, seqs): (Vec<&str>, Vec<i64>) =
                    part.iter().map(|(pair, seq)| (pair.as_str(), *seq)).unzip();
                diesel::sql_query(
                    "INSERT INTO task_log_pairs (task_id, pair, seq) \
                     SELECT $1, pair, seq FROM unnest($2::text[], $3::bigint[]) AS e (pair, seq) \
                     ON CONFLICT DO NOTHING",
                )
                .bind::<Binary, _>(&range.task_id)
                .bind::<Array<Text>, _>(pairs)
                .bind::<Array<BigInt>, _>(seqs)
                .execute(c)?;
            }
            diesel::sql_query(
                "DELETE FROM task_log_unindexed WHERE task_id = $1 AND from_seq = $2",
            )
            .bind::<Binary, _>(&range.task_id)
            .bind::<BigInt, _>(range.from_seq)
            .execute(c)?;
            if last < range.to_seq {
                note_range(c, &range.task_id, (last + 1, range.to_seq))?;
            }
        }
        Ok(covered)
    })
}

/// How many records wait for the indexer (counted as seq ranges, an upper bound).
pub fn pending_records(c: &mut PgConnection) -> Result<u64> {
    let row: Key = diesel::sql_query(
        "SELECT coalesce(sum(to_seq - from_seq + 1), 0)::bigint AS key FROM task_log_unindexed",
    )
    .get_result(c)?;
    Ok(row.key.max(0) as u64)
}

/// The task's unindexed seq ranges that meet `(after, before)`, inclusive, in seq
/// order.
pub fn unindexed_ranges(
    c: &mut PgConnection,
    task: TaskId,
    (after, before): (i64, i64),
) -> Result<Vec<(i64, i64)>> {
    let rows: Vec<Range> = diesel::sql_query(
        "SELECT task_id, from_seq, to_seq FROM task_log_unindexed \
         WHERE task_id = $1 AND to_seq > $2 AND from_seq < $3 ORDER BY from_seq",
    )
    .bind::<Binary, _>(task.as_bytes().as_slice())
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(before)
    .load(c)?;
    Ok(rows.into_iter().map(|r| (r.from_seq, r.to_seq)).collect())
}

/// Seqs of the task's records in `(after, before)` that `lookup` finds, in seq order
/// (descending when `backward`), at most `limit`. Only metadata pairs are indexed
/// here; a text lookup finds nothing and is never asked for.
pub fn candidate_seqs(
    c: &mut PgConnection,
    task: TaskId,
    lookup: &Candidates,
    (after, before): (i64, i64),
    backward: bool,
    limit: usize,
) -> Result<Vec<i64>> {
    let Candidates::Pair(pair) = lookup else {
        return Ok(Vec::new());
    };
    let order = if backward { "DESC" } else { "ASC" };
    let rows: Vec<Position> = diesel::sql_query(format!(
        "SELECT seq AS position FROM task_log_pairs \
         WHERE task_id = $1 AND pair = $2 AND seq > $3 AND seq < $4 \
         ORDER BY seq {order} LIMIT $5"
    ))
    .bind::<Binary, _>(task.as_bytes().as_slice())
    .bind::<Text, _>(pair)
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(before)
    .bind::<BigInt, _>(limit as i64)
    .load(c)?;
    Ok(rows.into_iter().map(|r| r.position).collect())
}

/// Which of `lookups` finds the fewest of the task's candidates, counted up to
/// [`ESTIMATE_CAP`]; the first of equals. The pairs are counted rather than
/// estimated from statistics, which a task just written does not have yet.
pub fn fewest(c: &mut PgConnection, task: TaskId, lookups: &[Candidates]) -> Result<usize> {
    if lookups.len() < 2 {
        return Ok(0);
    }
    let mut best = (0, i64::MAX);
    for (i, lookup) in lookups.iter().enumerate() {
        let Candidates::Pair(pair) = lookup else {
            continue;
        };
        let count: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM (SELECT 1 FROM task_log_pairs \
             WHERE task_id = $1 AND pair = $2 LIMIT $3) AS found",
        )
        .bind::<Binary, _>(task.as_bytes().as_slice())
        .bind::<Text, _>(pair)
        .bind::<BigInt, _>(ESTIMATE_CAP)
        .get_result(c)?;
        if count.n < best.1 {
            best = (i, count.n);
        }
        if count.n == 0 {
            break;
        }
    }
    Ok(best.0)
}

/// Deletes the entries of the tasks whose ids are in `[from, until)`, at most `step`
/// per statement, before the tasks go: their deletion would cascade to every entry
/// of a task (or, for retention, of a day's tasks) in one statement.
pub fn forget_pairs_between(
    c: &mut PgConnection,
    (from, until): (&[u8], &[u8]),
    step: usize,
) -> Result<()> {
    loop {
        let deleted = diesel::sql_query(
            "DELETE FROM task_log_pairs WHERE ctid = ANY (ARRAY( \
             SELECT ctid FROM task_log_pairs WHERE task_id >= $1 AND task_id < $2 LIMIT $3))",
        )
        .bind::<Binary, _>(from)
        .bind::<Binary, _>(until)
        .bind::<BigInt, _>(step.max(1) as i64)
        .execute(c)?;
        if deleted == 0 {
            return Ok(());
        }
    }
}
