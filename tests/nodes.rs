//! Several servers on one PostgreSQL database: a starting node leaves the others'
//! tasks alone, and when a node dies a survivor ends its tasks, and only its.

mod common;

use std::time::{Duration, Instant};

use common::{
    entries, http_get, stdout, stored_seqs, synthetic, task_info, wait_stored, ws, Server, Ws,
    ADMIN,
};
use protocol::{NodeInfo, TaskStatus};
use testkit::{free_port, FreshDb};

fn node(url: &str, id: &str, spool: &std::path::Path) -> Server {
    node_with(url, id, spool, &[])
}

fn node_with(url: &str, id: &str, spool: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let mut all = vec![
        ("TASKLENS_LOG", "warn"),
        ("TASKLENS_NODE_ID", id),
        ("TASKLENS_NODE_TIMEOUT_SECS", "3"),
        ("TASKLENS_SPOOL_DIR", spool.to_str().unwrap()),
    ];
    all.extend_from_slice(env);
    Server::launch_with(url, free_port(), None, &all)
}

/// A fresh PostgreSQL database and two spool directories, for two nodes; `None`
/// (the test is skipped) when the tests have no PostgreSQL.
fn shared_db() -> Option<(FreshDb, [tempfile::TempDir; 2])> {
    if std::env::var_os("TASKLENS_TEST_PG_URL").is_none() {
        eprintln!("skipped: no PostgreSQL for tests (TASKLENS_TEST_PG_URL)");
        return None;
    }
    let spools = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    Some((FreshDb::new("postgres"), spools))
}

/// A node of role gateway, `g1`.
fn gateway_node(url: &str, spool: &std::path::Path) -> Server {
    node_with(url, "g1", spool, &[("TASKLENS_ROLE", "gateway")])
}

/// `GET /api/nodes` through `server`, by id.
fn node_list(server: &Server) -> Vec<NodeInfo> {
    let (status, body) = http_get(server.port, "/api/nodes", Some(ADMIN));
    assert_eq!(status, 200, "{body}");
    let mut nodes: Vec<NodeInfo> = serde_json::from_str(&body).unwrap();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    nodes
}

fn nodes(server: &Server) -> Vec<(String, bool)> {
    node_list(server)
        .into_iter()
        .map(|n| (n.id, n.alive))
        .collect()
}

#[test]
fn nodes_share_a_database_and_a_dead_nodes_tasks_end_on_a_survivor() {
    let Some((fresh, spools)) = shared_db() else {
        return;
    };
    let mut n1 = node(&fresh.url, "n1", spools[0].path());
    let on_n1 = synthetic(&n1, 10_000_000, 2_000);
    wait_stored(&n1, &on_n1);

    // A second node starting on the same database leaves n1's task running.
    let n2 = node(&fresh.url, "n2", spools[1].path());
    let on_n2 = synthetic(&n2, 10_000_000, 2_000);
    wait_stored(&n2, &on_n2);
    assert_eq!(task_info(&n2, &on_n1).status, TaskStatus::Running);
    let before = stored_seqs(&n2, &on_n1).len();
    eventually(
        Duration::from_secs(10),
        "n1's task storing more records",
        || stored_seqs(&n2, &on_n1).len() > before,
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
        last.message().contains("node n1 stopped answering"),
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
    let Some((fresh, spools)) = shared_db() else {
        return;
    };
    // Designed for well under 2 s (a 25 ms poll, then a reload); the slack is for
    // a loaded machine starting the CLI.
    let within = Duration::from_secs(4);
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

/// The running tasks each node reported at its last heartbeat, by id.
fn running_by_node(server: &Server) -> Vec<(String, u64)> {
    node_list(server)
        .into_iter()
        .map(|n| (n.id, n.running))
        .collect()
}

#[test]
fn one_queue_for_every_node_and_a_cancel_reaches_the_node_running_the_task() {
    let Some((fresh, spools)) = shared_db() else {
        return;
    };
    let within = Duration::from_secs(10);
    let one_at_a_time = |id: &str, spool: &std::path::Path| {
        node_with(
            &fresh.url,
            id,
            spool,
            &[("TASKLENS_MAX_CONCURRENT_TASKS", "1")],
        )
    };
    let n1 = one_at_a_time("n1", spools[0].path());
    let n2 = one_at_a_time("n2", spools[1].path());
    let status = |id: &str| task_info(&n1, id).status;

    // n1 runs the first task; the second, submitted to n1 as well, runs on n2.
    let first = synthetic(&n1, 10_000_000, 200);
    wait_stored(&n1, &first);
    let second = synthetic(&n1, 10_000_000, 200);
    eventually(within, "the second task running", || {
        status(&second) == TaskStatus::Running
    });
    eventually(within, "each node running one task", || {
        running_by_node(&n1) == [("n1".to_owned(), 1), ("n2".to_owned(), 1)]
    });
    // Both nodes are full: the third waits, whichever node it was sent to.
    let third = synthetic(&n2, 400, 10_000);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&third), TaskStatus::Queued);

    // Cancelled through n1, the second task ends on n2, which then takes the third.
    let out = n1.cli(&["cancel", &second]);
    assert!(out.status.success(), "{out:?}");
    eventually(within, "the second task cancelled", || {
        status(&second) == TaskStatus::Cancelled
    });
    assert_eq!(
        common::wait_done(&n1, &third).status,
        TaskStatus::Success,
        "the third task ran once there was room"
    );
    assert_eq!(
        stored_seqs(&n1, &third).len(),
        300,
        "its INFO-and-above records, stored by n2"
    );
    assert_eq!(status(&first), TaskStatus::Running);

    // A task queued on a node that shuts down stays queued and runs elsewhere.
    let fourth = synthetic(&n2, 10_000_000, 200);
    eventually(within, "n2 running the fourth task", || {
        status(&fourth) == TaskStatus::Running
    });
    let fifth = synthetic(&n2, 400, 10_000);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(&fifth), TaskStatus::Queued);
    // SAFETY: signalling the server process this test started.
    unsafe { libc::kill(n2.child.id() as i32, libc::SIGTERM) };
    let mut n2 = n2;
    assert!(n2.child.wait().unwrap().success());
    assert_eq!(status(&fourth), TaskStatus::Interrupted);
    assert_eq!(status(&fifth), TaskStatus::Queued);
    let out = n1.cli(&["cancel", &first]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        common::wait_done(&n1, &fifth).status,
        TaskStatus::Success,
        "n1 took the task n2 left queued"
    );
    assert_eq!(status(&first), TaskStatus::Cancelled);
}

