//! SQLite's trigram index over log messages: the FTS5 table `task_log_text`
//! (migration `2026-12-01-000005_text_index`). Its rowid is
//! `(task key << 32) + seq`, so a task's candidates come out of one rowid range in
//! seq order and paging stays keyset. It follows ingest rather than slowing it: the
//! writer notes each batch's seq range as unindexed ([`note_unindexed`]) and an
//! indexer moves ranges into the index a step at a time ([`index_pending`]); reads
//! take the index's candidates plus every record of the ranges still unindexed
//! ([`unindexed_ranges`]). PostgreSQL keeps a trigram index of its own and the
//! metadata index the same way ([`postgres`]); the functions taking a
//! [`crate::Conn`] work on either backend.
//!
//! The same indexer fills `task_log_pairs` (migration `2026-12-01-000006_meta_index`)
//! with each record's metadata members ([`pair_key`]), so `meta.KEY=VALUE` finds its
//! candidates by one primary-key range ([`Candidates::Pair`]). A filter with several
//! lookups reads through the one with the fewest candidates in the task ([`fewest`]).
//!
//! Candidates are a superset: a record holding every trigram of a text need not hold
//! the text, and a pair's value is cut to [`PAIR_VALUE_BYTES`]. Callers confirm each
//! with `LogFilter::matches`.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text};

use protocol::TaskId;

use crate::Result;

pub mod postgres;

/// Records at or past this seq are not indexed (their rowid would overflow the task
/// key's bits); reads scan them.
pub const INDEXED_SEQS: i64 = 1 << 32;
/// Trigrams beyond this many cost doclist reads for little narrowing.
const MAX_TRIGRAMS: usize = 8;
/// Pair values are indexed up to this many bytes: longer ones share an entry with
/// every value of the same beginning.
pub const PAIR_VALUE_BYTES: usize = 128;

/// What an indexed read looks up: on SQLite quoted trigrams ([`match_terms`]) in
/// `task_log_text`, of which a read ANDs the rarest, on PostgreSQL trigram keys
/// ([`postgres::trigram_keys`]) in `task_log_trigrams`, or on either one metadata
/// pair ([`pair_key`]) in `task_log_pairs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates {
    Text(Vec<String>),
    Trigrams(Vec<i64>),
    Pair(String),
}

impl Candidates {
    /// Every lookup that narrows `filter` on `backend`: one per metadata condition,
    /// and one for its texts. Any of them yields a superset of the filter's
    /// records; a read takes the one with the fewest candidates ([`fewest`]).
    pub fn for_filter(filter: &protocol::LogFilter, backend: crate::Backend) -> Vec<Self> {
        let texts = filter.required_texts();
        let texts = match backend {
            crate::Backend::Sqlite => {
                let terms = match_terms(&texts);
                (!terms.is_empty()).then_some(Candidates::Text(terms))
            }
            crate::Backend::Postgres => {
                let keys = postgres::trigram_keys(texts.iter().map(String::as_str));
                (!keys.is_empty()).then_some(Candidates::Trigrams(keys))
            }
        };
        filter
            .meta
            .iter()
            .filter_map(|condition| pair_key(&condition.key, &condition.value))
            .map(Candidates::Pair)
            .chain(texts)
            .collect()
    }
}

/// Candidates counted up to this many when choosing between lookups: past it, a
/// lookup is as good as common.
const ESTIMATE_CAP: i64 = 2_000;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Which of `lookups` finds the fewest of the task's candidates (counted up to
/// [`ESTIMATE_CAP`], a common one stops early); the first of equals. SQLite keeps
/// no statistics to tell a rare metadata value from a common text beforehand.
/// Texts are counted with the terms they hold: rank them first ([`rarest_terms`]).
pub fn fewest(c: &mut diesel::SqliteConnection, key: i64, lookups: &[Candidates]) -> Result<usize> {
    if lookups.len() < 2 {
        return Ok(0);
    }
    let mut best = (0, i64::MAX);
    for (i, lookup) in lookups.iter().enumerate() {
        let count: Count = match lookup {
            Candidates::Pair(pair) => diesel::sql_query(
                "SELECT count(*) AS n FROM (SELECT 1 FROM task_log_pairs \
                 WHERE key = ? AND pair = ? LIMIT ?)",
            )
            .bind::<BigInt, _>(key)
            .bind::<Text, _>(pair)
            .bind::<BigInt, _>(ESTIMATE_CAP)
            .get_result(c)?,
            Candidates::Text(terms) => diesel::sql_query(
                "SELECT count(*) AS n FROM (SELECT 1 FROM task_log_text \
                 WHERE task_log_text MATCH ? AND rowid > ? AND rowid < ? LIMIT ?)",
            )
            .bind::<Text, _>(terms.join(" AND "))
            .bind::<BigInt, _>(key << 32)
            .bind::<BigInt, _>((key + 1) << 32)
            .bind::<BigInt, _>(ESTIMATE_CAP)
            .get_result(c)?,
            Candidates::Trigrams(_) => continue,
        };
        if count.n < best.1 {
            best = (i, count.n);
        }
        if count.n == 0 {
            break;
        }
    }
    Ok(best.0)
}

