//! WebSocket clients coming and going by the hundred while tasks log, plus one
//! client that never reads: the steady followers get every record, the non-reader
//! is closed, and once they are gone the server holds no session of theirs and its
//! memory is back within 20% of what it was before.

mod common;

use std::time::{Duration, Instant};

use awc::ws;
use common::{stdout, wait_done, Server, Ws};
use futures_util::{SinkExt, StreamExt};
use gateway::WsSettings;
use testkit::FreshDb;

/// The server's resident memory, in KiB.
fn rss_kib(server: &Server) -> u64 {
    let pid = server.child.id();
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn follow(port: u16, task: &str) -> Ws {
    common::ws(
        port,
        serde_json::json!({"type": "subscribe", "task_id": task}),
    )
    .await
}

/// Reads until the task's final status; the records received.
async fn read_to_end(mut conn: Ws) -> u64 {
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

/// A client that subscribes and then never reads a byte, over a plain socket so
/// that no runtime reads for it either.
struct NonReader {
    stream: std::net::TcpStream,
    opened: Instant,
}

impl NonReader {
    fn open(port: u16, task: &str) -> NonReader {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {}\r\n\r\n",
            common::ADMIN
        )
        .unwrap();
        // The response head, one byte at a time so that no frame is read with it.
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let subscribe = format!(r#"{{"type":"subscribe","task_id":"{task}"}}"#);
        assert!(subscribe.len() < 126);
        // A masked text frame; the mask key may be anything, zero included.
        let mut frame = vec![0x81, 0x80 | subscribe.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(subscribe.as_bytes());
        stream.write_all(&frame).unwrap();
        NonReader {
            stream,
            opened: Instant::now(),
        }
    }

    /// Whether the server has closed it: what it sent is read up to the end of the
    /// stream, waiting at most until `max_unread` plus a margin after it opened.
    fn closed_by_server(mut self, max_unread: Duration) -> bool {
        use std::io::Read;
        let until = self.opened + max_unread + Duration::from_secs(15);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // What is buffered is read even once the time is up.
            let left = until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) if Instant::now() > until + Duration::from_secs(30) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// One round: a task, a steady follower and `clients` short-lived followers (twenty
/// at a time). Returns how many records the steady one got.
fn round(server: &Server, task: &str, clients: usize) -> u64 {
    let port = server.port;
    let got = actix_rt::System::new().block_on(async {
        let steady = actix_rt::spawn({
            let task = task.to_owned();
            async move { read_to_end(follow(port, &task).await).await }
        });
        let started = Instant::now();
        let mut opened = 0;
        while opened < clients {
            let batch: Vec<_> = (0..20)
                .map(|_| {
                    let task = task.to_owned();
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
        steady.await.unwrap()
    });
    assert_eq!(
        wait_done(server, task).status,
        protocol::TaskStatus::Success
    );
    got
}

fn start_task(server: &Server) -> String {
    stdout(&server.cli(&["run", "synthetic", "-p", "count=120000", "-p", "rate=25000"]))
        .trim()
        .to_owned()
}

#[test]
fn hundreds_of_clients_coming_and_going_neither_hurt_the_others_nor_leak() {
    let fresh = FreshDb::new("sqlite");
    let server = Server::launch_with(
        &fresh.url,
        testkit::free_port(),
        None,
        &[("TASKLENS_LOG", "warn")],
    );
    // The first two rounds warm the server up (pools, queues and allocator arenas
    // reach the size a busy machine drives them to); its memory afterwards is the
    // baseline.
    let task = start_task(&server);
    let non_reader = NonReader::open(server.port, &task);
    assert_eq!(
        round(&server, &task, 200),
        90_000,
        "every INFO-and-above record, live"
    );
    let task = start_task(&server);
    assert_eq!(round(&server, &task, 200), 90_000);
    std::thread::sleep(Duration::from_secs(1));
    let baseline = rss_kib(&server);
    let mut rss = Vec::new();
    for _ in 0..3 {
        let task = start_task(&server);
        assert_eq!(round(&server, &task, 200), 90_000);
        std::thread::sleep(Duration::from_secs(1));
        rss.push(rss_kib(&server));
    }
    assert!(
        non_reader.closed_by_server(WsSettings::default().client_timeout()),
        "the client that never reads was not closed"
    );
    // Nothing is held per connection: every session is gone once its client is.
    let (status, metrics) = common::http_get(server.port, "/metrics", Some(common::ADMIN));
    assert_eq!(status, 200);
    assert!(
        metrics.lines().any(|l| l == "tasklens_ws_sessions 0"),
        "sessions left behind: {}",
        metrics
            .lines()
            .find(|l| l.starts_with("tasklens_ws_sessions "))
            .unwrap_or("none")
    );
    // Memory comes back: nothing of the clients is kept, and freed memory is
    // returned to the system rather than piling up in the allocator.
    eprintln!("RSS {baseline} KiB after the warm-up, {rss:?} KiB after each later round");
    for after in &rss {
        assert!(
            *after * 5 <= baseline * 6,
            "RSS after a round of churn is over 20% above its baseline: \
             {baseline} KiB after the warm-up, {rss:?} KiB after each later round"
        );
    }
}
