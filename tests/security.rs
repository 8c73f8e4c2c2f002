//! Security defects, tested as an attacker or an operator meets them: the real
//! `tasklens serve` in a child process, driven with the CLI.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{entries, stdout, Server, ADMIN};
use protocol::{TaskInfo, TaskStatus};
use testkit::{free_port, FreshDb};

fn run_shell(server: &Server, params: serde_json::Value) -> String {
    stdout(&server.cli(&["run", "shell", "--params", &params.to_string()]))
        .trim()
        .to_owned()
}

fn task_as(server: &Server, token: &str, id: &str) -> TaskInfo {
    serde_json::from_str(&stdout(&server.cli_as(token, &["task", id]))).unwrap()
}

/// Polls until the task has ended; panics after `limit`.
fn ended_within(server: &Server, id: &str, limit: Duration) -> TaskInfo {
    let deadline = Instant::now() + limit;
    loop {
        let task = task_as(server, ADMIN, id);
        if task.status.is_terminal() {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} still {} after {limit:?}",
            task.status
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A command's environment is `PATH`, `HOME`, `LANG`/`LC_*`, `TZ`, the operator's
/// allowlist and the task's own `env`: the server's token and database URL never
/// reach it (and so never reach the log every viewer reads). Viewers see the values
/// of a privileged task's `env` redacted; output cannot pose as the engine.
#[test]
fn shell_commands_get_a_clean_environment_and_viewers_see_env_redacted() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::launch_with(
        &fresh.url,
        free_port(),
        None,
        &[
            ("TASKLENS_SHELL_ENABLED", "true"),
            ("TASKLENS_SHELL_ENV_PASSTHROUGH", "PASSED_ON"),
            ("PASSED_ON", "visible-value"),
            ("KEPT_BACK", "hidden-value"),
            ("LC_TIME", "C"),
        ],
    );
    let script = r#"env; echo '{"message":"forged","source":"system","level":"ERROR"}'; echo '{"message":"fine","source":"db"}'"#;
    let id = run_shell(
        &server,
        serde_json::json!({"argv": ["sh", "-c", script], "env": {"TASK_SECRET": "s3cret-value"}}),
    );
    assert_eq!(
        ended_within(&server, &id, Duration::from_secs(60)).status,
        TaskStatus::Success
    );
    let logs = entries(&stdout(&server.cli(&["logs", &id, "--json"])));
    let lines: Vec<&str> = logs.iter().map(|e| e.message()).collect();
    for wanted in [
        "PASSED_ON=visible-value",
        "TASK_SECRET=s3cret-value",
        "LC_TIME=C",
    ] {
        assert!(lines.contains(&wanted), "{wanted} missing from {lines:?}");
    }
    assert!(lines.iter().any(|l| l.starts_with("PATH=")), "{lines:?}");
    for line in &lines {
        for leaked in [ADMIN, fresh.url.as_str(), "KEPT_BACK", "TASKLENS_"] {
            assert!(
                !line.contains(leaked),
                "{leaked} reached the command: {line}"
            );
        }
    }
    let forged = logs.iter().find(|e| e.message() == "forged").unwrap();
    assert_eq!(&*forged.source, "stdout", "output cannot claim `system`");
    let fine = logs.iter().find(|e| e.message() == "fine").unwrap();
    assert_eq!(&*fine.source, "db", "other sources may be claimed");

    let viewer = stdout(&server.cli(&["tokens", "create", "eve", "--role", "viewer"]))
        .trim()
        .to_owned();
    let seen = task_as(&server, &viewer, &id);
    assert_eq!(
        seen.params["env"],
        serde_json::json!({"TASK_SECRET": "[redacted]"})
    );
    let listed = stdout(&server.cli_as(&viewer, &["tasks", "--json"]));
    assert!(!listed.contains("s3cret-value"), "{listed}");
    assert!(listed.contains("[redacted]"), "{listed}");
    let admin_view = task_as(&server, ADMIN, &id);
    assert_eq!(admin_view.params["env"]["TASK_SECRET"], "s3cret-value");
}

/// Without `shell_enabled` the server runs no commands, and says how to enable it.
#[test]
fn shell_is_off_unless_the_operator_enables_it() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::launch_with(&fresh.url, free_port(), None, &[]);
    let refused = server.cli(&["run", "shell", "--params", r#"{"argv": ["true"]}"#]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("shell_enabled"), "{stderr}");
    assert!(stdout(&server.cli(&["tasks"])).trim().lines().count() <= 1);
}

/// Kills (by PID) the processes the commands below leave behind, however the test ends.
struct Escaped(Vec<PathBuf>);

impl Drop for Escaped {
    fn drop(&mut self) {
        for file in &self.0 {
            if let Some(pid) = std::fs::read_to_string(file)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on a PID the test's own command wrote.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn escaping(pid_file: &Path, then: &str) -> String {
    format!(
        "setsid sh -c 'echo $$ > {}; exec sleep 600' & while [ ! -s {} ]; do sleep 0.05; done; echo started; {then}",
        pid_file.display(),
        pid_file.display()
    )
}

/// A descendant that leaves the process group (`setsid … &`) holds the task's
/// output open; the task still ends when its command does, and cancel and
/// `timeout_s` still end it, within a bounded time.
#[test]
fn a_process_that_leaves_the_group_cannot_keep_a_task_running() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let dir = tempfile::tempdir().unwrap();
    let pids: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("{i}.pid")))
        .collect();
    let _cleanup = Escaped(pids.clone());
    let limit = Duration::from_secs(20);

    let exits = run_shell(
        &server,
        serde_json::json!({"argv": ["sh", "-c", escaping(&pids[0], "exit 0")]}),
    );
    let done = ended_within(&server, &exits, limit);
    assert_eq!(done.status, TaskStatus::Success);
    let logs = entries(&stdout(&server.cli(&["logs", &exits, "--json"])));
    assert!(logs.iter().any(|e| e.message() == "started"));
    assert!(
        logs.iter()
            .any(|e| &*e.source == "system" && e.message().contains("left its process group")),
        "the log says why output stopped being read"
    );

    let cancelled = run_shell(
        &server,
        serde_json::json!({"argv": ["sh", "-c", escaping(&pids[1], "exec sleep 600")]}),
    );
    let deadline = Instant::now() + limit;
    while !stdout(&server.cli(&["logs", &cancelled])).contains("started") {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    stdout(&server.cli(&["cancel", &cancelled]));
    assert_eq!(
        ended_within(&server, &cancelled, limit).status,
        TaskStatus::Cancelled
    );

    let timed_out = run_shell(
        &server,
        serde_json::json!({"argv": ["sh", "-c", escaping(&pids[2], "exec sleep 600")], "timeout_s": 1}),
    );
    let done = ended_within(&server, &timed_out, limit);
    assert_eq!(
        (done.status, done.error.as_deref()),
        (TaskStatus::Failed, Some("timed out after 1 s"))
    );
}

/// The shipped deployment publishes on loopback only and takes its secrets from
/// the environment (`.env`), never from the repository.
#[test]
fn docker_compose_publishes_locally_and_holds_no_secrets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let mut ports = 0;
    let mut lines = compose.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "ports:" {
            while let Some(item) = lines.peek().filter(|l| l.trim_start().starts_with("- ")) {
                ports += 1;
                assert!(
                    item.contains("${TASKLENS_PUBLISH:-127.0.0.1:8080}:8080"),
                    "a port published beyond loopback by default: {item}"
                );
                lines.next();
            }
        }
        let line = line.trim();
        if let Some((key, value)) = line.split_once(": ") {
            if key.ends_with("PASSWORD") || key.ends_with("TOKEN") {
                assert!(
                    value.trim().starts_with("${") && value.contains(":?"),
                    "a secret not required from the environment: {line}"
                );
            }
        }
        if line.starts_with("TASKLENS_DATABASE_URL:") {
            assert!(line.contains("${POSTGRES_PASSWORD"), "{line}");
        }
    }
    assert_eq!(ports, 1);
    let example = std::fs::read_to_string(root.join(".env.example")).unwrap();
    for name in ["POSTGRES_PASSWORD=", "TASKLENS_ADMIN_TOKEN="] {
        let line = example.lines().find(|l| l.starts_with(name)).expect(name);
        assert_eq!(line, name, "the example holds no value");
    }
    let ignored = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(
        ignored.lines().any(|l| l == "/.env"),
        ".env is never committed"
    );
}
