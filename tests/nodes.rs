//! Several servers on one PostgreSQL database: a starting node leaves the others'
//! tasks alone, and when a node dies a survivor ends its tasks, and only its.

mod common;

use std::time::{Duration, Instant};

use common::{
    entries, http_get, stdout, stored_seqs, synthetic, task_info, wait_stored, Server, ADMIN,
};
use protocol::{NodeInfo, TaskStatus};
use testkit::{free_port, FreshDb};

fn node(url: &str, id: &str, spool: &std::path::Path) -> Server {
    Server::launch_with(
        url,
        free_port(),
        None,
        &[
            ("TASKLENS_LOG", "warn"),
            ("TASKLENS_NODE_ID", id),
            ("TASKLENS_NODE_TIMEOUT_SECS", "3"),
            ("TASKLENS_SPOOL_DIR", spool.to_str().unwrap()),
        ],
    )
}

fn nodes(server: &Server) -> Vec<(String, bool)> {
    let (status, body) = http_get(server.port, "/api/nodes", Some(ADMIN));
    assert_eq!(status, 200, "{body}");
    let nodes: Vec<NodeInfo> = serde_json::from_str(&body).unwrap();
    let mut alive: Vec<(String, bool)> = nodes.into_iter().map(|n| (n.id, n.alive)).collect();
    alive.sort();
    alive
}

#[test]
fn nodes_share_a_database_and_a_dead_nodes_tasks_end_on_a_survivor() {
    if std::env::var_os("TASKLENS_TEST_PG_URL").is_none() {
        eprintln!("skipped: no PostgreSQL for tests (TASKLENS_TEST_PG_URL)");
        return;
    }
    let fresh = FreshDb::new("postgres");
    let spools = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut n1 = node(&fresh.url, "n1", spools[0].path());
    let on_n1 = synthetic(&n1, 10_000_000, 2_000);
    wait_stored(&n1, &on_n1);

    // A second node starting on the same database leaves n1's task running.
    let n2 = node(&fresh.url, "n2", spools[1].path());
    let on_n2 = synthetic(&n2, 10_000_000, 2_000);
    wait_stored(&n2, &on_n2);
    assert_eq!(task_info(&n2, &on_n1).status, TaskStatus::Running);
    let before = stored_seqs(&n2, &on_n1).len();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        stored_seqs(&n2, &on_n1).len() > before,
        "n1's task goes on logging"
    );
    assert_eq!(
        nodes(&n2),
        [("n1".to_owned(), true), ("n2".to_owned(), true)]
    );

    // n1 dies: n2 ends its task, with a record saying why, and leaves its own.
    // SAFETY: killing the server process this test started.
    unsafe { libc::kill(n1.child.id() as i32, libc::SIGKILL) };
    n1.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let t = task_info(&n2, &on_n1);
        if t.status.is_terminal() {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "n1's task was not resolved: {t:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ended.status, TaskStatus::Interrupted);
    assert!(
        ended
            .error
            .as_deref()
            .unwrap_or("")
            .contains("node n1 stopped answering"),
        "{ended:?}"
    );
    let stored = entries(&stdout(&n2.cli(&["logs", &on_n1, "--json"])));
    let numbered: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(
        numbered,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "no holes"
    );
    let last = stored.last().unwrap();
    assert_eq!(&*last.source, "system");
    assert!(
        last.message.contains("node n1 stopped answering"),
        "{last:?}"
    );
    assert_eq!(task_info(&n2, &on_n2).status, TaskStatus::Running);
    assert_eq!(
        nodes(&n2),
        [("n1".to_owned(), false), ("n2".to_owned(), true)]
    );

    // n1 coming back resolves nothing of n2's.
    drop(n1);
    let n1 = node(&fresh.url, "n1", spools[0].path());
    assert_eq!(task_info(&n1, &on_n2).status, TaskStatus::Running);
    let on_n1_again = synthetic(&n1, 400, 10_000);
    assert_eq!(
        common::wait_done(&n1, &on_n1_again).status,
        TaskStatus::Success
    );
    assert_eq!(
        nodes(&n1),
        [("n1".to_owned(), true), ("n2".to_owned(), true)]
    );
}

/// Polls `check` every 50 ms until it holds; panics after `within`.
fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tokens_and_settings_changed_on_one_node_apply_on_the_others() {
    if std::env::var_os("TASKLENS_TEST_PG_URL").is_none() {
        eprintln!("skipped: no PostgreSQL for tests (TASKLENS_TEST_PG_URL)");
        return;
    }
    // Designed for well under 2 s (a 250 ms poll, then a reload); the slack is for
    // a loaded machine starting the CLI.
    let within = Duration::from_secs(4);
    let fresh = FreshDb::new("postgres");
    let spools = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let n1 = node(&fresh.url, "n1", spools[0].path());
    let n2 = node(&fresh.url, "n2", spools[1].path());
    let running = synthetic(&n2, 10_000_000, 1_000);

    let token = stdout(&n1.cli(&["tokens", "create", "carol", "--role", "viewer"]))
        .trim()
        .to_owned();
    eventually(within, "a token made on n1 working on n2", || {
        http_get(n2.port, "/api/me", Some(&token)).0 == 200
    });
    let mut follower = n2
        .command(&token, &["logs", &running, "--follow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        follower.try_wait().unwrap().is_none(),
        "the follower follows"
    );

    stdout(&n1.cli(&["tokens", "delete", "carol"]));
    eventually(within, "the deleted token refused on n2", || {
        http_get(n2.port, "/api/me", Some(&token)).0 == 401
    });
    eventually(within, "n2 closing the deleted token's stream", || {
        follower.try_wait().unwrap().is_some()
    });
    let mut err = String::new();
    std::io::Read::read_to_string(follower.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("token"), "{err}");

    stdout(&n1.cli(&["settings", "set", "--task-level", "warn"]));
    eventually(within, "n1's settings in force on n2", || {
        stdout(&n2.cli(&["settings"])).contains("task_log_level       WARNING")
    });
}
