//! Which seqs hold a record of each level, as bitmaps per task, level and block of
//! 8,192 seqs (`task_log_level_bits`). The index of a level filter alone (what the
//! console asks for when its level changes) is read from them: a few thousand rows for
//! 10,000,000 records, where reading the seqs themselves costs about 300 ns each.
//!
//! A block's bits are its bytes from the block's first seq, bit `i` of byte `j` for
//! seq `block * 8192 + 8j + i`, cut after the last byte with a bit set. The writer
//! ORs each batch's bits in, in the batch's transaction: a retried batch sets the same
//! bits again. Tasks stored before the table existed have no bits, so a read trusts
//! the bits only when they account for every record of the counts.

use std::collections::BTreeMap;

use diesel::prelude::*;
use protocol::{LogEntry, TaskId};

use crate::db::Conn;
use crate::models::NewLevelBits;
use crate::schema::{task_log_counts, task_log_level_bits as bits_table, task_logs};
use crate::Result;

/// Seqs per block: `seq >> BLOCK_SHIFT` is the block.
// 1 KiB of bits at most: PostgreSQL keeps the row in its page rather than in TOAST,
// which it would compress again at every batch.
const BLOCK_SHIFT: u32 = 13;
const BLOCK_BYTES: usize = 1 << (BLOCK_SHIFT - 3);

/// Most rows a read takes (64 MiB at most): past them the index is read from the
/// records, a chunk at a time, rather than held whole in memory.
const MAX_ROWS: i64 = 65_536;

/// The bytes each (level, block) of `(seq, level)` pairs ORs in.
fn of_batch(levels: &[(i64, i16)]) -> BTreeMap<(i16, i64), Vec<u8>> {
    let mut out: BTreeMap<(i16, i64), Vec<u8>> = BTreeMap::new();
    for (seq, level) in levels {
        let bits = out.entry((*level, seq >> BLOCK_SHIFT)).or_default();
        set(bits, (seq & ((1 << BLOCK_SHIFT) - 1)) as usize);
    }
    out
}

fn set(bits: &mut Vec<u8>, offset: usize) {
    let byte = offset / 8;
    if bits.len() <= byte {
        bits.resize(byte + 1, 0);
    }
    bits[byte] |= 1 << (offset % 8);
}

/// `stored | new`, as long as the longer of the two.
fn merged(mut stored: Vec<u8>, new: &[u8]) -> Vec<u8> {
    if stored.len() < new.len() {
        stored.resize(new.len(), 0);
    }
    for (s, n) in stored.iter_mut().zip(new) {
        *s |= n;
    }
    stored
}

/// ORs the bits of `entries`, records of `task`, into the table: each row is
/// created empty if missing, then read (with `$lock`, locked) and written back.
/// Unless every row of the batch was new (`$all_new`), the bits are those of what is
/// stored over the entries' seqs, not of what they brought: a retried batch, or a
/// seq another writer took first with another level.
macro_rules! or_in {
    ($c:ident, $task:expr, $entries:expr, $all_new:expr $(, $lock:ident)?) => {{
        let task = $task.as_bytes().as_slice();
        let in_range = |e: &&LogEntry| i64::try_from(e.seq).is_ok();
        let levels: Vec<(i64, i16)> = if $all_new {
            $entries.iter().filter(in_range).map(|e| (e.seq as i64, e.level.as_i16())).collect()
        } else {
            let seqs = $entries.iter().filter(in_range).map(|e| e.seq as i64);
            match (seqs.clone().min(), seqs.max()) {
                (Some(lo), Some(hi)) => task_logs::table
                    .select((task_logs::seq, task_logs::level))
                    .filter(task_logs::task_id.eq(task))
                    .filter(task_logs::seq.between(lo, hi))
                    .load($c)?,
                _ => Vec::new(),
            }
        };
        for ((level, block), new) in of_batch(&levels) {
            let key = bits_table::task_id
                .eq(task)
                .and(bits_table::level.eq(level))
                .and(bits_table::block.eq(block));
            diesel::insert_into(bits_table::table)
                .values(NewLevelBits {
                    task_id: task,
                    level,
                    block,
                    bits: &[],
                })
                .on_conflict_do_nothing()
                .execute($c)?;
            let stored: Vec<u8> = bits_table::table
                .select(bits_table::bits)
                .filter(key)
                $(.$lock())?
                .first($c)?;
            diesel::update(bits_table::table.filter(key))
                .set(bits_table::bits.eq(merged(stored, &new)))
                .execute($c)?;
        }
        Ok(())
    }};
}

