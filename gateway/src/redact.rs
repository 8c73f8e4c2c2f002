//! What a viewer does not see of a task: the values of a privileged task's `env`
//! (a `shell` command's credentials). Applied wherever a task leaves the server,
//! REST and WebSocket alike; admins see everything.

use engine::PluginRegistry;
use protocol::TaskInfo;

use crate::auth::Caller;

/// Stands in for each hidden value.
pub const REDACTED: &str = "[redacted]";

/// Whether `caller` sees `task` only in part.
fn hides(registry: &PluginRegistry, caller: Option<&Caller>, task: &TaskInfo) -> bool {
    !caller.is_some_and(Caller::is_admin)
        && registry.get(&task.plugin).is_some_and(|p| p.privileged())
}

/// `task` as `caller` may see it.
pub fn for_caller(
    registry: &PluginRegistry,
    caller: Option<&Caller>,
    mut task: TaskInfo,
) -> TaskInfo {
    if hides(registry, caller, &task) {
        redact(&mut task);
    }
    task
}

/// Whether `task` must be redacted for `caller` (so a shared copy is cloned only then).
pub fn needed(registry: &PluginRegistry, caller: Option<&Caller>, task: &TaskInfo) -> bool {
    hides(registry, caller, task) && task.params.get("env").is_some_and(|e| !e.is_null())
}

fn redact(task: &mut TaskInfo) {
    if let Some(env) = task.params.get_mut("env") {
        match env {
            serde_json::Value::Object(vars) => {
                for value in vars.values_mut() {
                    *value = serde_json::Value::String(REDACTED.into());
                }
            }
            serde_json::Value::Null => {}
            other => *other = serde_json::Value::String(REDACTED.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::plugin::builtin::shell::ShellSettings;
    use protocol::{Role, TaskId, TaskStatus, Timestamp};

    fn task(plugin: &str) -> TaskInfo {
        TaskInfo {
            id: TaskId(uuid::Uuid::nil()),
            plugin: plugin.into(),
            params: serde_json::json!({"argv": ["env"], "env": {"PGPASSWORD": "s3cret"}}),
            status: TaskStatus::Running,
            created_at: Timestamp(0),
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            created_by: Some("admin".into()),
            params_omitted: false,
            node: None,
            priority: 0,
        }
    }

    #[test]
    fn viewers_see_privileged_env_values_redacted_and_admins_everything() {
        let registry = PluginRegistry::with_builtins(ShellSettings::default());
        let viewer = Caller {
            name: "v".into(),
            role: Role::Viewer,
        };
        let admin = Caller {
            name: "a".into(),
            role: Role::Admin,
        };
        let seen = for_caller(&registry, Some(&viewer), task("shell"));
        assert_eq!(
            seen.params["env"],
            serde_json::json!({"PGPASSWORD": REDACTED})
        );
        assert_eq!(seen.params["argv"], serde_json::json!(["env"]));
        assert!(needed(&registry, Some(&viewer), &task("shell")));
        assert!(needed(&registry, None, &task("shell")));
        for (caller, plugin) in [(Some(&admin), "shell"), (Some(&viewer), "synthetic")] {
            assert!(!needed(&registry, caller, &task(plugin)));
            assert_eq!(for_caller(&registry, caller, task(plugin)), task(plugin));
        }
    }
}
