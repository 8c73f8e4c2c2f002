//! The task list's rows for one query, newest first: pages as they arrive, live
//! changes tested against the query, and the first page read again after the live
//! connection was away. Plain data, unit-tested natively.

use std::rc::Rc;

use protocol::{TaskId, TaskInfo, TaskList};
use yew::Reducible;

use crate::task_query::TaskQuery;

/// The list, newest first, for one query.
#[derive(Default, PartialEq)]
pub struct TaskRows {
    pub query: TaskQuery,
    pub tasks: Vec<TaskInfo>,
    pub next_before: Option<TaskId>,
    pub loaded: bool,
    pub error: Option<String>,
    /// Plugins whose params a text search does not look into for this caller.
    pub sealed: Vec<String>,
}

pub enum RowsAction {
    /// The query changed: the rows go until its first page is there.
    Reset(TaskQuery),
    /// A page of `query` (the first, or the next older one).
    Loaded {
        query: TaskQuery,
        list: TaskList,
        append: bool,
    },
    /// The first page again, after the live connection was away: it replaces the
    /// rows it covers and keeps older ones already paged in.
    Refreshed {
        query: TaskQuery,
        list: TaskList,
    },
    Failed(String),
    Changed(TaskInfo),
    Removed(TaskId),
    /// The caller's sealed plugins, once the plugin list is known.
    Seal(Vec<String>),
}

fn newer(a: &TaskInfo, b: &TaskInfo) -> bool {
    (a.created_at, a.id.0) > (b.created_at, b.id.0)
}

impl Reducible for TaskRows {
    type Action = RowsAction;

