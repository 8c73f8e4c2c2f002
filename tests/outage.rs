//! The database away while tasks log at full speed: readiness and metrics say so
//! meanwhile, the buffer spills to the spool once full, and afterwards every record
//! is stored exactly once.

mod common;

use std::time::{Duration, Instant};

use common::{
    entries, http_get as get, metric, stdout, synthetic, wait_done, wait_stored, Server, ADMIN,
};
use protocol::TaskStatus;
use testkit::{free_port, FreshDb, PgCluster};

#[test]
fn postgresql_down_for_ten_seconds_loses_and_repeats_nothing() {
    if std::env::var_os("TASKLENS_TEST_PG_URL").is_none() {
        eprintln!("skipped: no PostgreSQL for tests (TASKLENS_TEST_PG_URL)");
        return;
    }
    let cluster = PgCluster::start();
    testkit::create_database(&cluster.admin_url(), "outage");
    let url = testkit::replace_database(&cluster.admin_url(), "outage");
    let port = free_port();
    let spool = tempfile::tempdir().unwrap();
    // A buffer this small fills during the outage, so that it spills to the spool.
    let env = [
        ("TASKLENS_LOG", "warn"),
        ("TASKLENS_BUFFER_MAX_BYTES", "4194304"),
        ("TASKLENS_SPOOL_DIR", spool.path().to_str().unwrap()),
    ];
    let server = Server::launch_with(&url, port, None, &env);
    // Paced, so that they are still logging when the database goes: unpaced, on a
    // slow machine they had ended and every record was stored before `pg_ctl stop`
    // returned, and nothing was ever buffered (a CI run).
    let ids: Vec<String> = (0..5)
        .map(|_| {
            stdout(&server.cli(&["run", "synthetic", "-p", "count=100000", "-p", "rate=4000"]))
                .trim()
                .to_owned()
        })
        .collect();
    // Logging before the database goes: a task not yet claimed when it goes waits
    // for it in the queue, logging nothing, and nothing would be buffered.
    wait_stored(&server, &ids[0]);
    cluster.stop_server();
    let stopped = Instant::now();
    // Readiness says so, and the metrics show what waits.
    let mut seen_unready = false;
    let mut buffered = 0.0_f64;
    while stopped.elapsed() < Duration::from_secs(10) {
        let (status, body) = get(port, "/readyz", None);
        if status == 503 {
            seen_unready = true;
            assert!(body.contains("unavailable"), "{body}");
        }
        let (status, text) = get(port, "/metrics", Some(ADMIN));
        assert_eq!(status, 200, "/metrics answers during an outage: {text}");
        buffered = buffered.max(metric(&text, "tasklens_records_buffered"));
        if buffered > 0.0 {
            assert_eq!(metric(&text, "tasklens_database_up"), 0.0, "{text}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(seen_unready, "/readyz was 503 during the outage");
    assert!(buffered > 0.0, "/metrics showed buffered records");
    let (_, text) = get(port, "/metrics", Some(ADMIN));
    assert!(
        metric(&text, "tasklens_records_spooled_total") > 0.0,
        "the full buffer spilled to the spool: {text}"
    );
    cluster.start_server();
    for id in &ids {
        assert_succeeded_with_every_record(&server, id, 75_000);
    }
    let (status, _) = get(port, "/readyz", None);
    assert_eq!(status, 200);
    assert_spool_empty(port, spool.path());
}

/// Task `id` succeeded and its records are stored once each: seqs 1 to `records`.
fn assert_succeeded_with_every_record(server: &Server, id: &str, records: u64) {
    let task = wait_done(server, id);
    assert_eq!(task.status, TaskStatus::Success, "{task:?}");
    let seqs: Vec<u64> = entries(&stdout(&server.cli(&["logs", id, "--json"])))
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs.len() as u64, records, "every INFO-and-above record");
    assert!(seqs.iter().copied().eq(1..=records), "in order, once each");
}

/// Everything spooled is in the database: no file left (but the lock the server
/// holds on its spool directory), nothing pending or refused.
fn assert_spool_empty(port: u16, dir: &std::path::Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "tasklens-spool.lock")
        .collect();
    assert!(left.is_empty(), "spool files left: {left:?}");
    let (status, report) = get(port, "/api/spool", Some(ADMIN));
    assert_eq!(status, 200, "{report}");
    let report: protocol::SpoolReport = serde_json::from_str(&report).unwrap();
    assert_eq!((report.pending_bytes, report.rejected_rows), (0, 0));
}

#[test]
fn sqlite_locked_with_the_buffer_full_spills_to_the_spool_and_stores_it_when_free() {
    let fresh = FreshDb::new("sqlite");
    let file = std::path::PathBuf::from(fresh.url.trim_start_matches("sqlite://"));
    let spool = tempfile::tempdir().unwrap();
    let env = [
        ("TASKLENS_LOG", "warn"),
        ("TASKLENS_BUFFER_MAX_ROWS", "1000"),
        ("TASKLENS_BATCH_MAX_ROWS", "500"),
        ("TASKLENS_DB_BUSY_TIMEOUT_MS", "1000"),
        ("TASKLENS_SPOOL_DIR", spool.path().to_str().unwrap()),
    ];
    let port = free_port();
    let server = Server::launch_with(&fresh.url, port, None, &env);
    let id = synthetic(&server, 40000, 8000);
    wait_stored(&server, &id);
    let lock = testkit::SqliteWriteLock::take(&file);
    // The task goes on logging: far more than the buffer holds reaches the spool.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = get(port, "/metrics", Some(ADMIN));
        if metric(&text, "tasklens_records_spooled_total") >= 5_000.0 {
            assert!(
                metric(&text, "tasklens_spool_bytes") > 0.0,
                "the spool waits for the database: {text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the buffer did not spill; emitters are held: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = get(port, "/readyz", None);
    assert_eq!(status, 503, "{body}");
    // A write that waits out the busy timeout is told to retry, not that the
    // server failed.
    let refused = server.cli(&["run", "synthetic", "-p", "count=1"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("503") && said.contains("the database is busy"),
        "{said}"
    );
    let (status, headers, body) = common::http(
        port,
        "POST",
        "/api/tasks",
        Some(ADMIN),
        Some(r#"{"plugin":"synthetic","params":{"count":1}}"#),
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        headers.to_ascii_lowercase().contains("retry-after: 1"),
        "{headers}"
    );
    drop(lock);
    assert_succeeded_with_every_record(&server, &id, 30_000);
    assert_spool_empty(port, spool.path());
}

#[test]
fn sqlite_out_of_space_is_unready_loses_nothing_and_recovers_when_space_returns() {
    let fresh = FreshDb::new("sqlite");
    let file = std::path::PathBuf::from(fresh.url.trim_start_matches("sqlite://"));
    let port = free_port();
    let server = Server::launch_with(&fresh.url, port, None, &[("TASKLENS_LOG", "error")]);
    let id = synthetic(&server, 60000, 10000);
    wait_stored(&server, &id);
    // No file of the server's may grow past its size now: the disk is full.
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", file.display())).map_or(0, |m| m.len())
    };
    let full = size("").max(size("-wal"));
    testkit::limit_file_size(server.child.id(), Some(full));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(port, "/readyz", None);
        if status == 503 {
            assert!(body.contains("writing log records fails"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {status} with the disk full: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    testkit::limit_file_size(server.child.id(), None);
    assert_succeeded_with_every_record(&server, &id, 45_000);
    let (status, body) = get(port, "/readyz", None);
    assert_eq!(status, 200, "{body}");
}
