//! `/ws` with real WebSocket clients: history → live hand-off, server-side filters,
//! resumption, many subscribers, slow clients, bad messages, authentication.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use protocol::{ServerMessage, TaskStatus};
use testkit::{backends, FreshDb};

use crate::helpers::{assert_ascending, spawn_app, spawn_app_with, Tweaks, ADMIN_TOKEN};

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn subscribe(
    task: protocol::TaskId,
    filter: serde_json::Value,
    after_seq: u64,
) -> serde_json::Value {
    serde_json::json!({"type": "subscribe", "task_id": task, "filter": filter, "after_seq": after_seq})
}

/// US1 at protocol level: a subscriber filtering `superset_api` sees only those
/// records, and sees each one well before it is even written to the database.
#[actix_rt::test]
async fn a_filtered_subscriber_gets_only_its_source_and_gets_it_live() {
    for backend in backends() {
        let tweaks = Tweaks {
            flush_interval_ms: 10_000,
            ..Default::default()
        };
        let app = spawn_app_with(FreshDb::new(backend), tweaks).await;
        let task = app
            .start_task("synthetic", serde_json::json!({"count": 300, "rate": 100}))
            .await;
        let mut ws = app.ws(Some(&app.viewer)).await;
        ws.send(subscribe(
            task.id,
            serde_json::json!({"sources": ["superset_api"]}),
            0,
        ))
        .await;
        let mut live = Vec::new();
        let got = loop {
            match ws
                .next(Duration::from_secs(30))
                .await
                .expect("messages keep coming")
            {
                Ok(ServerMessage::CaughtUp { .. }) => break true,
                Ok(ServerMessage::Logs { .. }) => {}
                other => panic!("{other:?}"),
            }
        };
        assert!(got);
        let received = loop {
            match ws
                .next(Duration::from_secs(30))
                .await
                .expect("messages keep coming")
            {
                Ok(ServerMessage::Logs { entries, .. }) => {
                    let at = now_micros();
                    live.extend(
                        entries
                            .into_iter()
                            .map(|e| (at - e.timestamp.as_micros(), e)),
                    );
                }
                Ok(ServerMessage::Task { task: t }) if t.status.is_terminal() => break t,
                Ok(ServerMessage::Task { .. }) => {}
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(received.status, TaskStatus::Success);
        assert!(
            live.len() > 50,
            "{backend}: most records arrived live ({})",
            live.len()
        );
        assert!(live.iter().all(|(_, e)| &*e.source == "superset_api"));
        // The sink flushes every 10 s here, so these came from the live stream.
        let slowest = live.iter().map(|(lag, _)| *lag).max().unwrap();
        assert!(
            slowest < 1_000_000,
            "{backend}: a live record took {slowest} µs to arrive"
        );
    }
}

/// Subscribing in the middle of a fast task, with several filters: each subscriber
/// receives exactly what REST returns for its filter, in order, without duplicates.
#[actix_rt::test]
async fn history_then_live_equals_the_rest_result_for_the_same_filter() {
    for backend in backends() {
        let tweaks = Tweaks {
            flush_interval_ms: 300,
            ..Default::default()
        };
        let app = spawn_app_with(FreshDb::new(backend), tweaks).await;
        let task = app
            .start_task(
                "synthetic",
                serde_json::json!({"count": 60_000, "rate": 30_000}),
            )
            .await;
        actix_rt::time::sleep(Duration::from_millis(700)).await;
        let filters = [
            ("", serde_json::json!({})),
            (
                "level=WARNING&source=superset_api",
                serde_json::json!({"level": "WARNING", "sources": ["superset_api"]}),
            ),
            (
                "q=record%201&meta.dashboard_id=3",
                serde_json::json!({"q": "record 1", "meta": {"dashboard_id": "3"}}),
            ),
            (
                "re=7%24&source=plugin,system",
                serde_json::json!({"re": "7$", "sources": ["plugin", "system"]}),
            ),
        ];
        let mut clients = Vec::new();
        for (_, filter) in &filters {
            let mut ws = app.ws(Some(&app.viewer)).await;
            ws.send(subscribe(task.id, filter.clone(), 0)).await;
            clients.push(ws);
        }
        let mut results = Vec::new();
        for ws in &mut clients {
            results.push(ws.follow_to_end(task.id).await);
        }
        for ((query, _), got) in filters.iter().zip(results) {
            assert!(got.errors.is_empty(), "{:?}", got.errors);
            assert_ascending(&got.entries);
            let rest = app.all_logs(task.id, query).await;
            assert!(!rest.is_empty());
            assert_eq!(got.entries.len(), rest.len(), "{backend} ?{query}");
            assert_eq!(got.entries, rest, "{backend} ?{query}");
        }
    }
}

#[actix_rt::test]
async fn after_seq_resumes_and_set_filter_sends_history_again() {
    let app = spawn_app("sqlite").await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 1000}))
        .await;
    let mut ws = app.ws(Some(&app.viewer)).await;
    ws.send(subscribe(task.id, serde_json::json!({}), 700))
        .await;
    let got = ws.follow_to_end(task.id).await;
    assert_eq!(got.entries.first().map(|e| e.seq), Some(701));
    assert_eq!(got.entries.len(), 50, "seqs 701..=750 of the 750 stored");
    assert_eq!(got.caught_up, Some(750));

    ws.send(serde_json::json!({"type": "set_filter", "task_id": task.id, "filter": {"level": "ERROR", "sources": ["plugin"]}})).await;
    let again = ws.follow_to_end(task.id).await;
    let want = app.all_logs(task.id, "level=ERROR&source=plugin").await;
    let seqs = |v: &[protocol::LogEntry]| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&again.entries), seqs(&want));
    assert_eq!(again.entries, want);
    assert_eq!(want.len(), 84, "i ≡ 3 (mod 12) below 1000");

    ws.send(serde_json::json!({"type": "unsubscribe", "task_id": task.id}))
        .await;
    ws.send(serde_json::json!({"type": "unsubscribe", "task_id": task.id}))
        .await;
    match ws.next(Duration::from_secs(5)).await {
        Some(Ok(ServerMessage::Error { message, task_id })) => {
            assert!(message.contains("not subscribed"));
            assert_eq!(task_id, Some(task.id));
        }
        other => panic!("{other:?}"),
    }
}

