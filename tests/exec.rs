//! `tasklens exec`: a local command as a task, through the worker protocol, with
//! the real binary on both sides.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{entries, stdout, wait_done, Server, ADMIN};
use protocol::{LogLevel, TaskStatus};
use testkit::{backends, FreshDb};

fn worker_token(server: &Server, name: &str) -> String {
    let out = stdout(&server.cli(&["tokens", "create", name, "--role", "worker"]));
    out.split_whitespace()
        .find(|w| w.starts_with("tlk_"))
        .expect("the token is printed")
        .to_owned()
}

/// The id `exec` printed on stderr.
fn task_id(stderr: &str) -> String {
    stderr
        .split_whitespace()
        .skip_while(|w| *w != "task")
        .nth(1)
        .expect("exec names its task")
        .to_owned()
}

#[test]
fn a_failing_command_fails_its_task_with_its_exit_code_and_output() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let server = Server::start(&fresh.url);
        let token = worker_token(&server, "ci");
        let script = r#"for i in $(seq 1 3000); do echo "line $i"; done
echo oops >&2
echo '{"level":"ERROR","source":"db","message":"lost connection","metadata":{"host":"db1"}}'
exit 7"#;
        let out = server
            .command(
                &token,
                &["exec", "--name", "build", "--", "sh", "-c", script],
            )
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{backend}: {err}");
        let id = task_id(&err);
        let task = wait_done(&server, &id);
        assert_eq!(task.status, TaskStatus::Failed);
        assert_eq!(task.plugin, "exec");
        assert_eq!(task.params["name"], "build");
        assert_eq!(
            task.error.as_deref(),
            Some("the command exited with code 7")
        );
        let logs = entries(&stdout(&server.cli(&["logs", &id, "--json"])));
        let seqs: Vec<u64> = logs.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=logs.len() as u64).collect::<Vec<_>>(),
            "gap-free"
        );
        let lines: Vec<&str> = logs
            .iter()
            .filter(|e| &*e.source == "stdout")
            .map(|e| e.message())
            .collect();
        assert_eq!(lines.len(), 3000);
        assert_eq!((lines[0], lines[2999]), ("line 1", "line 3000"));
        assert!(logs
            .iter()
            .all(|e| &*e.source != "stdout" || e.level == LogLevel::Info));
        let oops = logs.iter().find(|e| e.message() == "oops").unwrap();
        assert_eq!((&*oops.source, oops.level), ("stderr", LogLevel::Warning));
        let lost = logs
            .iter()
            .find(|e| e.message() == "lost connection")
            .unwrap();
        assert_eq!((&*lost.source, lost.level), ("db", LogLevel::Error));
        assert_eq!(lost.metadata().unwrap(), r#"{"host":"db1"}"#);
        let last = logs.last().unwrap();
        assert_eq!(&*last.source, "system");

        let ok = server
            .command(&token, &["exec", "--", "true"])
            .output()
            .unwrap();
        assert_eq!(ok.status.code(), Some(0));
        let id = task_id(&String::from_utf8_lossy(&ok.stderr));
        assert_eq!(wait_done(&server, &id).status, TaskStatus::Success);

        // `::group::` lines become groups; one left open closes with the task.
        let script = r#"echo '::group::Build'; echo compiling; echo '{"level":"ERROR","message":"bad"}'; echo '::endgroup::'; echo '::group::Left open'; echo last"#;
        let grouped = server
            .command(&token, &["exec", "--", "sh", "-c", script])
            .output()
            .unwrap();
        assert_eq!(grouped.status.code(), Some(0), "{backend}");
        let id = task_id(&String::from_utf8_lossy(&grouped.stderr));
        assert_eq!(wait_done(&server, &id).status, TaskStatus::Success);
        let logs = entries(&stdout(&server.cli(&["logs", &id, "--json"])));
        let placed: Vec<_> = logs
            .iter()
            .map(|e| (e.seq, e.message(), e.group, e.mark, e.worst))
            .collect();
        use protocol::GroupMark::{Close, Open};
        assert_eq!(
            placed,
            vec![
                (1, "::group::Build", None, Some(Open), None),
                (2, "compiling", Some(1), None, None),
                (3, "bad", Some(1), None, None),
                (
                    4,
                    "::endgroup::",
                    Some(1),
                    Some(Close),
                    Some(LogLevel::Error)
                ),
                (5, "::group::Left open", None, Some(Open), None),
                (6, "last", Some(5), None, None),
                (
                    7,
                    "::endgroup::",
                    Some(5),
                    Some(Close),
                    Some(LogLevel::Info)
                ),
            ],
            "{backend}"
        );
    }
}