#[test]
fn a_gateway_takes_tasks_and_engines_run_them() {
    let Some((fresh, spools)) = shared_db() else {
        return;
    };
    let gateway = gateway_node(&fresh.url, spools[0].path());
    let as_engine = [("TASKLENS_ROLE", "engine")];

    // No engine yet: the gateway queues the task and runs none itself.
    let task = synthetic(&gateway, 400, 10_000);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(task_info(&gateway, &task).status, TaskStatus::Queued);

    let engine = node_with(&fresh.url, "e1", spools[1].path(), &as_engine);
    assert_eq!(
        common::wait_done(&gateway, &task).status,
        TaskStatus::Success
    );
    assert_eq!(stored_seqs(&gateway, &task).len(), 300);
    let roles: Vec<(String, String)> = node_list(&gateway)
        .into_iter()
        .map(|n| (n.id, n.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("e1".to_owned(), "engine".to_owned()),
            ("g1".to_owned(), "gateway".to_owned())
        ]
    );

    // An engine answers probes, metrics and workers, and sends the rest to a gateway.
    for path in ["/livez", "/readyz", "/healthz"] {
        assert_eq!(http_get(engine.port, path, None).0, 200, "{path}");
    }
    assert_eq!(http_get(engine.port, "/metrics", Some(ADMIN)).0, 200);
    for path in ["/api/tasks", "/api/nodes", "/", "/tasks/x"] {
        let (status, body) = http_get(engine.port, path, Some(ADMIN));
        assert_eq!(status, 404, "{path}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("role engine"),
            "{path}: {body}"
        );
    }
    let (status, _) = http_get(engine.port, "/ws/worker", None);
    assert_eq!(
        status, 401,
        "workers may connect to an engine (with a token)"
    );
}

/// The next JSON message, answering pings; panics on a close or after 30 s.
async fn next_message(conn: &mut Ws) -> serde_json::Value {
    use futures_util::{SinkExt, StreamExt};
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), conn.next())
            .await
            .expect("a message within 30 s")
            .expect("the connection stays open")
            .unwrap();
        match frame {
            awc::ws::Frame::Text(bytes) => return serde_json::from_slice(&bytes).unwrap(),
            awc::ws::Frame::Ping(p) => conn.send(awc::ws::Message::Pong(p)).await.unwrap(),
            awc::ws::Frame::Close(reason) => panic!("closed: {reason:?}"),
            _ => {}
        }
    }
}

