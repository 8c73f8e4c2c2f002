//! The `tasks` table: create, read, list (newest first, keyset paged), status
//! transitions, delete (logs go with it through `ON DELETE CASCADE`).

use diesel::prelude::*;
use protocol::task::MAX_INLINE_PARAMS_BYTES;
use protocol::{TaskId, TaskInfo, TaskList, TaskStatus, Timestamp};

use crate::db::Conn;
use crate::models::{NewTaskRow, TaskRow, TaskSummaryRow};
use crate::schema::{task_logs, tasks};
use crate::{with_conn, Result};

/// Largest page of tasks a client may ask for.
pub const MAX_TASK_PAGE: usize = 500;

pub(crate) const UNFINISHED: [&str; 2] = ["queued", "running"];

/// Stores a new task as given (normally `queued`).
pub fn insert_task(conn: &mut Conn, task: &TaskInfo, node: Option<&str>) -> Result<()> {
    let params = task.params.to_string();
    let result = task.result.as_ref().map(|r| r.to_string());
    let row = NewTaskRow {
        id: task.id.as_bytes(),
        plugin: &task.plugin,
        params: &params,
        status: task.status.as_str(),
        created_at: task.created_at.as_micros(),
        started_at: task.started_at.map(Timestamp::as_micros),
        finished_at: task.finished_at.map(Timestamp::as_micros),
        result: result.as_deref(),
        error: task.error.as_deref(),
        created_by: task.created_by.as_deref(),
        node_id: node,
        priority: task.priority,
    };
    with_conn!(conn, c => diesel::insert_into(tasks::table).values(&row).execute(c))?;
    Ok(())
}

pub fn get_task(conn: &mut Conn, id: TaskId) -> Result<Option<TaskInfo>> {
    let row: Option<TaskRow> = with_conn!(conn, c => tasks::table
        .find(id.as_bytes().as_slice())
        .select(TaskRow::as_select())
        .first(c)
        .optional())?;
    row.map(TaskInfo::try_from).transpose()
}

/// Which tasks to list. Empty lists mean any.
#[derive(Debug, Clone, Default)]
pub struct TaskListQuery {
    /// Any of these statuses.
    pub statuses: Vec<TaskStatus>,
    /// Any of these plugins.
    pub plugins: Vec<String>,
    /// Started by any of these callers.
    pub created_by: Vec<String>,
    /// Created at or after.
    pub created_since: Option<Timestamp>,
    /// Created before.
    pub created_until: Option<Timestamp>,
    pub text: Option<TaskText>,
    /// Only tasks created before this one (the `next_before` of the previous page).
    pub before: Option<TaskId>,
    pub limit: usize,
}

/// Text a task's id starts with, or its params (as JSON text) contain, case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct TaskText {
    pub text: String,
    /// Plugins whose params the text must not look into (a viewer's privileged ones:
    /// a match would tell what their redacted values are).
    pub sealed_plugins: Vec<String>,
}

/// Longest `TaskText::text`, in bytes.
pub const MAX_TASK_TEXT: usize = 200;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

impl TaskText {
    /// The ids a prefix of the id's text (dashes ignored) spans: first and last.
    fn id_range(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let hex: String = self.text.chars().filter(|c| *c != '-').collect();
        if hex.is_empty() || hex.len() > 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let bound = |fill: char| -> Vec<u8> {
            let mut full = hex.to_ascii_lowercase();
            full.extend(std::iter::repeat_n(fill, 32 - hex.len()));
            (0..16)
                .map(|i| u8::from_str_radix(&full[2 * i..2 * i + 2], 16).expect("hex digits"))
                .collect()
        };
        Some((bound('0'), bound('f')))
    }