    fn reduce(self: Rc<Self>, action: RowsAction) -> Rc<Self> {
        let mut next = TaskRows {
            query: self.query.clone(),
            tasks: self.tasks.clone(),
            next_before: self.next_before,
            loaded: self.loaded,
            error: None,
            sealed: self.sealed.clone(),
        };
        match action {
            RowsAction::Reset(query) => {
                next = TaskRows {
                    query,
                    sealed: next.sealed,
                    ..TaskRows::default()
                }
            }
            // An answer to a query no longer shown.
            RowsAction::Loaded { query, .. } | RowsAction::Refreshed { query, .. }
                if query != next.query =>
            {
                return self;
            }
            RowsAction::Loaded { list, append, .. } => {
                if !append {
                    next.tasks.clear();
                }
                for task in list.tasks {
                    if !next.tasks.iter().any(|t| t.id == task.id) {
                        next.tasks.push(task);
                    }
                }
                next.next_before = list.next_before;
                next.loaded = true;
            }
            RowsAction::Refreshed { list, .. } => {
                // Older rows already paged in stay only when the new first page
                // reaches down to them; otherwise tasks made while away could fall
                // between the two, and the list starts over from the new page.
                let older: Vec<TaskInfo> = match (list.next_before, list.tasks.last()) {
                    (Some(_), Some(last))
                        if next.tasks.first().is_some_and(|top| !newer(last, top)) =>
                    {
                        next.tasks.into_iter().filter(|t| newer(last, t)).collect()
                    }
                    _ => Vec::new(),
                };
                if older.is_empty() {
                    next.next_before = list.next_before;
                }
                next.tasks = list.tasks;
                next.tasks.extend(older);
                next.loaded = true;
            }
            RowsAction::Failed(message) => next.error = Some(message),
            RowsAction::Changed(task) => {
                let at = next.tasks.iter().position(|t| t.id == task.id);
                // A listed task's id and params never change: the server's text
                // match stands, and only what changes is tested again.
                match (at, next.query.matches(&task, at.is_some(), &next.sealed)) {
                    (Some(i), true) => next.tasks[i] = task,
                    (Some(i), false) => {
                        next.tasks.remove(i);
                    }
                    (None, true) => {
                        let i = next
                            .tasks
                            .iter()
                            .position(|t| newer(&task, t))
                            .unwrap_or(next.tasks.len());
                        // Below the last row paged in, it comes with its page.
                        if i < next.tasks.len() || next.next_before.is_none() {
                            next.tasks.insert(i, task);
                        }
                    }
                    (None, false) => return self,
                }
            }
            RowsAction::Removed(id) => next.tasks.retain(|t| t.id != id),
            RowsAction::Seal(plugins) => next.sealed = plugins,
        }
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use protocol::{TaskStatus, Timestamp};

    use super::*;

    fn id(n: u128) -> TaskId {
        format!("00000000-0000-7000-8000-{n:012x}").parse().unwrap()
    }

    fn task(n: u128, status: TaskStatus) -> TaskInfo {
        TaskInfo {
            id: id(n),
            plugin: "synthetic".into(),
            params: serde_json::json!({}),
            status,
            created_at: Timestamp(n as i64 * 10),
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            created_by: None,
            params_omitted: false,
            node: None,
            priority: 0,
        }
    }

    fn page(ns: &[u128], more: bool) -> TaskList {
        TaskList {
            tasks: ns.iter().map(|n| task(*n, TaskStatus::Success)).collect(),
            next_before: more.then(|| id(*ns.last().unwrap())),
        }
    }

    fn ids(rows: &TaskRows) -> Vec<u128> {
        rows.tasks
            .iter()
            .map(|t| t.id.0.as_u128() & 0xffff_ffff_ffff)
            .collect()
    }

    fn apply(rows: Rc<TaskRows>, actions: Vec<RowsAction>) -> Rc<TaskRows> {
        actions.into_iter().fold(rows, |rows, a| rows.reduce(a))
    }

    #[test]
    fn pages_append_and_an_answer_to_an_old_query_is_dropped() {
        let q = TaskQuery::from_query("status=success");
        let old = TaskQuery::default();
        let rows = apply(
            Rc::new(TaskRows::default()),
            vec![
                RowsAction::Reset(q.clone()),
                RowsAction::Loaded {
                    query: old,
                    list: page(&[99], false),
                    append: false,
                },
                RowsAction::Loaded {
                    query: q.clone(),
                    list: page(&[9, 8], true),
                    append: false,
                },
                RowsAction::Loaded {
                    query: q,
                    list: page(&[8, 7], false),
                    append: true,
                },
            ],
        );
        assert_eq!(ids(&rows), [9, 8, 7]);
        assert!(rows.loaded && rows.next_before.is_none());
    }

    #[test]
    fn live_changes_enter_leave_and_wait_for_their_page() {
        let q = TaskQuery::from_query("status=running");
        let running = |n| task(n, TaskStatus::Running);
        let rows = apply(
            Rc::new(TaskRows::default()),
            vec![
                RowsAction::Reset(q.clone()),
                RowsAction::Loaded {
                    query: q,
                    list: TaskList {
                        tasks: vec![running(8), running(6)],
                        next_before: Some(id(6)),
                    },
                    append: false,
                },
                RowsAction::Changed(running(9)),
                RowsAction::Changed(running(7)),
                RowsAction::Changed(running(2)),
                RowsAction::Changed(task(8, TaskStatus::Success)),
                RowsAction::Changed(task(5, TaskStatus::Failed)),
            ],
        );
        // 9 on top, 7 in its place, 2 below the last page, 8 no longer running.
        assert_eq!(ids(&rows), [9, 7, 6]);
        // A viewer's text search: a sealed plugin's new task enters by its id only.
        let q = TaskQuery::from_query("q=%7B");
        let sealed = apply(
            Rc::new(TaskRows::default()),
            vec![
                RowsAction::Seal(vec!["synthetic".into()]),
                RowsAction::Reset(q.clone()),
                RowsAction::Loaded {
                    query: q,
                    list: page(&[], false),
                    append: false,
                },
                RowsAction::Changed(running(4)),
            ],
        );
        assert!(
            sealed.tasks.is_empty(),
            "params `{{}}` hold the text, but are sealed"
        );
        assert_eq!(sealed.sealed, ["synthetic"], "kept across a reset");
    }

    #[test]
    fn a_refresh_replaces_what_it_covers_and_keeps_older_pages() {
        let q = TaskQuery::default();
        let loaded = apply(
            Rc::new(TaskRows::default()),
            vec![
                RowsAction::Loaded {
                    query: q.clone(),
                    list: page(&[9, 8], true),
                    append: false,
                },
                RowsAction::Loaded {
                    query: q.clone(),
                    list: page(&[7, 6], false),
                    append: true,
                },
            ],
        );
        // 9 was deleted meanwhile, 10 is new; the first page now ends at 8.
        let refreshed = apply(
            loaded.clone(),
            vec![RowsAction::Refreshed {
                query: q.clone(),
                list: page(&[10, 8], true),
            }],
        );
        assert_eq!(ids(&refreshed), [10, 8, 7, 6]);
        assert!(
            refreshed.next_before.is_none(),
            "the older pages were all read"
        );
        // More new tasks than one page while away: the new page does not reach the
        // rows shown, so it replaces them and paging goes on from it.
        let far = apply(
            loaded.clone(),
            vec![RowsAction::Refreshed {
                query: q.clone(),
                list: page(&[12, 11], true),
            }],
        );
        assert_eq!(ids(&far), [12, 11]);
        assert_eq!(far.next_before, Some(id(11)));
        // Everything fits one page now.
        let whole = apply(
            loaded,
            vec![RowsAction::Refreshed {
                query: q,
                list: page(&[10, 7], false),
            }],
        );
        assert_eq!(ids(&whole), [10, 7]);
    }
}
