//! `spawn_app()` and the request helpers every test uses.

use std::sync::Once;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use gateway::{AppConfig, AppHandle, Application, HttpSettings, WsSettings};
use protocol::{LogEntry, ServerMessage, TaskId, TaskInfo};
use storage::{DatabaseSettings, Db};
use testkit::FreshDb;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub admin: String,
    pub viewer: String,
    pub handle: AppHandle,
    pub db: Db,
    pub fresh: FreshDb,
    client: awc::Client,
}

/// What a test may change in the configuration.
pub struct Tweaks {
    pub flush_interval_ms: u64,
    pub ws: WsSettings,
    pub max_concurrent_tasks: usize,
    pub max_queued_tasks: usize,
    pub max_tasks_per_viewer: usize,
    pub ui_dir: std::path::PathBuf,
    pub auth_failures_per_minute: u32,
    pub export_stall: Duration,
    pub worker_grace: Duration,
    /// Where refused records and what the database cannot take go (none by default).
    pub spool_dir: Option<std::path::PathBuf>,
}

impl Default for Tweaks {
    fn default() -> Self {
        Tweaks {
            flush_interval_ms: 100,
            ws: WsSettings::default(),
            max_concurrent_tasks: 32,
            max_queued_tasks: engine::EngineSettings::default().max_queued_tasks,
            max_tasks_per_viewer: engine::EngineSettings::default().max_tasks_per_viewer,
            ui_dir: "/nonexistent-ui".into(),
            auth_failures_per_minute: gateway::auth::DEFAULT_AUTH_FAILURES_PER_MINUTE,
            export_stall: Duration::from_secs(60),
            worker_grace: Duration::from_secs(30),
            spool_dir: None,
        }
    }
}

fn quiet_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let level = if std::env::var_os("TEST_LOG").is_some() {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Error
        };
        let inner = env_logger::Builder::new()
            .filter_level(level)
            .is_test(true)
            .build();
        engine::plugin::legacy::install(inner).expect("one logger per test binary");
    });
}

pub async fn spawn_app(backend: &'static str) -> TestApp {
    spawn_app_with(FreshDb::new(backend), Tweaks::default()).await
}

pub async fn spawn_app_with(fresh: FreshDb, tweaks: Tweaks) -> TestApp {
    quiet_logs();
    let mut database = DatabaseSettings::new(fresh.url.clone());
    database.connect_timeout_ms = 2_000;
    let mut engine = engine::EngineSettings::default();
    engine.sink.flush_interval_ms = tweaks.flush_interval_ms;
    engine.max_concurrent_tasks = tweaks.max_concurrent_tasks;
    engine.max_queued_tasks = tweaks.max_queued_tasks;
    engine.max_tasks_per_viewer = tweaks.max_tasks_per_viewer;
    engine.worker_grace = tweaks.worker_grace;
    engine.spool = tweaks.spool_dir.map(engine::spool::Spool::new);
    let config = AppConfig {
        database,
        engine,
        http: HttpSettings {
            bind: "127.0.0.1:0".into(),
            ui_dir: tweaks.ui_dir,
            ws: tweaks.ws,
            workers: Some(2),
            auth_failures_per_minute: tweaks.auth_failures_per_minute,
            ws_allowed_origins: vec!["https://console.example".into()],
            export_stall: tweaks.export_stall,
            access_log: false,
            metrics_public: false,
            tls: None,
        },
        admin_token: Some(gateway::Secret::new(ADMIN_TOKEN)),
        json_logs: false,
    };
    let shell = engine::plugin::builtin::shell::ShellSettings {
        enabled: true,
        env_passthrough: Vec::new(),
    };
    let app = Application::build(config, engine::PluginRegistry::with_builtins(shell))
        .await
        .expect("the application builds");
    let port = app.port();
    let handle = app.handle();
    let db = app.database().clone();
    actix_rt::spawn(app.run());
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let mut test = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        admin: ADMIN_TOKEN.into(),
        viewer: String::new(),
        handle,
        db,
        fresh,
        client,
    };
    // A restarted app reuses its database, where viewer-1 already exists.
    let mut name = "viewer-1".to_owned();
    let created = loop {
        let (status, created) = test
            .post_as(
                ADMIN_TOKEN,
                "/api/tokens",
                serde_json::json!({"name": name, "role": "viewer"}),
            )
            .await;
        match status {
            StatusCode::CREATED => break created,
            StatusCode::CONFLICT => name = format!("viewer-{}", uuid::Uuid::new_v4().simple()),
            other => panic!("creating a viewer token: {other} {created}"),
        }
    };
    test.viewer = created["token"].as_str().unwrap().to_owned();
    test
}

