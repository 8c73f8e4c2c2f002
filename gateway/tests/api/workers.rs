//! Remote workers on `/ws/worker`, with a worker written here against the protocol
//! in docs/api.md: tasks run, log, finish, resume after a dropped connection, end
//! `interrupted` when the worker does not come back, and a worker that breaks the
//! protocol is closed without hurting other tasks.

use std::time::Duration;

use actix_web::http::StatusCode;
use protocol::{LogLevel, ServerMessage, TaskId, TaskStatus};
use serde_json::{json, Value};
use testkit::{backends, FreshDb};

use crate::helpers::{assert_ascending, spawn_app, spawn_app_with, TestApp, Tweaks, WorkerConn};

async fn hello(
    conn: &mut WorkerConn,
    id: &str,
    plugin: &str,
    capacity: u32,
    resume: &[TaskId],
) -> Value {
    conn.send(json!({
        "type": "hello", "protocol": 1, "worker_id": id, "name": format!("host-{id}"),
        "capacity": capacity, "resume": resume,
        "plugins": [{"name": plugin, "description": "echoes",
                     "params_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": false},
                     "example_params": {"n": 3}}],
    }))
    .await;
    conn.expect("welcome").await
}

fn records(seqs: std::ops::RangeInclusive<u64>) -> Value {
    Value::Array(
        seqs.map(|seq| {
            let level = ["DEBUG", "INFO", "WARNING", "ERROR"][(seq % 4) as usize];
            json!({"seq": seq, "timestamp": "2026-11-30T10:00:00.000001Z", "level": level,
                   "source": if seq % 2 == 0 { "api" } else { "worker" },
                   "message": format!("record {seq}"), "metadata": {"i": seq}})
        })
        .collect(),
    )
}

fn task_id(msg: &Value) -> TaskId {
    msg["task_id"].as_str().unwrap().parse().unwrap()
}

async fn worker_token(app: &TestApp, name: &str) -> String {
    app.token(name, "worker").await
}