/// The `task_log_pairs` entry for a metadata member at `path` with value text
/// `value`: the path, a unit separator, and the value cut to [`PAIR_VALUE_BYTES`] on
/// a character boundary. `None` for paths longer than a filter key may be, which no
/// condition can name, and for a path or value with a NUL.
pub fn pair_key(path: &str, value: &str) -> Option<String> {
    // PostgreSQL refuses a NUL in text: such a pair is neither indexed nor looked up,
    // and a condition on it is checked on the rows instead.
    if path.chars().count() > protocol::filter::MAX_META_KEY_CHARS
        || path.contains('\0')
        || value.contains('\0')
    {
        return None;
    }
    let mut end = value.len().min(PAIR_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{path}\u{1f}{}", &value[..end]))
}

/// The FTS5 query for records that may contain every one of `texts` (each of 3
/// characters or more): an AND of single trigrams, which needs no positions in the
/// index. `None` when there is nothing to narrow by.
pub fn match_expression(texts: &[String]) -> Option<String> {
    let terms = match_terms(texts);
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

/// The trigrams of `texts` as quoted FTS5 terms, at most [`MAX_TRIGRAMS`] spread
/// over them; empty when there is nothing to narrow by.
pub fn match_terms(texts: &[String]) -> Vec<String> {
    let mut trigrams: Vec<String> = Vec::new();
    for text in texts {
        let chars: Vec<char> = text.chars().collect();
        for window in chars.windows(3) {
            let trigram: String = window.iter().collect();
            if !trigrams.contains(&trigram) {
                trigrams.push(trigram);
            }
        }
    }
    if trigrams.len() > MAX_TRIGRAMS {
        // Evenly spread, first and last included, so that every text keeps a part.
        let last = trigrams.len() - 1;
        trigrams = (0..MAX_TRIGRAMS)
            .map(|i| trigrams[i * last / (MAX_TRIGRAMS - 1)].clone())
            .collect();
        trigrams.dedup();
    }
    trigrams
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect()
}

/// Trigrams a read of a text ANDs at most: the rarest where it begins.
const RAREST_TERMS: usize = 3;
/// Matches of each trigram read, from where a read begins, to rank them: fewer in
/// all, or spread over more seqs, is rarer.
const PROBE_MATCHES: i64 = 256;

#[derive(QueryableByName)]
struct Probe {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    span: i64,
}

/// The FTS5 expression a read of the task's `(after, before)` uses for `terms`: all
/// of them when they are few, else the [`RAREST_TERMS`] rarest from where the read
/// begins (forwards from `after`, or backwards from `before`), in their order in the
/// text. Each term's first [`PROBE_MATCHES`] matches there rank it: fewer matches,
/// or the same spread over more seqs. A trigram every record holds narrows nothing,
/// yet each one in the expression made a rare text's page cost 2–4 ms more
/// (docs/benchmarks.md). Any of the terms finds a superset of the records holding
/// all of them, and the rows read are checked against the filter, so the choice
/// changes only the cost.
///
/// # Errors
/// Database errors.
pub fn rarest_expression(
    c: &mut diesel::SqliteConnection,
    key: i64,
    terms: &[String],
    bounds: (i64, i64),
    backward: bool,
) -> Result<String> {
    Ok(rarest_terms(c, key, terms, bounds, backward)?.join(" AND "))
}

/// The terms of [`rarest_expression`]: a read settles them once where it begins,
/// and its chunks then look up those few without probing again.
///
/// # Errors
/// Database errors.
pub fn rarest_terms(
    c: &mut diesel::SqliteConnection,
    key: i64,
    terms: &[String],
    (after, before): (i64, i64),
    backward: bool,
) -> Result<Vec<String>> {
    let base = key << 32;
    rarest_between(c, terms, (base + after, base + before), backward)
}

/// [`rarest_terms`] over the rowids in `(low, high)`, which may span tasks.
fn rarest_between(
    c: &mut diesel::SqliteConnection,
    terms: &[String],
    (low, high): (i64, i64),
    backward: bool,
) -> Result<Vec<String>> {
    if terms.len() <= RAREST_TERMS {
        return Ok(terms.to_vec());
    }
    let order = if backward { "DESC" } else { "ASC" };
    let mut ranked = Vec::with_capacity(terms.len());
    for (i, term) in terms.iter().enumerate() {
        let probe: Probe = diesel::sql_query(format!(
            "SELECT count(*) AS n, coalesce(max(p) - min(p), 0) AS span FROM \
             (SELECT rowid AS p FROM task_log_text \
              WHERE task_log_text MATCH ? AND rowid > ? AND rowid < ? \
              ORDER BY rowid {order} LIMIT ?)"
        ))
        .bind::<Text, _>(term)
        .bind::<BigInt, _>(low)
        .bind::<BigInt, _>(high)
        .bind::<BigInt, _>(PROBE_MATCHES)
        .get_result(c)?;
        let rarity = if probe.n < PROBE_MATCHES {
            (0, probe.n)
        } else {
            (1, -probe.span)
        };
        ranked.push((rarity, i));
    }
    ranked.sort_unstable();
    let mut rarest: Vec<usize> = ranked.iter().take(RAREST_TERMS).map(|(_, i)| *i).collect();
    rarest.sort_unstable();
    Ok(rarest.iter().map(|i| terms[*i].clone()).collect())
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = BigInt)]
    key: i64,
}