/// 100 subscribers on 10 concurrent tasks: each gets exactly its task's matching records.
#[actix_rt::test]
async fn a_hundred_subscribers_on_ten_tasks_get_exactly_their_records() {
    let app = spawn_app("sqlite").await;
    let mut tasks = Vec::new();
    for n in 0..10u64 {
        tasks.push(
            app.start_task(
                "synthetic",
                serde_json::json!({"count": 3000 + n, "rate": 6000}),
            )
            .await,
        );
    }
    let filters = [
        ("", serde_json::json!({})),
        ("level=ERROR", serde_json::json!({"level": "ERROR"})),
        ("source=system", serde_json::json!({"sources": ["system"]})),
        (
            "meta.dashboard_id=9",
            serde_json::json!({"meta": {"dashboard_id": 9}}),
        ),
        ("q=record%202", serde_json::json!({"q": "record 2"})),
    ];
    let mut subs = Vec::new();
    for task in &tasks {
        for k in 0..10 {
            let (query, filter) = &filters[k % filters.len()];
            let mut ws = app.ws(Some(&app.viewer)).await;
            ws.send(subscribe(task.id, filter.clone(), 0)).await;
            subs.push((task.id, *query, ws));
        }
    }
    let mut handles = Vec::new();
    for (task_id, query, mut ws) in subs {
        handles.push(actix_rt::spawn(async move {
            (task_id, query, ws.follow_to_end(task_id).await)
        }));
    }
    for handle in handles {
        let (task_id, query, got) = handle.await.unwrap();
        let want = app.all_logs(task_id, query).await;
        let seqs = |v: &[protocol::LogEntry]| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&got.entries), seqs(&want), "task {task_id} ?{query}");
        assert_eq!(got.entries, want, "task {task_id} ?{query}");
    }
}

/// A client that stops reading is disconnected with a reason; the task and the
/// other followers carry on and miss nothing.
#[actix_rt::test]
async fn a_client_that_stops_reading_is_closed_without_hurting_others() {
    slow_and_healthy_clients().await;
}

/// The same while other processes keep every core busy: a session scheduled late
/// is not a client that does not read, so the healthy follower is never closed.
#[actix_rt::test]
async fn a_client_that_reads_is_never_closed_however_busy_the_machine() {
    let _load = CpuLoad::start();
    slow_and_healthy_clients().await;
}

