//! `/ws/worker`: one [`WorkerSession`] actor per worker connection, speaking the
//! worker protocol (`protocol::worker`, specified in docs/api.md).
//!
//! State: the worker's id once it said `hello`, the tasks it runs on this
//! connection (each with the task's logger, which takes its records), the bytes of
//! records sent and not yet acknowledged, tasks that ended recently (records for
//! them get a non-fatal error), the time it was last heard from.
//!
//! Messages: worker frames (`StreamHandler`), [`ToWorker`] from the task manager and
//! from the tasks' proxies (written as `run`, `cancel`, `settings`, `ack`, `done`),
//! and the answers to its own `hello`, `finish` and `submit`.
//!
//! Lifecycle: `hello` must come within the auth timeout; a protocol violation is a
//! fatal `error` and a close (1008), which leaves the worker's tasks waiting for it
//! like any disconnect; `stopped` tells the manager ([`WorkerGone`]).
//!
//! Backpressure: a worker may have `worker_max_unacked_bytes` of records sent and not
//! acknowledged (acknowledged once durable); past it, it is closed. Frames are at
//! most [`MAX_WORKER_FRAME`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use engine::logger::AppendError;
use engine::plugin::PluginError;
use engine::remote::{
    self, ConnId, PluginOffer, ToWorker, WorkerFinished, WorkerGone, WorkerHello, WorkerLink,
    WorkerSubmit,
};
use engine::TaskLogger;
use protocol::entry::sanitize_source;
use protocol::worker::{FinishStatus, ResumedTask, ToWorkerMessage, WorkerEntry, WorkerMessage};
use protocol::{Body, ErrorBody, LogEntry, Role, TaskId};

