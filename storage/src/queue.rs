//! The shared queue. A task is stored `queued` with no node; a node with room for
//! its plugin claims it by writing its id into `node_id`, and only then runs it, so
//! every node on the database draws from one queue and no task runs twice. On
//! PostgreSQL the claim skips rows another node is claiming (`FOR UPDATE SKIP
//! LOCKED`); SQLite has one writer, so its claims never overlap.

use diesel::prelude::*;
use protocol::{TaskId, TaskInfo, TaskStatus, Timestamp};

use crate::changes::{announce, Change};
use crate::db::Conn;
use crate::models::TaskRow;
use crate::schema::tasks;
use crate::tasks::{insert_task, TaskOutcome};
use crate::{with_conn, Result};

const QUEUED: &str = "queued";

/// Why a task was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `waiting` tasks already wait, the most allowed.
    QueueFull { waiting: usize },
    /// Its creator already has `active` queued or running tasks, the most allowed.
    TooManyTasks { active: usize },
}

/// The bounds a new task is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Tasks that may wait unclaimed, counted over every node.
    pub max_waiting: usize,
    /// Queued or running tasks one creator may have, when limited.
    pub max_per_creator: Option<usize>,
}

/// Queues `task` (status `queued`, no node) unless the queue or its creator's
/// share of it is full. The caller claims it or calls [`announce_waiting`].
pub fn enqueue(
    conn: &mut Conn,
    task: &TaskInfo,
    admission: Admission,
) -> Result<Result<(), Refusal>> {
    let waiting: i64 = with_conn!(conn, c => tasks::table
        .filter(tasks::status.eq(QUEUED))
        .filter(tasks::node_id.is_null())
        .count()
        .get_result(c))?;
    let waiting = waiting as usize;
    if waiting >= admission.max_waiting {
        return Ok(Err(Refusal::QueueFull { waiting }));
    }
    if let (Some(max), Some(who)) = (admission.max_per_creator, &task.created_by) {
        let active: i64 = with_conn!(conn, c => tasks::table
            .filter(tasks::created_by.eq(who))
            .filter(tasks::status.eq_any([QUEUED, "running"]))
            .count()
            .get_result(c))?;
        let active = active as usize;
        if active >= max {
            return Ok(Err(Refusal::TooManyTasks { active }));
        }
    }
    insert_task(conn, task, None)?;
    Ok(Ok(()))
}

/// Claims for `node` up to `limit` queued tasks of these plugins, highest priority
/// first, then oldest first.
pub fn claim(
    conn: &mut Conn,
    node: &str,
    plugins: &[String],
    limit: usize,
) -> Result<Vec<TaskInfo>> {
    if plugins.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let unclaimed = tasks::table
        .filter(tasks::status.eq(QUEUED))
        .filter(tasks::node_id.is_null())
        .filter(tasks::plugin.eq_any(plugins))
        .order((
            tasks::priority.desc(),
            tasks::created_at.asc(),
            tasks::id.asc(),
        ))
        .select(tasks::id)
        .limit(limit as i64);
    // Marks the ids as the node's and reads the tasks back.
    macro_rules! take {
        ($c:ident, $ids:expr) => {{
            let ids: Vec<Vec<u8>> = $ids;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            diesel::update(tasks::table.filter(tasks::id.eq_any(&ids)))
                .set(tasks::node_id.eq(node))
                .execute($c)?;
            tasks::table
                .filter(tasks::id.eq_any(&ids))
                .select(TaskRow::as_select())
                .load($c)
        }};
    }
    let rows: Vec<TaskRow> = match conn {
        Conn::Sqlite(c) => c.immediate_transaction(|c| take!(c, unclaimed.load(c)?))?,
        Conn::Postgres(c) => {
            c.transaction(|c| take!(c, unclaimed.for_update().skip_locked().load(c)?))?
        }
    };
    let mut claimed = rows
        .into_iter()
        .map(TaskInfo::try_from)
        .collect::<Result<Vec<_>>>()?;
    claimed.sort_by_key(|t| (std::cmp::Reverse(t.priority), t.created_at, t.id));
    Ok(claimed)
}

/// Ends a queued task no node has claimed. False when it was claimed (or ended)
/// first.
pub fn end_unclaimed(conn: &mut Conn, id: TaskId, outcome: &TaskOutcome) -> Result<bool> {
    let changed = with_conn!(conn, c => diesel::update(
        tasks::table
            .find(id.as_bytes().as_slice())
            .filter(tasks::status.eq(QUEUED))
            .filter(tasks::node_id.is_null()),
    )
    .set((
        tasks::status.eq(outcome.status.as_str()),
        tasks::finished_at.eq(outcome.finished_at.as_micros()),
        tasks::error.eq(outcome.error.as_deref()),
    ))
    .execute(c))?;
    Ok(changed == 1)
}

