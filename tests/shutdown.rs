//! Shutdown while the database cannot take records: the server still exits in
//! bounded time, what it could not write goes to the spool, and the next start
//! stores it, exactly once.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{entries, stdout, synthetic, wait_stored, Server};
use protocol::{TaskInfo, TaskStatus};
use testkit::{free_port, FreshDb, PgCluster};

/// A task that logs 5,000 records a second for far longer than any test.
fn long_task(server: &Server) -> String {
    stdout(&server.cli(&[
        "run",
        "synthetic",
        "-p",
        "count=10000000",
        "-p",
        "rate=5000",
    ]))
    .trim()
    .to_owned()
}

/// Checks that the task ended interrupted; the seqs of its stored records.
fn interrupted_task_seqs(server: &Server, id: &str) -> Vec<u64> {
    let task: TaskInfo = serde_json::from_str(&stdout(&server.cli(&["task", id]))).unwrap();
    assert_eq!(task.status, TaskStatus::Interrupted);
    entries(&stdout(&server.cli(&["logs", id, "--json"])))
        .iter()
        .map(|e| e.seq)
        .collect()
}

/// The seqs in the spool of `dir` (which must exist).
fn spooled_seqs(dir: &std::path::Path) -> Vec<u64> {
    let spooled = std::fs::read_to_string(dir.join("tasklens-spool.jsonl"))
        .expect("what the database did not take is spooled");
    spooled
        .lines()
        .flat_map(|line| {
            let batch: serde_json::Value = serde_json::from_str(line).unwrap();
            // Lines without records hold a task's final status.
            batch["entries"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|e| e["seq"].as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn sigterm_with_postgresql_down_spools_and_the_next_start_stores_everything() {
    if std::env::var_os("TASKLENS_TEST_PG_URL").is_none() {
        eprintln!("skipped: no PostgreSQL for tests (TASKLENS_TEST_PG_URL)");
        return;
    }
    let cluster = PgCluster::start();
    testkit::create_database(&cluster.admin_url(), "spooled");
    let url = testkit::replace_database(&cluster.admin_url(), "spooled");
    let spool = tempfile::tempdir().unwrap();
    let env = [
        ("TASKLENS_LOG", "warn"),
        ("TASKLENS_SHUTDOWN_FLUSH_TIMEOUT_SECS", "3"),
        ("TASKLENS_SPOOL_DIR", spool.path().to_str().unwrap()),
    ];
    let port = free_port();
    let mut server = Server::launch_with(&url, port, None, &env);
    let id = long_task(&server);
    // A follower sees records as they are emitted, before they are durable.
    let mut follower = server
        .command(common::ADMIN, &["logs", &id, "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.stop_server();
    // The task goes on emitting into the server's buffer.
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    // One SIGTERM (a second one would spool at once).
    let status = testkit::serve::terminate(&mut server.child, Duration::from_secs(60))
        .unwrap()
        .expect("the server exits");
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(3 + 5 + 2),
        "exit took {took:?} (shutdown_flush_timeout 3 s)"
    );
    let _ = status;
    let _ = follower.kill();
    let mut seen = String::new();
    follower
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut seen)
        .unwrap();
    let _ = follower.wait();
    let streamed = entries(&seen).last().map_or(0, |e| e.seq);
    let spooled_seqs = spooled_seqs(spool.path());
    assert!(
        spooled_seqs.len() > 1000,
        "the records logged during the outage are in the spool ({})",
        spooled_seqs.len()
    );
    drop(server);

    cluster.start_server();
    let server = Server::launch_with(&url, port, None, &env);
    assert!(
        !spool.path().join("tasklens-spool.jsonl").exists(),
        "the spool is stored and removed at start"
    );
    let stored = interrupted_task_seqs(&server, &id);
    assert_eq!(
        stored,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "every record once, no hole"
    );
    let newest = spooled_seqs.iter().copied().max().unwrap().max(streamed);
    assert_eq!(
        stored.len() as u64,
        newest,
        "every record emitted before the signal is stored (spooled up to {newest}, streamed up to {streamed})"
    );
}

#[test]
fn sigterm_with_sqlite_locked_by_another_process_spools_and_the_next_start_stores_it() {
    let fresh = FreshDb::new("sqlite");
    let file = std::path::PathBuf::from(fresh.url.trim_start_matches("sqlite://"));
    let spool = tempfile::tempdir().unwrap();
    let env = [
        ("TASKLENS_LOG", "warn"),
        ("TASKLENS_SHUTDOWN_FLUSH_TIMEOUT_SECS", "3"),
        ("TASKLENS_DB_BUSY_TIMEOUT_MS", "1000"),
        ("TASKLENS_SPOOL_DIR", spool.path().to_str().unwrap()),
    ];
    let port = free_port();
    let mut server = Server::launch_with(&fresh.url, port, None, &env);
    let id = long_task(&server);
    wait_stored(&server, &id);
    // A task that finishes while the database is locked: its records and its
    // final status wait in memory, then in the spool.
    let short = synthetic(&server, 200, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stdout(&server.cli(&["task", &short])).contains("\"running\"") {
        assert!(Instant::now() < deadline, "the short task did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let lock = testkit::SqliteWriteLock::take(&file);
    std::thread::sleep(Duration::from_millis(2500));
    let signalled = Instant::now();
    testkit::serve::terminate(&mut server.child, Duration::from_secs(60))
        .unwrap()
        .expect("the server exits");
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(3 + 5 + 2), "exit took {took:?}");
    let newest = spooled_seqs(spool.path())
        .into_iter()
        .max()
        .expect("some records were spooled");
    drop(server);
    drop(lock);

    let server = Server::launch_with(&fresh.url, port, None, &env);
    let stored = interrupted_task_seqs(&server, &id);
    assert_eq!(
        stored,
        (1..=newest).collect::<Vec<_>>(),
        "every record once, no hole"
    );
    let task: TaskInfo = serde_json::from_str(&stdout(&server.cli(&["task", &short]))).unwrap();
    assert_eq!(
        task.status,
        TaskStatus::Success,
        "the final status spooled at shutdown is stored: {task:?}"
    );
    let seqs: Vec<u64> = entries(&stdout(&server.cli(&["logs", &short, "--json"])))
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=150).collect::<Vec<_>>(), "with all its records");
}
