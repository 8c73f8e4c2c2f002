//! A task's groups (foldable sections, `protocol::group`), read from their marks:
//! the opens in seq order, the closes of those groups, and for groups still open a
//! scan of what came after them (only then is a record read beyond the marks).

use std::collections::HashMap;

use diesel::dsl::{max, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Bool, Nullable, Text};
use protocol::api::MAX_GROUP_NAME_BYTES;
use protocol::group::group_name;
use protocol::{LogGroup, LogGroups, LogLevel, TaskId, Timestamp};

use crate::db::Conn;
use crate::schema::task_logs;
use crate::{with_conn, Result, StorageError};

/// Most groups one listing holds.
pub const MAX_GROUPS: usize = 10_000;

// The marks are filtered by literals, not bound parameters, so that SQLite and
// PostgreSQL see that the partial indexes `task_log_opens` / `task_log_closes` apply.
const OPENS: &str = "group_mark = 1";
const CLOSES: &str = "group_mark = 2";
const NOT_A_CLOSE: &str = "(group_mark IS NULL OR group_mark = 1)";
/// Characters of an open record read for its name: the prefix and the longest name.
const NAME_CHARS: &str = "substr(message, 1, 300)";

/// An open mark: its seq, time, the start of its message and its parent group.
#[derive(QueryableByName)]
struct OpenMark {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = BigInt)]
    ts: i64,
    #[diesel(sql_type = Text)]
    text: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    parent: Option<i64>,
}

/// The task's first `limit` open marks, in seq order.
fn open_marks(conn: &mut Conn, id: &[u8], limit: i64) -> Result<Vec<OpenMark>> {
    Ok(match conn {
        // Without statistics SQLite's planner orders by walking the primary key,
        // every record of the task (200 ms for 1,000,000), rather than the partial
        // index that holds only the opens (under 10 ms): it is told which to use.
        Conn::Sqlite(c) => diesel::sql_query(format!(
            "SELECT seq, ts, {NAME_CHARS} AS text, group_seq AS parent \
             FROM task_logs INDEXED BY task_log_opens \
             WHERE task_id = ? AND {OPENS} ORDER BY seq LIMIT ?"
        ))
        .bind::<Binary, _>(id)
        .bind::<BigInt, _>(limit)
        .load(&mut **c)?,
        Conn::Postgres(c) => task_logs::table
            .filter(task_logs::task_id.eq(id))
            .filter(sql::<Bool>(OPENS))
            .order(task_logs::seq)
            .select((
                task_logs::seq,
                task_logs::ts,
                sql::<Text>(NAME_CHARS),
                task_logs::group_seq,
            ))
            .limit(limit)
            .load::<(i64, i64, String, Option<i64>)>(&mut **c)?
            .into_iter()
            .map(|(seq, ts, text, parent)| OpenMark {
                seq,
                ts,
                text,
                parent,
            })
            .collect(),
    })
}

/// The first [`MAX_GROUPS`] groups of a task, in seq order.
pub fn list_groups(conn: &mut Conn, task: TaskId) -> Result<LogGroups> {
    let id = task.as_bytes().as_slice();
    let mut opens = open_marks(conn, id, MAX_GROUPS as i64 + 1)?;
    let truncated = opens.len() > MAX_GROUPS;
    opens.truncate(MAX_GROUPS);
    let (Some(first), Some(last)) = (opens.first(), opens.last()) else {
        return Ok(LogGroups {
            groups: Vec::new(),
            truncated: false,
        });
    };
    let (first, last) = (first.seq, last.seq);
    let closes: Vec<(Option<i64>, i64, i64, Option<i16>)> = with_conn!(conn, c => task_logs::table
        .filter(task_logs::task_id.eq(id))
        .filter(sql::<Bool>(CLOSES))
        .filter(task_logs::group_seq.between(first, last))
        .select((task_logs::group_seq, task_logs::seq, task_logs::ts, task_logs::group_worst))
        .load(c))?;
    let closes: HashMap<i64, (i64, i64, Option<i16>)> = closes
        .into_iter()
        .filter_map(|(group, seq, ts, worst)| Some((group?, (seq, ts, worst))))
        .collect();
    let last_seq = super::max_seq(conn, task)?;

    let mut groups = Vec::with_capacity(opens.len());
    for OpenMark {
        seq,
        ts,
        text,
        parent,
    } in opens
    {
        let close = closes.get(&seq);
        groups.push(LogGroup {
            seq: seq as u64,
            parent: parent.map(|p| p as u64),
            name: cut(group_name(&text)),
            started: Timestamp(ts),
            end_seq: close.map(|c| c.0 as u64),
            ended: close.map(|c| Timestamp(c.1)),
            lines: match close {
                Some((end, _, _)) => (end - seq - 1).max(0) as u64,
                None => last_seq.saturating_sub(seq as u64),
            },
            worst: close.and_then(|c| c.2).map(level).transpose()?,
        });
    }
    worst_of_open_groups(conn, id, &mut groups)?;
    Ok(LogGroups { groups, truncated })
}

/// A group still open has no close to hold its worst level: one grouped read of the
/// records after the outermost open group gives each innermost group's worst, and
/// each open group takes the worst of every group inside it.
fn worst_of_open_groups(conn: &mut Conn, id: &[u8], groups: &mut [LogGroup]) -> Result<()> {
    let Some(outermost) = groups.iter().find(|g| g.end_seq.is_none()).map(|g| g.seq) else {
        return Ok(());
    };
    let rows: Vec<(Option<i64>, Option<i16>)> = with_conn!(conn, c => task_logs::table
        .filter(task_logs::task_id.eq(id))
        .filter(task_logs::seq.gt(outermost as i64))
        .filter(sql::<Bool>(NOT_A_CLOSE))
        .group_by(task_logs::group_seq)
        .select((task_logs::group_seq, max(task_logs::level)))
        .load(c))?;
    let parent: HashMap<u64, Option<u64>> = groups.iter().map(|g| (g.seq, g.parent)).collect();
    let mut worst: HashMap<u64, LogLevel> = HashMap::new();
    for (group, top) in rows {
        let (Some(mut group), Some(top)) = (group.map(|g| g as u64), top) else {
            continue;
        };
        let top = level(top)?;
        // Up the chain of groups around it; the depth is bounded (protocol::group).
        for _ in 0..=protocol::group::MAX_DEPTH {
            let known = worst.entry(group).or_insert(top);
            *known = (*known).max(top);
            match parent.get(&group) {
                Some(Some(up)) => group = *up,
                _ => break,
            }
        }
    }
    for g in groups.iter_mut().filter(|g| g.end_seq.is_none()) {
        g.worst = worst.get(&g.seq).copied();
    }
    Ok(())
}

fn level(stored: i16) -> Result<LogLevel> {
    LogLevel::from_i16(stored)
        .ok_or_else(|| StorageError::Corrupt(format!("group with level {stored}")))
}

/// `name` cut to [`MAX_GROUP_NAME_BYTES`] on a character boundary.
fn cut(name: &str) -> String {
    let mut end = name.len().min(MAX_GROUP_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}
