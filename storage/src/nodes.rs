//! `nodes`: the server processes sharing the database, their heartbeats, and the
//! resolution of a dead node's tasks.

use diesel::prelude::*;
use protocol::{Body, LogEntry, LogLevel, NodeInfo, TaskId, TaskStatus, Timestamp};

use crate::db::Conn;
use crate::error::StorageError;
use crate::logs::{insert_log_batches, LogBatchRef};
use crate::schema::{nodes, task_logs, tasks};
use crate::{with_conn, Result};

/// The advisory lock that elects the one survivor resolving dead nodes' tasks.
const REAPER_LOCK: i64 = 0x7461_736b_7265_6170; // "taskreap"
/// Rows of nodes silent this long are forgotten.
const FORGET_AFTER_MICROS: i64 = 7 * 24 * 3_600 * 1_000_000;

/// Records this node as started (or restarted) now.
pub fn register(conn: &mut Conn, id: &str, role: &str, now: Timestamp) -> Result<()> {
    let row = (
        nodes::id.eq(id),
        nodes::role.eq(role),
        nodes::started_at.eq(now.as_micros()),
        nodes::heartbeat_at.eq(now.as_micros()),
        nodes::running.eq(0_i64),
        // Its workers reconnect and offer their plugins anew.
        nodes::plugins.eq(None::<&str>),
    );
    with_conn!(conn, c => diesel::insert_into(nodes::table)
        .values(row)
        .on_conflict(nodes::id)
        .do_update()
        .set(row)
        .execute(c))?;
    Ok(())
}

/// This node is alive now, running `running` tasks.
pub fn heartbeat(conn: &mut Conn, id: &str, now: Timestamp, running: usize) -> Result<()> {
    let changed = with_conn!(conn, c => diesel::update(nodes::table.find(id))
        .set((
            nodes::heartbeat_at.eq(now.as_micros()),
            nodes::running.eq(running as i64),
        ))
        .execute(c))?;
    if changed == 0 {
        // Forgotten while silent for a week, or removed by hand: back on the list.
        register(conn, id, "all", now)?;
        heartbeat(conn, id, now, running)?;
    }
    Ok(())
}

/// Records the remote plugins this node's workers offer, as a JSON array of
/// `PluginInfo`.
pub fn set_plugins(conn: &mut Conn, id: &str, plugins: &str) -> Result<()> {
    with_conn!(conn, c => diesel::update(nodes::table.find(id))
        .set(nodes::plugins.eq(plugins))
        .execute(c))?;
    Ok(())
}

/// The remote plugins offered through the other nodes heard within `timeout_micros`
/// (one JSON array per node, as [`set_plugins`] stored it).
pub fn plugins_elsewhere(
    conn: &mut Conn,
    me: &str,
    now: Timestamp,
    timeout_micros: i64,
) -> Result<Vec<String>> {
    let lists: Vec<Option<String>> = with_conn!(conn, c => nodes::table
        .filter(nodes::id.ne(me))
        .filter(nodes::heartbeat_at.ge(now.as_micros().saturating_sub(timeout_micros)))
        .order(nodes::id.asc())
        .select(nodes::plugins)
        .load(c))?;
    Ok(lists.into_iter().flatten().collect())
}

/// Every node, most recently heard first; `alive` when heard within `timeout`.
pub fn list(conn: &mut Conn, now: Timestamp, timeout_micros: i64) -> Result<Vec<NodeInfo>> {
    let rows: Vec<(String, String, i64, i64, i64)> = with_conn!(conn, c => nodes::table
        .select((nodes::id, nodes::role, nodes::started_at, nodes::heartbeat_at, nodes::running))
        .order((nodes::heartbeat_at.desc(), nodes::id.asc()))
        .load(c))?;
    Ok(rows
        .into_iter()
        .map(|(id, role, started_at, heartbeat_at, running)| NodeInfo {
            id,
            role,
            started_at: Timestamp(started_at),
            heartbeat_at: Timestamp(heartbeat_at),
            running: running.max(0) as u64,
            alive: now.as_micros() - heartbeat_at <= timeout_micros,
        })
        .collect())
}

/// A task of a dead node, now ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub node: String,
    pub task: TaskId,
}

