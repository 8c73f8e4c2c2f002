//! The text and metadata indexes on PostgreSQL (migration
//! `2026-12-02-000003_log_indexes`), keyed by task rather than by `task_logs`'
//! partition, and filled behind ingest from `task_log_unindexed` as on SQLite.
//! Several engine nodes may index at once: each step locks the ranges it takes and
//! skips those another holds.
//!
//! The trigram index is this module's own: a `pg_trgm` GIN index covers a whole
//! partition, so a common trigram's posting list holds every record of the day, and
//! it cost ingest two thirds of its rate (docs/benchmarks.md). Here a task's records
//! are cut into blocks of [`BLOCK_SEQS`] seqs; `task_log_trigrams` holds, per task,
//! trigram and block, the offsets in the block of the records holding the trigram
//! (two bytes each, in any order, possibly repeated), and `task_log_trigram_counts`
//! how many records of the task hold each trigram. A text's candidates come from
//! its rarest trigrams only, a block at a time in seq order.

use std::collections::{BTreeMap, HashMap};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Text};
use protocol::TaskId;

use super::{
    pairs_of_rows, task_of, BatchCandidates, Candidates, Count, Key, Metadata, Position, Range,
    ESTIMATE_CAP,
};
use crate::Result;

/// Seqs per block of the trigram index: a block's offsets fit in two bytes, and a
/// trigram every record holds costs at most 8 KiB per block.
pub const BLOCK_SEQS: i64 = 1 << BLOCK_BITS;
const BLOCK_BITS: u32 = 12;
/// Entries inserted per statement: arrays of at most this many elements.
const ENTRIES_PER_INSERT: usize = 10_000;
/// Ranges one step takes at most.
const RANGES_PER_STEP: usize = 64;
/// A text's candidates are the records holding this many of its rarest trigrams:
/// more cost reads for little narrowing, as [`super::MAX_TRIGRAMS`] on SQLite.
const TRIGRAMS_READ: usize = 3;
/// Entries of its rarest trigrams a search reads at most for a batch of tasks
/// ([`batch_candidates`]): 800 KB of offsets.
const BATCH_ENTRIES: i64 = 400_000;
/// Blocks of the rarest trigram read per statement.
const BLOCKS_PER_READ: i64 = 64;
/// Steps whose lowest seqs are in the same 65,536 add their trigram counts to the
/// same rows: a read sums a few rows per trigram however small the steps were (a
/// task logging slowly is indexed a few records a step), and a row is updated by
/// the steps of its bucket only, then left for good.
const COUNT_BUCKET_BITS: u32 = 16;