/// ORs the bits of `entries`, records of `task`, into the table. SQLite's writer
/// holds the database for the whole transaction, so no other writer comes between
/// the read and the write.
pub(crate) fn note_sqlite(
    c: &mut diesel::SqliteConnection,
    task: TaskId,
    entries: &[LogEntry],
    all_new: bool,
) -> Result<()> {
    or_in!(c, task, entries, all_new)
}

/// [`note_sqlite`] on PostgreSQL, where two transactions may write one task's bits at
/// once: the row is locked before it is read.
pub(crate) fn note_postgres(
    c: &mut diesel::PgConnection,
    task: TaskId,
    entries: &[LogEntry],
    all_new: bool,
) -> Result<()> {
    or_in!(c, task, entries, all_new, for_update)
}

/// What one snapshot holds: the task's counts of records at `min_level` or above by
/// level, and the bits of those levels by block (at most `MAX_ROWS + 1` rows).
type Snapshot = (Vec<(i16, i64)>, Vec<(i64, i16, Vec<u8>)>);

macro_rules! snapshot {
    ($c:ident, $task:expr, $min_level:expr) => {{
        let counts: Vec<(i16, i64)> = task_log_counts::table
            .select((task_log_counts::level, task_log_counts::count))
            .filter(task_log_counts::task_id.eq($task))
            .filter(task_log_counts::level.ge($min_level))
            .load($c)?;
        let bits: Vec<(i64, i16, Vec<u8>)> = bits_table::table
            .select((bits_table::block, bits_table::level, bits_table::bits))
            .filter(bits_table::task_id.eq($task))
            .filter(bits_table::level.ge($min_level))
            .order(bits_table::block.asc())
            .limit(MAX_ROWS + 1)
            .load($c)?;
        Ok::<Snapshot, crate::StorageError>((counts, bits))
    }};
}

/// Whether the bits name, level by level, exactly the records the counts count, in
/// rows of a block's size at most and within `MAX_ROWS`.
fn accounted(counts: &[(i16, i64)], blocks: &[(i64, i16, Vec<u8>)]) -> bool {
    if blocks.len() as i64 > MAX_ROWS
        || blocks
            .iter()
            .any(|(block, _, bits)| *block < 0 || bits.len() > BLOCK_BYTES)
    {
        return false;
    }
    let mut balance: BTreeMap<i16, i64> = BTreeMap::new();
    for (level, count) in counts {
        *balance.entry(*level).or_default() += count;
    }
    for (_, level, bits) in blocks {
        let named: i64 = bits.iter().map(|b| i64::from(b.count_ones())).sum();
        *balance.entry(*level).or_default() -= named;
    }
    balance.values().all(|left| *left == 0)
}