/// Follows a task to its final status: the seqs received, whether `caught_up` came
/// before the end, and the statuses seen.
async fn follow_to_end(mut conn: Ws) -> (Vec<u64>, bool, Vec<String>) {
    let (mut seqs, mut caught_up, mut statuses) = (Vec::new(), false, Vec::new());
    loop {
        let msg = next_message(&mut conn).await;
        match msg["type"].as_str().unwrap() {
            "logs" => seqs.extend(
                msg["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["seq"].as_u64().unwrap()),
            ),
            "caught_up" => caught_up = true,
            "task" => {
                let status = msg["task"]["status"].as_str().unwrap().to_owned();
                let done = !["queued", "running"].contains(&status.as_str());
                statuses.push(status);
                if done {
                    return (seqs, caught_up, statuses);
                }
            }
            "error" => panic!("{msg}"),
            _ => {}
        }
    }
}

/// A gateway `g1` and an engine `e1` (with `engine_env` too) on a fresh database;
/// `None` without PostgreSQL. The database and spools live as long as the servers.
fn gateway_and_engine(
    engine_env: &[(&str, &str)],
) -> Option<(Server, Server, FreshDb, [tempfile::TempDir; 2])> {
    let (fresh, spools) = shared_db()?;
    let gateway = gateway_node(&fresh.url, spools[0].path());
    let mut env = vec![("TASKLENS_ROLE", "engine")];
    env.extend_from_slice(engine_env);
    let engine = node_with(&fresh.url, "e1", spools[1].path(), &env);
    Some((gateway, engine, fresh, spools))
}

#[test]
fn a_gateway_follows_live_what_an_engine_runs() {
    let Some((gateway, _engine, _db, _spools)) = gateway_and_engine(&[]) else {
        return;
    };
    let port = gateway.port;

    let (followed, warnings, watched, task) = actix_rt::System::new().block_on(async move {
        let watcher = ws(port, serde_json::json!({"type": "subscribe_tasks"})).await;
        let task = synthetic(&gateway, 200_000, 40_000);
        // One joins at once, one once the task is under way (history, then live).
        let early = ws(port, serde_json::json!({"type": "subscribe", "task_id": task})).await;
        let early = actix_rt::spawn(follow_to_end(early));
        wait_stored(&gateway, &task);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let warnings = ws(
            port,
            serde_json::json!({"type": "subscribe", "task_id": task, "filter": {"level": "WARNING"}}),
        )
        .await;
        let warnings = actix_rt::spawn(follow_to_end(warnings));
        let watched = actix_rt::spawn({
            let task = task.clone();
            async move {
                let mut watcher = watcher;
                let mut statuses = Vec::new();
                loop {
                    let msg = next_message(&mut watcher).await;
                    if msg["type"] == "task" && msg["task"]["id"] == task.as_str() {
                        let status = msg["task"]["status"].as_str().unwrap().to_owned();
                        let done = !["queued", "running"].contains(&status.as_str());
                        statuses.push(status);
                        if done {
                            return statuses;
                        }
                    }
                }
            }
        });
        (
            early.await.unwrap(),
            warnings.await.unwrap(),
            watched.await.unwrap(),
            (task, gateway),
        )
    });
    let (task, gateway) = task;
    let stored = stored_seqs(&gateway, &task);
    assert_eq!(stored.len(), 150_000, "INFO and above of 200,000");
    let (seqs, caught_up, statuses) = followed;
    assert!(caught_up);
    assert_eq!(seqs, stored, "every record, in order, once");
    assert_eq!(statuses.last().map(String::as_str), Some("success"));
    let warned: Vec<u64> = entries(&stdout(
        &gateway.cli(&["logs", &task, "--json", "--level", "WARNING"]),
    ))
    .iter()
    .map(|e| e.seq)
    .collect();
    let (seqs, caught_up, statuses) = warnings;
    assert!(caught_up);
    assert!(!warned.is_empty());
    assert_eq!(seqs, warned, "the filter applies to the live feed too");
    assert_eq!(statuses.last().map(String::as_str), Some("success"));
    assert_eq!(
        watched.last().map(String::as_str),
        Some("success"),
        "the task list sees the engine's status changes: {watched:?}"
    );
    assert!(watched.contains(&"running".to_owned()), "{watched:?}");
}

/// An engine writes a task's records every 60 s here, unless a node follows it: a
/// follower on the gateway gets them while the task runs, not at its end.
#[test]
fn a_task_followed_from_another_node_is_written_sooner() {
    let Some((gateway, _engine, _db, _spools)) =
        gateway_and_engine(&[("TASKLENS_FLUSH_INTERVAL_MS", "60000")])
    else {
        return;
    };
    let task = synthetic(&gateway, 400, 40);
    let port = gateway.port;
    let first = actix_rt::System::new().block_on({
        let task = task.clone();
        async move {
            let mut conn = ws(
                port,
                serde_json::json!({"type": "subscribe", "task_id": task}),
            )
            .await;
            loop {
                let msg = next_message(&mut conn).await;
                match msg["type"].as_str().unwrap() {
                    "logs" if !msg["entries"].as_array().unwrap().is_empty() => return msg,
                    "task" => assert!(
                        ["queued", "running"].contains(&msg["task"]["status"].as_str().unwrap()),
                        "the task ended before any record reached the follower: {msg}"
                    ),
                    _ => {}
                }
            }
        }
    });
    assert_eq!(first["entries"][0]["seq"], 1, "{first}");
    assert_eq!(
        task_info(&gateway, &task).status,
        TaskStatus::Running,
        "records arrived while the task ran"
    );
}

#[test]
fn tasks_sent_to_a_gateway_spread_over_two_engines_and_survive_one_dying() {
    let one_at_a_time = [
        ("TASKLENS_MAX_CONCURRENT_TASKS", "1"),
        ("TASKLENS_NODE_TIMEOUT_SECS", "3"),
    ];
    let Some((gateway, mut e1, db, spools)) = gateway_and_engine(&one_at_a_time) else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let mut as_engine = vec![("TASKLENS_ROLE", "engine")];
    as_engine.extend_from_slice(&one_at_a_time);
    let e2 = node_with(&db.url, "e2", spool.path(), &as_engine);

    // Twenty short tasks: all run, on both engines, with all their records.
    let tasks: Vec<String> = (0..20).map(|_| synthetic(&gateway, 2_000, 8_000)).collect();
    let mut ran_on = std::collections::BTreeMap::new();
    for task in &tasks {
        let done = common::wait_done(&gateway, task);
        assert_eq!(done.status, TaskStatus::Success, "{done:?}");
        assert_eq!(stored_seqs(&gateway, task).len(), 1_500, "INFO and above");
        *ran_on
            .entry(done.node.expect("the node that ran it"))
            .or_insert(0) += 1;
    }
    assert_eq!(
        ran_on.keys().collect::<Vec<_>>(),
        ["e1", "e2"],
        "both engines took tasks: {ran_on:?}"
    );

    // One long task on each engine; e1 dies.
    let long: Vec<String> = (0..2).map(|_| synthetic(&gateway, 40_000, 4_000)).collect();
    for task in &long {
        wait_stored(&gateway, task);
    }
    let node_of = |task: &str| task_info(&gateway, task).node.unwrap();
    let (on_e1, on_e2) = if node_of(&long[0]) == "e1" {
        (&long[0], &long[1])
    } else {
        (&long[1], &long[0])
    };
    assert_eq!(node_of(on_e2), "e2");
    // SAFETY: killing the server process this test started.
    unsafe { libc::kill(e1.child.id() as i32, libc::SIGKILL) };
    e1.child.wait().unwrap();
    // Within node_timeout_secs (3) + 5 s.
    eventually(Duration::from_secs(3 + 5), "e1's task interrupted", || {
        task_info(&gateway, on_e1).status == TaskStatus::Interrupted
    });
    let kept = stored_seqs(&gateway, on_e1);
    assert!(kept.len() > 1, "what e1 stored before it died is there");
    assert_eq!(
        kept,
        (1..=kept.len() as u64).collect::<Vec<_>>(),
        "no holes"
    );
    // e2's task is untouched and finishes.
    assert_eq!(task_info(&gateway, on_e2).status, TaskStatus::Running);
    assert_eq!(
        common::wait_done(&gateway, on_e2).status,
        TaskStatus::Success
    );
    assert_eq!(stored_seqs(&gateway, on_e2).len(), 30_000);

    // e1 back (same id) takes new tasks while e2 is busy.
    drop(e1);
    let _e1 = node_with(&db.url, "e1", spools[1].path(), &as_engine);
    let busy = synthetic(&gateway, 40_000, 4_000);
    let next = synthetic(&gateway, 400, 10_000);
    assert_eq!(
        common::wait_done(&gateway, &next).status,
        TaskStatus::Success
    );
    let ran = [
        task_info(&gateway, &busy).node,
        task_info(&gateway, &next).node,
    ];
    assert!(ran.contains(&Some("e1".to_owned())), "{ran:?}");
    drop(e2);
}

#[test]
fn a_gateway_accepts_tasks_for_a_worker_connected_to_an_engine() {
    let Some((gateway, engine, _db, _spools)) = gateway_and_engine(&[]) else {
        return;
    };
    let plugin = "remote-echo";
    // Nobody offers it yet: refused, with the plugins there are.
    let refused = gateway.cli(&["run", plugin, "-p", "word=hi"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("unknown plugin"), "{err}");

    let token = stdout(&gateway.cli(&["tokens", "create", "builder", "--role", "worker"]))
        .trim()
        .to_owned();
    let (gport, eport) = (gateway.port, engine.port);
    let (task, info, logs) = actix_rt::System::new().block_on(async move {
        use futures_util::SinkExt;
        // A worker on the engine, speaking the protocol by hand.
        let mut worker = worker_on(eport, &token, "w1", 1).await;

        // The gateway has no worker, yet lists the plugin and accepts its task
        // (params checked against the schema the worker gave).
        let listed = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (_, body) = http_get(gport, "/api/plugins", Some(ADMIN));
                let plugins: Vec<protocol::PluginInfo> = serde_json::from_str(&body).unwrap();
                if let Some(p) = plugins.into_iter().find(|p| p.name == plugin) {
                    return p;
                }
                assert!(Instant::now() < deadline, "the gateway never listed {plugin}");
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .await
        .unwrap();
        assert_eq!(listed.workers, Some(vec!["w1".to_owned()]));
        let client = awc::Client::new();
        let post = |body: serde_json::Value| {
            client
                .post(format!("http://127.0.0.1:{gport}/api/tasks"))
                .bearer_auth(ADMIN)
                .send_json(&body)
        };
        let mut bad = post(serde_json::json!({"plugin": plugin, "params": {"other": 7}}))
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        let reason = String::from_utf8_lossy(&bad.body().await.unwrap()).into_owned();
        assert!(reason.contains("word"), "{reason}");
        let mut created = post(serde_json::json!({"plugin": plugin, "params": {"word": "hi"}}))
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let task: protocol::TaskInfo = created.json().await.unwrap();

        // The engine's worker runs it.
        let run = next_message(&mut worker).await;
        assert_eq!(run["type"], "run", "{run}");
        assert_eq!(run["task_id"], task.id.to_string());
        assert_eq!(run["params"]["word"], "hi");

        // A second task waits for the busy worker. A worker offering the plugin
        // coming and going on the gateway leaves it queued: w1 still offers it.
        let mut second = post(serde_json::json!({"plugin": plugin, "params": {"word": "again"}}))
            .await
            .unwrap();
        assert_eq!(second.status(), 201);
        let second: protocol::TaskInfo = second.json().await.unwrap();
        let mut passing = worker_on(gport, &token, "w2", 0).await;
        passing.close().await.unwrap();
        drop(passing);
        let gone = tokio::task::spawn_blocking(move || {
            eventually(Duration::from_secs(10), "w2 gone from the gateway", || {
                !http_get(gport, "/api/workers", Some(ADMIN)).1.contains("\"w2\"")
            });
            // Its departure's clean-up runs just after; give it time to act.
            std::thread::sleep(Duration::from_millis(500));
            let (_, body) = http_get(gport, &format!("/api/tasks/{}", second.id), Some(ADMIN));
            serde_json::from_str::<protocol::TaskInfo>(&body).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(gone.status, TaskStatus::Queued, "{gone:?}");

        for frame in [
            serde_json::json!({"type": "logs", "task_id": task.id, "entries": [
                {"seq": 1, "timestamp": "2026-12-01T00:00:00Z", "level": "INFO", "message": "hi"}]}),
            serde_json::json!({"type": "finish", "task_id": task.id, "status": "success",
                "result": {"said": "hi"}}),
        ] {
            worker
                .send(awc::ws::Message::Text(frame.to_string().into()))
                .await
                .unwrap();
        }
        let run = loop {
            let message = next_message(&mut worker).await;
            if message["type"] == "run" {
                break message;
            }
        };
        assert_eq!(run["task_id"], gone.id.to_string(), "{run}");
        let finish = serde_json::json!({"type": "finish", "task_id": gone.id, "status": "success"});
        worker
            .send(awc::ws::Message::Text(finish.to_string().into()))
            .await
            .unwrap();
        let id = task.id.to_string();
        let (info, logs) = tokio::task::spawn_blocking(move || {
            let info = common::wait_done(&gateway, &id);
            let logs = entries(&stdout(&gateway.cli(&["logs", &id, "--json"])));
            let second = common::wait_done(&gateway, &gone.id.to_string());
            assert_eq!(second.status, TaskStatus::Success, "{second:?}");
            (info, logs)
        })
        .await
        .unwrap();
        (task, info, logs)
    });
    assert_eq!(info.status, TaskStatus::Success, "{info:?}");
    assert_eq!(info.node.as_deref(), Some("e1"), "ran on the worker's node");
    assert_eq!(info.result, Some(serde_json::json!({"said": "hi"})));
    assert_eq!(info.id, task.id);
    let messages: Vec<&str> = logs.iter().map(|e| e.message()).collect();
    assert!(messages.contains(&"hi"), "{messages:?}");
}

/// A worker connected to `port` by hand, offering `remote-echo`, once `token`
/// works there (a token made on another node reaches this one within moments).
async fn worker_on(port: u16, token: &str, id: &str, capacity: usize) -> Ws {
    use futures_util::SinkExt;
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut worker = loop {
        match awc::Client::new()
            .ws(format!("ws://127.0.0.1:{port}/ws/worker"))
            .bearer_auth(token)
            .connect()
            .await
        {
            Ok((_, conn)) => break conn,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let hello = serde_json::json!({
        "type": "hello", "protocol": 1, "worker_id": id, "capacity": capacity,
        "plugins": [{"name": "remote-echo", "description": "says a word back",
            "params_schema": {"type": "object", "required": ["word"],
                "properties": {"word": {"type": "string"}}}}],
    });
    worker
        .send(awc::ws::Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_message(&mut worker).await["type"], "welcome");
    worker
}

#[test]
fn a_gateway_that_missed_other_nodes_notices_reads_them_again() {
    let Some((gateway, _engine, fresh, _spools)) = gateway_and_engine(&[]) else {
        return;
    };
    let (port, pid, url) = (gateway.port, gateway.child.id() as i32, fresh.url.clone());
    let ((seqs, caught_up, statuses), watched, (followed, unfollowed), gateway) =
        actix_rt::System::new().block_on(async move {
            let watcher = ws(port, serde_json::json!({"type": "subscribe_tasks"})).await;
            let followed = synthetic(&gateway, 6_000, 3_000);
            let follower = ws(
                port,
                serde_json::json!({"type": "subscribe", "task_id": followed}),
            )
            .await;
            wait_stored(&gateway, &followed);
            let unfollowed = synthetic(&gateway, 1_000, 1_000);

            // The gateway freezes and its listening connection drops; both tasks end
            // on the engine meanwhile, so their last notices reach nobody here.
            // SAFETY: signalling the server process this test started.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
            assert_eq!(
                testkit::terminate_connections(&url, "tasklens listen g1"),
                1
            );
            let db = storage::Db::connect(&storage::DatabaseSettings::new(url.clone())).unwrap();
            for task in [&followed, &unfollowed] {
                let id: protocol::TaskId = task.parse().unwrap();
                eventually(
                    Duration::from_secs(30),
                    "the engine ending the task",
                    || {
                        db.run_blocking(|c| storage::tasks::get_task(c, id))
                            .unwrap()
                            .is_some_and(|t| t.status.is_terminal())
                    },
                );
            }
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };

            // Pings keep both connections busy: a missed ending would wait for ever.
            let within = Duration::from_secs(30);
            let followed_to_end = tokio::time::timeout(within, follow_to_end(follower))
                .await
                .expect("the followed task's end reaches its follower");
            let mut watcher = watcher;
            let mut watched = Vec::new();
            let unfollowed_done = (unfollowed.clone(), "success".to_owned());
            tokio::time::timeout(within, async {
                while !watched.contains(&unfollowed_done) {
                    let msg = next_message(&mut watcher).await;
                    if msg["type"] == "task" {
                        let task = msg["task"]["id"].as_str().unwrap().to_owned();
                        watched.push((task, msg["task"]["status"].as_str().unwrap().to_owned()));
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("the other task's end reaches the task list: {watched:?}"));
            (followed_to_end, watched, (followed, unfollowed), gateway)
        });
    assert!(caught_up);
    assert_eq!(
        seqs,
        stored_seqs(&gateway, &followed),
        "every record, in order, once"
    );
    assert_eq!(statuses.last().map(String::as_str), Some("success"));
    assert!(
        watched.contains(&(unfollowed, "success".to_owned())),
        "{watched:?}"
    );
}

#[test]
fn a_cancel_reaches_an_engine_that_missed_its_notice() {
    let Some((fresh, spools)) = shared_db() else {
        return;
    };
    // The engine is frozen for a moment: it must not be judged dead meanwhile.
    let slow = ("TASKLENS_NODE_TIMEOUT_SECS", "30");
    let gateway = node_with(
        &fresh.url,
        "g1",
        spools[0].path(),
        &[("TASKLENS_ROLE", "gateway"), slow],
    );
    let engine = node_with(
        &fresh.url,
        "e1",
        spools[1].path(),
        &[("TASKLENS_ROLE", "engine"), slow],
    );
    let task = synthetic(&gateway, 10_000_000, 1_000);
    wait_stored(&gateway, &task);

    // The engine's listening connection drops while it is frozen, so the cancel's
    // notice reaches nobody there; the request stays on the task.
    let pid = engine.child.id() as i32;
    // SAFETY: signalling the server process this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    assert_eq!(
        testkit::terminate_connections(&fresh.url, "tasklens listen e1"),
        1
    );
    let asked = gateway.cli(&["cancel", &task]);
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );

    let mut ended = task_info(&gateway, &task);
    eventually(
        Duration::from_secs(20),
        "the engine cancelling the task",
        || {
            ended = task_info(&gateway, &task);
            ended.status.is_terminal()
        },
    );
    assert_eq!(ended.status, TaskStatus::Cancelled, "{ended:?}");
    assert_eq!(ended.node.as_deref(), Some("e1"));
}

#[test]
fn a_second_node_on_the_same_spool_directory_is_refused_and_the_first_goes_on() {
    let Some((fresh, spools)) = shared_db() else {
        return;
    };
    let first = node(&fresh.url, "n1", spools[0].path());
    let port = free_port();
    let second =
        testkit::serve::command(std::path::Path::new(common::BIN), port, &fresh.url, ADMIN)
            .env("TASKLENS_NODE_ID", "n2")
            .env("TASKLENS_SPOOL_DIR", spools[0].path())
            .output()
            .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("already using the spool directory")
            && err.contains(&format!("pid {}", first.child.id()))
            && err.contains("TASKLENS_SPOOL_DIR"),
        "{err}"
    );
    let id = synthetic(&first, 100, 10_000);
    assert_eq!(common::wait_done(&first, &id).status, TaskStatus::Success);
    // With a directory of its own, it starts.
    let second = node(&fresh.url, "n2", spools[1].path());
    assert_eq!(
        nodes(&second),
        [("n1".to_owned(), true), ("n2".to_owned(), true)]
    );
}

#[test]
fn three_nodes_started_together_on_an_empty_database_all_start() {
    let Some((fresh, _spools)) = shared_db() else {
        return;
    };
    // Started at once, each migrating, registering and storing the admin token.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
    let starting: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|id| {
            let (url, barrier) = (fresh.url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let spool = tempfile::tempdir().unwrap();
                barrier.wait();
                (node(&url, id, spool.path()), spool)
            })
        })
        .collect();
    let nodes_up: Vec<_> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    for (server, _) in &nodes_up {
        let (status, body) = http_get(server.port, "/api/me", Some(ADMIN));
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        nodes(&nodes_up[0].0),
        [
            ("a".to_owned(), true),
            ("b".to_owned(), true),
            ("c".to_owned(), true)
        ]
    );
}

#[test]
fn settings_and_revocations_on_a_gateway_reach_an_engine_and_another_gateway_within_2_s() {
    let Some((fresh, spools)) = shared_db() else {
        return;
    };
    let within = Duration::from_secs(2);
    let third = tempfile::tempdir().unwrap();
    let g1 = gateway_node(&fresh.url, spools[0].path());
    let g2 = node_with(
        &fresh.url,
        "g2",
        third.path(),
        &[("TASKLENS_ROLE", "gateway")],
    );
    let e1 = node_with(
        &fresh.url,
        "e1",
        spools[1].path(),
        &[("TASKLENS_ROLE", "engine")],
    );
    let create = |name: &str, role: &str| {
        stdout(&g1.cli(&["tokens", "create", name, "--role", role]))
            .trim()
            .to_owned()
    };
    let (viewer, worker_token) = (create("carol", "viewer"), create("builder", "worker"));
    eventually(within, "a token made on g1 working on g2", || {
        http_get(g2.port, "/api/me", Some(&viewer)).0 == 200
    });
    // Every level, on the engine, for the settings change.
    let task = synthetic(&g1, 10_000_000, 2_000);
    wait_stored(&g1, &task);

    let (g2_port, e1_port) = (g2.port, e1.port);
    let (changed_at, g1) = actix_rt::System::new().block_on(async move {
        use futures_util::StreamExt;
        let (_, mut watching) = awc::Client::new()
            .ws(format!("ws://127.0.0.1:{g2_port}/ws"))
            .bearer_auth(&viewer)
            .connect()
            .await
            .unwrap();
        let mut worker = worker_on(e1_port, &worker_token, "w1", 1).await;

        let g1 = tokio::task::spawn_blocking(move || {
            stdout(&g1.cli(&["tokens", "delete", "carol"]));
            stdout(&g1.cli(&["tokens", "delete", "builder"]));
            g1
        })
        .await
        .unwrap();
        let deleted = Instant::now();
        // Both connections end, each within 2 s of the deletion.
        for (what, conn) in [
            ("the viewer's /ws on g2", &mut watching),
            ("the worker on e1", &mut worker),
        ] {
            let left = within.saturating_sub(deleted.elapsed());
            let ended = tokio::time::timeout(left, async {
                loop {
                    match conn.next().await {
                        None | Some(Err(_)) | Some(Ok(awc::ws::Frame::Close(_))) => return,
                        Some(Ok(_)) => {}
                    }
                }
            })
            .await;
            assert!(
                ended.is_ok(),
                "{what} still open {:?} after its token was deleted",
                deleted.elapsed()
            );
        }
        assert_eq!(http_get(g2_port, "/api/me", Some(&viewer)).0, 401);

        let g1 = tokio::task::spawn_blocking(move || {
            stdout(&g1.cli(&["settings", "set", "--task-level", "warn"]));
            g1
        })
        .await
        .unwrap();
        let changed_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        (changed_at, g1)
    });
    // The engine keeps only WARNING and above of what its task logs from 2 s after
    // the change made on g1.
    let after = changed_at + 2_000_000;
    let mut kept = Vec::new();
    eventually(
        Duration::from_secs(20),
        "the task storing records from after the change",
        || {
            kept = entries(&stdout(
                &g1.cli(&["logs", &task, "--json", "--tail", "10000"]),
            ));
            kept.last()
                .is_some_and(|e| e.timestamp.as_micros() > after + 1_000_000)
        },
    );
    let late: Vec<_> = kept
        .iter()
        .filter(|e| e.timestamp.as_micros() > after)
        .collect();
    assert!(!late.is_empty());
    assert!(
        late.iter().all(|e| e.level >= protocol::LogLevel::Warning),
        "INFO or DEBUG kept after the change: {:?}",
        late.iter().find(|e| e.level < protocol::LogLevel::Warning)
    );
    assert!(
        kept.iter().any(|e| e.level < protocol::LogLevel::Warning),
        "the task did keep lower levels before the change"
    );
}

/// A live search on a gateway (`subscribe_all`) sees the records of the tasks an
/// engine runs: of a task already running, none stored before the gateway heard
/// of it and every match after, in order; of a task started after it, every match.
/// And the engine writes sooner for it, as for a follower: here it would write
/// every 60 s.
#[test]
fn a_live_search_on_a_gateway_sees_what_an_engine_runs() {
    use futures_util::SinkExt;
    let Some((g1, _engine, fresh, _spools)) =
        gateway_and_engine(&[("TASKLENS_FLUSH_INTERVAL_MS", "60000")])
    else {
        return;
    };
    let (spool, url) = (tempfile::tempdir().unwrap(), fresh.url.clone());
    let (early, before, late, matched, late_sooner, g1, g2) =
        actix_rt::System::new().block_on(async move {
            let early = synthetic(&g1, 1_500, 150);
            // A follower on the first gateway has the engine write `early` as it runs.
            let follower = ws(
                g1.port,
                serde_json::json!({"type": "subscribe", "task_id": early}),
            )
            .await;
            let follower = actix_rt::spawn(follow_to_end(follower));
            wait_stored(&g1, &early);
            let before = *stored_seqs(&g1, &early).last().unwrap();
            // Started now, this gateway heard nothing of what `early` stored so far.
            let g2 = node_with(&url, "g2", spool.path(), &[("TASKLENS_ROLE", "gateway")]);
            let mut search = ws(
                g2.port,
                serde_json::json!({"type": "subscribe_all", "filter": {"level": "ERROR"}}),
            )
            .await;
            for message in [
                serde_json::json!({"type": "subscribe_tasks"}),
                // Answered once the messages before it are handled.
                serde_json::json!({"type": "unsubscribe", "task_id": early}),
            ] {
                search
                    .send(awc::ws::Message::Text(message.to_string().into()))
                    .await
                    .unwrap();
            }
            while next_message(&mut search).await["type"] != "error" {}
            let late = synthetic(&g1, 800, 40);
            let mut matched: std::collections::HashMap<String, Vec<u64>> = Default::default();
            let (mut ended, mut late_sooner) = (Vec::new(), None);
            while ended.len() < 2 {
                let msg = next_message(&mut search).await;
                match msg["type"].as_str().unwrap() {
                    "matched" => {
                        let task = msg["task_id"].as_str().unwrap().to_owned();
                        let seqs = msg["entries"].as_array().unwrap().iter();
                        let seqs: Vec<u64> = seqs.map(|e| e["seq"].as_u64().unwrap()).collect();
                        assert!(!seqs.is_empty(), "{msg}");
                        // Once `early` ended, nothing else has the engine write sooner.
                        if task == late && ended.contains(&early) && late_sooner.is_none() {
                            late_sooner = Some(task_info(&g1, &late).status == TaskStatus::Running);
                        }
                        matched.entry(task).or_default().extend(seqs);
                    }
                    "task" => {
                        let status = msg["task"]["status"].as_str().unwrap();
                        let task = msg["task"]["id"].as_str().unwrap().to_owned();
                        if !["queued", "running"].contains(&status) && !ended.contains(&task) {
                            ended.push(task);
                        }
                    }
                    "error" => panic!("{msg}"),
                    _ => {}
                }
            }
            let (_, caught_up, _) = follower.await.unwrap();
            assert!(caught_up);
            (early, before, late, matched, late_sooner, g1, g2)
        });
    let errors = |task: &str| -> Vec<u64> {
        entries(&stdout(
            &g1.cli(&["logs", task, "--json", "--level", "ERROR"]),
        ))
        .iter()
        .map(|e| e.seq)
        .collect()
    };
    let seen = matched.get(&early).cloned().unwrap_or_default();
    let first = *seen.first().expect("matches of the task already running");
    assert!(
        first > before,
        "nothing stored before the gateway heard of the task: {first} <= {before}"
    );
    let expected: Vec<u64> = errors(&early).into_iter().filter(|s| *s >= first).collect();
    assert_eq!(
        seen, expected,
        "every match after the first, in order, once"
    );
    assert_eq!(
        matched.get(&late),
        Some(&errors(&late)),
        "every match of a task started after the search"
    );
    assert_eq!(matched.len(), 2, "{:?}", matched.keys());
    assert_eq!(
        late_sooner,
        Some(true),
        "a match reached the search while the task ran, with no follower"
    );
    drop((g1, g2, fresh));
}
