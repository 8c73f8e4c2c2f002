//! `kill -9` of the server while tasks log at full speed: what was written stays
//! whole, and the server starts again cleanly on the same database.

mod common;

use std::time::{Duration, Instant};

use common::{entries, stdout, stored_seqs, task_info, wait_done, Server};
use protocol::TaskStatus;
use testkit::{backends, free_port, FreshDb};

/// The last stored seq (0 when none is).
fn last_seq(server: &Server, id: &str) -> u64 {
    entries(&stdout(&server.cli(&["logs", id, "--tail", "1", "--json"])))
        .last()
        .map_or(0, |e| e.seq)
}

#[test]
fn a_killed_server_leaves_whole_prefixes_and_finished_tasks_complete() {
    for backend in backends() {
        let fresh = FreshDb::new(backend);
        let port = free_port();
        let mut server = Server::start_on(&fresh.url, port, None);
        let run = |params: &str| {
            stdout(&server.cli(&["run", "synthetic", "--params", params]))
                .trim()
                .to_owned()
        };
        let finished = run(r#"{"count": 3000}"#);
        wait_done(&server, &finished);
        let running: Vec<String> = (0..5).map(|_| run(r#"{"count": 5000000}"#)).collect();
        // Let them write until some of each task is durable.
        let deadline = Instant::now() + Duration::from_secs(30);
        while running.iter().any(|id| last_seq(&server, id) < 1000) {
            assert!(
                Instant::now() < deadline,
                "{backend}: the tasks did not log"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: killing the server process this test started.
        unsafe { libc::kill(server.child.id() as i32, libc::SIGKILL) };
        server.child.wait().unwrap();
        drop(server);

        let server = Server::start_on(&fresh.url, port, None);
        for id in &running {
            let t = task_info(&server, id);
            assert_eq!(t.status, TaskStatus::Interrupted, "{backend}: {t:?}");
            let got = stored_seqs(&server, id);
            assert!(!got.is_empty());
            assert_eq!(
                got,
                (1..=got.len() as u64).collect::<Vec<_>>(),
                "{backend}: records up to a point, without holes"
            );
        }
        assert_eq!(task_info(&server, &finished).status, TaskStatus::Success);
        assert_eq!(
            stored_seqs(&server, &finished).len(),
            2250,
            "every record of a finished task"
        );
        // And the restarted server works.
        let after = stdout(&server.cli(&["run", "synthetic", "-p", "count=400"]))
            .trim()
            .to_owned();
        assert_eq!(wait_done(&server, &after).status, TaskStatus::Success);
        assert_eq!(stored_seqs(&server, &after).len(), 300);
    }
}