/// The keys of the distinct trigrams of `texts`, ascending: three characters of 21
/// bits each, ASCII letters folded to lower case (every text a filter requires is
/// contained up to ASCII case, `protocol::literals`).
pub fn trigram_keys<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<i64> {
    let mut keys = Vec::new();
    for text in texts {
        let chars: Vec<i64> = text
            .chars()
            .map(|c| c.to_ascii_lowercase() as i64)
            .collect();
        keys.extend(chars.windows(3).map(|w| (w[0] << 42) | (w[1] << 21) | w[2]));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Notes the seq range of stored records as not yet indexed. Part of the batch's
/// transaction, so a record is always either indexed or listed here.
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

#[derive(QueryableByName)]
struct Record {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    message: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    metadata: Option<String>,
}

/// What one step adds to one task's index: its records' trigram offsets per
/// `(trigram, block)`, trigram counts and metadata entries, written once at the end
/// of the step whatever the number of ranges (batches) it took.
#[derive(Default)]
struct TaskEntries {
    blocks: BTreeMap<(i64, i64), Vec<u8>>,
    counts: BTreeMap<i64, i64>,
    metadata: Vec<Metadata>,
    /// The lowest seq taken: its [`COUNT_BUCKET_BITS`] bucket keys this step's counts.
    first: i64,
}

impl TaskEntries {
    fn add(&mut self, rows: Vec<Record>) {
        for row in rows {
            let (block, offset) = (row.seq >> BLOCK_BITS, (row.seq & (BLOCK_SEQS - 1)) as u16);
            for key in trigram_keys([row.message.as_str()]) {
                self.blocks
                    .entry((key, block))
                    .or_default()
                    .extend_from_slice(&offset.to_le_bytes());
                *self.counts.entry(key).or_default() += 1;
            }
            if let Some(metadata) = row.metadata {
                self.metadata.push(Metadata {
                    seq: row.seq,
                    metadata,
                });
            }
        }
    }
}

/// Indexes up to about `step` pending records, newest tasks and ranges first, in one
/// transaction. Returns about how many records it took: 0 when nothing is pending or
/// every pending range is another node's. Indexing a record twice (a range noted
/// again by a retried batch) adds no metadata entry, repeats its trigram offsets
/// (reads drop repeats) and counts it twice (counts only rank trigrams).
pub fn index_pending(c: &mut PgConnection, step: usize) -> Result<usize> {
    c.transaction(|c| {
        let mut covered = 0usize;
        let mut tasks: BTreeMap<Vec<u8>, TaskEntries> = BTreeMap::new();
        for _ in 0..RANGES_PER_STEP {
            if covered >= step {
                break;
            }
            // One range at a time, so that another node's step skips only the ranges
            // this one works on. Locked until this step commits: a writer noting the
            // same range again (a retried batch) waits for it, then notes it anew.
            // The task's row is held too, so that it cannot be deleted (and its
            // entries with it) before this step's entries are in: the entry tables
            // have no foreign key. A task being deleted is skipped, never waited
            // for, as its deletion waits for this range's lock.
            let range: Option<Range> = diesel::sql_query(
                "SELECT u.task_id, u.from_seq, u.to_seq \
                 FROM task_log_unindexed u JOIN tasks t ON t.id = u.task_id \
                 ORDER BY u.task_id DESC, u.from_seq DESC LIMIT 1 \
                 FOR UPDATE OF u SKIP LOCKED FOR KEY SHARE OF t SKIP LOCKED",
            )
            .get_result(c)
            .optional()?;
            let Some(range) = range else {
                break;
            };
            let room = step - covered;
            let rows: Vec<Record> = diesel::sql_query(
                "SELECT seq, message, metadata FROM task_logs WHERE task_id = $1 \
                 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT $4",
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
            // A range whose records are gone still counts, so that a step always ends.
            covered += rows.len().max(1);
            if let Some(first) = rows.first() {
                let entries = tasks
                    .entry(range.task_id.clone())
                    .or_insert_with(|| TaskEntries {
                        first: first.seq,
                        ..TaskEntries::default()
                    });
                entries.first = entries.first.min(first.seq);
                entries.add(rows);
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
        // In task order, like every write below, so that two steps writing the same
        // rows (two nodes on one task) wait for each other instead of deadlocking.
        for (task, entries) in tasks {
            insert_trigrams(c, &task, &entries)?;
            insert_pairs(c, &task, pairs_of_rows(entries.metadata))?;
        }
        Ok(covered)
    })
}

/// Adds a step's trigram offsets to the task's blocks, and its counts to the rows
/// of its seqs' bucket ([`COUNT_BUCKET_BITS`]): updating one count row per trigram
/// at every step left thousands of dead versions of each for every upsert to walk
/// (docs/benchmarks.md). Rows are written in key order.
fn insert_trigrams(c: &mut PgConnection, task: &[u8], entries: &TaskEntries) -> Result<()> {
    let TaskEntries {
        blocks,
        counts,
        first,
        ..
    } = entries;
    let blocks: Vec<_> = blocks.iter().collect();
    for part in blocks.chunks(ENTRIES_PER_INSERT) {
        let mut keys = Vec::with_capacity(part.len());
        let mut numbers = Vec::with_capacity(part.len());
        let mut offsets = Vec::with_capacity(part.len());
        for ((key, block), bytes) in part.iter().copied() {
            keys.push(*key);
            numbers.push(*block);
            offsets.push(bytes.as_slice());
        }
        diesel::sql_query(
            "INSERT INTO task_log_trigrams (task_id, trigram, block, offsets) \
             SELECT $1, trigram, block, offsets \
             FROM unnest($2::bigint[], $3::bigint[], $4::bytea[]) AS e (trigram, block, offsets) \
             ON CONFLICT (task_id, trigram, block) \
             DO UPDATE SET offsets = task_log_trigrams.offsets || excluded.offsets",
        )
        .bind::<Binary, _>(task)
        .bind::<Array<BigInt>, _>(keys)
        .bind::<Array<BigInt>, _>(numbers)
        .bind::<Array<Binary>, _>(offsets)
        .execute(c)?;
    }
    let counts: Vec<(i64, i64)> = counts.iter().map(|(k, n)| (*k, *n)).collect();
    for part in counts.chunks(ENTRIES_PER_INSERT) {
        let (keys, records): (Vec<i64>, Vec<i64>) = part.iter().copied().unzip();
        diesel::sql_query(
            "INSERT INTO task_log_trigram_counts (task_id, trigram, bucket, records) \
             SELECT $1, trigram, $4, records \
             FROM unnest($2::bigint[], $3::bigint[]) AS e (trigram, records) \
             ON CONFLICT (task_id, trigram, bucket) \
             DO UPDATE SET records = task_log_trigram_counts.records + excluded.records",
        )
        .bind::<Binary, _>(task)
        .bind::<Array<BigInt>, _>(keys)
        .bind::<Array<BigInt>, _>(records)
        .bind::<BigInt, _>(*first >> COUNT_BUCKET_BITS)
        .execute(c)?;
    }
    Ok(())
}

/// Adds metadata entries, `(pair, seq)` in key order.
fn insert_pairs(c: &mut PgConnection, task: &[u8], entries: Vec<(String, i64)>) -> Result<()> {
    for part in entries.chunks(ENTRIES_PER_INSERT) {
        let (pairs, seqs): (Vec<&str>, Vec<i64>) =
            part.iter().map(|(pair, seq)| (pair.as_str(), *seq)).unzip();
        diesel::sql_query(
            "INSERT INTO task_log_pairs (task_id, pair, seq) \
             SELECT $1, pair, seq FROM unnest($2::text[], $3::bigint[]) AS e (pair, seq) \
             ON CONFLICT DO NOTHING",
        )
        .bind::<Binary, _>(task)
        .bind::<Array<Text>, _>(pairs)
        .bind::<Array<BigInt>, _>(seqs)
        .execute(c)?;
    }
    Ok(())
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
/// (descending when `backward`), at most `limit`; fewer only when there are no more.
pub fn candidate_seqs(
    c: &mut PgConnection,
    task: TaskId,
    lookup: &Candidates,
    (after, before): (i64, i64),
    backward: bool,
    limit: usize,
) -> Result<Vec<i64>> {
    let pair = match lookup {
        Candidates::Pair(pair) => pair,
        Candidates::Trigrams(keys) => {
            return trigram_candidates(c, task, keys, (after, before), backward, limit)
        }
        // SQLite's kind of lookup: never asked for here.
        Candidates::Text(_) => return Ok(Vec::new()),
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

#[derive(QueryableByName)]
struct TrigramCount {
    #[diesel(sql_type = BigInt)]
    trigram: i64,
    #[diesel(sql_type = BigInt)]
    records: i64,
}

/// How many of the task's indexed records hold each of `keys`, rarest first; `None`
/// when one of them is in none, so that no indexed record holds them all.
fn rarest(c: &mut PgConnection, task: TaskId, keys: &[i64]) -> Result<Option<Vec<(i64, i64)>>> {
    let mut counts: Vec<TrigramCount> = diesel::sql_query(
        "SELECT trigram, sum(records)::bigint AS records FROM task_log_trigram_counts \
         WHERE task_id = $1 AND trigram = ANY($2) GROUP BY trigram",
    )
    .bind::<Binary, _>(task.as_bytes().as_slice())
    .bind::<Array<BigInt>, _>(keys)
    .load(c)?;
    if counts.len() < keys.len() {
        return Ok(None);
    }
    counts.sort_by_key(|c| (c.records, c.trigram));
    Ok(Some(
        counts.into_iter().map(|c| (c.trigram, c.records)).collect(),
    ))
}

#[derive(QueryableByName)]
struct Block {
    #[diesel(sql_type = BigInt)]
    trigram: i64,
    #[diesel(sql_type = BigInt)]
    block: i64,
    #[diesel(sql_type = Binary)]
    offsets: Vec<u8>,
}

impl Block {
    /// The block's seqs, ascending, each once.
    fn seqs(&self) -> Vec<i64> {
        let base = self.block << BLOCK_BITS;
        let mut seqs: Vec<i64> = self
            .offsets
            .chunks_exact(2)
            .map(|b| base + i64::from(u16::from_le_bytes([b[0], b[1]])))
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    }
}

/// [`candidate_seqs`] for trigram keys: the blocks of the rarest trigram in paging
/// order, [`BLOCKS_PER_READ`] at a time, each intersected with the same blocks of
/// the next rarest ones, until `limit` seqs are found or the blocks run out.
fn trigram_candidates(
    c: &mut PgConnection,
    task: TaskId,
    keys: &[i64],
    (after, before): (i64, i64),
    backward: bool,
    limit: usize,
) -> Result<Vec<i64>> {
    let Some(counts) = rarest(c, task, keys)? else {
        return Ok(Vec::new());
    };
    let chosen: Vec<i64> = counts.iter().take(TRIGRAMS_READ).map(|(k, _)| *k).collect();
    let (drive, others) = (chosen[0], &chosen[1..]);
    let order = if backward { "DESC" } else { "ASC" };
    // Blocks still to read, inclusive.
    let (mut low, mut high) = (
        (after + 1).max(0) >> BLOCK_BITS,
        (before - 1).max(0) >> BLOCK_BITS,
    );
    let mut out: Vec<i64> = Vec::new();
    while low <= high && before > after + 1 {
        let driving: Vec<Block> = diesel::sql_query(format!(
            "SELECT trigram, block, offsets FROM task_log_trigrams \
             WHERE task_id = $1 AND trigram = $2 AND block >= $3 AND block <= $4 \
             ORDER BY block {order} LIMIT $5"
        ))
        .bind::<Binary, _>(task.as_bytes().as_slice())
        .bind::<BigInt, _>(drive)
        .bind::<BigInt, _>(low)
        .bind::<BigInt, _>(high)
        .bind::<BigInt, _>(BLOCKS_PER_READ)
        .load(c)?;
        let Some(last) = driving.last().map(|b| b.block) else {
            break;
        };
        let numbers: Vec<i64> = driving.iter().map(|b| b.block).collect();
        let mut beside: BTreeMap<(i64, i64), Vec<i64>> = BTreeMap::new();
        if !others.is_empty() {
            let rows: Vec<Block> = diesel::sql_query(
                "SELECT trigram, block, offsets FROM task_log_trigrams \
                 WHERE task_id = $1 AND trigram = ANY($2) AND block = ANY($3)",
            )
            .bind::<Binary, _>(task.as_bytes().as_slice())
            .bind::<Array<BigInt>, _>(others)
            .bind::<Array<BigInt>, _>(&numbers)
            .load(c)?;
            for row in rows {
                beside.insert((row.trigram, row.block), row.seqs());
            }
        }
        for block in &driving {
            let mut seqs: Vec<i64> = block
                .seqs()
                .into_iter()
                .filter(|seq| *seq > after && *seq < before)
                .filter(|seq| {
                    others.iter().all(|other| {
                        beside
                            .get(&(*other, block.block))
                            .is_some_and(|s| s.binary_search(seq).is_ok())
                    })
                })
                .collect();
            if backward {
                seqs.reverse();
            }
            out.extend(seqs);
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
        if (driving.len() as i64) < BLOCKS_PER_READ {
            break;
        }
        if backward {
            high = last - 1;
        } else {
            low = last + 1;
        }
    }
    Ok(out)
}

#[derive(QueryableByName)]
struct TaskRow {
    #[diesel(sql_type = Binary)]
    task_id: Vec<u8>,
}

#[derive(QueryableByName)]
struct TaskTrigramCount {
    #[diesel(sql_type = Binary)]
    task_id: Vec<u8>,
    #[diesel(embed)]
    count: TrigramCount,
}

#[derive(QueryableByName)]
struct TaskBlock {
    #[diesel(sql_type = Binary)]
    task_id: Vec<u8>,
    #[diesel(embed)]
    block: Block,
}

/// [`super::batch_candidates`] on PostgreSQL, in one snapshot and three statements
/// whatever the number of tasks: the tasks with records still to index are read
/// alone; among the others, those missing one of `keys` hold no candidate, and the
/// rest are read through the same [`TRIGRAMS_READ`] trigrams, the rarest over all
/// of them, whose every entry in those tasks comes in one statement and is
/// intersected here. `None` when those entries are more than [`BATCH_ENTRIES`] or
/// the candidates more than [`super::BATCH_CANDIDATES`].
pub fn batch_candidates(
    c: &mut PgConnection,
    tasks: &[TaskId],
    keys: &[i64],
) -> Result<Option<BatchCandidates>> {
    let ids: Vec<&[u8]> = tasks.iter().map(|t| t.as_bytes().as_slice()).collect();
    c.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|c| {
            let mut batch = BatchCandidates::default();
            let pending: Vec<TaskRow> = diesel::sql_query(
                "SELECT DISTINCT task_id FROM task_log_unindexed WHERE task_id = ANY($1)",
            )
            .bind::<Array<Binary>, _>(&ids)
            .load(c)?;
            for row in pending {
                batch.read_alone.insert(task_of(&row.task_id)?);
            }
            let counts: Vec<TaskTrigramCount> = diesel::sql_query(
                "SELECT task_id, trigram, sum(records)::bigint AS records \
                 FROM task_log_trigram_counts WHERE task_id = ANY($1) AND trigram = ANY($2) \
                 GROUP BY task_id, trigram",
            )
            .bind::<Array<Binary>, _>(&ids)
            .bind::<Array<BigInt>, _>(keys)
            .load(c)?;
            let mut per_task: BTreeMap<Vec<u8>, Vec<TrigramCount>> = BTreeMap::new();
            for row in counts {
                per_task.entry(row.task_id).or_default().push(row.count);
            }
            let mut totals: BTreeMap<i64, i64> = BTreeMap::new();
            let mut holding: Vec<&[u8]> = Vec::new();
            for (task, counts) in &per_task {
                if counts.len() < keys.len() || batch.read_alone.contains(&task_of(task)?) {
                    continue;
                }
                holding.push(task.as_slice());
                for count in counts {
                    *totals.entry(count.trigram).or_default() += count.records;
                }
            }
            let mut ranked: Vec<(i64, i64)> = totals.into_iter().map(|(k, n)| (n, k)).collect();
            ranked.sort_unstable();
            ranked.truncate(TRIGRAMS_READ);
            let Some(&(_, drive)) = ranked.first() else {
                return Ok(Some(batch));
            };
            if ranked.iter().map(|(n, _)| n).sum::<i64>() > BATCH_ENTRIES {
                return Ok(None);
            }
            let chosen: Vec<i64> = ranked.iter().map(|(_, k)| *k).collect();
            let rows: Vec<TaskBlock> = diesel::sql_query(
                "SELECT task_id, trigram, block, offsets FROM task_log_trigrams \
                 WHERE task_id = ANY($1) AND trigram = ANY($2)",
            )
            .bind::<Array<Binary>, _>(&holding)
            .bind::<Array<BigInt>, _>(&chosen)
            .load(c)?;
            // Keyed by the task's place in `holding`, not its id: comparing ids was
            // most of this intersection's time (a profile of a ten-task search).
            let place: HashMap<&[u8], usize> =
                holding.iter().enumerate().map(|(i, t)| (*t, i)).collect();
            let mut blocks: HashMap<(usize, i64, i64), Vec<i64>> = HashMap::new();
            for row in &rows {
                let Block { trigram, block, .. } = row.block;
                if let Some(&task) = place.get(row.task_id.as_slice()) {
                    blocks.insert((task, trigram, block), row.block.seqs());
                }
            }
            let mut found = 0usize;
            for (&(task, trigram, block), seqs) in &blocks {
                if trigram != drive {
                    continue;
                }
                // A block missing one of the other trigrams holds no candidate.
                let Some(others) = chosen[1..]
                    .iter()
                    .map(|other| blocks.get(&(task, *other, block)))
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                let task_id = task_of(holding[task])?;
                for seq in seqs {
                    if others.iter().all(|o| o.binary_search(seq).is_ok()) {
                        batch.push(task_id, *seq);
                        found += 1;
                    }
                }
            }
            if found > super::BATCH_CANDIDATES {
                return Ok(None);
            }
            for seqs in batch.seqs.values_mut() {
                seqs.sort_unstable_by(|a, b| b.cmp(a));
            }
            Ok(Some(batch))
        })
}

/// Which of `lookups` finds the fewest of the task's candidates; the first of
/// equals. Metadata pairs are counted up to [`ESTIMATE_CAP`]; a text's candidates,
/// the records holding its [`TRIGRAMS_READ`] rarest trigrams, are estimated from
/// their counts as if the trigrams were independent (a text of common trigrams,
/// `record 123456`, is rare as a whole), never above the rarest one's count. Neither
/// comes from statistics, which a task just written does not have yet.
pub fn fewest(c: &mut PgConnection, task: TaskId, lookups: &[Candidates]) -> Result<usize> {
    if lookups.len() < 2 {
        return Ok(0);
    }
    let mut best = (0, i64::MAX);
    for (i, lookup) in lookups.iter().enumerate() {
        let n = match lookup {
            Candidates::Pair(pair) => {
                let count: Count = diesel::sql_query(
                    "SELECT count(*) AS n FROM (SELECT 1 FROM task_log_pairs \
                     WHERE task_id = $1 AND pair = $2 LIMIT $3) AS found",
                )
                .bind::<Binary, _>(task.as_bytes().as_slice())
                .bind::<Text, _>(pair)
                .bind::<BigInt, _>(ESTIMATE_CAP)
                .get_result(c)?;
                count.n
            }
            Candidates::Trigrams(keys) => match rarest(c, task, keys)? {
                Some(counts) => {
                    let records: Count = diesel::sql_query(
                        "SELECT coalesce(sum(count), 0)::bigint AS n FROM task_log_counts \
                         WHERE task_id = $1",
                    )
                    .bind::<Binary, _>(task.as_bytes().as_slice())
                    .get_result(c)?;
                    holding_all(records.n, &counts)
                }
                None => 0,
            },
            Candidates::Text(_) => continue,
        };
        if n < best.1 {
            best = (i, n);
        }
        if n == 0 {
            break;
        }
    }
    Ok(best.0)
}

/// About how many of a task's `total` records hold all of its [`TRIGRAMS_READ`]
/// rarest trigrams, given how many hold each (`(trigram, records)`, rarest first),
/// were they independent; never more than hold the rarest.
fn holding_all(total: i64, counts: &[(i64, i64)]) -> i64 {
    let total = total.max(1) as f64;
    let all = counts
        .iter()
        .take(TRIGRAMS_READ)
        .fold(total, |holding, (_, n)| holding * (*n as f64 / total));
    (all.ceil() as i64).min(counts.first().map_or(0, |(_, n)| *n))
}

/// Deletes the index entries of a task, after its row: a step indexing it holds the
/// row until its entries are in, and none starts once the row is gone.
pub fn forget_task(c: &mut PgConnection, task: TaskId) -> Result<()> {
    for table in ENTRY_TABLES {
        diesel::sql_query(format!("DELETE FROM {table} WHERE task_id = $1"))
            .bind::<Binary, _>(task.as_bytes().as_slice())
            .execute(c)?;
    }
    Ok(())
}

/// The tables of index entries, which have no foreign key to `tasks`.
const ENTRY_TABLES: [&str; 3] = [
    "task_log_pairs",
    "task_log_trigrams",
    "task_log_trigram_counts",
];

/// Deletes the index entries of the tasks whose ids are in `[from, until)`, at most
/// `step` rows per statement, before the tasks go: their deletion would cascade to
/// every entry of a task (or, for retention, of a day's tasks) in one statement.
pub fn forget_entries_between(
    c: &mut PgConnection,
    (from, until): (&[u8], &[u8]),
    step: usize,
) -> Result<()> {
    for table in ENTRY_TABLES {
        loop {
            let deleted = diesel::sql_query(format!(
                "DELETE FROM {table} WHERE ctid = ANY (ARRAY( \
                 SELECT ctid FROM {table} WHERE task_id >= $1 AND task_id < $2 LIMIT $3))"
            ))
            .bind::<Binary, _>(from)
            .bind::<Binary, _>(until)
            .bind::<BigInt, _>(step.max(1) as i64)
            .execute(c)?;
            if deleted == 0 {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{holding_all, trigram_keys};

    #[test]
    fn a_text_of_common_trigrams_is_estimated_rare() {
        // `record 123456` in a million records: every trigram in thousands.
        assert_eq!(
            holding_all(1_000_000, &[(1, 4_000), (2, 5_000), (3, 6_000)]),
            1
        );
        // Trigrams every record holds: every record.
        let everywhere = [(1, 1_000_000), (2, 1_000_000), (3, 1_000_000)];
        assert_eq!(holding_all(1_000_000, &everywhere), 1_000_000);
        // Never above the rarest, nor zero for records that are there.
        assert_eq!(holding_all(10, &[(1, 50), (2, 60)]), 50);
        assert_eq!(holding_all(1_000, &[(1, 1)]), 1);
        assert_eq!(holding_all(0, &[]), 0);
    }

    #[test]
    fn trigram_keys_fold_ascii_case_only_and_are_distinct() {
        let key = |s: &str| {
            let c: Vec<i64> = s.chars().map(|c| c as i64).collect();
            (c[0] << 42) | (c[1] << 21) | c[2]
        };
        assert_eq!(trigram_keys(["ab"]), Vec::<i64>::new());
        assert_eq!(trigram_keys(["AbCab"]), {
            let mut k = vec![key("abc"), key("bca"), key("cab")];
            k.sort();
            k
        });
        // Each text on its own: no trigram across two texts.
        assert_eq!(trigram_keys(["abc", "abc", "de"]), vec![key("abc")]);
        // Only ASCII letters fold, as the texts a filter requires are matched.
        assert_eq!(trigram_keys(["ÄBC"]), vec![key("Äbc")]);
        assert_ne!(trigram_keys(["\u{212A}ab"]), trigram_keys(["kab"]));
    }
}