use super::admission::Slot;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest worker frame accepted.
pub const MAX_WORKER_FRAME: usize = 8 << 20;
/// Records per `logs` message at most.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 10_000;
pub const MAX_PLUGINS: usize = 100;
pub const MAX_CAPACITY: usize = 1_024;
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Ended tasks remembered per connection, to tell late records from unknown tasks.
const REMEMBERED_ENDED: usize = 1_024;
/// The source the engine writes under; a worker's records cannot claim it.
const RESERVED_SOURCE: &str = engine::task::SYSTEM_SOURCE;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// `GET /ws/worker`: a worker or admin token (header or `token` query parameter) is
/// required before the upgrade; viewers get 403.
#[utoipa::path(get, path = "/ws/worker", tag = "workers",
    params(("token" = Option<String>, Query, description = "The token, where a header cannot be set")),
    responses((status = 101, description = "Upgraded to the worker protocol (docs/api.md)"), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn route(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let token = super::upgrade_token(&req, &state)?.ok_or_else(|| {
        ApiError::unauthorized(
            "a worker token is required (Authorization: Bearer <token> or ?token=)",
        )
    })?;
    let caller = state
        .tokens
        .authenticate(req.peer_addr().map(|a| a.ip()), &token)?;
    if caller.role == Role::Viewer {
        return Err(ApiError::forbidden(format!(
            "{:?} is a viewer token; workers connect with a worker (or admin) token",
            caller.name
        ))
        .into());
    }
    let hash = storage::tokens::hash_token(token.trim());
    let mut slot = state
        .ws_connections
        .open(true, req.peer_addr().map(|a| a.ip()))?;
    state.ws_connections.assign(&mut slot, &hash)?;
    let session = WorkerSession {
        conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        _slot: slot,
        state: state.into_inner(),
        caller,
        token_hash: hash,
        tokens_seen: 0,
        worker_id: None,
        hello_sent: false,
        welcomed: false,
        early: Vec::new(),
        early_bytes: 0,
        tasks: HashMap::new(),
        ended: VecDeque::new(),
        unacked_bytes: 0,
        last_heard: Instant::now(),
        closing: false,
    };
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(MAX_WORKER_FRAME)
        .start()
}

/// A task running on this connection.
struct LinkedTask {
    logger: TaskLogger,
    /// Bytes of accepted `logs` messages not yet acknowledged, by the last seq in each.
    unacked: VecDeque<(u64, u64)>,
    /// `finish` was sent; the task waits for `done`.
    finished: bool,
}

/// How often a worker connection looks whether the tokens changed.
const TOKEN_CHECK: Duration = Duration::from_millis(250);

pub struct WorkerSession {
    conn: ConnId,
    _slot: Slot,
    state: Arc<AppState>,
    caller: Caller,
    token_hash: String,
    /// The token store's generation last checked against `token_hash`.
    tokens_seen: u64,
    /// Claimed by `hello` (before the manager answers: a connection that ends
    /// before its `welcome` still tells the manager it is gone).
    worker_id: Option<String>,
    /// `hello` arrived (its answer may still be on its way).
    hello_sent: bool,
    /// `welcome` was sent; until then what the engine sends waits in `early`.
    welcomed: bool,
    early: Vec<ToWorker>,
    early_bytes: usize,
    tasks: HashMap<TaskId, LinkedTask>,
    ended: VecDeque<TaskId>,
    unacked_bytes: u64,
    last_heard: Instant,
    closing: bool,
}

type Ctx = ws::WebsocketContext<WorkerSession>;

fn text(msg: &ToWorkerMessage) -> String {
    serde_json::to_string(msg).expect("worker messages serialise")
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

impl WorkerSession {
    fn send(&self, ctx: &mut Ctx, msg: &ToWorkerMessage) {
        ctx.text(text(msg));
    }

    /// A non-fatal error about one task.
    fn warn(&self, ctx: &mut Ctx, message: String, task_id: Option<TaskId>) {
        self.send(
            ctx,
            &ToWorkerMessage::Error {
                message,
                task_id,
                fatal: false,
            },
        );
    }

    /// A protocol violation: say why, then close.
    fn fatal(&mut self, ctx: &mut Ctx, message: String, task_id: Option<TaskId>) {
        if self.closing {
            return;
        }
        log::warn!(
            "worker={} conn={} error=\"{message}\" Worker connection closed for a protocol error.",
            self.worker_id.as_deref().unwrap_or("-"),
            self.conn
        );
        self.send(
            ctx,
            &ToWorkerMessage::Error {
                message: message.clone(),
                task_id,
                fatal: true,
            },
        );
        self.close(ctx, ws::CloseCode::Policy, &message);
    }

    fn close(&mut self, ctx: &mut Ctx, code: ws::CloseCode, reason: &str) {
        if self.closing {
            return;
        }
        self.closing = true;
        // A close reason fits in 123 bytes.
        let mut cut = reason.len().min(120);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(reason[..cut].to_owned()),
        }));
        ctx.stop();
    }

    fn on_text(&mut self, raw: &str, ctx: &mut Ctx) {
        let msg: WorkerMessage = match serde_json::from_str(raw) {
            Ok(msg) => msg,
            Err(e) => return self.fatal(ctx, format!("bad message: {e}"), None),
        };
        match msg {
            WorkerMessage::Hello {
                protocol,
                worker_id,
                name,
                capacity,
                plugins,
                resume,
            } => self.on_hello(protocol, worker_id, name, capacity, plugins, resume, ctx),
            _ if !self.welcomed => self.fatal(
                ctx,
                if self.hello_sent {
                    "wait for welcome before sending anything else".into()
                } else {
                    "say hello first".into()
                },
                None,
            ),
            WorkerMessage::Logs { task_id, entries } => {
                self.on_logs(task_id, entries, raw.len() as u64, ctx)
            }
            WorkerMessage::Finish {
                task_id,
                status,
                result,
                error,
            } => self.on_finish(task_id, status, result, error, ctx),
            WorkerMessage::Submit { plugin, params } => self.on_submit(plugin, params, ctx),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_hello(
        &mut self,
        version: u32,
        worker_id: String,
        name: Option<String>,
        capacity: usize,
        plugins: Vec<protocol::worker::PluginOffer>,
        resume: Vec<TaskId>,
        ctx: &mut Ctx,
    ) {
        if self.hello_sent {
            return self.fatal(
                ctx,
                "hello was already said on this connection".into(),
                None,
            );
        }
        self.hello_sent = true;
        if !remote::PROTOCOL_VERSIONS.contains(&version) {
            return self.fatal(
                ctx,
                format!(
                    "protocol version {version} is not spoken here; this server speaks {:?}",
                    remote::PROTOCOL_VERSIONS
                ),
                None,
            );
        }
        if !valid_id(&worker_id) {
            return self.fatal(
                ctx,
                "worker_id must be 1 to 64 characters of A-Z a-z 0-9 _ . -".into(),
                None,
            );
        }
        if capacity > MAX_CAPACITY {
            return self.fatal(
                ctx,
                format!("capacity must be at most {MAX_CAPACITY}"),
                None,
            );
        }
        if plugins.len() > MAX_PLUGINS {
            return self.fatal(
                ctx,
                format!("at most {MAX_PLUGINS} plugins may be offered"),
                None,
            );
        }
        if resume.len() > MAX_CAPACITY + remote::MAX_SUBMITTED_PER_WORKER {
            return self.fatal(
                ctx,
                "resume lists more tasks than a worker can run".into(),
                None,
            );
        }
        let mut offers = Vec::with_capacity(plugins.len());
        for p in plugins {
            if !valid_plugin_name(&p.name) {
                return self.fatal(
                    ctx,
                    format!("plugin name {:?} must match [a-z0-9_.-]{{1,64}}", p.name),
                    None,
                );
            }
            if offers.iter().any(|o: &PluginOffer| o.name == p.name) {
                return self.fatal(ctx, format!("plugin {:?} is offered twice", p.name), None);
            }
            let schema = p.params_schema.unwrap_or_else(|| serde_json::json!({}));
            if serde_json::to_vec(&schema).map_or(usize::MAX, |v| v.len()) > MAX_SCHEMA_BYTES
                || !schema.is_object()
            {
                return self.fatal(
                    ctx,
                    format!(
                        "params_schema of {:?} must be a JSON object of at most {MAX_SCHEMA_BYTES} bytes",
                        p.name
                    ),
                    None,
                );
            }
            offers.push(PluginOffer {
                name: p.name,
                description: p.description.chars().take(1_000).collect(),
                params_schema: schema,
                example_params: p.example_params.unwrap_or_else(|| serde_json::json!({})),
            });
        }
        let name = name
            .map(|n| n.chars().filter(|c| !c.is_control()).take(128).collect())
            .filter(|n: &String| !n.is_empty())
            .unwrap_or_else(|| worker_id.clone());
        let hello = WorkerHello {
            worker_id: worker_id.clone(),
            name,
            token: self.caller.name.clone(),
            capacity,
            plugins: offers,
            resume,
            link: WorkerLink {
                conn: self.conn,
                to: ctx.address().recipient(),
            },
        };
        self.worker_id = Some(worker_id.clone());
        let manager = self.state.engine.manager.clone();
        ctx.spawn(
            async move { manager.send(hello).await }
                .into_actor(self)
                .map(move |answer, act, ctx| match answer {
                    Ok(Ok(welcome)) => {
                        let mut resumed = Vec::with_capacity(welcome.resumed.len());
                        for r in welcome.resumed {
                            resumed.push(ResumedTask {
                                task_id: r.ctx.task_id,
                                acked_seq: r.acked_seq,
                                last_seq: r.ctx.logger.last_seq(),
                            });
                            act.tasks.insert(
                                r.ctx.task_id,
                                LinkedTask {
                                    logger: r.ctx.logger,
                                    unacked: VecDeque::new(),
                                    finished: false,
                                },
                            );
                        }
                        act.send(
                            ctx,
                            &ToWorkerMessage::Welcome {
                                protocol: 1,
                                worker_id,
                                max_unacked_bytes: act.state.ws.worker_max_unacked_bytes,
                                settings: welcome.settings,
                                resumed,
                                gone: welcome.gone,
                            },
                        );
                        act.welcomed = true;
                        act.early_bytes = 0;
                        for early in std::mem::take(&mut act.early) {
                            act.deliver(early, ctx);
                        }
                    }
                    Ok(Err(e)) => act.fatal(ctx, e.to_string(), None),
                    Err(e) => act.fatal(ctx, format!("the server is not ready: {e}"), None),
                }),
        );
    }

    /// Is `task_id` one of this connection's? Says why not when it is not.
    fn check_task(&mut self, task_id: TaskId, ctx: &mut Ctx) -> bool {
        if self.tasks.get(&task_id).is_some_and(|t| !t.finished) {
            return true;
        }
        if self.tasks.contains_key(&task_id) || self.ended.contains(&task_id) {
            self.warn(
                ctx,
                format!("task {task_id} has ended; what was sent for it is not kept"),
                Some(task_id),
            );
        } else {
            self.fatal(
                ctx,
                format!("task {task_id} is not running on this connection"),
                Some(task_id),
            );
        }
        false
    }

    fn on_logs(&mut self, task_id: TaskId, entries: Vec<WorkerEntry>, bytes: u64, ctx: &mut Ctx) {
        if !self.check_task(task_id, ctx) {
            return;
        }
        if entries.is_empty() || entries.len() > MAX_ENTRIES_PER_MESSAGE {
            return self.fatal(
                ctx,
                format!("a logs message carries 1 to {MAX_ENTRIES_PER_MESSAGE} records"),
                Some(task_id),
            );
        }
        let max = self.state.ws.worker_max_unacked_bytes;
        if self.unacked_bytes + bytes > max {
            return self.fatal(
                ctx,
                format!("more than max_unacked_bytes ({max}) sent without acknowledgement; wait for ack"),
                Some(task_id),
            );
        }
        let records: Vec<LogEntry> = entries.into_iter().map(to_entry).collect();
        let last = records.last().map_or(0, |e| e.seq);
        let task = self.tasks.get_mut(&task_id).expect("checked above");
        match task.logger.append_numbered(records) {
            // A resent message that adds nothing is not waiting for an ack.
            Ok(0) => {}
            Ok(_) => {
                task.unacked.push_back((last, bytes));
                self.unacked_bytes += bytes;
            }
            Err(e @ AppendError::Gap { .. }) => self.fatal(ctx, e.to_string(), Some(task_id)),
            Err(e @ AppendError::Ended) => self.warn(ctx, e.to_string(), Some(task_id)),
        }
    }

    fn on_finish(
        &mut self,
        task_id: TaskId,
        status: FinishStatus,
        result: Option<serde_json::Value>,
        error: Option<String>,
        ctx: &mut Ctx,
    ) {
        if !self.check_task(task_id, ctx) {
            return;
        }
        if let Some(task) = self.tasks.get_mut(&task_id) {
            task.finished = true;
        }
        let outcome = match status {
            FinishStatus::Success => Ok(capped_result(result.unwrap_or(serde_json::Value::Null))),
            FinishStatus::Failed => Err(PluginError::Failed(
                error
                    .map(protocol::entry::cap_message)
                    .unwrap_or_else(|| "the worker reported a failure".into()),
            )),
            FinishStatus::Cancelled => Err(PluginError::Cancelled),
        };
        // Queued at once: a finish followed by a close must still reach the manager.
        self.state.engine.manager.do_send(WorkerFinished {
            worker_id: self.worker_id.clone().unwrap_or_default(),
            conn: self.conn,
            task_id,
            outcome,
        });
    }

    fn on_submit(&mut self, plugin: String, params: serde_json::Value, ctx: &mut Ctx) {
        if !valid_plugin_name(&plugin) {
            return self.warn(
                ctx,
                format!("plugin name {plugin:?} must match [a-z0-9_.-]{{1,64}}"),
                None,
            );
        }
        if !params.is_object() && !params.is_null() {
            return self.warn(ctx, "params must be a JSON object".into(), None);
        }
        // Answered by the task's `run`, or by a refusal (`ToWorker::Refused`).
        self.state.engine.manager.do_send(WorkerSubmit {
            worker_id: self.worker_id.clone().unwrap_or_default(),
            conn: self.conn,
            plugin,
            params: if params.is_null() {
                serde_json::json!({})
            } else {
                params
            },
            created_by: self.caller.name.clone(),
        });
    }

    fn forget(&mut self, task_id: TaskId) {
        if let Some(task) = self.tasks.remove(&task_id) {
            self.unacked_bytes -= task.unacked.iter().map(|(_, b)| b).sum::<u64>();
        }
        if self.ended.len() >= REMEMBERED_ENDED {
            self.ended.pop_front();
        }
        self.ended.push_back(task_id);
    }
}

/// A worker's record as a record: its source cleaned (and never the engine's own),
/// its metadata encoded like any other.
fn to_entry(e: WorkerEntry) -> LogEntry {
    let source = e
        .source
        .as_deref()
        .map(|s| sanitize_source(s, engine::logger::DEFAULT_SOURCE).into_owned())
        .filter(|s| !s.eq_ignore_ascii_case(RESERVED_SOURCE))
        .unwrap_or_else(|| engine::logger::DEFAULT_SOURCE.to_owned());
    LogEntry {
        seq: e.seq,
        timestamp: e.timestamp,
        level: e.level,
        source: Arc::from(source),
        body: Body::from_message(e.message, e.metadata.as_ref()),
        group: None,
        mark: None,
        worst: None,
    }
}

impl Actor for WorkerSession {
    type Context = Ctx;

    fn started(&mut self, ctx: &mut Ctx) {
        let ws = self.state.ws;
        ctx.run_interval(ws.heartbeat(), move |act, ctx| {
            if act.last_heard.elapsed() > ws.client_timeout() {
                act.close(ctx, ws::CloseCode::Away, "worker did not answer pings");
                return;
            }
            ctx.ping(b"");
        });
        // A deleted token stops its workers within moments on every node: the
        // store's generation changes when the tokens are reloaded, and only then
        // is this connection's token looked up again.
        ctx.run_interval(TOKEN_CHECK, |act, ctx| {
            if act
                .state
                .tokens
                .deleted_since(&act.token_hash, &mut act.tokens_seen)
            {
                act.fatal(ctx, "the token of this connection was deleted".into(), None);
            }
        });
        ctx.run_later(Duration::from_secs(ws.auth_timeout_secs), |act, ctx| {
            if !act.hello_sent {
                act.fatal(ctx, "no hello within the time allowed".into(), None);
            }
        });
    }

    fn stopped(&mut self, _: &mut Ctx) {
        if let Some(worker_id) = self.worker_id.take() {
            self.state.engine.manager.do_send(WorkerGone {
                worker_id,
                conn: self.conn,
            });
        }
    }
}

/// Results past this are replaced by `{"truncated_bytes": N}`: a task's result is
/// stored, listed and sent to every watcher, like its params.
const MAX_RESULT_BYTES: usize = engine::manager::MAX_PARAMS_BYTES;

fn capped_result(result: serde_json::Value) -> serde_json::Value {
    let bytes = serde_json::to_vec(&result).map_or(usize::MAX, |v| v.len());
    if bytes > MAX_RESULT_BYTES {
        serde_json::json!({ "truncated_bytes": bytes })
    } else {
        result
    }
}

/// What the engine sends before `welcome` waits, up to this many bytes (about their
/// JSON size); past it, the connection is not keeping up and is closed.
const MAX_EARLY_BYTES: usize = 16 << 20;

/// About how many bytes `msg` takes as JSON.
fn approx_bytes(msg: &ToWorker) -> usize {
    match msg {
        ToWorker::Run { params, .. } => {
            256 + serde_json::to_vec(params).map_or(usize::MAX / 2, |v| v.len())
        }
        ToWorker::Refused { message } => 64 + message.len(),
        _ => 128,
    }
}

impl Handler<ToWorker> for WorkerSession {
    type Result = ();

    fn handle(&mut self, msg: ToWorker, ctx: &mut Ctx) {
        if !self.welcomed && !matches!(msg, ToWorker::Replaced) {
            self.early_bytes += approx_bytes(&msg);
            if self.early_bytes > MAX_EARLY_BYTES {
                return self.fatal(ctx, "the worker did not take its welcome".into(), None);
            }
            self.early.push(msg);
            return;
        }
        self.deliver(msg, ctx);
    }
}

impl WorkerSession {
    fn deliver(&mut self, msg: ToWorker, ctx: &mut Ctx) {
        match msg {
            ToWorker::Run {
                ctx: run,
                plugin,
                params,
                settings,
            } => {
                let task_id = run.task_id;
                self.tasks.insert(
                    task_id,
                    LinkedTask {
                        logger: run.logger,
                        unacked: VecDeque::new(),
                        finished: false,
                    },
                );
                self.send(
                    ctx,
                    &ToWorkerMessage::Run {
                        task_id,
                        plugin,
                        params,
                        settings,
                    },
                );
            }
            ToWorker::Cancel { task_id } => self.send(ctx, &ToWorkerMessage::Cancel { task_id }),
            ToWorker::Settings { task_id, settings } => {
                self.send(ctx, &ToWorkerMessage::Settings { task_id, settings })
            }
            ToWorker::Durable { task_id, seq } => {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    while task.unacked.front().is_some_and(|(last, _)| *last <= seq) {
                        let (_, bytes) = task.unacked.pop_front().expect("front exists");
                        self.unacked_bytes -= bytes;
                    }
                }
                self.send(ctx, &ToWorkerMessage::Ack { task_id, seq });
            }
            ToWorker::Done { task_id, status } => {
                self.forget(task_id);
                self.send(ctx, &ToWorkerMessage::Done { task_id, status });
            }
            ToWorker::Replaced => {
                // The new connection has the tasks now; this one must not report gone.
                self.worker_id = None;
                self.fatal(
                    ctx,
                    "another connection said hello with this worker_id and took over".into(),
                    None,
                );
            }
            ToWorker::Refused { message } => self.warn(ctx, message, None),
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WorkerSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Ctx) {
        let msg = match item {
            Ok(msg) => msg,
            Err(e) => {
                // Mostly a connection cut mid-frame: a disconnect, not a violation.
                log::info!(
                    "worker={} conn={} error=\"{e}\" Worker connection ended.",
                    self.worker_id.as_deref().unwrap_or("-"),
                    self.conn
                );
                return self.close(ctx, ws::CloseCode::Protocol, "protocol error");
            }
        };
        self.last_heard = Instant::now();
        match msg {
            ws::Message::Text(text) => self.on_text(&text, ctx),
            ws::Message::Binary(_) | ws::Message::Continuation(_) => self.fatal(
                ctx,
                "only unfragmented JSON text frames are accepted".into(),
                None,
            ),
            ws::Message::Ping(payload) => ctx.pong(&payload),
            ws::Message::Pong(_) | ws::Message::Nop => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
        }
    }
}