/// Candidates a read over a batch of tasks hands over at most
/// ([`batch_candidates`]): past them a text is common enough that reading task by
/// task fills a page sooner.
pub const BATCH_CANDIDATES: usize = 4_096;

/// What one read of the text index found across a batch of tasks: each task's
/// candidate seqs, descending (a task missing here has none), and the tasks the
/// index cannot answer for alone (records not indexed yet, or never: seqs past
/// [`INDEXED_SEQS`], keys past 2^31), which are read one by one.
#[derive(Debug, Default)]
pub struct BatchCandidates {
    pub seqs: HashMap<TaskId, Vec<i64>>,
    pub read_alone: HashSet<TaskId>,
}

impl BatchCandidates {
    fn push(&mut self, task: TaskId, seq: i64) {
        self.seqs.entry(task).or_default().push(seq);
    }
}

/// Every candidate of the text `filter` requires in each of `tasks`, read at once
/// rather than task by task: a search across tasks for a rare text then costs one
/// lookup instead of one per task (docs/benchmarks.md). `None` when the filter
/// names no text the index can narrow by, or when the tasks hold more than
/// [`BATCH_CANDIDATES`] candidates.
///
/// # Errors
/// Database errors, or a task id of the wrong length.
pub fn batch_candidates(
    conn: &mut crate::Conn,
    tasks: &[TaskId],
    filter: &protocol::LogFilter,
) -> Result<Option<BatchCandidates>> {
    let lookup = Candidates::for_filter(filter, conn.backend())
        .into_iter()
        .find(|lookup| !matches!(lookup, Candidates::Pair(_)));
    match (conn, lookup) {
        (_, None) => Ok(None),
        _ if tasks.is_empty() => Ok(Some(BatchCandidates::default())),
        (crate::Conn::Sqlite(c), Some(Candidates::Text(terms))) => {
            c.transaction(|c| sqlite_batch(c, tasks, &terms))
        }
        (crate::Conn::Postgres(c), Some(Candidates::Trigrams(keys))) => {
            postgres::batch_candidates(c, tasks, &keys)
        }
        _ => Ok(None),
    }
}

#[derive(QueryableByName)]
struct TaskKey {
    #[diesel(sql_type = Binary)]
    task_id: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    key: i64,
}

/// `sql` with each `{tasks}` in it the list of `tasks`, bound (`sql` has no other
/// parameters).
fn of_tasks<'a>(
    sql: &str,
    tasks: &'a [TaskId],
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::sqlite::Sqlite, diesel::query_builder::SqlQuery>
{
    let list = vec!["?"; tasks.len()].join(", ");
    let mut q = diesel::sql_query(sql.replace("{tasks}", &list)).into_boxed();
    for _ in 0..sql.matches("{tasks}").count() {
        for task in tasks {
            q = q.bind::<Binary, _>(task.as_bytes().as_slice());
        }
    }
    q
}

