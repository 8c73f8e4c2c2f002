//! PostgreSQL stopped for 10 s while five tasks log at full speed: readiness and
//! metrics say so meanwhile, and afterwards every record is stored exactly once.

mod common;

use std::time::{Duration, Instant};

use common::{entries, http_get as get, stdout, wait_done, Server, ADMIN};
use protocol::TaskStatus;
use testkit::{free_port, PgCluster};

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

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
    let server = Server::start_on(&url, port, None);
    let ids: Vec<String> = (0..5)
        .map(|_| {
            stdout(&server.cli(&["run", "synthetic", "-p", "count=100000"]))
                .trim()
                .to_owned()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
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
    cluster.start_server();
    for id in &ids {
        let task = wait_done(&server, id);
        assert_eq!(task.status, TaskStatus::Success, "{task:?}");
        let seqs: Vec<u64> = entries(&stdout(&server.cli(&["logs", id, "--json"])))
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs.len(), 75_000, "every INFO-and-above record");
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "in order, once each"
        );
    }
    let (status, _) = get(port, "/readyz", None);
    assert_eq!(status, 200);
}
