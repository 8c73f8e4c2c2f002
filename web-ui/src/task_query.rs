//! Which tasks the task list shows, as written in its URL
//! (`/tasks?status=running,failed&plugin=shell&by=ci-bot&q=orders`), the REST query
//! it becomes (`GET /api/tasks`), and the same test applied to live task frames.

use protocol::{TaskId, TaskInfo, TaskStatus};

use crate::view_url::{decode_pairs, encode_pairs};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Any of these statuses (empty: any).
    pub statuses: Vec<TaskStatus>,
    /// Only tasks of this plugin (empty: any).
    pub plugin: String,
    /// Only tasks this caller started (empty: anyone).
    pub by: String,
    /// A prefix of the id, or text the params contain.
    pub text: String,
}

impl TaskQuery {
    /// Reads the query from a query string (`?` optional); unknown keys and statuses
    /// are ignored.
    pub fn from_query(query: &str) -> TaskQuery {
        let mut t = TaskQuery::default();
        for (key, value) in decode_pairs(query.trim_start_matches('?')) {
            match key.as_str() {
                "status" => {
                    for status in value.split(',').filter_map(|s| s.parse().ok()) {
                        t.toggle(status);
                    }
                }
                "plugin" => t.plugin = value,
                "by" => t.by = value,
                "q" => t.text = value,
                _ => {}
            }
        }
        t
    }

    /// Adds `status` to the statuses shown, or takes it away; kept in a fixed order
    /// so the same selection is the same URL.
    pub fn toggle(&mut self, status: TaskStatus) {
        match self.statuses.iter().position(|s| *s == status) {
            Some(i) => {
                self.statuses.remove(i);
            }
            None => {
                self.statuses.push(status);
                self.statuses.sort_by_key(|s| {
                    TaskStatus::ALL
                        .iter()
                        .position(|a| a == s)
                        .unwrap_or(usize::MAX)
                });
            }
        }
    }

    fn pairs(&self, by_key: &str) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if !self.statuses.is_empty() {
            let statuses: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
            pairs.push(("status".into(), statuses.join(",")));
        }
        for (key, value) in [
            ("plugin", &self.plugin),
            (by_key, &self.by),
            ("q", &self.text),
        ] {
            let value = value.trim();
            if !value.is_empty() {
                pairs.push((key.into(), value.to_owned()));
            }
        }
        pairs
    }

    /// The page URL's query string (without `?`); empty parts are left out.
    pub fn to_query(&self) -> String {
        encode_pairs(&self.pairs("by"))
    }

    /// `GET /api/tasks`'s query for a page of `limit` tasks older than `before`.
    pub fn api_query(&self, before: Option<TaskId>, limit: usize) -> String {
        let mut pairs = self.pairs("created_by");
        pairs.push(("limit".into(), limit.to_string()));
        if let Some(before) = before {
            pairs.push(("before".into(), before.to_string()));
        }
        encode_pairs(&pairs)
    }

    pub fn is_empty(&self) -> bool {
        self.pairs("by").is_empty()
    }

    /// Whether a task (from a live frame) belongs in the list, as the server decides
    /// it. `listed`: the task is in the list already, so the server's text match
    /// stands (its id and params never change). Params left out of the frame
    /// (`params_omitted`) cannot be searched here: such a task is kept rather than
    /// lost.
    ///
    /// `sealed`: plugins whose params the server does not search for this caller (a
    /// viewer's privileged ones), so neither does this.
    pub fn matches(&self, task: &TaskInfo, listed: bool, sealed: &[String]) -> bool {
        let any_of = |list: &str, value: Option<&str>| {
            let mut names = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .peekable();
            names.peek().is_none() || value.is_some_and(|v| names.any(|n| n == v))
        };
        let text = self.text.trim();
        (self.statuses.is_empty() || self.statuses.contains(&task.status))
            && any_of(&self.plugin, Some(&task.plugin))
            && any_of(&self.by, task.created_by.as_deref())
            && (listed
                || text.is_empty()
                || id_starts_with(task.id, text)
                || (!sealed.contains(&task.plugin) && params_contain(task, text)))
    }
}