/// The task id stored as `bytes`.
pub(crate) fn task_of(bytes: &[u8]) -> Result<TaskId> {
    TaskId::from_slice(bytes)
        .ok_or_else(|| crate::StorageError::Corrupt("a task id of the wrong length".into()))
}

/// [`batch_candidates`] on SQLite, in one read transaction: the tasks' keys, which
/// of them the index answers for, and one FTS5 query over the rowids of their keys
/// (tasks are keyed in the order they were created, so a batch of tasks in search
/// order is about one range).
fn sqlite_batch(
    c: &mut diesel::SqliteConnection,
    tasks: &[TaskId],
    terms: &[String],
) -> Result<Option<BatchCandidates>> {
    let mut batch = BatchCandidates::default();
    let keyed: Vec<TaskKey> = of_tasks(
        "SELECT task_id, key FROM task_log_keys WHERE task_id IN ({tasks})",
        tasks,
    )
    .load(c)?;
    let mut by_key: HashMap<i64, TaskId> = HashMap::new();
    for row in keyed {
        if row.key < KEY_LIMIT {
            by_key.insert(row.key, task_of(&row.task_id)?);
        }
    }
    let not_indexed: Vec<TaskKey> = of_tasks(
        "SELECT DISTINCT task_id, 0 AS key FROM task_log_unindexed WHERE task_id IN ({tasks}) \
         UNION SELECT DISTINCT task_id, 0 AS key FROM task_logs \
         WHERE task_id IN ({tasks}) AND seq >= 4294967296",
        tasks,
    )
    .load(c)?;
    batch.read_alone = not_indexed
        .iter()
        .map(|row| task_of(&row.task_id))
        .collect::<Result<_>>()?;
    let keyed: HashSet<TaskId> = by_key.values().copied().collect();
    batch
        .read_alone
        .extend(tasks.iter().filter(|task| !keyed.contains(*task)));
    by_key.retain(|_, task| !batch.read_alone.contains(task));
    let (Some(low), Some(high)) = (by_key.keys().min(), by_key.keys().max()) else {
        return Ok(Some(batch));
    };
    // Inclusive: the rowid past the last key's would not fit in an i64.
    let range = (low << 32, (high << 32) | (INDEXED_SEQS - 1));
    let expression = rarest_between(c, terms, (range.0 - 1, range.1), true)?.join(" AND ");
    let found: Vec<Position> = diesel::sql_query(
        "SELECT rowid AS position FROM task_log_text \
         WHERE task_log_text MATCH ? AND rowid >= ? AND rowid <= ? \
         ORDER BY rowid DESC LIMIT ?",
    )
    .bind::<Text, _>(expression)
    .bind::<BigInt, _>(range.0)
    .bind::<BigInt, _>(range.1)
    .bind::<BigInt, _>(BATCH_CANDIDATES as i64 + 1)
    .load(c)?;
    if found.len() > BATCH_CANDIDATES {
        return Ok(None);
    }
    for Position { position } in found {
        if let Some(task) = by_key.get(&(position >> 32)) {
            batch.push(*task, position & (INDEXED_SEQS - 1));
        }
    }
    Ok(Some(batch))
}

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = BigInt)]
    position: i64,
}

/// Task keys from here on are not indexed: a record's FTS5 rowid is `key << 32 | seq`.
const KEY_LIMIT: i64 = 1 << 31;

/// The key a task's records are indexed under, if they are (keys past 2^31 are not).
pub fn task_key(c: &mut diesel::SqliteConnection, task: TaskId) -> Result<Option<i64>> {
    key_of(c, task.as_bytes())
}

/// [`task_key`] for a task id as stored (its bytes).
fn key_of(c: &mut diesel::SqliteConnection, task: &[u8]) -> Result<Option<i64>> {
    let key: Option<Key> = diesel::sql_query("SELECT key FROM task_log_keys WHERE task_id = ?")
        .bind::<Binary, _>(task)
        .get_result(c)
        .optional()?;
    Ok(key.map(|k| k.key).filter(|key| *key < KEY_LIMIT))
}