#[actix_rt::test]
async fn a_remote_task_runs_logs_and_finishes_like_a_local_one() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let token = worker_token(&app, "runner").await;
        let mut worker = app.worker_ws(&token).await.unwrap();
        let welcome = hello(&mut worker, "w-1", "echo", 2, &[]).await;
        assert_eq!(welcome["protocol"], 1);
        assert_eq!(welcome["settings"]["task_log_level"], "INFO");
        assert!(welcome["max_unacked_bytes"].as_u64().unwrap() > 0);

        let (status, plugins) = app.get("/api/plugins").await;
        assert_eq!(status, StatusCode::OK);
        let echo = plugins
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "echo")
            .expect("echo listed");
        assert_eq!(echo["workers"], json!(["w-1"]));
        assert_eq!(echo["params_schema"]["additionalProperties"], false);
        let synthetic = plugins
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "synthetic")
            .unwrap();
        assert_eq!(
            synthetic["params_schema"]["properties"]["count"]["type"],
            "integer"
        );
        let (_, workers) = app.get("/api/workers").await;
        assert_eq!(workers[0]["id"], "w-1");
        assert_eq!(workers[0]["token"], "runner");
        assert_eq!(workers[0]["capacity"], 2);

        // Refused against the worker's schema before it is created.
        let (status, body) = app
            .post_as(
                &app.viewer,
                "/api/tasks",
                json!({"plugin": "echo", "params": {"m": 1}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("unknown field `m`"),
            "{body}"
        );

        let mut follower = app.ws(Some(&app.viewer)).await;
        let task = app
            .start_task_as(&app.viewer, "echo", json!({"n": 3}))
            .await;
        follower
            .send(json!({"type": "subscribe", "task_id": task.id, "filter": {"level": "WARNING", "sources": ["api"]}}))
            .await;
        let run = worker.expect("run").await;
        assert_eq!(task_id(&run), task.id);
        assert_eq!(run["plugin"], "echo");
        assert_eq!(run["params"], json!({"n": 3}));
        worker
            .send(json!({"type": "logs", "task_id": task.id, "entries": records(1..=600)}))
            .await;
        worker
            .send(json!({"type": "logs", "task_id": task.id, "entries": records(601..=1000)}))
            .await;
        // Resent records are skipped.
        worker
            .send(json!({"type": "logs", "task_id": task.id, "entries": records(990..=1000)}))
            .await;
        worker.send(json!({"type": "finish", "task_id": task.id, "status": "success", "result": {"echoed": 3}})).await;
        let mut acked = 0;
        loop {
            let msg = worker.expect_any().await;
            match msg["type"].as_str().unwrap() {
                "ack" => acked = acked.max(msg["seq"].as_u64().unwrap()),
                "done" => {
                    assert_eq!(msg["status"], "success");
                    break;
                }
                other => panic!("unexpected {other}: {msg}"),
            }
        }
        assert_eq!(acked, 1000, "every record acknowledged before done");
        let done = app.wait_done(task.id).await;
        assert_eq!(done.status, TaskStatus::Success);
        assert_eq!(done.result, Some(json!({"echoed": 3})));
        let stored = app.all_logs(task.id, "").await;
        assert_eq!(
            stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=1000).collect::<Vec<_>>()
        );
        assert_eq!(stored[1].source.as_ref(), "api");
        assert_eq!(stored[1].level, LogLevel::Warning);
        assert_eq!(stored[1].metadata().unwrap(), r#"{"i":2}"#);
        let live = follower.follow_to_end(task.id).await;
        let filtered = app.all_logs(task.id, "level=WARNING&source=api").await;
        assert!(!filtered.is_empty());
        assert_ascending(&live.entries);
        assert_eq!(
            live.entries
                .iter()
                .map(|e| (e.seq, e.message().to_owned()))
                .collect::<Vec<_>>(),
            filtered
                .iter()
                .map(|e| (e.seq, e.message().to_owned()))
                .collect::<Vec<_>>(),
            "{backend}: the live stream with a filter equals the stored records with it"
        );
        drop(worker);
    }
}

impl WorkerConn {
    async fn expect_any(&mut self) -> Value {
        match self.next(Duration::from_secs(30)).await {
            Some(Ok(msg)) => msg,
            other => panic!("waiting for a message: {other:?}"),
        }
    }
}

