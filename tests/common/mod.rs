//! Shared by the binary's integration tests: the real `tasklens serve` in a child
//! process on a free port, stopped by PID.

#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::{free_port, serve};

pub const ADMIN: &str = "cli-test-admin-token-0123";
pub const BIN: &str = env!("CARGO_BIN_EXE_tasklens");

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(db_url: &str) -> Server {
        Server::start_on(db_url, free_port(), None)
    }

    /// Starts on a given port, optionally serving the console from `ui_dir`.
    pub fn start_on(db_url: &str, port: u16, ui_dir: Option<&Path>) -> Server {
        Server::launch(db_url, port, ui_dir, "warn")
    }

    /// Starts with `TASKLENS_LOG` (the operator log's module filter) set to `log`,
    /// and `shell` enabled.
    pub fn launch(db_url: &str, port: u16, ui_dir: Option<&Path>, log: &str) -> Server {
        Server::launch_with(
            db_url,
            port,
            ui_dir,
            &[("TASKLENS_LOG", log), ("TASKLENS_SHELL_ENABLED", "true")],
        )
    }

    /// Starts with these variables added to (or replacing) the defaults.
    pub fn launch_with(
        db_url: &str,
        port: u16,
        ui_dir: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut command = serve::command(Path::new(BIN), port, db_url, ADMIN);
        command
            .env(
                "TASKLENS_UI_DIR",
                ui_dir.map_or("/nonexistent".into(), |d| d.display().to_string()),
            )
            .env("TASKLENS_FLUSH_INTERVAL_MS", "200")
            .env("TASKLENS_LOG", "warn")
            .envs(env.iter().copied());
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tasklens serve starts");
        let mut server = Server { child, port };
        if let Err(why) = serve::wait_listening(&mut server.child, port, Duration::from_secs(30)) {
            let mut err = String::new();
            if let Some(mut stderr) = server.child.stderr.take() {
                let _ = server.child.kill();
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            panic!("{why}: {err}");
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(ADMIN, args)
    }

    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        let out = self.command(token, args).output().expect("the CLI runs");
        // A server that cannot be reached has exited or stopped listening: say
        // which, since the test's own failure then shows only the CLI's message.
        if String::from_utf8_lossy(&out.stderr).contains("cannot reach the Tasklens server") {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()));
            eprintln!(
                "the server on {} (pid {}) could not be reached; its /proc stat: {}",
                self.port,
                self.child.id(),
                stat.unwrap_or_else(|e| e.to_string())
            );
        }
        out
    }

    /// The CLI pointed at this server with `token`, colour off, not yet started.
    pub fn command(&self, token: &str, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("TASKLENS_SERVER", self.url())
            .env("TASKLENS_TOKEN", token)
            .env("NO_COLOR", "1");
        command
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> String {
        let status = serve::terminate(&mut self.child, Duration::from_secs(60))
            .unwrap()
            .expect("the server stops after SIGTERM");
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "the server exited with {status}: {err}");
        err
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records printed one JSON object a line (`tasklens logs --json`).
pub fn entries(text: &str) -> Vec<protocol::LogEntry> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The output as text, asserting the command succeeded.
pub fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Polls `tasklens task ID` until the task has ended.
pub fn wait_done(server: &Server, id: &str) -> protocol::TaskInfo {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let task: protocol::TaskInfo =
            serde_json::from_str(&stdout(&server.cli(&["task", id]))).unwrap();
        if task.status.is_terminal() {
            return task;
        }
        assert!(Instant::now() < deadline, "task {id} did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a `synthetic` task of `count` records at `rate` a second; its id.
#[allow(dead_code)]
pub fn synthetic(server: &Server, count: u64, rate: u64) -> String {
    let (count, rate) = (format!("count={count}"), format!("rate={rate}"));
    stdout(&server.cli(&["run", "synthetic", "-p", &count, "-p", &rate]))
        .trim()
        .to_owned()
}

/// Waits until some record of task `id` is stored.
#[allow(dead_code)]
pub fn wait_stored(server: &Server, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while entries(&stdout(&server.cli(&["logs", id, "--tail", "1", "--json"]))).is_empty() {
        assert!(Instant::now() < deadline, "task {id} stored no record");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tasklens task ID`.
#[allow(dead_code)]
pub fn task_info(server: &Server, id: &str) -> protocol::TaskInfo {
    serde_json::from_str(&stdout(&server.cli(&["task", id]))).unwrap()
}

/// The seqs of every stored record of task `id`.
#[allow(dead_code)]
pub fn stored_seqs(server: &Server, id: &str) -> Vec<u64> {
    entries(&stdout(&server.cli(&["logs", id, "--json"])))
        .iter()
        .map(|e| e.seq)
        .collect()
}

/// The value of an unlabelled metric in Prometheus text (0 when absent).
#[allow(dead_code)]
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A plain HTTP GET (status, body), without a client library.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let (status, _, body) = http(port, "GET", path, token, None);
    (status, body)
}

/// A plain HTTP request with an optional JSON body: (status, head, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    use std::io::{Read, Write};
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = json.unwrap_or("");
    let kind = json.map_or(String::new(), |j| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            j.len()
        )
    });
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{kind}Connection: close\r\n\r\n{body}"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_owned(), body.to_owned())
}

/// A WebSocket client of `/ws`.
pub type Ws = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// Connects to `/ws` on `port` as the admin and sends `first` (a subscription).
pub async fn ws(port: u16, first: serde_json::Value) -> Ws {
    use futures_util::SinkExt;
    let (_, mut conn) = awc::Client::new()
        .ws(format!("ws://127.0.0.1:{port}/ws"))
        .bearer_auth(ADMIN)
        .max_frame_size(64 << 20)
        .connect()
        .await
        .unwrap();
    conn.send(awc::ws::Message::Text(first.to_string().into()))
        .await
        .unwrap();
    conn
}