/// Seqs of the task's records in `(after, before)` that `lookup` finds, in seq order
/// (descending when `backward`), at most `limit`.
pub fn candidate_seqs(
    c: &mut diesel::SqliteConnection,
    key: i64,
    lookup: &Candidates,
    (after, before): (i64, i64),
    backward: bool,
    limit: usize,
) -> Result<Vec<i64>> {
    let order = if backward { "DESC" } else { "ASC" };
    let (after, before) = (after.clamp(-1, INDEXED_SEQS), before.clamp(0, INDEXED_SEQS));
    let rows: Vec<Position> = match lookup {
        Candidates::Text(terms) => {
            let expression = rarest_expression(c, key, terms, (after, before), backward)?;
            let base = key << 32;
            diesel::sql_query(format!(
                "SELECT rowid - ? AS position FROM task_log_text \
                 WHERE task_log_text MATCH ? AND rowid > ? AND rowid < ? \
                 ORDER BY rowid {order} LIMIT ?"
            ))
            .bind::<BigInt, _>(base)
            .bind::<Text, _>(expression)
            .bind::<BigInt, _>(base + after)
            .bind::<BigInt, _>(base + before)
            .bind::<BigInt, _>(limit as i64)
            .load(c)?
        }
        // PostgreSQL's kind of lookup: never asked for here.
        Candidates::Trigrams(_) => Vec::new(),
        Candidates::Pair(pair) => diesel::sql_query(format!(
            "SELECT seq AS position FROM task_log_pairs \
             WHERE key = ? AND pair = ? AND seq > ? AND seq < ? \
             ORDER BY seq {order} LIMIT ?"
        ))
        .bind::<BigInt, _>(key)
        .bind::<Text, _>(pair)
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(before)
        .bind::<BigInt, _>(limit as i64)
        .load(c)?,
    };
    Ok(rows.into_iter().map(|r| r.position).collect())
}

/// Notes the seq range of a stored batch as not yet indexed. Part of the batch's
/// transaction, so a record is always either indexed or listed here.
pub fn note_unindexed(
    c: &mut diesel::SqliteConnection,
    task: TaskId,
    (first, last): (i64, i64),
) -> Result<()> {
    if first >= INDEXED_SEQS {
        return Ok(());
    }
    note_range(c, task.as_bytes(), (first, last.min(INDEXED_SEQS - 1)))
}