#[actix_rt::test]
async fn roles_are_kept_apart() {
    let app = spawn_app("sqlite").await;
    let token = worker_token(&app, "only-a-worker").await;
    assert_eq!(
        app.worker_ws(&app.viewer).await.err(),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(
        app.worker_ws("tlk_not-a-token").await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    for path in ["/api/tasks", "/api/plugins", "/api/me", "/api/workers"] {
        let (status, body) = app.get_as(&token, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("/ws/worker"),
            "{body}"
        );
    }
    let (status, _) = app
        .post_as(
            &token,
            "/api/tasks",
            json!({"plugin": "synthetic", "params": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor may it follow logs.
    let mut ws = app.ws(None).await;
    ws.send(json!({"type": "auth", "token": token})).await;
    match ws.next(Duration::from_secs(10)).await {
        Some(Ok(ServerMessage::Error { message, .. })) => {
            assert!(message.contains("worker token"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // An admin token may run a worker.
    let mut admin_worker = app.worker_ws(&app.admin).await.unwrap();
    hello(&mut admin_worker, "admin-w", "echo", 1, &[]).await;
    // A plugin name belongs to the token whose workers offer it: another token's
    // worker cannot take its tasks (and their params).
    let mut rival = app.worker_ws(&token).await.unwrap();
    rival
        .send(json!({"type": "hello", "protocol": 1, "worker_id": "rival", "capacity": 8, "plugins": [{"name": "echo"}]}))
        .await;
    let error = rival.expect_fatal().await;
    assert!(
        error.contains("offered by workers of another token"),
        "{error}"
    );
}

#[actix_rt::test]
async fn a_worker_that_breaks_the_protocol_is_closed_and_others_go_on() {
    let app = spawn_app("sqlite").await;
    let token = worker_token(&app, "runner").await;
    let mut good = app.worker_ws(&token).await.unwrap();
    hello(&mut good, "good", "steady", 1, &[]).await;
    let steady = app.start_task("steady", json!({})).await;
    let run = good.expect("run").await;
    assert_eq!(task_id(&run), steady.id);
    good.send(json!({"type": "logs", "task_id": steady.id, "entries": records(1..=10)}))
        .await;

    let cases: Vec<(&str, Value, &str)> = vec![
        ("not json", json!("{nope"), "bad message"),
        ("an unknown type", json!({"type": "dance"}), "bad message"),
        (
            "logs before hello",
            json!({"type": "logs", "task_id": steady.id, "entries": records(1..=1)}),
            "say hello first",
        ),
        (
            "an unknown version",
            json!({"type": "hello", "protocol": 99, "worker_id": "x", "capacity": 1}),
            "protocol version 99",
        ),
        (
            "a bad worker id",
            json!({"type": "hello", "protocol": 1, "worker_id": "a b", "capacity": 1}),
            "worker_id must be",
        ),
        (
            "a built-in plugin",
            json!({"type": "hello", "protocol": 1, "worker_id": "x", "capacity": 1, "plugins": [{"name": "synthetic"}]}),
            "built into the server",
        ),
        (
            "too much capacity",
            json!({"type": "hello", "protocol": 1, "worker_id": "x", "capacity": 100000}),
            "capacity must be",
        ),
    ];
    for (what, msg, expected) in cases {
        let mut bad = app.worker_ws(&token).await.unwrap();
        match msg {
            Value::String(text) => {
                futures_util::SinkExt::send(&mut bad.conn, awc::ws::Message::Text(text.into()))
                    .await
                    .unwrap()
            }
            msg => bad.send(msg).await,
        }
        let error = bad.expect_fatal().await;
        assert!(error.contains(expected), "{what}: {error}");
    }

    // After hello: another connection's task, an unknown task, a seq gap, a seq
    // going backwards within a message.
    let other = app.start_task("steady", json!({})).await; // queued: `good` is full
    for (what, entries, task, expected) in [
        (
            "a task of another connection",
            records(1..=1),
            other.id,
            "not running on this connection",
        ),
        (
            "an unknown task",
            records(1..=1),
            TaskId(uuid::Uuid::new_v4()),
            "not running on this connection",
        ),
    ] {
        let mut bad = app.worker_ws(&token).await.unwrap();
        hello(&mut bad, "bad", "other", 1, &[]).await;
        bad.send(json!({"type": "logs", "task_id": task, "entries": entries}))
            .await;
        let error = bad.expect_fatal().await;
        assert!(error.contains(expected), "{what}: {error}");
    }
    let mut gappy = app.worker_ws(&token).await.unwrap();
    hello(&mut gappy, "gappy", "gappy", 1, &[]).await;
    let gap_task = app.start_task("gappy", json!({})).await;
    gappy.expect("run").await;
    gappy
        .send(json!({"type": "logs", "task_id": gap_task.id, "entries": records(1..=3)}))
        .await;
    gappy
        .send(json!({"type": "logs", "task_id": gap_task.id, "entries": records(7..=8)}))
        .await;
    let error = gappy.expect_fatal().await;
    assert!(error.contains("seq 7 does not follow 3"), "{error}");
    let mut backwards = app.worker_ws(&token).await.unwrap();
    hello(&mut backwards, "gappy", "gappy", 1, &[gap_task.id]).await;
    let mut entries = records(4..=6);
    entries.as_array_mut().unwrap().swap(0, 2);
    backwards
        .send(json!({"type": "logs", "task_id": gap_task.id, "entries": entries}))
        .await;
    let error = backwards.expect_fatal().await;
    assert!(error.contains("seq 6 does not follow 3"), "{error}");

    // The well-behaved worker's task was never disturbed.
    good.send(json!({"type": "logs", "task_id": steady.id, "entries": records(11..=20)}))
        .await;
    good.send(json!({"type": "finish", "task_id": steady.id, "status": "success"}))
        .await;
    assert_eq!(app.wait_done(steady.id).await.status, TaskStatus::Success);
    let stored = app.all_logs(steady.id, "").await;
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    // Its place freed, the queued task runs on it now.
    assert_eq!(task_id(&good.expect("run").await), other.id);
}

#[actix_rt::test]
async fn a_dropped_connection_resumes_within_the_grace_and_not_after() {
    let tweaks = Tweaks {
        worker_grace: Duration::from_secs(2),
        ..Tweaks::default()
    };
    let app = spawn_app_with(FreshDb::new("sqlite"), tweaks).await;
    let token = worker_token(&app, "runner").await;
    let mut first = app.worker_ws(&token).await.unwrap();
    hello(&mut first, "w-r", "resumable", 2, &[]).await;
    let task = app.start_task("resumable", json!({})).await;
    first.expect("run").await;
    first
        .send(json!({"type": "logs", "task_id": task.id, "entries": records(1..=50)}))
        .await;
    loop {
        if first.expect("ack").await["seq"] == 50 {
            break;
        }
    }
    // Records not yet acknowledged when the connection breaks may or may not have
    // arrived: the worker resends them.
    first
        .send(json!({"type": "logs", "task_id": task.id, "entries": records(51..=60)}))
        .await;
    drop(first);

    let mut second = app.worker_ws(&token).await.unwrap();
    let welcome = hello(&mut second, "w-r", "resumable", 2, &[task.id]).await;
    assert_eq!(welcome["gone"], json!([]));
    let resumed = &welcome["resumed"][0];
    assert_eq!(task_id(resumed), task.id);
    let (acked, last) = (
        resumed["acked_seq"].as_u64().unwrap(),
        resumed["last_seq"].as_u64().unwrap(),
    );
    assert!(
        acked >= 50 && acked <= last && [50, 60].contains(&last),
        "{welcome}"
    );
    // Resending everything is harmless: what the server has is skipped.
    second
        .send(json!({"type": "logs", "task_id": task.id, "entries": records(1..=80)}))
        .await;
    second
        .send(json!({"type": "finish", "task_id": task.id, "status": "success"}))
        .await;
    assert_eq!(second.expect("done").await["status"], "success");
    let stored = app.all_logs(task.id, "").await;
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=80).collect::<Vec<_>>()
    );

    // Gone for longer than the grace: interrupted, with what it sent kept.
    let lost = app.start_task("resumable", json!({})).await;
    second.expect("run").await;
    second
        .send(json!({"type": "logs", "task_id": lost.id, "entries": records(1..=5)}))
        .await;
    // What was acknowledged is kept whatever happens to the worker after.
    loop {
        let ack = second.expect("ack").await;
        if task_id(&ack) == lost.id && ack["seq"] == 5 {
            break;
        }
    }
    drop(second);
    let ended = app.wait_done(lost.id).await;
    assert_eq!(ended.status, TaskStatus::Interrupted);
    assert!(
        ended
            .error
            .as_deref()
            .unwrap()
            .contains("did not come back within 2 s"),
        "{ended:?}"
    );
    let stored = app.all_logs(lost.id, "").await;
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    assert_eq!(stored[5].source.as_ref(), "system");
    // A worker coming back after that is told the task is gone.
    let mut late = app.worker_ws(&token).await.unwrap();
    let welcome = hello(&mut late, "w-r", "resumable", 2, &[lost.id]).await;
    assert_eq!(welcome["gone"], json!([lost.id]));

    // A finish sent right before the worker closes the connection still counts.
    let quick = app.start_task("resumable", json!({})).await;
    late.expect("run").await;
    late.send(json!({"type": "logs", "task_id": quick.id, "entries": records(1..=3)}))
        .await;
    late.send(
        json!({"type": "finish", "task_id": quick.id, "status": "success", "result": {"ok": true}}),
    )
    .await;
    futures_util::SinkExt::send(&mut late.conn, awc::ws::Message::Close(None))
        .await
        .unwrap();
    while let Some(Ok(_)) = late.next(Duration::from_secs(10)).await {}
    drop(late);
    let done = app.wait_done(quick.id).await;
    assert_eq!(done.status, TaskStatus::Success, "{done:?}");
    assert_eq!(app.all_logs(quick.id, "").await.len(), 3);

    // Tasks queued for a plugin nobody offers any more do not wait for ever.
    let mut last = app.worker_ws(&token).await.unwrap();
    hello(&mut last, "w-last", "fleeting", 1, &[]).await;
    let running = app.start_task("fleeting", json!({})).await;
    last.expect("run").await;
    let queued = app.start_task("fleeting", json!({})).await;
    drop(last);
    assert_eq!(
        app.wait_done(running.id).await.status,
        TaskStatus::Interrupted
    );
    let orphan = app.wait_done(queued.id).await;
    assert_eq!(orphan.status, TaskStatus::Interrupted);
    assert!(
        orphan
            .error
            .as_deref()
            .unwrap()
            .contains("no worker offers plugin"),
        "{orphan:?}"
    );
}

#[actix_rt::test]
async fn cancel_reaches_the_worker_and_two_workers_share_tasks() {
    let app = spawn_app("sqlite").await;
    let token = worker_token(&app, "runner").await;
    let mut a = app.worker_ws(&token).await.unwrap();
    let mut b = app.worker_ws(&token).await.unwrap();
    hello(&mut a, "a", "shared", 2, &[]).await;
    hello(&mut b, "b", "shared", 2, &[]).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(app.start_task("shared", json!({})).await.id);
    }
    let (run_a1, run_a2) = (a.expect("run").await, a.expect("run").await);
    let (run_b1, run_b2) = (b.expect("run").await, b.expect("run").await);
    let mut got: Vec<TaskId> = [&run_a1, &run_a2, &run_b1, &run_b2]
        .iter()
        .map(|m| task_id(m))
        .collect();
    got.sort();
    tasks.sort();
    assert_eq!(got, tasks, "each worker took two of the four");
    let (status, _) = app
        .post_as(
            &app.admin,
            &format!("/api/tasks/{}/cancel", task_id(&run_a1)),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let cancel = a.expect("cancel").await;
    assert_eq!(task_id(&cancel), task_id(&run_a1));
    a.send(json!({"type": "finish", "task_id": task_id(&run_a1), "status": "cancelled"}))
        .await;
    assert_eq!(
        app.wait_done(task_id(&run_a1)).await.status,
        TaskStatus::Cancelled
    );
    // Settings changes reach running tasks.
    let (status, _) = app
        .put_as(&app.admin, "/api/settings/logging", json!({"app_log_level": "INFO", "task_log_level": "DEBUG", "belief_scope_enabled": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let settings = a.expect("settings").await;
    assert_eq!(settings["settings"]["task_log_level"], "DEBUG");
    let fail = |run: &Value| json!({"type": "finish", "task_id": task_id(run), "status": "failed", "error": "boom"});
    a.send(fail(&run_a2)).await;
    b.send(fail(&run_b1)).await;
    b.send(fail(&run_b2)).await;
    for run in [&run_a2, &run_b1, &run_b2] {
        let done = app.wait_done(task_id(run)).await;
        assert_eq!(done.status, TaskStatus::Failed);
        assert_eq!(done.error.as_deref(), Some("boom"));
    }
}