fn id_starts_with(id: TaskId, text: &str) -> bool {
    let hex: String = text
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    !hex.is_empty() && id.0.simple().to_string().starts_with(&hex)
}

fn params_contain(task: &TaskInfo, text: &str) -> bool {
    task.params_omitted
        || task
            .params
            .to_string()
            .to_ascii_lowercase()
            .contains(&text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(status: TaskStatus, plugin: &str, by: Option<&str>) -> TaskInfo {
        TaskInfo {
            id: "01a2129c-1929-7046-ae5c-63428612feb2".parse().unwrap(),
            plugin: plugin.into(),
            params: serde_json::json!({"table": "Orders", "count": 5}),
            status,
            created_at: protocol::Timestamp(1),
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            created_by: by.map(str::to_owned),
            params_omitted: false,
            node: None,
            priority: 0,
        }
    }

    #[test]
    fn the_url_round_trips_and_the_api_names_the_creator() {
        let q = TaskQuery::from_query(
            "?status=failed,running,bogus&plugin=shell&by=ci%20bot&q=a%26b&x=1",
        );
        assert_eq!(q.statuses, [TaskStatus::Running, TaskStatus::Failed]);
        assert_eq!(
            (q.plugin.as_str(), q.by.as_str(), q.text.as_str()),
            ("shell", "ci bot", "a&b")
        );
        assert_eq!(TaskQuery::from_query(&q.to_query()), q);
        assert_eq!(
            q.api_query(None, 100),
            "status=running,failed&plugin=shell&created_by=ci%20bot&q=a%26b&limit=100"
        );
        assert!(TaskQuery::from_query("").is_empty());
        assert!(TaskQuery::from_query("q=%20").is_empty());
        assert_eq!(TaskQuery::default().to_query(), "");
    }

    #[test]
    fn toggling_keeps_one_order() {
        let mut q = TaskQuery::default();
        q.toggle(TaskStatus::Failed);
        q.toggle(TaskStatus::Queued);
        assert_eq!(q.statuses, [TaskStatus::Queued, TaskStatus::Failed]);
        q.toggle(TaskStatus::Failed);
        assert_eq!(q.statuses, [TaskStatus::Queued]);
    }

    #[test]
    fn live_tasks_are_tested_as_the_server_tests_them() {
        let t = task(TaskStatus::Running, "shell", Some("ada"));
        let q = |s: &str| TaskQuery::from_query(s);
        assert!(q("").matches(&t, false, &[]));
        assert!(
            q("plugin=etl,shell&by=bob,ada").matches(&t, false, &[]),
            "lists, as the server splits them"
        );
        assert!(
            q("q=not-in-it").matches(&t, true, &[]),
            "a listed task keeps the server's text match"
        );
        assert!(q("status=queued,running&plugin=shell&by=ada").matches(&t, false, &[]));
        assert!(!q("status=success").matches(&t, false, &[]));
        assert!(!q("plugin=synthetic").matches(&t, false, &[]));
        assert!(!q("by=bob").matches(&task(TaskStatus::Running, "shell", None), false, &[]));
        assert!(
            q("q=01A2129C-19").matches(&t, false, &[]),
            "an id prefix, any case, dashes ignored"
        );
        assert!(
            q("q=%22table%22%3A%22orders").matches(&t, false, &[]),
            "params as compact JSON"
        );
        assert!(!q("q=%22table%22%3A%20%22orders").matches(&t, false, &[]));
        assert!(
            !q("q=feb2").matches(&t, false, &[]),
            "the id's end is not a prefix"
        );
        let omitted = TaskInfo {
            params_omitted: true,
            params: serde_json::Value::Null,
            ..t.clone()
        };
        assert!(q("q=anything").matches(&omitted, false, &[]));
        let shell = ["shell".to_owned()];
        assert!(
            !q("q=orders").matches(&t, false, &shell),
            "a sealed plugin's params are not searched"
        );
        assert!(
            q("q=01a2129c").matches(&t, false, &shell),
            "its id still is"
        );
    }
}