impl TestApp {
    pub async fn request(
        &self,
        method: awc::http::Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Vec<u8>, awc::http::header::HeaderMap) {
        let method_name = method.clone();
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let sent = match body {
            Some((content_type, bytes)) => {
                req.insert_header(("content-type", content_type))
                    .send_body(bytes)
                    .await
            }
            None => req.send().await,
        };
        let mut response = sent.unwrap_or_else(|e| panic!("{path}: {e}"));
        let bytes = response.body().limit(512 * 1024 * 1024).await.unwrap();
        crate::contract::check(
            method_name.as_str(),
            path,
            response.status(),
            response.headers(),
            &bytes,
        );
        (
            response.status(),
            bytes.to_vec(),
            response.headers().clone(),
        )
    }

    pub async fn get_as(&self, token: &str, path: &str) -> (StatusCode, serde_json::Value) {
        let (status, body, _) = self
            .request(awc::http::Method::GET, path, Some(token), None)
            .await;
        (status, json_or_null(&body))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        self.get_as(&self.admin, path).await
    }

    pub async fn post_as(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let (status, body, _) = self
            .request(
                awc::http::Method::POST,
                path,
                Some(token),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await;
        (status, json_or_null(&body))
    }

    pub async fn put_as(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let (status, body, _) = self
            .request(
                awc::http::Method::PUT,
                path,
                Some(token),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await;
        (status, json_or_null(&body))
    }

    pub async fn delete_as(&self, token: &str, path: &str) -> (StatusCode, serde_json::Value) {
        let (status, body, _) = self
            .request(awc::http::Method::DELETE, path, Some(token), None)
            .await;
        (status, json_or_null(&body))
    }

    pub async fn start_task(&self, plugin: &str, params: serde_json::Value) -> TaskInfo {
        self.start_task_as(&self.admin, plugin, params).await
    }

    pub async fn start_task_as(
        &self,
        token: &str,
        plugin: &str,
        params: serde_json::Value,
    ) -> TaskInfo {
        let (status, body) = self
            .post_as(
                token,
                "/api/tasks",
                serde_json::json!({"plugin": plugin, "params": params}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Polls until the task has ended.
    pub async fn wait_done(&self, id: TaskId) -> TaskInfo {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, body) = self.get(&format!("/api/tasks/{id}")).await;
            // A poll whose request head reached the server later than its 5 s
            // request timeout (the tests' CPU-load runs starve this thread) is
            // answered 408 by actix before any handler runs: poll again.
            if status == StatusCode::REQUEST_TIMEOUT {
                assert!(Instant::now() < deadline, "task {id} did not end");
                continue;
            }
            assert_eq!(status, StatusCode::OK, "{body}");
            let task: TaskInfo = serde_json::from_value(body).unwrap();
            if task.status.is_terminal() {
                return task;
            }
            assert!(Instant::now() < deadline, "task {id} did not end");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn run_task(&self, plugin: &str, params: serde_json::Value) -> TaskInfo {
        let task = self.start_task(plugin, params).await;
        self.wait_done(task.id).await
    }

    /// Every record matching `query` (a filter query string), through REST paging.
    pub async fn all_logs(&self, id: TaskId, query: &str) -> Vec<LogEntry> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let sep = if query.is_empty() { "" } else { "&" };
            let (status, body) = self
                .get(&format!(
                    "/api/tasks/{id}/logs?{query}{sep}after_seq={after}&limit=5000"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page: protocol::LogPage = serde_json::from_value(body).unwrap();
            out.extend(page.logs);
            if !page.has_more {
                return out;
            }
            after = page.next_after_seq;
        }
    }

    pub async fn ws(&self, token: Option<&str>) -> WsClient {
        let mut req = awc::Client::new()
            .ws(format!("ws://127.0.0.1:{}/ws", self.port))
            .max_frame_size(256 * 1024 * 1024);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let (_, conn) = req.connect().await.expect("WebSocket connects");
        WsClient { conn }
    }
}

/// A connection to `/ws/worker`, speaking JSON.
pub struct WorkerConn {
    pub conn: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
}

impl TestApp {
    /// Connects to `/ws/worker`; the HTTP status when the upgrade is refused.
    pub async fn worker_ws(&self, token: &str) -> Result<WorkerConn, StatusCode> {
        let req = awc::Client::new()
            .ws(format!("ws://127.0.0.1:{}/ws/worker", self.port))
            .max_frame_size(64 * 1024 * 1024)
            .bearer_auth(token);
        match req.connect().await {
            Ok((_, conn)) => Ok(WorkerConn { conn }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status),
            Err(e) => panic!("connecting to /ws/worker: {e}"),
        }
    }

    /// A new token of `role`.
    pub async fn token(&self, name: &str, role: &str) -> String {
        let (status, created) = self
            .post_as(
                &self.admin,
                "/api/tokens",
                serde_json::json!({"name": name, "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["token"].as_str().unwrap().to_owned()
    }
}

impl WorkerConn {
    pub async fn send(&mut self, msg: serde_json::Value) {
        self.conn
            .send(ws::Message::Text(msg.to_string().into()))
            .await
            .unwrap();
    }

    /// The next message; `Err` with the close reason when the connection closed,
    /// `None` after `timeout`.
    pub async fn next(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<serde_json::Value, Option<ws::CloseReason>>> {
        let text = next_text(&mut self.conn, timeout).await?;
        Some(text.map(|bytes| serde_json::from_slice(&bytes).expect("JSON")))
    }

    /// The next message of `kind`, skipping others (`ack`s, say); panics after 30 s.
    pub async fn expect(&mut self, kind: &str) -> serde_json::Value {
        loop {
            match self.next(Duration::from_secs(30)).await {
                Some(Ok(msg)) if msg["type"] == kind => return msg,
                Some(Ok(_)) => {}
                other => panic!("waiting for {kind}: {other:?}"),
            }
        }
    }

    /// Reads until the connection closes; the fatal error it was sent before.
    pub async fn expect_fatal(&mut self) -> String {
        let mut fatal = None;
        loop {
            match self.next(Duration::from_secs(30)).await {
                Some(Ok(msg)) if msg["type"] == "error" => {
                    assert_eq!(msg["fatal"], true, "{msg}");
                    fatal = msg["message"].as_str().map(str::to_owned);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => return fatal.expect("a fatal error before the close"),
                None => panic!("the connection was not closed"),
            }
        }
    }
}

/// The next text frame, answering pings on the way; `Err` with the close reason
/// when the connection closed, `None` after `timeout`.
async fn next_text(
    conn: &mut actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    timeout: Duration,
) -> Option<Result<bytes::Bytes, Option<ws::CloseReason>>> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let frame = match actix_rt::time::timeout(left, conn.next()).await {
            Err(_) => return None,
            Ok(None) => return Some(Err(None)),
            Ok(Some(frame)) => frame,
        };
        match frame {
            Ok(ws::Frame::Text(bytes)) => return Some(Ok(bytes)),
            Ok(ws::Frame::Ping(p)) => {
                let _ = conn.send(ws::Message::Pong(p)).await;
            }
            Ok(ws::Frame::Close(reason)) => return Some(Err(reason)),
            Ok(_) => {}
            Err(_) => return Some(Err(None)),
        }
    }
}

pub fn json_or_null(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
}

pub struct WsClient {
    pub conn: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
}

/// Everything a subscription delivered.
#[derive(Default, Debug)]
pub struct Received {
    pub entries: Vec<LogEntry>,
    pub caught_up: Option<u64>,
    pub last_task: Option<TaskInfo>,
    pub errors: Vec<String>,
}

impl WsClient {
    pub async fn send(&mut self, msg: serde_json::Value) {
        self.conn
            .send(ws::Message::Text(msg.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.conn
            .send(ws::Message::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    /// The next server message; `None` when the connection closed or `timeout` passed.
    pub async fn next(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<ServerMessage, Option<ws::CloseReason>>> {
        let text = next_text(&mut self.conn, timeout).await?;
        Some(text.map(|bytes| serde_json::from_slice(&bytes).expect("server messages parse")))
    }

    /// Reads until the task is reported finished after `caught_up`.
    pub async fn follow_to_end(&mut self, task_id: TaskId) -> Received {
        let mut got = Received::default();
        loop {
            match self.next(Duration::from_secs(60)).await {
                Some(Ok(ServerMessage::Logs {
                    task_id: t,
                    entries,
                })) => {
                    assert_eq!(t, task_id, "records of another task arrived");
                    got.entries.extend(entries);
                }
                Some(Ok(ServerMessage::CaughtUp { seq, .. })) => got.caught_up = Some(seq),
                Some(Ok(ServerMessage::Task { task })) => {
                    let done =
                        task.id == task_id && task.status.is_terminal() && got.caught_up.is_some();
                    got.last_task = Some(task);
                    if done {
                        return got;
                    }
                }
                Some(Ok(ServerMessage::Error { message, .. })) => got.errors.push(message),
                Some(Ok(ServerMessage::Matched { task_id: t, .. })) => {
                    panic!("a live search's records of {t} arrived while following {task_id}")
                }
                Some(Err(reason)) => panic!("connection closed while following: {reason:?}"),
                None => panic!("nothing arrived for 60 s while following {task_id}: {got:?}"),
            }
        }
    }
}

/// Asserts strictly increasing seqs (no duplicates, in order).
pub fn assert_ascending(entries: &[LogEntry]) {
    assert!(
        entries.windows(2).all(|w| w[0].seq < w[1].seq),
        "records out of order or duplicated"
    );
}
