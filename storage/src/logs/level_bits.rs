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
use crate::schema::{task_log_counts, task_log_level_bits as bits_table};
use crate::Result;

/// Seqs per block: `seq >> BLOCK_SHIFT` is the block.
// 1 KiB of bits at most: PostgreSQL keeps the row in its page rather than in TOAST,
// which it would compress again at every batch.
const BLOCK_SHIFT: u32 = 13;
const BLOCK_BYTES: usize = 1 << (BLOCK_SHIFT - 3);

/// The bytes each (level, block) of a batch ORs in.
fn of_batch(entries: &[LogEntry]) -> BTreeMap<(i16, i64), Vec<u8>> {
    let mut out: BTreeMap<(i16, i64), Vec<u8>> = BTreeMap::new();
    for entry in entries {
        let Ok(seq) = i64::try_from(entry.seq) else {
            continue;
        };
        let bits = out
            .entry((entry.level.as_i16(), seq >> BLOCK_SHIFT))
            .or_default();
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
macro_rules! or_in {
    ($c:ident, $task:expr, $entries:expr $(, $lock:ident)?) => {{
        let task = $task.as_bytes().as_slice();
        for ((level, block), new) in of_batch($entries) {
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
) -> Result<()> {
    or_in!(c, task, entries)
}

/// [`note_sqlite`] on PostgreSQL, where two transactions may write one task's bits at
/// once: the row is locked before it is read.
pub(crate) fn note_postgres(
    c: &mut diesel::PgConnection,
    task: TaskId,
    entries: &[LogEntry],
) -> Result<()> {
    or_in!(c, task, entries, for_update)
}

/// What one snapshot holds: the task's count of records at `min_level` or above, and
/// the bits of those levels, by block.
type Snapshot = (Vec<i64>, Vec<(i64, Vec<u8>)>);

macro_rules! snapshot {
    ($c:ident, $task:expr, $min_level:expr) => {{
        let counts: Vec<i64> = task_log_counts::table
            .select(task_log_counts::count)
            .filter(task_log_counts::task_id.eq($task))
            .filter(task_log_counts::level.ge($min_level))
            .load($c)?;
        let bits: Vec<(i64, Vec<u8>)> = bits_table::table
            .select((bits_table::block, bits_table::bits))
            .filter(bits_table::task_id.eq($task))
            .filter(bits_table::level.ge($min_level))
            .order(bits_table::block.asc())
            .load($c)?;
        Ok::<Snapshot, crate::StorageError>((counts, bits))
    }};
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
    // A record has one level, so the levels' bits never overlap and their sum is the
    // number of records they name.
    let expected: i64 = counts.iter().sum();
    let named: u64 = blocks
        .iter()
        .flat_map(|(_, bits)| bits.iter())
        .map(|b| u64::from(b.count_ones()))
        .sum();
    if named != expected as u64 {
        return Ok(false);
    }
    let mut words = [0u64; BLOCK_BYTES / 8];
    let mut rows = blocks.iter().peekable();
    while let Some((block, _)) = rows.peek() {
        let block = *block;
        words.fill(0);
        while let Some((_, bits)) = rows.next_if(|(b, _)| *b == block) {
            for (i, byte) in bits.iter().take(BLOCK_BYTES).enumerate() {
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
        let entry = |seq: u64, level: protocol::LogLevel| LogEntry {
            seq,
            timestamp: protocol::Timestamp(0),
            level,
            source: std::sync::Arc::from("s"),
            message: "m".into(),
            metadata: None,
            group: None,
            mark: None,
            worst: None,
        };
        use protocol::LogLevel::{Error, Info};
        let bits = of_batch(&[
            entry(1, Info),
            entry(9, Info),
            entry(10, Error),
            entry(8_192 + 3, Info),
        ]);
        assert_eq!(bits[&(Info.as_i16(), 0)], [0b10, 0b10]);
        assert_eq!(bits[&(Error.as_i16(), 0)], [0, 0b100]);
        assert_eq!(bits[&(Info.as_i16(), 1)], [0b1000]);
        assert_eq!(bits.len(), 3);
        assert_eq!(merged(vec![1], &[2, 4]), [3, 4]);
        assert_eq!(merged(vec![1, 8], &[2]), [3, 8]);
    }
}