fn note_range(
    c: &mut diesel::SqliteConnection,
    task: &[u8],
    (first, last): (i64, i64),
) -> Result<()> {
    diesel::sql_query(
        "INSERT INTO task_log_unindexed (task_id, from_seq, to_seq) VALUES (?, ?, ?) \
         ON CONFLICT (task_id, from_seq) DO UPDATE SET to_seq = max(to_seq, excluded.to_seq)",
    )
    .bind::<Binary, _>(task)
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .execute(c)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Range {
    #[diesel(sql_type = Binary)]
    task_id: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    from_seq: i64,
    #[diesel(sql_type = BigInt)]
    to_seq: i64,
}

/// One range of an indexer step: its records `from_seq..=last` are indexed, with
/// their metadata entries worked out before the write lock is taken.
struct Planned {
    range: Range,
    last: i64,
    /// The task key and the range's pairs as a JSON array of `[pair, seq]`.
    pairs: Option<(i64, String)>,
}

/// Indexes up to about `step` pending records, newest tasks and ranges first (the
/// records people look for soonest, and an index scan with no sort). Returns about
/// how many records it took: 0 when nothing is pending. Indexing a record twice (a
/// range noted again by a retried batch) replaces its entry.
///
/// What to index, and each record's metadata entries, are worked out in a read
/// transaction; the write lock is held only for the inserts and the bookkeeping, so
/// that the log writer and task changes wait as little as possible.
pub fn index_pending(c: &mut diesel::SqliteConnection, step: usize) -> Result<usize> {
    let (plan, covered) = c.transaction(|c| plan_step(c, step))?;
    if plan.is_empty() {
        return Ok(0);
    }
    c.immediate_transaction(|c| {
        for Planned { range, last, pairs } in &plan {
            // The range may have grown (a retried batch) or gone with its task since.
            let now: Option<Key> = diesel::sql_query(
                "SELECT to_seq AS key FROM task_log_unindexed WHERE task_id = ? AND from_seq = ?",
            )
            .bind::<Binary, _>(&range.task_id)
            .bind::<BigInt, _>(range.from_seq)
            .get_result(c)
            .optional()?;
            let Some(Key { key: to_seq }) = now else {
                continue;
            };
            diesel::sql_query(
                "INSERT OR REPLACE INTO task_log_text (rowid, message) \
                 SELECT (k.key << 32) + l.seq, l.message \
                 FROM task_logs l JOIN task_log_keys k ON k.task_id = l.task_id \
                 WHERE l.task_id = ? AND l.seq >= ? AND l.seq <= ? AND k.key < 2147483648",
            )
            .bind::<Binary, _>(&range.task_id)
            .bind::<BigInt, _>(range.from_seq)
            .bind::<BigInt, _>(*last)
            .execute(c)?;
            if let Some((key, entries)) = pairs {
                diesel::sql_query(
                    "INSERT OR IGNORE INTO task_log_pairs (key, pair, seq) \
                     SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]') \
                     FROM json_each(?)",
                )
                .bind::<BigInt, _>(*key)
                .bind::<Text, _>(entries)
                .execute(c)?;
            }
            diesel::sql_query("DELETE FROM task_log_unindexed WHERE task_id = ? AND from_seq = ?")
                .bind::<Binary, _>(&range.task_id)
                .bind::<BigInt, _>(range.from_seq)
                .execute(c)?;
            if *last < to_seq {
                note_range(c, &range.task_id, (last + 1, to_seq))?;
            }
        }
        Ok(covered)
    })
}

/// The read half of [`index_pending`]: the ranges a step takes, how far into each,
/// and their metadata entries.
fn plan_step(c: &mut diesel::SqliteConnection, step: usize) -> Result<(Vec<Planned>, usize)> {
    let ranges: Vec<Range> = diesel::sql_query(
        "SELECT task_id, from_seq, to_seq FROM task_log_unindexed \
         ORDER BY task_id DESC, from_seq DESC LIMIT 64",
    )
    .load(c)?;
    let mut plan = Vec::new();
    let mut covered = 0usize;
    for range in ranges {
        if covered >= step {
            break;
        }
        // The range may have gaps: the step ends at its room-th record.
        let room = (step - covered) as i64;
        let nth: Option<Key> = diesel::sql_query(
            "SELECT seq AS key FROM task_logs WHERE task_id = ? AND seq >= ? AND seq <= ? \
             ORDER BY seq LIMIT 1 OFFSET ?",
        )
        .bind::<Binary, _>(&range.task_id)
        .bind::<BigInt, _>(range.from_seq)
        .bind::<BigInt, _>(range.to_seq)
        .bind::<BigInt, _>(room - 1)
        .get_result(c)
        .optional()?;
        let last = nth.map_or(range.to_seq, |n| n.key);
        let pairs = pair_entries(c, &range.task_id, (range.from_seq, last))?;
        covered += (last - range.from_seq + 1).min(room) as usize;
        plan.push(Planned { range, last, pairs });
    }
    Ok((plan, covered))
}

#[derive(QueryableByName)]
struct Metadata {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    metadata: String,
}

/// The `task_log_pairs` entries of the task's records `first..=last`: the task key
/// and a JSON array of `[pair, seq]` in key order (one statement inserts them all);
/// `None` when there are none.
fn pair_entries(
    c: &mut diesel::SqliteConnection,
    task: &[u8],
    (first, last): (i64, i64),
) -> Result<Option<(i64, String)>> {
    let Some(key) = key_of(c, task)? else {
        return Ok(None);
    };
    let rows: Vec<Metadata> = diesel::sql_query(
        "SELECT seq, metadata FROM task_logs \
         WHERE task_id = ? AND seq >= ? AND seq <= ? AND metadata IS NOT NULL",
    )
    .bind::<Binary, _>(task)
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .load(c)?;
    let entries = pairs_of_rows(rows);
    if entries.is_empty() {
        return Ok(None);
    }
    let entries = serde_json::to_string(&entries).expect("pairs serialise");
    Ok(Some((key, entries)))
}

/// The index entries of records' metadata, `(pair, seq)`, in key order: the inserts
/// then walk the B-tree instead of jumping about in it.
fn pairs_of_rows(rows: Vec<Metadata>) -> Vec<(String, i64)> {
    let mut entries: Vec<(String, i64)> = Vec::new();
    for row in rows {
        // Stored metadata is always an object; anything else has no members.
        let Ok(object) =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&row.metadata)
        else {
            continue;
        };
        for (path, value) in protocol::filter::meta_pairs(&object) {
            if let Some(pair) = pair_key(&path, &value) {
                entries.push((pair, row.seq));
            }
        }
    }
    entries.sort_unstable();
    entries
}

