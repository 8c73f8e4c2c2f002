//! The `tasklens` binary as a user runs it: `serve` in a child process on a free
//! port, the CLI commands against it, SIGTERM and restart.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{entries, stdout, wait_done, Server, ADMIN, BIN};
use protocol::{TaskInfo, TaskStatus};
use testkit::{backends, free_port, FreshDb};

/// The new-user walk-through: run a synthetic and a shell task, filter their logs
/// with the CLI, restart the server with SIGTERM and find every line.
#[test]
fn run_filter_restart_and_find_every_line() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let server = Server::start(&fresh.url);
        let id = stdout(&server.cli(&[
            "run",
            "synthetic",
            "--param",
            "count=3000",
            "--priority",
            "-5",
        ]))
        .trim()
        .to_owned();
        let done = wait_done(&server, &id);
        assert_eq!(done.status, TaskStatus::Success);
        assert_eq!(done.priority, -5);

        let api = entries(&stdout(&server.cli(&[
            "logs",
            &id,
            "--level",
            "WARNING",
            "--source",
            "superset_api",
            "--json",
        ])));
        let want: Vec<u64> = (0..3000).filter(|i| i % 4 >= 2 && i % 3 == 1).collect();
        assert_eq!(
            api.iter()
                .map(|e| e.message().to_owned())
                .collect::<Vec<_>>(),
            want.iter()
                .map(|i| format!("synthetic record {i}"))
                .collect::<Vec<_>>()
        );
        let meta = entries(&stdout(&server.cli(&[
            "logs",
            &id,
            "--meta",
            "dashboard_id=7",
            "--grep",
            "RECORD 2",
            "--json",
        ])));
        assert!(
            !meta.is_empty()
                && meta
                    .iter()
                    .all(|e| e.message().starts_with("synthetic record 2")
                        && e.metadata_value().unwrap()["dashboard_id"] == 7)
        );
        let text = stdout(&server.cli(&["logs", &id, "--tail", "2"]));
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines()
                .last()
                .unwrap()
                .contains("ERROR   [system] synthetic record 2999 {\"dashboard_id\":9,\"i\":2999}"),
            "{text}"
        );

        let out = server.cli(&[
            "run",
            "shell",
            "-p",
            r#"argv=["sh","-c","echo hello from shell; echo warn >&2; exit 5"]"#,
            "--follow",
        ]);
        assert_eq!(out.status.code(), Some(1), "a failed task exits 1");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("INFO    [stdout] hello from shell"),
            "{shown}"
        );
        assert!(shown.contains("WARNING [stderr] warn"), "{shown}");
        assert!(
            shown.contains("ERROR   [system] Task failed: exit status 5"),
            "{shown}"
        );

        let all_before = stdout(&server.cli(&["logs", &id, "--json"]));
        let long = stdout(&server.cli(&[
            "run",
            "synthetic",
            "-p",
            "count=10000000",
            "-p",
            "rate=2000",
        ]))
        .trim()
        .to_owned();
        std::thread::sleep(Duration::from_millis(800));
        let stderr = server.terminate();
        assert!(!stderr.contains(" ERROR "), "{stderr}");

        let server = Server::start(&fresh.url);
        assert_eq!(
            stdout(&server.cli(&["logs", &id, "--json"])),
            all_before,
            "{backend}: every line after the restart"
        );
        let interrupted = wait_done(&server, &long);
        assert_eq!(interrupted.status, TaskStatus::Interrupted);
        let kept = entries(&stdout(&server.cli(&["logs", &long, "--json"])));
        assert!(
            kept.len() > 500,
            "records emitted before SIGTERM were flushed ({})",
            kept.len()
        );
        assert!(kept.windows(2).all(|w| w[1].seq == w[0].seq + 1));

        let listed = stdout(&server.cli(&["tasks"]));
        assert!(
            listed.contains(&id) && listed.contains("interrupted") && listed.contains("failed"),
            "{listed}"
        );
    }
}

