//! WebSocket clients coming and going by the hundred while a task logs, plus one
//! client that never reads: the steady follower gets every record, the non-reader is
//! closed, and a second identical round leaves the server's memory where the first
//! left it (nothing leaks per connection).

mod common;

use std::time::{Duration, Instant};

use awc::ws;
use common::{stdout, wait_done, Server};
use futures_util::{SinkExt, StreamExt};
use testkit::FreshDb;

type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn follow(port: u16, task: &str) -> Conn {
    let (_, mut conn) = awc::Client::new()
        .ws(format!("ws://127.0.0.1:{port}/ws"))
        .bearer_auth(common::ADMIN)
        .max_frame_size(64 << 20)
        .connect()
        .await
        .unwrap();
    let subscribe = format!(r#"{{"type":"subscribe","task_id":"{task}"}}"#);
    conn.send(ws::Message::Text(subscribe.into()))
        .await
        .unwrap();
    conn
}

/// Reads until the task's final status; the records received.
async fn read_to_end(mut conn: Conn) -> u64 {
    let mut records = 0;
    while let Some(frame) = conn.next().await {
        match frame.unwrap() {
            ws::Frame::Text(bytes) => {
                let msg: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                match msg["type"].as_str().unwrap() {
                    "logs" => records += msg["entries"].as_array().unwrap().len() as u64,
                    "task"
                        if !["queued", "running"]
                            .contains(&msg["task"]["status"].as_str().unwrap()) =>
                    {
                        return records;
                    }
                    "error" => panic!("{msg}"),
                    _ => {}
                }
            }
            ws::Frame::Ping(p) => conn.send(ws::Message::Pong(p)).await.unwrap(),
            ws::Frame::Close(reason) => panic!("the steady follower was closed: {reason:?}"),
            _ => {}
        }
    }
    panic!("the steady follower's connection ended")
}

/// Reads what a client left unread; whether the server closed it as too slow.
async fn closed_as_too_slow(mut conn: Conn) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match actix_rt::time::timeout(Duration::from_secs(40), conn.next()).await {
            Ok(Some(Ok(ws::Frame::Close(reason)))) => {
                return reason
                    .and_then(|r| r.description)
                    .is_some_and(|d| d.contains("too slow"));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) | Err(_) => return false,
        }
    }
    false
}

/// One round: a task, a steady follower, a non-reader and `clients` short-lived
/// followers (twenty at a time). Returns how many records the steady one got.
fn round(server: &Server, clients: usize) -> u64 {
    let task = stdout(&server.cli(&["run", "synthetic", "-p", "count=200000", "-p", "rate=25000"]))
        .trim()
        .to_owned();
    let port = server.port;
    let got = actix_rt::System::new().block_on(async {
        let steady = actix_rt::spawn({
            let task = task.clone();
            async move { read_to_end(follow(port, &task).await).await }
        });
        // Never reads: the server must close it without slowing anyone.
        let stuck = follow(port, &task).await;
        let started = Instant::now();
        let mut opened = 0;
        while opened < clients {
            let batch: Vec<_> = (0..20)
                .map(|_| {
                    let task = task.clone();
                    actix_rt::spawn(async move {
                        let mut conn = follow(port, &task).await;
                        for _ in 0..3 {
                            if conn.next().await.is_none() {
                                break;
                            }
                        }
                    })
                })
                .collect();
            for client in batch {
                client.await.unwrap();
            }
            opened += 20;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "connections were slow"
        );
        let got = steady.await.unwrap();
        assert!(
            closed_as_too_slow(stuck).await,
            "the non-reader was closed as too slow"
        );
        got
    });
    assert_eq!(
        wait_done(server, &task).status,
        protocol::TaskStatus::Success
    );
    got
}

#[test]
fn hundreds_of_clients_coming_and_going_neither_hurt_the_others_nor_leak() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::launch_with(
        &fresh.url,
        testkit::free_port(),
        None,
        // A small unread allowance, so that the non-reader is closed within the round.
        &[
            ("TASKLENS_LOG", "warn"),
            ("TASKLENS_WS_MAX_QUEUED_BYTES", "1048576"),
        ],
    );
    let pid = server.child.id();
    assert_eq!(
        round(&server, 200),
        150_000,
        "every INFO-and-above record, live"
    );
    std::thread::sleep(Duration::from_secs(1));
    let after_first = rss_kib(pid);
    assert_eq!(round(&server, 200), 150_000);
    std::thread::sleep(Duration::from_secs(1));
    let after_second = rss_kib(pid);
    assert!(
        after_second <= after_first + after_first / 5,
        "RSS grew from {after_first} KiB to {after_second} KiB over an identical round"
    );
}