/// Gives tasks `node` claimed but has not started back to the queue, for another
/// node (or this one, later) to take.
pub fn release(conn: &mut Conn, node: &str, ids: &[TaskId]) -> Result<usize> {
    let ids: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes().as_slice()).collect();
    let changed = with_conn!(conn, c => diesel::update(
        tasks::table
            .filter(tasks::id.eq_any(&ids))
            .filter(tasks::node_id.eq(node))
            .filter(tasks::status.eq(QUEUED)),
    )
    .set(tasks::node_id.eq(None::<&str>))
    .execute(c))?;
    if changed > 0 {
        announce(conn, Change::Queued);
    }
    Ok(changed)
}

/// Ends every queued task of `plugin` no node has claimed; the tasks ended.
pub fn end_unclaimed_of(
    conn: &mut Conn,
    plugin: &str,
    outcome: &TaskOutcome,
) -> Result<Vec<TaskInfo>> {
    let ids: Vec<Vec<u8>> = with_conn!(conn, c => tasks::table
        .filter(tasks::status.eq(QUEUED))
        .filter(tasks::node_id.is_null())
        .filter(tasks::plugin.eq(plugin))
        .select(tasks::id)
        .load(c))?;
    let mut ended = Vec::new();
    for id in ids.iter().filter_map(|id| TaskId::from_slice(id)) {
        if end_unclaimed(conn, id, outcome)? {
            ended.extend(crate::tasks::get_task(conn, id)?);
        }
    }
    Ok(ended)
}

/// Tells the nodes that tasks wait unclaimed.
pub fn announce_waiting(conn: &mut Conn) {
    announce(conn, Change::Queued);
}

/// Asks the node that claimed `task` to cancel it: recorded on the task, where that
/// node looks now and then ([`cancels_asked_of`]), and announced, so that it acts at
/// once when it hears.
pub fn ask_owner_to_cancel(
    conn: &mut Conn,
    task: TaskId,
    by: Option<String>,
    now: Timestamp,
) -> Result<()> {
    with_conn!(conn, c => diesel::update(
        tasks::table
            .find(task.as_bytes().as_slice())
            .filter(tasks::status.eq_any(crate::tasks::UNFINISHED)),
    )
    .set((
        tasks::cancel_requested_at.eq(now.as_micros()),
        tasks::cancel_requested_by.eq(by.as_deref()),
    ))
    .execute(c))?;
    announce(conn, Change::Cancel { task, by });
    Ok(())
}

/// The tasks `node` claimed, not ended, that someone asked through another node to
/// cancel, with who asked.
pub fn cancels_asked_of(conn: &mut Conn, node: &str) -> Result<Vec<(TaskId, Option<String>)>> {
    let rows: Vec<(Vec<u8>, Option<String>)> = with_conn!(conn, c => tasks::table
        .filter(tasks::node_id.eq(node))
        .filter(tasks::status.eq_any(crate::tasks::UNFINISHED))
        .filter(tasks::cancel_requested_at.is_not_null())
        .select((tasks::id, tasks::cancel_requested_by))
        .load(c))?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, by)| TaskId::from_slice(&id).map(|id| (id, by)))
        .collect())
}

/// Where a task is, for whoever wants to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whereabouts {
    /// Waiting in the queue; no node has claimed it.
    Unclaimed,
    /// Claimed (queued or running) by this node.
    ClaimedBy(String),
    Ended(TaskStatus),
    /// No such task (or one whose status is not one we know).
    Missing,
}

pub fn whereabouts(conn: &mut Conn, id: TaskId) -> Result<Whereabouts> {
    let row: Option<(String, Option<String>)> = with_conn!(conn, c => tasks::table
        .find(id.as_bytes().as_slice())
        .select((tasks::status, tasks::node_id))
        .first(c)
        .optional())?;
    let Some((status, node)) = row else {
        return Ok(Whereabouts::Missing);
    };
    Ok(match (status.parse::<TaskStatus>(), node) {
        (Ok(TaskStatus::Queued | TaskStatus::Running), None) => Whereabouts::Unclaimed,
        (Ok(TaskStatus::Queued | TaskStatus::Running), Some(node)) => Whereabouts::ClaimedBy(node),
        (Ok(ended), _) => Whereabouts::Ended(ended),
        (Err(_), _) => Whereabouts::Missing,
    })
}