/// Two followers with different filters on one fast task: each prints exactly its
/// lines, and exits with the task's status.
#[test]
fn two_followers_with_different_filters_see_exactly_their_lines() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let first = server
        .command(
            ADMIN,
            &[
                "run",
                "synthetic",
                "--param",
                "count=60000",
                "--param",
                "rate=20000",
                "--follow",
                "--level",
                "WARNING",
                "--source",
                "superset_api",
                "--json",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let listed = stdout(&server.cli(&["tasks", "--json", "--limit", "1"]));
    let task: TaskInfo = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    let id = task.id.to_string();
    let second = server.cli(&[
        "logs",
        &id,
        "--follow",
        "--meta",
        "dashboard_id=3",
        "--json",
    ]);
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(second.status.code(), Some(0));
    let rest_first = stdout(&server.cli(&[
        "logs",
        &id,
        "--level",
        "WARNING",
        "--source",
        "superset_api",
        "--json",
    ]));
    let rest_second = stdout(&server.cli(&["logs", &id, "--meta", "dashboard_id=3", "--json"]));
    assert_eq!(String::from_utf8(first.stdout).unwrap(), rest_first);
    assert_eq!(String::from_utf8(second.stdout).unwrap(), rest_second);
    assert_eq!(rest_first.lines().count(), 10_000);
}

/// `--tail N` finds the last N matches however far back they are: one request reads
/// a bounded number of stored records, so rare `--re` matches take several pages.
#[test]
fn tail_reaches_matches_beyond_one_request() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let id = stdout(&server.cli(&["run", "synthetic", "-p", "count=250000"]))
        .trim()
        .to_owned();
    wait_done(&server, &id);
    let pattern = "^synthetic record (5|9|249999)$";
    let tail = entries(&stdout(
        &server.cli(&["logs", &id, "--re", pattern, "--tail", "2", "--json"]),
    ));
    let messages: Vec<&str> = tail.iter().map(|e| e.message()).collect();
    assert_eq!(messages, ["synthetic record 9", "synthetic record 249999"]);
    let all = entries(&stdout(
        &server.cli(&["logs", &id, "--re", pattern, "--json"]),
    ));
    assert_eq!(
        all.len(),
        3,
        "5, 9 and 249999 are stored (INFO, INFO, ERROR)"
    );

    // What the server refuses reaches the user as its message, exit code 2.
    for (args, message) in [
        (vec!["logs", &id, "--re", "("], "regular expression"),
        (vec!["logs", &id, "--meta", "a\"b=1"], "meta"),
        (vec!["task", "67e55044-10b1-426f-9247-bb680e5fe0c8"], "404"),
        (vec!["run", "nope"], "unknown plugin"),
        (vec!["run", "synthetic", "-p", "count=-1"], "count"),
        (
            vec!["run", "synthetic", "--params", "{oops"],
            "--params is not valid JSON",
        ),
        (
            vec!["run", "synthetic", "--params", "[1]"],
            "--params must be a JSON object",
        ),
        (vec!["run", "synthetic", "--level", "ERROR"], "add --follow"),
        (vec!["tokens", "create", "a b"], "name"),
        (vec!["tokens", "delete", "nobody"], "no token"),
    ] {
        let out = server.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn settings_tokens_and_cleanup_from_the_command_line() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let shown = stdout(&server.cli(&["settings", "set", "--task-level", "warn"]));
    assert!(shown.contains("task_log_level       WARNING"), "{shown}");
    let id = stdout(&server.cli(&["run", "synthetic", "-p", "count=40"]))
        .trim()
        .to_owned();
    wait_done(&server, &id);
    let logs = entries(&stdout(&server.cli(&["logs", &id, "--json"])));
    assert_eq!(logs.len(), 20);

    let token = stdout(&server.cli(&["tokens", "create", "bob", "--role", "viewer"]))
        .trim()
        .to_owned();
    assert!(token.starts_with("tlk_"));
    let denied = server.cli_as(&token, &["settings", "set", "--task-level", "DEBUG"]);
    assert_eq!(denied.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("403"),
        "{denied:?}"
    );
    assert!(stdout(&server.cli_as(&token, &["settings"])).contains("WARNING"));
    let bad = server.cli_as("tlk_nope", &["tasks"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("401"));
    assert!(stdout(&server.cli(&["tokens", "list"])).contains("bob"));

    let spool = stdout(&server.cli(&["spool"]));
    assert!(
        spool.contains("0 bytes spooled, waiting for the database; 0 records refused"),
        "{spool}"
    );
    let report: protocol::SpoolReport =
        serde_json::from_str(&stdout(&server.cli(&["spool", "--json"]))).unwrap();
    assert!(report.rejected.is_empty());
    let retried = stdout(&server.cli(&["spool", "--retry"]));
    assert!(
        retried.contains("stored 0 records; 0 still refused"),
        "{retried}"
    );
    let denied = server.cli_as(&token, &["spool"]);
    assert_eq!(denied.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("403"),
        "{denied:?}"
    );
    let wrong = server.cli(&["spool", "--retry=yes"]);
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");

    let report = stdout(&server.cli(&["cleanup", "--older-than", "0d"]));
    assert!(report.contains("deleted 1 finished tasks"), "{report}");
    let gone = server.cli(&["task", &id]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("404"));
}

#[test]
fn an_unreachable_server_and_bad_configuration_are_reported_clearly() {
    let out = Command::new(BIN)
        .args([
            "tasks",
            "--server",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the Tasklens server"));
    let out = Command::new(BIN)
        .args(["tasks", "--server", "ftp://x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://"));

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("TASKLENS_FLUSH_INTERVAL_MS", "never")
        .env("TASKLENS_BATCH_MAX_ROWS", "0")
        .env("TASKLENS_DATABASE_URL", "mysql://x/y")
        .env("TASKLENS_BIND", "127.0.0.1:0")
        .env("TASKLENS_LOG_FORMAT", "xml")
        .env("TASKLENS_ACCESS_LOG", "sometimes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for name in [
        "flush_interval_ms",
        "batch_max_rows",
        "database_url",
        "log_format: must be text or json",
        "access_log: must be true or false",
    ] {
        assert!(err.contains(name), "{name} missing: {err}");
    }

    for bad in ["2000", "high"] {
        let out = Command::new(BIN)
            .args(["run", "synthetic", "--priority", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--priority"), "{bad}: {err}");
    }

    // Roles: a bad one is refused by the flag, and none but `all` runs on SQLite.
    let serve = |args: &[&str]| {
        Command::new(BIN)
            .arg("serve")
            .args(args)
            .current_dir(dir.path())
            .env("TASKLENS_BIND", "127.0.0.1:0")
            .output()
            .unwrap()
    };
    let out = serve(&["--role", "worker"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'worker'") && err.contains("gateway"), "{err}");
    let out = serve(&["--role", "gateway"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("role: gateway needs PostgreSQL"), "{err}");
}

/// The runtime `app_log_level` decides what the server's own log shows, at once.
#[test]
fn app_log_level_changes_the_server_log_without_a_restart() {
    let fresh = FreshDb::new("sqlite");
    // The module filter lets everything through; the runtime level decides.
    let server = Server::launch(&fresh.url, free_port(), None, "trace");
    stdout(&server.cli(&["settings", "set", "--app-level", "DEBUG"]));
    let first = "0190b9a3-0000-7000-8000-000000000001";
    let second = "0190b9a3-0000-7000-8000-000000000002";
    // Each request is logged by the HTTP middleware at DEBUG.
    assert_eq!(server.cli(&["task", first]).status.code(), Some(2));
    stdout(&server.cli(&["settings", "set", "--app-level", "ERROR"]));
    assert_eq!(server.cli(&["task", second]).status.code(), Some(2));
    let log = server.terminate();
    assert!(
        log.contains(&format!("/api/tasks/{first}")),
        "DEBUG request line missing:\n{log}"
    );
    assert!(
        !log.contains(&format!("/api/tasks/{second}")),
        "logged after the level went to ERROR:\n{log}"
    );
    assert!(
        !log.contains("Shutdown complete"),
        "INFO after the level went to ERROR"
    );
}

#[test]
fn healthcheck_exits_by_readiness_for_container_probes() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let ready = server.cli(&["healthcheck"]);
    assert_eq!(ready.status.code(), Some(0), "{ready:?}");
    assert!(String::from_utf8_lossy(&ready.stdout).starts_with("ready:"));
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let down = server.cli(&["healthcheck", "--server", &nobody, "--timeout", "2"]);
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("not ready"));
    let bad = server.cli(&["healthcheck", "--timeout", "0"]);
    assert_eq!(bad.status.code(), Some(2), "a bad flag is a usage error");
}

#[test]
fn the_server_log_can_be_json_lines_with_an_access_log_that_never_shows_queries() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::launch_with(
        &fresh.url,
        free_port(),
        None,
        &[
            ("TASKLENS_LOG", "info"),
            ("TASKLENS_LOG_FORMAT", "json"),
            ("TASKLENS_ACCESS_LOG", "true"),
        ],
    );
    stdout(&server.cli(&["tasks", "--limit", "3"]));
    let log = server.terminate();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let listening = lines
        .iter()
        .find(|l| l["message"] == "Tasklens is listening.")
        .expect("the start line");
    assert_eq!(listening["level"], "INFO");
    assert!(listening["fields"]["port"]
        .as_str()
        .unwrap()
        .parse::<u16>()
        .is_ok());
    let access = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .contains("GET /api/tasks 200")
        })
        .unwrap_or_else(|| panic!("an access line in {log}"));
    assert_eq!(access["level"], "INFO");
    assert!(!log.contains("limit=3"), "query strings are never logged");
}

#[test]
fn a_second_server_on_the_same_sqlite_file_is_refused_and_the_first_goes_on() {
    let fresh = FreshDb::new("sqlite");
    let first = Server::start(&fresh.url);
    let second = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TASKLENS_BIND", format!("127.0.0.1:{}", free_port()))
        .env("TASKLENS_DATABASE_URL", &fresh.url)
        .env("TASKLENS_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another Tasklens server")
            && err.contains(&format!("pid {}", first.child.id())),
        "{err}"
    );
    let id = stdout(&first.cli(&["run", "synthetic", "-p", "count=100"]))
        .trim()
        .to_owned();
    assert_eq!(wait_done(&first, &id).status, TaskStatus::Success);
    // Once the first has stopped, a server starts on the file again.
    first.terminate();
    let again = Server::start(&fresh.url);
    assert_eq!(
        task_json(&again, &id).status,
        TaskStatus::Success,
        "the second start did not touch the first's tasks"
    );
}

fn task_json(server: &Server, id: &str) -> protocol::TaskInfo {
    serde_json::from_str(&stdout(&server.cli(&["task", id]))).unwrap()
}

/// `wait`, `plugins`, `logs -f --tail` and relative times, as a script would use
/// them, against one server.
#[test]
fn wait_plugins_tail_and_follow_and_relative_times() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let code = |args: &[&str]| server.cli(args).status.code();

    // wait: the task's status as the exit code; a timeout or an unknown task is 2.
    let quick = common::synthetic(&server, 300, 100_000);
    assert_eq!(code(&["wait", &quick]), Some(0));
    let long = common::synthetic(&server, 10_000_000, 1_000);
    let gave_up = server.cli(&["wait", &long, "--timeout", "1"]);
    assert_eq!(gave_up.status.code(), Some(2));
    let err = String::from_utf8_lossy(&gave_up.stderr);
    assert!(err.contains("still running after 1 s"), "{err}");

    // logs -f --tail N: the last N stored, then every later one, to the end.
    let follower = server
        .command(ADMIN, &["logs", &long, "-f", "--tail", "3", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_stored(&server, &long);
    std::thread::sleep(Duration::from_millis(500));
    stdout(&server.cli(&["cancel", &long]));
    let followed = follower.wait_with_output().unwrap();
    assert_eq!(
        followed.status.code(),
        Some(3),
        "the follower exits with the status"
    );
    let printed: Vec<u64> = entries(&String::from_utf8_lossy(&followed.stdout))
        .iter()
        .map(|e| e.seq)
        .collect();
    let stored = common::stored_seqs(&server, &long);
    assert!(
        stored.ends_with(&printed),
        "a suffix of the stored records, in order, once"
    );
    assert!(
        printed.len() > 3 && printed.len() < stored.len(),
        "{} of {}",
        printed.len(),
        stored.len()
    );
    assert_eq!(code(&["wait", &long]), Some(3));
    let missing = server.cli(&["wait", "67e55044-10b1-426f-9247-bb680e5fe0c8"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    // On a finished task, -f --tail N prints the last N and exits with its status.
    let last: Vec<u64> = entries(&stdout(
        &server.cli(&["logs", &quick, "-f", "--tail", "5", "--json"]),
    ))
    .iter()
    .map(|e| e.seq)
    .collect();
    let stored = common::stored_seqs(&server, &quick);
    assert_eq!(last, stored[stored.len() - 5..]);

    // Relative times.
    let all = common::stored_seqs(&server, &quick).len();
    let since = entries(&stdout(
        &server.cli(&["logs", &quick, "--since", "1h", "--json"]),
    ));
    assert_eq!(since.len(), all);
    let until = entries(&stdout(
        &server.cli(&["logs", &quick, "--until", "1h", "--json"]),
    ));
    assert!(until.is_empty());
    let bad = server.cli(&["logs", &quick, "--since", "10x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("such as 10m"));

    // plugins: a table, or JSON.
    let table = stdout(&server.cli(&["plugins"]));
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("KIND"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("synthetic ") && l.contains("built-in")),
        "{table}"
    );
    let listed: Vec<protocol::PluginInfo> =
        serde_json::from_str(&stdout(&server.cli(&["plugins", "--json"]))).unwrap();
    assert!(listed.iter().any(|p| p.name == "synthetic"));
}

/// Completion scripts a shell accepts, and the manual page.
#[test]
fn completions_load_in_bash_and_the_manual_covers_every_command() {
    let script = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let loaded = Command::new("bash")
        .args([
            "-c",
            &format!("source <({BIN} completions bash) && complete -p tasklens"),
        ])
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("_tasklens"));
    for shell in ["zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("tasklens"));
    }
    let refused = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));

    let man = Command::new(BIN).arg("man").output().unwrap();
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.starts_with(".ie") && page.contains(".TH tasklens 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for command in ["run", "logs", "wait", "plugins", "completions", "exec"] {
        assert!(
            page.contains(&format!(".TH tasklens-{command} 1")),
            "no page for {command}"
        );
    }
}

/// `login` keeps a server and token (mode 0600) that later commands use when no
/// flag or variable names a server; a wrong token saves nothing; `logout` forgets.
#[test]
fn login_keeps_a_server_and_token_for_later_commands() {
    use std::os::unix::fs::PermissionsExt;
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let home = tempfile::tempdir().unwrap();
    let url = server.url();
    let tasklens = |args: &[&str], stdin: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let file = home.path().join(".config/tasklens/login.toml");

    let not_a_url = tasklens(&["login", "ftp://tl.example", "--token", ADMIN], "");
    assert_eq!(not_a_url.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&not_a_url.stderr).contains("http:// or https://"));
    let refused = tasklens(&["login", &url, "--token", "tlk_not-a-token"], "");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing was saved"));
    assert!(!file.exists());

    // The token from standard input, as a person pastes it.
    let logged = tasklens(&["login", &url], &format!("{ADMIN}\n"));
    assert!(
        logged.status.success(),
        "{}",
        String::from_utf8_lossy(&logged.stderr)
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let listed = tasklens(&["tasks"], "");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).starts_with("ID "));
    // Another server named by a flag gets no saved token.
    let elsewhere = format!("http://127.0.0.1:{}", free_port());
    let other = tasklens(&["tasks", "--server", &elsewhere], "");
    assert_eq!(other.status.code(), Some(2));

    // A login file others may read is refused, not used.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = tasklens(&["tasks"], "");
    assert_eq!(exposed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&exposed.stderr).contains("chmod 600"));

    assert!(tasklens(&["logout"], "").status.success());
    assert!(!file.exists());
    let anonymous = tasklens(&["tasks", "--server", &url], "");
    assert_eq!(anonymous.status.code(), Some(2), "no token any more");
}

/// `--output json` on every command that talks to a server: what it prints is JSON
/// (one value, or one per line for records and task lists).
#[test]
fn every_command_prints_json_with_output_json() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = server.cli(&all);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() || out.status.code() == Some(3),
            "{all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let values: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&text)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{all:?} printed something other than JSON ({e}): {text}"));
        assert!(!values.is_empty(), "{all:?} printed nothing");
        values
    };
    let task = json(&["run", "synthetic", "-p", "count=20"]).remove(0);
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(json(&["wait", &id])[0]["status"], "success");
    assert_eq!(json(&["task", &id])[0]["id"], id.as_str());
    assert!(json(&["tasks"]).iter().any(|t| t["id"] == id.as_str()));
    assert!(json(&["logs", &id]).iter().all(|r| r["seq"].is_u64()));
    assert!(json(&["logs", &id, "--tail", "2"]).len() == 2);
    assert!(json(&["logs", &id, "-f"]).iter().all(|r| r["seq"].is_u64()));
    assert!(json(&["search", "record 1"])
        .iter()
        .all(|h| h["task_id"] == id.as_str() && h["log"]["seq"].is_u64()));
    let long = json(&["run", "synthetic", "-p", "count=10000000", "-p", "rate=100"]).remove(0);
    let long = long["id"].as_str().unwrap().to_owned();
    assert!(json(&["cancel", &long])[0].is_object());
    assert_eq!(json(&["wait", &long])[0]["status"], "cancelled");
    assert_eq!(json(&["delete", &long])[0]["deleted"], true);
    assert!(json(&["settings"])[0]["task_log_level"].is_string());
    assert!(json(&["settings", "set", "--task-level", "info"])[0]["task_log_level"].is_string());
    assert!(json(&["cleanup", "--older-than", "30d"])[0]["deleted_tasks"].is_u64());
    assert!(json(&["spool"])[0].is_object());
    assert!(json(&["plugins"])[0]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "synthetic"));
    assert_eq!(json(&["tokens", "create", "jo"])[0]["name"], "jo");
    assert!(json(&["tokens", "list"])[0]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "jo"));
    assert_eq!(json(&["tokens", "delete", "jo"])[0]["deleted"], true);
    assert!(json(&["healthcheck"])[0].is_object());

    // Text stays the default, `task` excepted (it printed JSON before --output).
    assert!(!stdout(&server.cli(&["tasks"]))
        .trim_start()
        .starts_with('{'));
    let as_text = stdout(&server.cli(&["task", &id, "--output", "text"]));
    assert!(as_text.starts_with(&format!("id        {id}")), "{as_text}");
    let exec = server.cli(&["exec", "--output", "json", "--", "true"]);
    assert_eq!(exec.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&exec.stderr).contains("does not apply"));
    let bad = server.cli(&["tasks", "--output", "yaml"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `tasklens search`: hits of every task, newest task first and latest record
/// first, each as TASK#LSEQ with its plugin; --limit across pages; task
/// conditions; bad flags exit 2.
#[test]
fn search_finds_records_across_tasks() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let run = |count: &str| -> String {
        let out = server.cli(&["run", "synthetic", "-p", count, "-o", "json"]);
        let task: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = task["id"].as_str().unwrap().to_owned();
        assert!(server.cli(&["wait", &id]).status.success());
        id
    };
    let older = run("count=300");
    let newer = run("count=250");
    let text = stdout(&server.cli(&["search", "RECORD 21", "--limit", "5000"]));
    let lines: Vec<&str> = text.lines().collect();
    // 21 and 210..=219 without the DEBUG ones (i % 4 == 0), in each task.
    let per_task: Vec<u64> = [21u64, 210, 211, 213, 214, 215, 217, 218, 219]
        .into_iter()
        .rev()
        .collect();
    assert_eq!(lines.len(), 2 * per_task.len(), "{text}");
    for (line, (task, i)) in lines.iter().zip(
        per_task
            .iter()
            .map(|i| (&newer, *i))
            .chain(per_task.iter().map(|i| (&older, *i))),
    ) {
        assert!(line.starts_with(&format!("{task}#L")), "{line}");
        assert!(line.contains(" synthetic "), "{line}");
        let number = line.split("synthetic record ").nth(1).unwrap_or_default();
        assert_eq!(
            number.split_whitespace().next(),
            Some(i.to_string().as_str()),
            "{line}"
        );
    }
    // --limit stops across pages; --grep is the same as the positional text.
    let three = stdout(&server.cli(&["search", "--grep", "record 21", "-n", "3"]));
    assert_eq!(three.lines().collect::<Vec<_>>(), lines[..3].to_vec());
    // Task conditions: a status no task has, a plugin no task is.
    assert!(stdout(&server.cli(&["search", "record", "--status", "failed"])).is_empty());
    assert!(stdout(&server.cli(&["search", "record", "--plugin", "shell"])).is_empty());
    let newer_task: serde_json::Value =
        serde_json::from_str(&stdout(&server.cli(&["task", &newer]))).unwrap();
    let created = newer_task["created_at"].as_str().unwrap();
    let only_older = stdout(&server.cli(&[
        "search",
        "record 21",
        "--level",
        "error",
        "--created-until",
        created,
    ]));
    assert!(
        !only_older.is_empty() && only_older.lines().all(|l| l.starts_with(&older)),
        "{only_older}"
    );
    for bad in [
        vec!["search", "x", "--status", "done"],
        vec!["search", "x", "--limit", "0"],
        vec!["search", "x", "--grep", "y"],
        vec!["search", "--created-since", "yesterday"],
        vec!["search", "--re", "(unclosed"],
    ] {
        let out = server.cli(&bad);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `tasklens search -f`: a live search prints matching records of a running task as
/// it logs them (each with its task and plugin), until stopped; refused with task
/// conditions that only stored tasks have.
#[test]
fn search_follow_prints_matching_records_as_tasks_log_them() {
    use std::io::BufRead;
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let mut live = server
        .command(
            ADMIN,
            &[
                "search",
                "--level",
                "error",
                "--plugin",
                "synthetic",
                "-f",
                "-o",
                "json",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = live.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    // Logs for a while, so the search is in place for part of it whenever it starts.
    let out = server.cli(&[
        "run",
        "synthetic",
        "-p",
        "count=1000000",
        "-p",
        "rate=2000",
        "-o",
        "json",
    ]);
    let task: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = task["id"].as_str().unwrap().to_owned();
    let mut seqs = Vec::new();
    while seqs.len() < 20 {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("live records within 30 s");
        let hit: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(hit["task_id"], id.as_str(), "{line}");
        assert_eq!(hit["plugin"], "synthetic", "{line}");
        assert_eq!(hit["log"]["level"], "ERROR", "{line}");
        seqs.push(hit["log"]["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(server.cli(&["cancel", &id]).status.success());
    live.kill().unwrap();
    live.wait().unwrap();

    let refused = server.cli(&["search", "x", "-f", "--status", "running"]);
    assert_eq!(refused.status.code(), Some(2));
    let bad = server.cli(&["search", "-f", "--re", "(x"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("regular expression"));
}

/// `tasklens tasks` narrows the list as the console does: statuses, plugins, who
/// started it, relative times and text; a bad value is a clear usage error.
#[test]
fn tasks_are_found_by_status_plugin_creator_time_and_text() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::start(&fresh.url);
    let tagged = stdout(&server.cli(&[
        "run",
        "synthetic",
        "-p",
        "count=1",
        "-p",
        r#"sources=["Nightly_Orders"]"#,
    ]))
    .trim()
    .to_owned();
    let other = stdout(&server.cli(&["run", "synthetic", "-p", "count=1"]))
        .trim()
        .to_owned();
    wait_done(&server, &tagged);
    wait_done(&server, &other);
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["tasks", "-o", "json"];
        all.extend(args);
        stdout(&server.cli(&all))
            .lines()
            .map(|l| serde_json::from_str::<TaskInfo>(l).unwrap().id.to_string())
            .collect()
    };
    assert_eq!(ids(&["nightly_orders"]), [tagged.as_str()]);
    assert_eq!(
        ids(&["--status", "success,failed", "--plugin", "synthetic"]),
        [other.as_str(), tagged.as_str()]
    );
    assert_eq!(
        ids(&["--by", "admin", "--since", "1h", &tagged[..13]]),
        [tagged.as_str()]
    );
    assert!(ids(&["--by", "someone-else"]).is_empty());
    assert!(ids(&["--until", "1h"]).is_empty());
    assert!(ids(&["--status", "queued"]).is_empty());
    // The table names what matched.
    let table = stdout(&server.cli(&["tasks", "nightly_orders"]));
    assert!(
        table.contains(&tagged) && !table.contains(&other),
        "{table}"
    );

    for (args, says) in [
        (vec!["tasks", "--status", "done"], "done"),
        (vec!["tasks", "--since", "yesterday"], "yesterday"),
    ] {
        let out = server.cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{out:?}"
        );
    }
    let long = "x".repeat(201);
    let out = server.cli(&["tasks", &long]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at most 200 bytes"),
        "{out:?}"
    );
}