/// Deletes the metadata entries (on PostgreSQL, its trigram entries as well) of a
/// task about to be deleted, at most `step` per statement, so that a task of
/// millions of records never holds SQLite's write lock (or a PostgreSQL statement)
/// for all of them at once (the task's delete then finds none left).
pub fn forget_entries_in_steps(conn: &mut crate::Conn, task: TaskId, step: usize) -> Result<()> {
    let c = match conn {
        crate::Conn::Sqlite(c) => c,
        crate::Conn::Postgres(c) => {
            // The ids from this one up to, not including, its successor as bytes.
            let id = task.as_bytes().as_slice();
            let next = [id, &[0]].concat();
            return postgres::forget_entries_between(c, (id, &next), step);
        }
    };
    let Some(key) = task_key(c, task)? else {
        return Ok(());
    };
    loop {
        let deleted = diesel::sql_query(
            "DELETE FROM task_log_pairs WHERE key = ?1 AND (pair, seq) IN \
             (SELECT pair, seq FROM task_log_pairs WHERE key = ?1 LIMIT ?2)",
        )
        .bind::<BigInt, _>(key)
        .bind::<BigInt, _>(step.max(1) as i64)
        .execute(c)?;
        if deleted == 0 {
            return Ok(());
        }
    }
}

/// One indexer step on whatever backend `conn` is: [`index_pending`] on SQLite,
/// [`postgres::index_pending`] on PostgreSQL.
pub fn index_step(conn: &mut crate::Conn, step: usize) -> Result<usize> {
    match conn {
        crate::Conn::Sqlite(c) => index_pending(c, step),
        crate::Conn::Postgres(c) => postgres::index_pending(c, step),
    }
}

/// How many records wait for the indexer on whatever backend `conn` is.
pub fn backlog(conn: &mut crate::Conn) -> Result<u64> {
    match conn {
        crate::Conn::Sqlite(c) => pending_records(c),
        crate::Conn::Postgres(c) => postgres::pending_records(c),
    }
}

/// How many records wait for the indexer (counted as seq ranges, an upper bound).
pub fn pending_records(c: &mut diesel::SqliteConnection) -> Result<u64> {
    let row: Key = diesel::sql_query(
        "SELECT coalesce(sum(to_seq - from_seq + 1), 0) AS key FROM task_log_unindexed",
    )
    .get_result(c)?;
    Ok(row.key.max(0) as u64)
}

/// The task's unindexed seq ranges that meet `(after, before)`, inclusive, in seq
/// order.
pub fn unindexed_ranges(
    c: &mut diesel::SqliteConnection,
    task: TaskId,
    (after, before): (i64, i64),
) -> Result<Vec<(i64, i64)>> {
    let rows: Vec<Range> = diesel::sql_query(
        "SELECT task_id, from_seq, to_seq FROM task_log_unindexed \
         WHERE task_id = ? AND to_seq > ? AND from_seq < ? ORDER BY from_seq",
    )
    .bind::<Binary, _>(task.as_bytes().as_slice())
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(before)
    .load(c)?;
    Ok(rows.into_iter().map(|r| (r.from_seq, r.to_seq)).collect())
}

#[cfg(test)]
mod tests {
    use super::match_expression;

    #[test]
    fn expressions_are_ands_of_quoted_trigrams() {
        assert_eq!(match_expression(&[]), None);
        assert_eq!(
            match_expression(&["abcd".into()]).as_deref(),
            Some("\"abc\" AND \"bcd\"")
        );
        // Quotes are doubled; a repeated trigram is asked once.
        assert_eq!(
            match_expression(&["a\"ba\"b".into()]).as_deref(),
            Some(r#""a""b" AND """ba" AND "ba""""#)
        );
        let long = match_expression(&["abcdefghijklmnopqrstuvwxyz".into()]).unwrap();
        assert_eq!(long.matches(" AND ").count(), 7);
        assert!(long.starts_with("\"abc\"") && long.ends_with("\"xyz\""));
        assert_eq!(
            match_expression(&["héllo".into()]).as_deref(),
            Some("\"hél\" AND \"éll\" AND \"llo\"")
        );
    }
}
