//! PostgreSQL's `task_logs` partitions: one per UTC day of task creation. A task id
//! is a UUIDv7, which begins with its creation time in milliseconds, so a day is a
//! range of ids and all of a task's records share one partition. [`ensure`] creates
//! the days ahead; [`drop_expired`] drops a day whole once every task created that
//! day has expired, which costs a catalog change instead of a `DELETE` of each row.
//! The partitions are named for what they hold (`task_logs_20261201`; the rows from
//! before partitioning are `task_logs_until_DAY`), and the default partition catches
//! records of any id no day covers. SQLite has no partitions: there every function
//! here does nothing.

use chrono::{DateTime, NaiveDate};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Bool, Text};
use protocol::Timestamp;

use crate::db::Conn;
use crate::schema::tasks;
use crate::tasks::UNFINISHED;
use crate::Result;

/// Days of partitions kept ready after today: creation happens well before a record
/// needs one, and a node that is down for a day does not leave the next one missing.
pub const DAYS_AHEAD: u64 = 2;
/// The advisory lock under which one node at a time changes partitions.
const UPKEEP_LOCK: i64 = 0x7461_736b_7061_7274; // "taskpart"
/// Attaching and dropping a partition take locks that queue ingest behind them; a
/// long read holding the table would make that queue a stall. Waiting at most this
/// long bounds the pause, and the change is retried on the next pass.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '500ms'";
const DEFAULT_PARTITION: &str = "task_logs_default";
/// Index entries deleted per statement when a day's tasks go.
const ENTRIES_STEP: usize = 10_000;

/// A range partition of `task_logs`: the tasks created from the start of `from`
/// (the beginning of time when `None`) to the start of `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub from: Option<NaiveDate>,
    pub until: NaiveDate,
}

impl Partition {
    fn day(day: NaiveDate) -> Partition {
        Partition {
            name: format!("task_logs_{}", day.format("%Y%m%d")),
            from: Some(day),
            until: day.succ_opt().unwrap_or(NaiveDate::MAX),
        }
    }

    /// The partition a name stands for; `None` for the default partition or a
    /// table that is not one of ours.
    fn parse(name: &str) -> Option<Partition> {
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y%m%d").ok();
        if let Some(until) = name.strip_prefix("task_logs_until_") {
            return Some(Partition {
                name: name.to_owned(),
                from: None,
                until: date(until)?,
            });
        }
        let day = date(name.strip_prefix("task_logs_")?)?;
        (Partition::day(day).name == name).then(|| Partition::day(day))
    }

    fn covers(&self, day: NaiveDate) -> bool {
        self.from.is_none_or(|from| from <= day) && day < self.until
    }

    /// The ids it holds, as a half-open byte range.
    fn ids(&self) -> (Vec<u8>, Vec<u8>) {
        (
            self.from.map_or_else(Vec::new, first_id_of),
            first_id_of(self.until),
        )
    }

    /// When the last task it may hold was created.
    fn ends_at(&self) -> Timestamp {
        Timestamp(start_of(self.until).saturating_mul(1_000))
    }
}

/// Unix milliseconds at the start of a UTC day.
fn start_of(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(i64::MAX, |t| t.and_utc().timestamp_millis())
}

/// The smallest id of a task created on `day`: UUIDv7 begins with 48 bits of Unix
/// milliseconds, big-endian.
fn first_id_of(day: NaiveDate) -> Vec<u8> {
    let mut id = vec![0u8; 16];
    id[..6].copy_from_slice(&start_of(day).max(0).to_be_bytes()[2..]);
    id
}

fn day_of(t: Timestamp) -> NaiveDate {
    DateTime::from_timestamp_micros(t.as_micros()).map_or(NaiveDate::MIN, |t| t.date_naive())
}

/// A byte string as a PostgreSQL literal (DDL takes no parameters; hex is safe).
fn literal(bytes: &[u8]) -> String {
    format!("'\\x{}'::bytea", hex::encode(bytes))
}

/// The range partitions of `task_logs`, oldest first (none on SQLite).
pub fn list(conn: &mut Conn) -> Result<Vec<Partition>> {
    match conn {
        Conn::Sqlite(_) => Ok(Vec::new()),
        Conn::Postgres(c) => list_pg(c),
    }
}

fn list_pg(c: &mut PgConnection) -> Result<Vec<Partition>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'task_logs'::regclass",
    )
    .load(c)?;
    let mut partitions: Vec<Partition> = rows
        .iter()
        .filter_map(|r| Partition::parse(&r.name))
        .collect();
    partitions.sort_by_key(|p| p.until);
    Ok(partitions)
}

/// Whether this transaction holds the upkeep lock; false when another node does.
fn lock_upkeep(c: &mut PgConnection) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    c.batch_execute(LOCK_TIMEOUT)?;
    let row: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind::<BigInt, _>(UPKEEP_LOCK)
        .get_result(c)?;
    Ok(row.locked)
}

/// Creates the partitions of the days from `now`'s to [`DAYS_AHEAD`] later that no
/// partition covers, moving into each the records the default partition holds for
/// it. Returns the names created; none when another node is doing the same.
pub fn ensure(conn: &mut Conn, now: Timestamp) -> Result<Vec<String>> {
    let today = day_of(now);
    let days: Vec<NaiveDate> = today.iter_days().take(DAYS_AHEAD as usize + 1).collect();
    ensure_days(conn, &days)
}