/// A client that never reads again is disconnected: its deliveries wait untaken
/// past the client timeout, it is dropped as too slow, and since its session cannot
/// run to close it, the server shuts the connection down; the token's place among
/// the connections comes back.
#[actix_rt::test]
async fn a_client_that_never_reads_again_is_disconnected() {
    let app = spawn_app_with(
        FreshDb::new("sqlite"),
        Tweaks {
            ws: gateway::WsSettings {
                heartbeat_secs: 1,
                client_timeout_secs: 2,
                max_connections_per_token: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let task = app
        .start_task(
            "synthetic",
            serde_json::json!({"count": 5_000_000, "rate": 200_000}),
        )
        .await;
    let mut stuck = app.ws(Some(&app.viewer)).await;
    stuck
        .send(subscribe(task.id, serde_json::json!({}), 0))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let again = awc::Client::new()
            .ws(format!("ws://127.0.0.1:{}/ws", app.port))
            .bearer_auth(&app.viewer)
            .connect()
            .await;
        match again {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never disconnected: {e}"
                );
                actix_rt::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // Read now, the stuck connection holds what was already sent, then ends.
    let mut frames = 0usize;
    loop {
        match stuck.next(Duration::from_secs(20)).await {
            Some(Ok(_)) => frames += 1,
            Some(Err(_)) => break,
            None => panic!("the connection is still open after {frames} frames"),
        }
    }
    let (status, _) = app
        .post_as(
            &app.admin,
            &format!("/api/tasks/{}/cancel", task.id),
            serde_json::json!({}),
        )
        .await;
    assert!(status.is_success());
}

/// One `yes > /dev/null` per core, stopped (by PID) when dropped.
struct CpuLoad(Vec<std::process::Child>);

impl CpuLoad {
    fn start() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CpuLoad(
            (0..cores)
                .map(|_| {
                    std::process::Command::new("yes")
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .expect("starting `yes` for CPU load")
                })
                .collect(),
        )
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn slow_and_healthy_clients() {
    // The slow client's unread records must outgrow what the kernel holds for its
    // socket (loopback buffers grow to tens of MiB), so the stream is ~100 MiB.
    // Judged by bytes here: a client timeout longer than the test, so the slow
    // client is told why when it reads again (a shorter one also disconnects it
    // outright; see the next test).
    let ws_settings = gateway::WsSettings {
        max_queued_bytes: 8 << 20,
        heartbeat_secs: 1,
        client_timeout_secs: 120,
        ..Default::default()
    };
    let app = spawn_app_with(
        FreshDb::new("sqlite"),
        Tweaks {
            ws: ws_settings,
            ..Default::default()
        },
    )
    .await;
    let total = 750_000; // INFO and above of 1,000,000
    let task = app
        .start_task(
            "synthetic",
            serde_json::json!({"count": 1_000_000, "rate": 100_000}),
        )
        .await;
    let mut slow = app.ws(Some(&app.viewer)).await;
    slow.send(subscribe(task.id, serde_json::json!({}), 0))
        .await;
    // It reads until it is live, then stops: a session still sending history at the
    // client's pace follows nothing live, so it could never fall behind the live
    // stream (on a loaded machine the task is well under way by now).
    let mut seen = 0usize;
    loop {
        match slow.next(Duration::from_secs(30)).await {
            Some(Ok(ServerMessage::Logs { entries, .. })) => seen += entries.len(),
            Some(Ok(ServerMessage::CaughtUp { .. })) => break,
            Some(Ok(_)) => {}
            other => panic!("the slow client did not catch up: {other:?}"),
        }
    }
    let mut healthy = app.ws(Some(&app.viewer)).await;
    healthy
        .send(subscribe(task.id, serde_json::json!({"level": "ERROR"}), 0))
        .await;
    let followed = healthy.follow_to_end(task.id).await;
    let done = app.wait_done(task.id).await;
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(followed.entries, app.all_logs(task.id, "level=ERROR").await);
    assert_eq!(followed.entries.len(), 250_000);

    // Now the slow client reads: what was buffered, then the close.
    let mut told = false;
    let reason = loop {
        match slow.next(Duration::from_secs(30)).await {
            Some(Ok(ServerMessage::Logs { entries, .. })) => seen += entries.len(),
            Some(Ok(ServerMessage::Error { message, .. })) => {
                told |= message.contains("fell too far behind")
            }
            Some(Ok(_)) => {}
            Some(Err(reason)) => break reason,
            None => panic!("the slow client was never closed (received {seen} records)"),
        }
    };
    assert!(told, "the client is told why");
    let reason = reason
        .expect("a close reason")
        .description
        .unwrap_or_default();
    assert!(reason.contains("too slow"), "{reason}");
    assert!(
        seen < total,
        "the slow client did not get the whole stream ({seen})"
    );
}

#[actix_rt::test]
async fn bad_messages_get_errors_and_the_connection_stays_up() {
    let app = spawn_app("sqlite").await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 20}))
        .await;
    let mut ws = app.ws(Some(&app.viewer)).await;
    let unknown = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let bad: Vec<(String, &str)> = vec![
        ("{not json".into(), "bad message"),
        (r#"{"type":"shout"}"#.into(), "unknown variant"),
        (r#"{"task_id":"x"}"#.into(), "type"),
        (
            format!(
                r#"{{"type":"subscribe","task_id":"{}","filter":{{"level":"LOUD"}}}}"#,
                task.id
            ),
            "unknown level",
        ),
        (
            format!(
                r#"{{"type":"subscribe","task_id":"{}","filter":{{"re":"("}}}}"#,
                task.id
            ),
            "regular expression",
        ),
        (
            r#"{"type":"subscribe","task_id":"nope"}"#.into(),
            "bad message",
        ),
        (
            format!(
                r#"{{"type":"subscribe","task_id":"{}","after_seq":-3}}"#,
                task.id
            ),
            "bad message",
        ),
        (
            format!(r#"{{"type":"subscribe","task_id":"{unknown}"}}"#),
            "not found",
        ),
        ("[]".into(), "bad message"),
        (
            format!(
                r#"{{"type":"subscribe","task_id":"{}","filter":{{}},"follow":true}}"#,
                task.id
            ),
            "unknown field",
        ),
        (r#"{"type":"auth"}"#.into(), "missing field `token`"),
        (
            r#"{"type":"auth","token":"tlk_other"}"#.into(),
            "already authenticated",
        ),
        (
            format!(
                r#"{{"type":"set_filter","task_id":"{}","filter":{{}}}}"#,
                task.id
            ),
            "not subscribed",
        ),
        (
            r#"{"type":"set_filter","task_id":"nope","filter":{}}"#.into(),
            "bad message",
        ),
        (
            r#"{"type":"unsubscribe"}"#.into(),
            "missing field `task_id`",
        ),
        (
            r#"{"type":"unsubscribe","task_id":42}"#.into(),
            "bad message",
        ),
        (
            r#"{"type":"subscribe_tasks","all":true}"#.into(),
            "unknown field",
        ),
        (
            r#"{"type":"unsubscribe_tasks","all":true}"#.into(),
            "unknown field",
        ),
        (
            r#"{"type":"subscribe_all","filter":{"re":"(x"}}"#.into(),
            "regular expression",
        ),
        (
            r#"{"type":"subscribe_all","filter":{"level":"LOUD"}}"#.into(),
            "unknown level",
        ),
        (
            r#"{"type":"subscribe_all","task_id":"x"}"#.into(),
            "unknown field",
        ),
        (
            r#"{"type":"unsubscribe_all","filter":{}}"#.into(),
            "unknown field",
        ),
    ];
    for (text, needle) in bad {
        ws.send_text(&text).await;
        match ws.next(Duration::from_secs(5)).await {
            Some(Ok(ServerMessage::Error { message, .. })) => {
                assert!(message.contains(needle), "{text}: {message}")
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    ws.conn
        .send(awc::ws::Message::Binary(bytes::Bytes::from_static(
            b"\x00\x01",
        )))
        .await
        .unwrap();
    match ws.next(Duration::from_secs(5)).await {
        Some(Ok(ServerMessage::Error { message, .. })) => assert!(message.contains("binary")),
        other => panic!("{other:?}"),
    }
    // Still up and working.
    ws.send(subscribe(task.id, serde_json::json!({}), 0)).await;
    let got = ws.follow_to_end(task.id).await;
    assert_eq!(got.entries.len(), 15);
    // A bad filter in set_filter leaves the subscription as it was.
    ws.send(serde_json::json!({"type": "set_filter", "task_id": task.id, "filter": {"re": "("}}))
        .await;
    match ws.next(Duration::from_secs(5)).await {
        Some(Ok(ServerMessage::Error { message, task_id })) => {
            assert!(message.contains("regular expression"), "{message}");
            assert_eq!(task_id, Some(task.id));
        }
        other => panic!("{other:?}"),
    }
    // (set_filter on a task not followed is an error, so this proves it still is.)
    ws.send(serde_json::json!({"type": "set_filter", "task_id": task.id, "filter": {}}))
        .await;
    assert_eq!(ws.follow_to_end(task.id).await.entries.len(), 15);
}

/// One connection follows at most `max_subscriptions` tasks; the next is refused
/// with an error and the ones already followed keep working.
#[actix_rt::test]
async fn a_connection_follows_a_bounded_number_of_tasks() {
    let app = spawn_app_with(
        FreshDb::new("sqlite"),
        Tweaks {
            ws: gateway::WsSettings {
                max_subscriptions: 2,
                ..gateway::WsSettings::default()
            },
            ..Tweaks::default()
        },
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(
            app.run_task("synthetic", serde_json::json!({"count": 4}))
                .await,
        );
    }
    let mut ws = app.ws(Some(&app.viewer)).await;
    for task in &tasks[..2] {
        ws.send(subscribe(task.id, serde_json::json!({}), 0)).await;
        assert_eq!(ws.follow_to_end(task.id).await.entries.len(), 3);
    }
    ws.send(subscribe(tasks[2].id, serde_json::json!({}), 0))
        .await;
    match ws.next(Duration::from_secs(5)).await {
        Some(Ok(ServerMessage::Error { message, task_id })) => {
            assert!(message.contains("at most 2 tasks"), "{message}");
            assert_eq!(task_id, Some(tasks[2].id));
        }
        other => panic!("{other:?}"),
    }
    // Re-subscribing to a followed task is a filter change, not a third task.
    ws.send(subscribe(
        tasks[0].id,
        serde_json::json!({"level": "ERROR"}),
        0,
    ))
    .await;
    let again = ws.follow_to_end(tasks[0].id).await;
    assert!(again
        .entries
        .iter()
        .all(|e| e.level == protocol::LogLevel::Error));
    // After an unsubscribe there is room again.
    ws.send(serde_json::json!({"type": "unsubscribe", "task_id": tasks[1].id}))
        .await;
    ws.send(subscribe(tasks[2].id, serde_json::json!({}), 0))
        .await;
    assert_eq!(ws.follow_to_end(tasks[2].id).await.entries.len(), 3);
}

use futures_util::SinkExt;

#[actix_rt::test]
async fn websocket_access_needs_a_valid_token() {
    let app = spawn_app("sqlite").await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 8}))
        .await;
    let url = format!("ws://127.0.0.1:{}/ws", app.port);

    let refused = awc::Client::new()
        .ws(url.clone())
        .bearer_auth("tlk_wrong")
        .connect()
        .await;
    assert!(
        matches!(refused, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 401)
    );
    let refused = awc::Client::new()
        .ws(format!("{url}?token=tlk_wrong"))
        .connect()
        .await;
    assert!(
        matches!(refused, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 401)
    );

    // Token as query parameter.
    let (_, conn) = awc::Client::new()
        .ws(format!("{url}?token={}", app.viewer))
        .connect()
        .await
        .unwrap();
    let mut ws = crate::helpers::WsClient { conn };
    ws.send(subscribe(task.id, serde_json::json!({}), 0)).await;
    assert_eq!(ws.follow_to_end(task.id).await.entries.len(), 6);

    // Token as first message.
    let mut ws = app.ws(None).await;
    ws.send(serde_json::json!({"type": "auth", "token": ADMIN_TOKEN}))
        .await;
    ws.send(subscribe(task.id, serde_json::json!({}), 0)).await;
    assert_eq!(ws.follow_to_end(task.id).await.entries.len(), 6);

    // No token: no data, an error, close.
    let mut ws = app.ws(None).await;
    ws.send(subscribe(task.id, serde_json::json!({}), 0)).await;
    match ws.next(Duration::from_secs(5)).await {
        Some(Ok(ServerMessage::Error { message, .. })) => {
            assert!(message.contains("authenticate first"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(ws.next(Duration::from_secs(5)).await, Some(Err(_))),
        "closed"
    );

    // Malformed JSON before authenticating also ends the connection.
    let mut ws = app.ws(None).await;
    ws.send_text("{oops").await;
    match ws.next(Duration::from_secs(5)).await {
        Some(Ok(ServerMessage::Error { message, .. })) => assert!(message.contains("bad message")),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(ws.next(Duration::from_secs(5)).await, Some(Err(_))),
        "closed"
    );

    // A wrong token in the auth message.
    let mut ws = app.ws(None).await;
    ws.send(serde_json::json!({"type": "auth", "token": "tlk_wrong"}))
        .await;
    match ws.next(Duration::from_secs(5)).await {
        Some(Ok(ServerMessage::Error { message, .. })) => assert!(message.contains("not valid")),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(ws.next(Duration::from_secs(5)).await, Some(Err(_))),
        "closed"
    );
}

#[actix_rt::test]
async fn subscribe_tasks_reports_every_status_change() {
    let app = spawn_app("sqlite").await;
    let mut ws = app.ws(Some(&app.viewer)).await;
    ws.send(serde_json::json!({"type": "subscribe_tasks"}))
        .await;
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 5}))
        .await;
    let mut statuses = Vec::new();
    while statuses.last() != Some(&TaskStatus::Success) {
        match ws.next(Duration::from_secs(10)).await {
            Some(Ok(ServerMessage::Task { task: t })) if t.id == task.id => statuses.push(t.status),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        statuses,
        [TaskStatus::Queued, TaskStatus::Running, TaskStatus::Success]
    );
}

/// `task` frames show viewers a privileged task's `env` values redacted, whether
/// they watch every task or follow that one; admins see them.
#[actix_rt::test]
async fn viewers_see_a_privileged_tasks_env_redacted_in_task_frames() {
    let app = spawn_app("sqlite").await;
    let mut watching = app.ws(Some(&app.viewer)).await;
    watching
        .send(serde_json::json!({"type": "subscribe_tasks"}))
        .await;
    let mut admin = app.ws(Some(&app.admin)).await;
    admin
        .send(serde_json::json!({"type": "subscribe_tasks"}))
        .await;
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let task = app
        .run_task(
            "shell",
            serde_json::json!({"argv": ["true"], "env": {"PGPASSWORD": "s3cret"}}),
        )
        .await;
    let mut following = app.ws(Some(&app.viewer)).await;
    following
        .send(subscribe(task.id, serde_json::json!({}), 0))
        .await;
    for (ws, expected) in [
        (&mut watching, "[redacted]"),
        (&mut following, "[redacted]"),
        (&mut admin, "s3cret"),
    ] {
        let mut frames = 0;
        loop {
            match ws.next(Duration::from_secs(10)).await {
                Some(Ok(ServerMessage::Task { task: t })) if t.id == task.id => {
                    frames += 1;
                    assert_eq!(t.params["env"]["PGPASSWORD"], expected, "{t:?}");
                    if t.status.is_terminal() {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("after {frames} task frames: {other:?}"),
            }
        }
    }
}

/// A client that answers no ping is disconnected after the idle timeout; one that
/// answers stays connected.
#[actix_rt::test]
async fn a_silent_client_is_disconnected_after_the_idle_timeout() {
    let ws = gateway::WsSettings {
        heartbeat_secs: 1,
        client_timeout_secs: 2,
        ..Default::default()
    };
    let app = spawn_app_with(
        FreshDb::new("sqlite"),
        Tweaks {
            ws,
            ..Default::default()
        },
    )
    .await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 4}))
        .await;
    let mut silent = app.ws(Some(&app.viewer)).await;
    let mut polite = app.ws(Some(&app.viewer)).await;
    // The polite client reads (and so answers pings) for four seconds; the silent one does not.
    assert!(
        polite.next(Duration::from_secs(4)).await.is_none(),
        "nothing but pings for the polite client"
    );
    let mut closed_with = None;
    while let Some(frame) = silent.next(Duration::from_secs(5)).await {
        if let Err(reason) = frame {
            closed_with = Some(reason);
            break;
        }
    }
    let reason = closed_with
        .expect("the silent client was disconnected")
        .expect("with a reason");
    assert!(reason
        .description
        .unwrap_or_default()
        .contains("did not answer pings"));
    polite
        .send(subscribe(task.id, serde_json::json!({}), 0))
        .await;
    assert_eq!(polite.follow_to_end(task.id).await.entries.len(), 3);
}

/// Deleting a token also closes the WebSocket connections opened with it.
#[actix_rt::test]
async fn deleting_a_token_closes_its_connections() {
    let ws = gateway::WsSettings {
        heartbeat_secs: 1,
        ..Default::default()
    };
    let app = spawn_app_with(
        FreshDb::new("sqlite"),
        Tweaks {
            ws,
            ..Default::default()
        },
    )
    .await;
    let (_, created) = app
        .post_as(
            &app.admin,
            "/api/tokens",
            serde_json::json!({"name": "temp", "role": "viewer"}),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_owned();
    let mut header = app.ws(Some(&token)).await;
    let mut message = app.ws(None).await;
    message
        .send(serde_json::json!({"type": "auth", "token": token}))
        .await;
    let (status, _) = app.delete_as(&app.admin, "/api/tokens/temp").await;
    assert_eq!(status, actix_web::http::StatusCode::NO_CONTENT);
    for ws in [&mut header, &mut message] {
        let reason = loop {
            match ws.next(Duration::from_secs(5)).await {
                Some(Err(reason)) => break reason,
                Some(Ok(_)) => {}
                None => panic!("still open after the token was deleted"),
            }
        };
        assert!(reason
            .unwrap()
            .description
            .unwrap_or_default()
            .contains("revoked"));
    }
}

/// A page of another site cannot open a WebSocket with a token it got hold of;
/// the server's own pages, allowed origins and clients without `Origin` can.
/// Connections are bounded per token (429) and in all (503).
#[actix_rt::test]
async fn foreign_origins_and_too_many_connections_are_refused() {
    let app = spawn_app_with(
        FreshDb::new("sqlite"),
        Tweaks {
            ws: gateway::WsSettings {
                max_connections: 4,
                max_connections_per_token: 2,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let handshake = |origin: Option<String>, token: String| {
        let port = app.port;
        async move {
            let mut req = awc::Client::new().ws(format!("ws://127.0.0.1:{port}/ws"));
            if let Some(origin) = origin {
                req = req.origin(origin);
            }
            match req.bearer_auth(token).connect().await {
                Ok((response, conn)) => Ok((response.status(), conn)),
                Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status),
                Err(other) => panic!("{other}"),
            }
        }
    };
    let own = format!("http://127.0.0.1:{}", app.port);
    for origin in [
        "https://evil.example",
        "null",
        &format!("{own}.evil.example"),
    ] {
        let refused = handshake(Some(origin.to_owned()), app.viewer.clone()).await;
        assert_eq!(refused.err(), Some(StatusCode::FORBIDDEN), "{origin}");
    }
    let mut open = Vec::new();
    for origin in [Some(own.clone()), Some("https://console.example".into())] {
        let (status, conn) = handshake(origin, app.viewer.clone()).await.unwrap();
        assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
        open.push(conn);
    }
    assert_eq!(
        handshake(None, app.viewer.clone()).await.err(),
        Some(StatusCode::TOO_MANY_REQUESTS),
        "a third connection of one token"
    );
    for _ in 0..2 {
        open.push(handshake(None, app.admin.clone()).await.unwrap().1);
    }
    assert_eq!(
        handshake(None, app.admin.clone()).await.err(),
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "a fifth connection in all"
    );
    // A closed connection gives its place back.
    drop(open.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match handshake(None, app.admin.clone()).await {
            Ok(_) => break,
            Err(status) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never given back: {status}"
                );
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Forty subscriptions whose filter SQL cannot narrow (`re`) read their history a
/// page at a time per connection and a few at once server-wide: meanwhile REST
/// answers and a task runs to its end, and every subscription still catches up.
#[actix_rt::test]
async fn many_regex_histories_leave_the_database_to_rest_and_the_engine() {
    let app = spawn_app("sqlite").await;
    let big = app
        .run_task("synthetic", serde_json::json!({"count": 400_000}))
        .await;
    let mut followers = Vec::new();
    for _ in 0..40 {
        let mut ws = app.ws(Some(&app.viewer)).await;
        ws.send(subscribe(
            big.id,
            serde_json::json!({"re": "^no such line$"}),
            0,
        ))
        .await;
        followers.push(ws);
    }
    for _ in 0..10 {
        let (status, body) = app.get(&format!("/api/tasks/{}", big.id)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let small = app
        .run_task("synthetic", serde_json::json!({"count": 100}))
        .await;
    assert_eq!(small.status, TaskStatus::Success);
    for mut ws in followers {
        let got = ws.follow_to_end(big.id).await;
        assert!(
            got.entries.is_empty() && got.errors.is_empty(),
            "{:?}",
            got.errors
        );
        assert!(got.caught_up.is_some());
    }
}

/// Connections without a token are few per address and short-lived: past eight
/// from one address the upgrade gets 429, and each is closed at the auth deadline,
/// which gives its place back, even when its client reads nothing at all.
#[actix_rt::test]
async fn connections_that_do_not_authenticate_are_bounded_and_closed() {
    let app = spawn_app_with(
        FreshDb::new("sqlite"),
        Tweaks {
            ws: gateway::WsSettings {
                auth_timeout_secs: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let connect = || {
        awc::Client::new()
            .ws(format!("ws://127.0.0.1:{}/ws", app.port))
            .connect()
    };
    let mut waiting = Vec::new();
    for _ in 0..gateway::ws::admission::MAX_UNAUTHENTICATED_PER_ADDR {
        let (_, conn) = connect().await.expect("a place to authenticate");
        waiting.push(conn);
    }
    match connect().await {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS)
        }
        other => panic!("{:?}", other.map(|(r, _)| r.status())),
    }
    // With the token in the upgrade, a client needs no such place.
    let _with_token = app.ws(Some(&app.viewer)).await;
    // Unread, they are all closed at the deadline and their places come back.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match connect().await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never given back: {e}"
                );
                actix_rt::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    drop(waiting);
}

/// `subscribe_all`: a live search over every running task. Only records that pass
/// the filter come, as `matched` frames of their own task, in seq order, for tasks
/// started after the search; a new filter replaces the old; `unsubscribe_all` stops
/// it; a connection that also follows a task still gets its `logs` as before.
#[actix_rt::test]
async fn subscribe_all_is_a_live_search_over_every_task() {
    let app = spawn_app("sqlite").await;
    let mut ws = app.ws(Some(&app.viewer)).await;
    ws.send(
        serde_json::json!({"type": "subscribe_all", "filter": {"level": "ERROR", "q": "record 1"}}),
    )
    .await;
    ws.send(serde_json::json!({"type": "subscribe_tasks"}))
        .await;
    handled(&mut ws).await;
    let a = app
        .start_task("synthetic", serde_json::json!({"count": 300}))
        .await;
    let b = app
        .start_task("synthetic", serde_json::json!({"count": 200}))
        .await;
    // ERROR is i % 4 == 3; "record 1" is i starting with 1.
    let want = |count: u64| -> Vec<String> {
        (0..count)
            .filter(|i| i % 4 == 3 && i.to_string().starts_with('1'))
            .map(|i| format!("synthetic record {i}"))
            .collect()
    };
    let mut got: std::collections::HashMap<protocol::TaskId, Vec<String>> = Default::default();
    let mut last_seq: std::collections::HashMap<protocol::TaskId, u64> = Default::default();
    let mut ended = 0;
    while ended < 2 {
        match ws.next(Duration::from_secs(10)).await {
            Some(Ok(ServerMessage::Matched { task_id, entries })) => {
                for e in entries {
                    let last = last_seq.entry(task_id).or_default();
                    assert!(e.seq > *last, "in seq order, once");
                    *last = e.seq;
                    got.entry(task_id).or_default().push(e.body.into_message());
                }
            }
            Some(Ok(ServerMessage::Task { task })) if task.status.is_terminal() => ended += 1,
            Some(Ok(ServerMessage::Task { .. })) => {}
            other => panic!("{other:?}"),
        }
    }
    // Records of a batch come before the status that ends their task.
    assert_eq!(got.remove(&a.id).unwrap_or_default(), want(300));
    assert_eq!(got.remove(&b.id).unwrap_or_default(), want(200));
    assert!(got.is_empty(), "{got:?}");

    // A new filter replaces the old one.
    ws.send(serde_json::json!({"type": "subscribe_all", "filter": {"q": "record 7"}}))
        .await;
    ws.send(serde_json::json!({"type": "unsubscribe_tasks"}))
        .await;
    handled(&mut ws).await;
    let c = app
        .start_task("synthetic", serde_json::json!({"count": 100}))
        .await;
    let mut seen = Vec::new();
    while seen.len() < 5 {
        match ws.next(Duration::from_secs(10)).await {
            Some(Ok(ServerMessage::Matched { task_id, entries })) => {
                assert_eq!(task_id, c.id);
                seen.extend(entries.into_iter().map(|e| e.body.into_message()));
            }
            other => panic!("{other:?}"),
        }
    }
    // INFO and above by default: 7 and 70..79 without the DEBUG ones (i % 4 == 0).
    let expected: Vec<String> = std::iter::once(7u64)
        .chain(70..80)
        .filter(|i| i % 4 != 0)
        .map(|i| format!("synthetic record {i}"))
        .collect();
    while seen.len() < expected.len() {
        match ws.next(Duration::from_secs(10)).await {
            Some(Ok(ServerMessage::Matched { entries, .. })) => {
                seen.extend(entries.into_iter().map(|e| e.body.into_message()))
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, expected);

    // Stopped: a task's records no longer come; the connection still follows a task.
    ws.send(serde_json::json!({"type": "unsubscribe_all"}))
        .await;
    handled(&mut ws).await;
    // (follow_to_end fails on any `matched` frame, and d logs "record 7" live.)
    let d = app
        .start_task("synthetic", serde_json::json!({"count": 2000}))
        .await;
    ws.send(subscribe(d.id, serde_json::json!({}), 0)).await;
    let followed = ws.follow_to_end(d.id).await;
    assert_eq!(followed.entries.len(), 1500);
    assert!(followed.errors.is_empty(), "{:?}", followed.errors);
}

/// Waits until the session has handled every message sent before: it answers in
/// order, and it has told the hub of each before it answers this one.
async fn handled(ws: &mut crate::helpers::WsClient) {
    ws.send(serde_json::json!({"type": "unsubscribe", "task_id": "67e55044-10b1-426f-9247-bb680e5fe0c8"}))
        .await;
    match ws.next(Duration::from_secs(10)).await {
        Some(Ok(ServerMessage::Error { message, .. })) if message.contains("not subscribed") => {}
        other => panic!("{other:?}"),
    }
}