/// Hands `out` the seqs of `task`'s records at `min_level` or above as runs (a run
/// may continue in the next call), from the bits, until it returns false. Returns
/// false, having handed nothing, when the bits do not account for every such record
/// (a task stored, wholly or in part, before they were kept): the caller reads the
/// records instead.
pub(crate) fn each_level_run(
    conn: &mut Conn,
    task: TaskId,
    min_level: i16,
    out: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<bool> {
    let key = task.as_bytes().as_slice();
    // Counts and bits from one snapshot: a batch is stored with both or neither.
    let (counts, blocks) = match conn {
        Conn::Sqlite(c) => {
            let c: &mut diesel::SqliteConnection = c;
            c.transaction(|c| snapshot!(c, key, min_level))?
        }
        Conn::Postgres(c) => {
            let c: &mut diesel::PgConnection = c;
            c.build_transaction()
                .repeatable_read()
                .read_only()
                .run(|c| snapshot!(c, key, min_level))?
        }
    };
    if !accounted(&counts, &blocks) {
        return Ok(false);
    }
    let mut words = [0u64; BLOCK_BYTES / 8];
    let mut rows = blocks.iter().peekable();
    while let Some((block, _, _)) = rows.peek() {
        let block = *block;
        words.fill(0);
        while let Some((_, _, bits)) = rows.next_if(|(b, _, _)| *b == block) {
            for (i, byte) in bits.iter().enumerate() {
                words[i / 8] |= u64::from(*byte) << (8 * (i % 8));
            }
        }
        let base = (block as u64) << BLOCK_SHIFT;
        for (i, word) in words.iter().enumerate() {
            if !runs_of_word(base + 64 * i as u64, *word, out) {
                return Ok(true);
            }
        }
    }
    Ok(true)
}

/// Hands `out` the runs of set bits of `word`, bit `i` being seq `first + i`; false
/// once `out` wants no more.
fn runs_of_word(first: u64, mut word: u64, out: &mut dyn FnMut(u64, u64) -> bool) -> bool {
    let mut at = 0u32;
    while word != 0 {
        let skip = word.trailing_zeros();
        word >>= skip;
        at += skip;
        let ones = word.trailing_ones();
        if !out(first + u64::from(at), first + u64::from(at + ones) - 1) {
            return false;
        }
        at += ones;
        word = word.checked_shr(ones).unwrap_or(0);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::SeqRuns;
    use super::*;
    use protocol::LogLevel;

    fn runs_of(words: &[(u64, u64)]) -> SeqRuns {
        let mut runs = SeqRuns::default();
        for (first, word) in words {
            assert!(runs_of_word(*first, *word, &mut |f, l| {
                runs.push_run(f, l);
                true
            }));
        }
        runs
    }

    #[test]
    fn words_become_runs_joined_across_words() {
        assert_eq!(runs_of(&[(0, 0)]), SeqRuns::default());
        let all = runs_of(&[(64, u64::MAX), (128, u64::MAX)]);
        assert_eq!(all.runs, [(64, 191)]);
        assert_eq!(all.count, 128);
        let spread = runs_of(&[(0, 0b1011_0001), (64, 1 << 63), (128, 1)]);
        assert_eq!(spread.runs, [(0, 0), (4, 5), (7, 7), (127, 128)]);
        assert_eq!(spread.count, 6);
        assert_eq!(runs_of(&[(0, 1 << 63)]).runs, [(63, 63)]);
    }

    #[test]
    fn a_batch_sets_one_bit_per_record_in_its_levels_block() {
        let (info, error) = (LogLevel::Info.as_i16(), LogLevel::Error.as_i16());
        let bits = of_batch(&[(1, info), (9, info), (10, error), (8_192 + 3, info)]);
        assert_eq!(bits[&(info, 0)], [0b10, 0b10]);
        assert_eq!(bits[&(error, 0)], [0, 0b100]);
        assert_eq!(bits[&(info, 1)], [0b1000]);
        assert_eq!(bits.len(), 3);
        assert_eq!(merged(vec![1], &[2, 4]), [3, 4]);
        assert_eq!(merged(vec![1, 8], &[2]), [3, 8]);
    }

    #[test]
    fn bits_are_trusted_only_when_they_account_for_each_level() {
        let (info, error) = (LogLevel::Info.as_i16(), LogLevel::Error.as_i16());
        let rows = vec![(0, info, vec![0b11]), (1, error, vec![0b1])];
        assert!(accounted(&[(info, 2), (error, 1)], &rows));
        // The same sum, spread differently over the levels.
        assert!(!accounted(&[(info, 1), (error, 2)], &rows));
        assert!(
            !accounted(&[(info, 2)], &rows),
            "bits of a level never counted"
        );
        assert!(
            !accounted(&[(info, 3), (error, 1)], &rows),
            "records without bits"
        );
        let long = vec![(0, info, vec![0; BLOCK_BYTES + 1])];
        assert!(!accounted(&[], &long), "a row longer than a block");
        assert!(
            !accounted(&[(info, 1)], &[(-1, info, vec![1])]),
            "a block before 0"
        );
    }
}