#[test]
fn a_cancel_from_the_server_or_ctrl_c_stops_the_command() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let token = worker_token(&server, "ci");
    for how in ["cancel", "ctrl-c"] {
        let child = server
            .command(
                &token,
                &["exec", "--", "sh", "-c", "echo started; sleep 60"],
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Wait until the command runs (its first line is stored).
        let deadline = Instant::now() + Duration::from_secs(30);
        let id = loop {
            let list: Vec<protocol::TaskInfo> = stdout(&server.cli(&["tasks", "--json"]))
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if let Some(task) = list.iter().find(|t| t.status == TaskStatus::Running) {
                let logs = stdout(&server.cli(&["logs", &task.id.to_string()]));
                if logs.contains("started") {
                    break task.id.to_string();
                }
            }
            assert!(Instant::now() < deadline, "exec did not start its command");
            std::thread::sleep(Duration::from_millis(50));
        };
        let asked = Instant::now();
        if how == "cancel" {
            stdout(&server.cli(&["cancel", &id]));
        } else {
            // SAFETY: signalling the exec process this test started.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "{how}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            asked.elapsed() < Duration::from_secs(20),
            "{how}: the command was stopped"
        );
        assert_eq!(
            wait_done(&server, &id).status,
            TaskStatus::Cancelled,
            "{how}"
        );
    }
}

#[test]
fn exec_refuses_what_it_cannot_do_with_a_clear_error() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let viewer = stdout(&server.cli(&["tokens", "create", "eve", "--role", "viewer"]));
    let viewer = viewer
        .split_whitespace()
        .find(|w| w.starts_with("tlk_"))
        .unwrap();
    let out = server
        .command(viewer, &["exec", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    let out = server.command(ADMIN, &["exec"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no command is a usage error");
    let out = server
        .command("not-a-token", &["exec", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    // A program that does not exist: the task fails, exec exits 127.
    let out = server
        .command(ADMIN, &["exec", "--", "/nonexistent/program"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let id = task_id(&String::from_utf8_lossy(&out.stderr));
    let task = wait_done(&server, &id);
    assert_eq!(task.status, TaskStatus::Failed);
    let logs = stdout(&server.cli(&["logs", &id]));
    assert!(logs.contains("cannot start"), "{logs}");
}

#[test]
fn a_fast_command_is_slowed_to_the_servers_window_never_cut() {
    let fresh = FreshDb::new("sqlite");
    // A window of 1 MiB against some 7 MiB of records: exec must wait for acks.
    let server = Server::launch_with(
        &fresh.url,
        testkit::free_port(),
        None,
        &[
            ("TASKLENS_LOG", "info"),
            ("TASKLENS_WORKER_MAX_UNACKED_BYTES", "1048576"),
        ],
    );
    let token = worker_token(&server, "ci");
    let out = server
        .command(&token, &["exec", "--", "seq", "1", "100000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("reconnected"),
        "exec never overran the window: {err}"
    );
    let id = task_id(&err);
    assert_eq!(wait_done(&server, &id).status, TaskStatus::Success);
    let tail = entries(&stdout(
        &server.cli(&["logs", &id, "--tail", "1", "--json"]),
    ));
    assert_eq!((tail[0].seq, tail[0].message()), (100_000, "100000"));
    let log = server.terminate();
    assert!(!log.contains("max_unacked_bytes"), "{log}");
}