/// Ends, as `interrupted` with a `system` record saying why, the running tasks of
/// every other node silent for longer than `timeout_micros`, and puts the tasks it
/// had claimed but not started back in the queue. On PostgreSQL one
/// node at a time does it (an advisory lock elects it; the others return nothing).
pub fn reap_dead(
    conn: &mut Conn,
    me: &str,
    now: Timestamp,
    timeout_micros: i64,
) -> Result<Vec<Reaped>> {
    let elected = match conn {
        Conn::Sqlite(_) => true,
        Conn::Postgres(c) => diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "pg_try_advisory_lock({REAPER_LOCK})"
        )))
        .get_result::<bool>(&mut **c)?,
    };
    if !elected {
        return Ok(Vec::new());
    }
    let reaped = reap_elected(conn, me, now, timeout_micros);
    if let Conn::Postgres(c) = conn {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "pg_advisory_unlock({REAPER_LOCK})"
        )))
        .get_result::<bool>(&mut **c)?;
    }
    reaped
}

fn reap_elected(
    conn: &mut Conn,
    me: &str,
    now: Timestamp,
    timeout_micros: i64,
) -> Result<Vec<Reaped>> {
    let silent_since = now.as_micros() - timeout_micros;
    let dead: Vec<(String, i64)> = with_conn!(conn, c => nodes::table
        .filter(nodes::heartbeat_at.lt(silent_since))
        .filter(nodes::id.ne(me))
        .select((nodes::id, nodes::heartbeat_at))
        .load(c))?;
    let mut reaped = Vec::new();
    for (node, heard) in dead {
        // What it claimed and never started goes back to the queue.
        let still_silent = nodes::table
            .filter(nodes::heartbeat_at.lt(silent_since))
            .select(nodes::id.nullable());
        with_conn!(conn, c => diesel::update(
            tasks::table
                .filter(tasks::node_id.eq(&node))
                .filter(tasks::status.eq(TaskStatus::Queued.as_str()))
                .filter(tasks::node_id.eq_any(still_silent)),
        )
        .set(tasks::node_id.eq(None::<&str>))
        .execute(c))?;
        let ids: Vec<Vec<u8>> = with_conn!(conn, c => tasks::table
            .filter(tasks::node_id.eq(&node))
            .filter(tasks::status.eq(TaskStatus::Running.as_str()))
            .select(tasks::id)
            .load(c))?;
        let silent_secs = (now.as_micros() - heard) / 1_000_000;
        let why = format!(
            "node {node} stopped answering (no heartbeat for {silent_secs} s) while running this task"
        );
        for id in ids {
            let task = TaskId::from_slice(&id)
                .ok_or_else(|| StorageError::Corrupt(format!("task id of {} bytes", id.len())))?;
            // Ended only while its node is still silent: one that beat again since it
            // was listed keeps its task.
            let still_silent = nodes::table
                .filter(nodes::heartbeat_at.lt(silent_since))
                .select(nodes::id.nullable());
            let ended = with_conn!(conn, c => diesel::update(
                tasks::table
                    .find(&id)
                    .filter(tasks::status.eq(TaskStatus::Running.as_str()))
                    .filter(tasks::node_id.eq_any(still_silent)),
            )
            .set((
                tasks::status.eq(TaskStatus::Interrupted.as_str()),
                tasks::finished_at.eq(now.as_micros()),
                tasks::error.eq(&why),
            ))
            .execute(c))?;
            if ended == 0 {
                continue;
            }
            let last: Option<i64> = with_conn!(conn, c => task_logs::table
                .filter(task_logs::task_id.eq(&id))
                .select(diesel::dsl::max(task_logs::seq))
                .first(c))?;
            let record = LogEntry {
                seq: last.unwrap_or(0) as u64 + 1,
                timestamp: now,
                level: LogLevel::Error,
                source: "system".into(),
                body: Body::new(why.clone(), None),
                group: None,
                mark: None,
                worst: None,
            };
            insert_log_batches(
                conn,
                &[LogBatchRef {
                    task_id: task,
                    entries: std::slice::from_ref(&record),
                }],
            )?;
            reaped.push(Reaped {
                node: node.clone(),
                task,
            });
        }
    }
    let forget_before = now.as_micros() - FORGET_AFTER_MICROS;
    with_conn!(conn, c => diesel::delete(nodes::table.filter(nodes::heartbeat_at.lt(forget_before))).execute(c))?;
    Ok(reaped)
}