    /// The `LIKE` pattern of a substring (with `\` escaping).
    fn pattern(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 2);
        out.push('%');
        for c in self.text.chars() {
            if matches!(c, '%' | '_' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('%');
        out
    }
}

/// Tasks newest first. An unknown `before` task yields an empty page.
pub fn list_tasks(conn: &mut Conn, query: &TaskListQuery) -> Result<TaskList> {
    let limit = query.limit.clamp(1, MAX_TASK_PAGE);
    let anchor: Option<(i64, Vec<u8>)> = match query.before {
        None => None,
        Some(before) => {
            let created: Option<i64> = with_conn!(conn, c => tasks::table
                .find(before.as_bytes().as_slice())
                .select(tasks::created_at)
                .first(c)
                .optional())?;
            match created {
                Some(created) => Some((created, before.as_bytes().to_vec())),
                None => {
                    return Ok(TaskList {
                        tasks: Vec::new(),
                        next_before: None,
                    })
                }
            }
        }
    };
    let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
    let id_range = query.text.as_ref().and_then(TaskText::id_range);
    let pattern = query.text.as_ref().map(TaskText::pattern);
    let sealed = query
        .text
        .as_ref()
        .map(|t| t.sealed_plugins.clone())
        .unwrap_or_default();
    // Large params stay in the database: a list carries small ones only (see
    // `TaskInfo::params_omitted`).
    let inline_params = diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(
        &format!("CASE WHEN length(params) <= {MAX_INLINE_PARAMS_BYTES} THEN params END"),
    );
    let rows: Vec<TaskSummaryRow> = with_conn!(conn, c => {
        let mut q = tasks::table
            .select((
                tasks::id,
                tasks::plugin,
                inline_params.clone(),
                tasks::status,
                tasks::created_at,
                tasks::started_at,
                tasks::finished_at,
                tasks::result,
                tasks::error,
                tasks::created_by,
                tasks::node_id,
                tasks::priority,
            ))
            .into_boxed();
        if !statuses.is_empty() {
            q = q.filter(tasks::status.eq_any(statuses.clone()));
        }
        if !query.plugins.is_empty() {
            q = q.filter(tasks::plugin.eq_any(query.plugins.clone()));
        }
        if !query.created_by.is_empty() {
            q = q.filter(tasks::created_by.eq_any(query.created_by.clone()));
        }
        if let Some(since) = query.created_since {
            q = q.filter(tasks::created_at.ge(since.as_micros()));
        }
        if let Some(until) = query.created_until {
            q = q.filter(tasks::created_at.lt(until.as_micros()));
        }
        if let Some(pattern) = &pattern {
            // The database lowers both sides, so the pattern's case folds as the
            // params' does (ASCII on SQLite, Unicode on PostgreSQL).
            let in_params = lower(tasks::params)
                .like(lower(pattern.clone()))
                .escape('\\')
                .and(tasks::plugin.ne_all(sealed.clone()));
            q = match &id_range {
                Some((first, last)) => {
                    q.filter(tasks::id.between(first.clone(), last.clone()).or(in_params))
                }
                None => q.filter(in_params),
            };
        }
        if let Some((created, id)) = &anchor {
            q = q.filter(
                tasks::created_at
                    .lt(*created)
                    .or(tasks::created_at.eq(*created).and(tasks::id.lt(id.clone()))),
            );
        }
        q.order((tasks::created_at.desc(), tasks::id.desc()))
            .limit(limit as i64 + 1)
            .load(c)
    })?;
    let has_more = rows.len() > limit;
    let mut tasks = rows
        .into_iter()
        .take(limit)
        .map(TaskInfo::try_from)
        .collect::<Result<Vec<_>>>()?;
    tasks.shrink_to_fit();
    let next_before = if has_more {
        tasks.last().map(|t| t.id)
    } else {
        None
    };
    Ok(TaskList { tasks, next_before })
}

/// `queued` → `running`. False when the task is not queued (cancelled meanwhile).
pub fn mark_running(conn: &mut Conn, id: TaskId, started_at: Timestamp) -> Result<bool> {
    let changed = with_conn!(conn, c => diesel::update(
        tasks::table
            .find(id.as_bytes().as_slice())
            .filter(tasks::status.eq(TaskStatus::Queued.as_str())),
    )
    .set((
        tasks::status.eq(TaskStatus::Running.as_str()),
        tasks::started_at.eq(started_at.as_micros()),
    ))
    .execute(c))?;
    Ok(changed == 1)
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    pub status: TaskStatus,
    pub finished_at: Timestamp,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// Moves an unfinished task to its final state. False when it had already ended.
pub fn finish_task(conn: &mut Conn, id: TaskId, outcome: &TaskOutcome) -> Result<bool> {
    let result = outcome.result.as_ref().map(|r| r.to_string());
    let changed = with_conn!(conn, c => diesel::update(
        tasks::table
            .find(id.as_bytes().as_slice())
            .filter(tasks::status.eq_any(UNFINISHED)),
    )
    .set((
        tasks::status.eq(outcome.status.as_str()),
        tasks::finished_at.eq(outcome.finished_at.as_micros()),
        tasks::result.eq(result.as_deref()),
        tasks::error.eq(outcome.error.as_deref()),
    ))
    .execute(c))?;
    Ok(changed == 1)
}

/// Deletes a task and, by cascade, its logs and counts, and on PostgreSQL its text
/// and metadata index entries after it (see [`crate::text_index::postgres`]). False
/// when it did not exist.
pub fn delete_task(conn: &mut Conn, id: TaskId) -> Result<bool> {
    let task = id.as_bytes().as_slice();
    let deleted = match conn {
        Conn::Sqlite(c) => diesel::delete(tasks::table.find(task)).execute(&mut **c)?,
        Conn::Postgres(c) => c.transaction(|c| {
            let deleted = diesel::delete(tasks::table.find(task)).execute(c)?;
            crate::text_index::postgres::forget_task(c, id)?;
            Ok::<_, crate::StorageError>(deleted)
        })?,
    };
    Ok(deleted == 1)
}

/// Deletes a task like [`delete_task`], its records first, `step` at a time, each
/// step a statement of its own: a task of millions of records never holds SQLite's
/// write lock (or a PostgreSQL transaction) for all of them, so ingest goes on
/// between steps. Not atomic: interrupted, it leaves the task with fewer records,
/// and the next call finishes it. False when the task did not exist.
pub fn delete_task_in_steps(conn: &mut Conn, id: TaskId, step: usize) -> Result<bool> {
    let task = id.as_bytes().as_slice();
    // First, so that no index is read from bits of records already gone.
    {
        use crate::schema::task_log_level_bits as bits;
        with_conn!(conn, c => diesel::delete(bits::table.filter(bits::task_id.eq(task))).execute(c))?;
    }
    loop {
        // The seq `step` records in: everything up to it goes in this step.
        let last: Option<i64> = with_conn!(conn, c => task_logs::table
            .filter(task_logs::task_id.eq(task))
            .order(task_logs::seq.asc())
            .select(task_logs::seq)
            .offset(step.saturating_sub(1) as i64)
            .first(c)
            .optional())?;
        let in_step = task_logs::task_id
            .eq(task)
            .and(task_logs::seq.le(last.unwrap_or(i64::MAX)));
        with_conn!(conn, c => diesel::delete(task_logs::table.filter(in_step)).execute(c))?;
        if last.is_none() {
            crate::text_index::forget_entries_in_steps(conn, id, step)?;
            return delete_task(conn, id);
        }
    }
}

/// At start-up: tasks this node (`node`) was running in its previous run, and
/// running tasks of no node (stored before nodes were recorded), become
/// `interrupted`; tasks it had claimed but not started go back to the queue; other
/// nodes' tasks are theirs. Returns how many were interrupted.
pub fn interrupt_unfinished(conn: &mut Conn, node: &str, now: Timestamp) -> Result<usize> {
    let own = tasks::node_id.eq(node).or(tasks::node_id.is_null());
    let changed = with_conn!(conn, c => c.transaction(|c| {
        diesel::update(
            tasks::table
                .filter(tasks::status.eq(TaskStatus::Queued.as_str()))
                .filter(tasks::node_id.eq(node)),
        )
        .set(tasks::node_id.eq(None::<&str>))
        .execute(c)?;
        diesel::update(
            tasks::table
                .filter(tasks::status.eq(TaskStatus::Running.as_str()))
                .filter(own),
        )
        .set((
            tasks::status.eq(TaskStatus::Interrupted.as_str()),
            tasks::finished_at.eq(now.as_micros()),
            tasks::error.eq("the server stopped before the task finished"),
        ))
        .execute(c)
    }))?;
    Ok(changed)
}

/// Up to `limit` tasks that finished before `cutoff`, oldest first (for retention: a
/// task's age counts from when it ended, so a long task is not deleted as it ends).
pub fn finished_before(conn: &mut Conn, cutoff: Timestamp, limit: usize) -> Result<Vec<TaskId>> {
    let ids: Vec<Vec<u8>> = with_conn!(conn, c => tasks::table
        .filter(tasks::finished_at.lt(cutoff.as_micros()))
        .filter(tasks::status.ne_all(UNFINISHED))
        .order(tasks::finished_at.asc())
        .select(tasks::id)
        .limit(limit as i64)
        .load(c))?;
    Ok(ids.iter().filter_map(|id| TaskId::from_slice(id)).collect())
}

/// Tasks created, started or finished at `since` or later, newest first, at most
/// `limit`: what a node that missed other nodes' notices for a while reads again.
/// No index serves it; it runs only after such a gap.
pub fn changed_since(conn: &mut Conn, since: Timestamp, limit: usize) -> Result<Vec<TaskInfo>> {
    let t = since.as_micros();
    let rows: Vec<TaskRow> = with_conn!(conn, c => tasks::table
        .filter(
            tasks::created_at
                .ge(t)
                .or(tasks::started_at.ge(t))
                .or(tasks::finished_at.ge(t)),
        )
        .order(tasks::created_at.desc())
        .limit(limit as i64)
        .select(TaskRow::as_select())
        .load(c))?;
    rows.into_iter().map(TaskInfo::try_from).collect()
}

/// How many tasks there are in each status (for metrics).
pub fn count_by_status(conn: &mut Conn) -> Result<Vec<(TaskStatus, i64)>> {
    let rows: Vec<(String, i64)> = with_conn!(conn, c => tasks::table
        .group_by(tasks::status)
        .select((tasks::status, diesel::dsl::count_star()))
        .load(c))?;
    Ok(rows
        .into_iter()
        .filter_map(|(status, n)| status.parse().ok().map(|s| (s, n)))
        .collect())
}