/// [`ensure`] for given days (tests and the bench load records of past days).
pub fn ensure_days(conn: &mut Conn, days: &[NaiveDate]) -> Result<Vec<String>> {
    let Conn::Postgres(c) = conn else {
        return Ok(Vec::new());
    };
    c.transaction(|c| {
        if !lock_upkeep(c)? {
            return Ok(Vec::new());
        }
        let existing = list_pg(c)?;
        let mut created = Vec::new();
        for &day in days {
            if existing.iter().any(|p| p.covers(day)) {
                continue;
            }
            let partition = Partition::day(day);
            create(c, &partition)?;
            created.push(partition.name);
        }
        Ok(created)
    })
}

/// Builds the partition as a table of its own, then attaches it: attaching takes a
/// lock that lets ingest go on, where `CREATE TABLE … PARTITION OF` would stop it. The
/// check constraint spares the attach a scan of the new table.
fn create(c: &mut PgConnection, partition: &Partition) -> Result<()> {
    let (from, until) = partition.ids();
    let (from, until) = (literal(&from), literal(&until));
    let name = &partition.name;
    c.batch_execute(&format!(
        "CREATE TABLE {name} (LIKE task_logs INCLUDING DEFAULTS);
         ALTER TABLE {name} ADD CONSTRAINT {name}_range
             CHECK (task_id >= {from} AND task_id < {until});
         INSERT INTO {name}
             SELECT * FROM {DEFAULT_PARTITION} WHERE task_id >= {from} AND task_id < {until};
         DELETE FROM {DEFAULT_PARTITION} WHERE task_id >= {from} AND task_id < {until};
         ALTER TABLE task_logs ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({until});"
    ))?;
    Ok(())
}

/// A partition [`drop_expired`] dropped, and how many tasks went with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub partition: String,
    pub tasks: u64,
}

/// Drops every partition whose tasks have all finished before `cutoff` (or been
/// deleted), then deletes those tasks. A task still running or finished since keeps
/// its day's partition; the tasks of that day that did expire are left to the
/// task-by-task deletion ([`crate::tasks::delete_task_in_steps`]).
///
/// # Errors
/// A database error, including a lock not granted within half a second; what was
/// dropped before it stays dropped, and the rest waits for the next pass.
pub fn drop_expired(conn: &mut Conn, cutoff: Timestamp) -> Result<Vec<Dropped>> {
    let Conn::Postgres(c) = conn else {
        return Ok(Vec::new());
    };
    let mut dropped = Vec::new();
    for partition in list_pg(c)? {
        if partition.ends_at() > cutoff {
            continue;
        }
        let (from, until) = partition.ids();
        let expired = tasks::id
            .ge(from.clone())
            .and(tasks::id.lt(until.clone()))
            .and(tasks::status.ne_all(UNFINISHED))
            .and(tasks::finished_at.lt(cutoff.as_micros()));
        let gone = c.transaction(|c| {
            if !lock_upkeep(c)? {
                return Ok::<_, crate::StorageError>(false);
            }
            #[derive(QueryableByName)]
            struct Kept {
                #[diesel(sql_type = Bool)]
                kept: bool,
            }
            let kept: Kept = diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM tasks WHERE id >= $1 AND id < $2 \
                 AND (status IN ('queued', 'running') OR finished_at IS NULL OR finished_at >= $3)) \
                 AS kept",
            )
            .bind::<Binary, _>(&from)
            .bind::<Binary, _>(&until)
            .bind::<BigInt, _>(cutoff.as_micros())
            .get_result(c)?;
            if kept.kept {
                return Ok(false);
            }
            c.batch_execute(&format!("DROP TABLE {}", partition.name))?;
            Ok(true)
        })?;
        if gone {
            // The records went with the partition, so each task's cascade into
            // task_logs finds nothing left to delete; their index entries are
            // deleted a step at a time first, as a deleted task's are.
            crate::text_index::postgres::forget_entries_between(c, (&from, &until), ENTRIES_STEP)?;
            let tasks = diesel::delete(tasks::table.filter(expired)).execute(c)? as u64;
            // Whatever an indexer step wrote in between (it holds the task's row
            // while it writes, so none comes after).
            crate::text_index::postgres::forget_entries_between(c, (&from, &until), ENTRIES_STEP)?;
            dropped.push(Dropped {
                partition: partition.name,
                tasks,
            });
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_bounds_and_days_agree() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let p = Partition::day(day);
        assert_eq!(p.name, "task_logs_20261202");
        assert_eq!(Partition::parse(&p.name), Some(p.clone()));
        // 2026-12-02T00:00:00Z is 1,796,169,600,000 ms = 0x01a2340d0c00.
        assert_eq!(
            hex::encode(first_id_of(day)),
            "01a2340d0c0000000000000000000000"
        );
        let until = Partition::parse("task_logs_until_20261202").unwrap();
        assert_eq!((until.from, until.until), (None, day));
        assert!(until.covers(NaiveDate::from_ymd_opt(1999, 1, 1).unwrap()));
        assert!(!until.covers(day) && p.covers(day));
        for other in [
            "task_logs_default",
            "task_logs_2026120",
            "task_logs_20261340",
            "tasks",
        ] {
            assert_eq!(Partition::parse(other), None, "{other}");
        }
        // An id minted at any moment of the day falls in the day's range.
        let (from, until) = p.ids();
        for ms in [start_of(day), start_of(day) + 86_399_999] {
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                (ms / 1000) as u64,
                (ms % 1000) as u32 * 1_000_000,
            );
            let id = uuid::Uuid::new_v7(ts);
            assert!(
                from.as_slice() <= id.as_bytes().as_slice()
                    && id.as_bytes().as_slice() < until.as_slice()
            );
        }
        assert_eq!(day_of(Timestamp(start_of(day) * 1000 + 5)), day);
    }
}
