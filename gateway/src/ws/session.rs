//! `WsSession`: one actor per WebSocket connection.
//!
//! State: the caller (once authenticated), the followed tasks ([`Subscription`]s),
//! whether it watches all tasks' status, and the time the client was last heard from.
//!
//! Messages: client frames (`StreamHandler`), [`Wake`] from the `LogHub` when its
//! [`Inbox`] holds live batches and status changes, and the answers of its own
//! database reads.
//!
//! Lifecycle: `started` joins the hub and starts the heartbeat, the coalescing timer and, for a connection opened without a token, the
//! authentication deadline; `stopped` leaves the hub.
//!
//! Backpressure: the actor runs inside the response body, which the server only
//! polls while the socket accepts data; a client that stops reading therefore stops
//! the session, its inbox passes its byte bound (`ws_max_queued_bytes`), and the hub
//! drops and flags it. The session then closes with a reason. A session that is
//! merely scheduled late takes its whole inbox when it runs, so a client that reads
//! what it is sent is never judged slow. History is read one page at a time, each page only after
//! the previous one has been handed to the socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use engine::batch::LogBatch;
use protocol::{ClientMessage, FilterSpec, LogFilter, LogPage, TaskId, TaskInfo};
use storage::logs::page_logs;
use storage::LogQuery;

use super::admission::Slot;
use super::frames;
use super::subscription::{Phase, Subscription};
use crate::auth::Caller;
use crate::hub::{
    Delivery, Follow, Inbox, Interest, Join, Leave, SessionId, Unfollow, Wake, WatchAll,
};
use crate::redact;
use crate::state::AppState;

/// Largest client frame accepted.
const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// How long a page of history waits for a server-wide permit before the
/// subscription fails with a message (the client may subscribe again).
const HISTORY_WAIT: Duration = Duration::from_secs(30);
/// History pages read at once by all sessions together.
pub const HISTORY_READS: usize = 4;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Upgrades the request and starts a session.
pub fn start(
    state: Arc<AppState>,
    caller: Option<(Caller, String)>,
    slot: Slot,
    req: &HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let (caller, token_hash) = caller.map_or((None, None), |(c, h)| (Some(c), Some(h)));
    let inbox = Arc::new(
        Inbox::new(state.ws.max_queued_bytes)
            .with_socket(super::admission::ConnSocket::duplicate(req)),
    );
    if caller.is_none() {
        // Enforced by the hub too: a client that never lets its session run (it
        // sends without reading) cannot outlast the deadline.
        inbox.set_deadline(Some(
            Instant::now() + Duration::from_secs(state.ws.auth_timeout_secs),
        ));
    }
    let session = WsSession {
        id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        peer: req.peer_addr().map(|a| a.ip()),
        slot,
        state,
        caller,
        token_hash,
        subs: HashMap::new(),
        watch_all: false,
        last_heard: Instant::now(),
        inbox,
        history_turn: Arc::new(tokio::sync::Semaphore::new(1)),
        next_generation: 0,
        closing: false,
    };
    ws::WsResponseBuilder::new(session, req, stream)
        .frame_size(MAX_CLIENT_FRAME)
        .start()
}

pub struct WsSession {
    id: SessionId,
    /// The client's address, for throttling invalid `auth` messages.
    peer: Option<std::net::IpAddr>,
    /// This connection's place among the open ones; given back when the session ends.
    slot: Slot,
    state: Arc<AppState>,
    caller: Option<Caller>,
    /// Digest of the token the session authenticated with: checked on every heartbeat,
    /// so a deleted token ends its sessions too.
    token_hash: Option<String>,
    subs: HashMap<TaskId, Subscription>,
    watch_all: bool,
    last_heard: Instant,
    /// Live batches and status changes from the hub, not yet taken.
    inbox: Arc<Inbox>,
    /// This session's one history read at a time.
    history_turn: Arc<tokio::sync::Semaphore>,
    next_generation: u64,
    closing: bool,
}

type Ctx = ws::WebsocketContext<WsSession>;

impl WsSession {
    fn close(&mut self, ctx: &mut Ctx, code: ws::CloseCode, reason: &str) {
        if self.closing {
            return;
        }
        self.closing = true;
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    /// Closes the session if the hub dropped it for falling behind.
    fn check_overflow(&mut self, ctx: &mut Ctx) -> bool {
        if self.inbox.overflowed() {
            ctx.text(frames::error(
                "this connection fell too far behind the live stream and is closed; reconnect and resume with after_seq",
                None,
            ));
            self.close(
                ctx,
                ws::CloseCode::Again,
                "client too slow: live queue overflowed",
            );
            return true;
        }
        false
    }

    fn current(&self, task: TaskId, generation: u64) -> bool {
        self.subs
            .get(&task)
            .is_some_and(|s| s.generation == generation)
    }

    fn on_client_message(&mut self, text: &str, ctx: &mut Ctx) {
        let msg: ClientMessage = match serde_json::from_str(text) {
            Ok(msg) => msg,
            Err(e) => {
                ctx.text(frames::error(format!("bad message: {e}"), None));
                if self.caller.is_none() {
                    self.close(ctx, ws::CloseCode::Policy, "not authenticated");
                }
                return;
            }
        };
        if self.caller.is_none() {
            match msg {
                ClientMessage::Auth { token } => {
                    match self.state.tokens.authenticate(self.peer, &token) {
                        Ok(caller) => {
                            self.inbox.set_deadline(None);
                            let hash = storage::tokens::hash_token(token.trim());
                            if let Err(e) = self.state.ws_connections.assign(&mut self.slot, &hash)
                            {
                                ctx.text(frames::error(e.message(), None));
                                self.close(
                                    ctx,
                                    ws::CloseCode::Policy,
                                    "too many connections for this token",
                                );
                                return;
                            }
                            self.token_hash = Some(hash);
                            self.caller = Some(caller);
                        }
                        Err(e) => {
                            ctx.text(frames::error(e.message(), None));
                            self.close(ctx, ws::CloseCode::Policy, "authentication failed");
                        }
                    }
                }
                _ => {
                    ctx.text(frames::error(
                        "authenticate first: send {\"type\":\"auth\",\"token\":\"…\"} or connect with a token",
                        None,
                    ));
                    self.close(ctx, ws::CloseCode::Policy, "not authenticated");
                }
            }
            return;
        }
        match msg {
            ClientMessage::Auth { .. } => ctx.text(frames::error(
                "already authenticated: a connection keeps its token; open a new connection for another",
                None,
            )),
            ClientMessage::Subscribe {
                task_id,
                filter,
                after_seq,
            } => self.subscribe(task_id, &filter, after_seq, ctx),
            ClientMessage::SetFilter {
                task_id,
                filter,
                after_seq,
            } => {
                if self.subs.contains_key(&task_id) {
                    self.subscribe(task_id, &filter, after_seq, ctx);
                } else {
                    ctx.text(frames::error(
                        format!("not subscribed to task {task_id}; subscribe first"),
                        Some(task_id),
                    ));
                }
            }
            ClientMessage::Unsubscribe { task_id } => {
                if self.subs.remove(&task_id).is_some() {
                    self.state.hub.do_send(Unfollow {
                        session: self.id,
                        task_id,
                    });
                } else {
                    ctx.text(frames::error(
                        format!("not subscribed to task {task_id}"),
                        Some(task_id),
                    ));
                }
            }
            ClientMessage::SubscribeTasks {} => {
                self.watch_all = true;
                self.state.hub.do_send(WatchAll {
                    session: self.id,
                    on: true,
                });
            }
            ClientMessage::UnsubscribeTasks {} => {
                self.watch_all = false;
                self.state.hub.do_send(WatchAll {
                    session: self.id,
                    on: false,
                });
            }
        }
    }

    fn subscribe(&mut self, task_id: TaskId, spec: &FilterSpec, after_seq: u64, ctx: &mut Ctx) {
        let filter = match LogFilter::parse(spec) {
            Ok(filter) => filter,
            Err(e) => {
                ctx.text(frames::error(format!("bad filter: {e}"), Some(task_id)));
                return;
            }
        };
        if !self.subs.contains_key(&task_id) && self.subs.len() >= self.state.ws.max_subscriptions {
            ctx.text(frames::error(
                format!(
                    "at most {} tasks can be followed on one connection",
                    self.state.ws.max_subscriptions
                ),
                Some(task_id),
            ));
            return;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        self.subs.insert(
            task_id,
            Subscription::new(task_id, filter, after_seq, generation),
        );
        let db = self.state.db.clone();
        ctx.spawn(
            async move { db.run(move |c| storage::tasks::get_task(c, task_id)).await }
                .into_actor(self)
                .map(move |found, act, ctx| {
                    if !act.current(task_id, generation) {
                        return;
                    }
                    match found {
                        Ok(Some(task)) => {
                            if let Some(sub) = act.subs.get_mut(&task_id) {
                                sub.note_status(task);
                            }
                            act.read_history(task_id, generation, ctx);
                        }
                        Ok(None) => {
                            act.fail_subscription(task_id, format!("task {task_id} not found"), ctx)
                        }
                        Err(e) => act.fail_storage(task_id, &e, ctx),
                    }
                }),
        );
    }

    fn fail_subscription(&mut self, task_id: TaskId, message: String, ctx: &mut Ctx) {
        if self.subs.remove(&task_id).is_some() {
            self.state.hub.do_send(Unfollow {
                session: self.id,
                task_id,
            });
        }
        ctx.text(frames::error(message, Some(task_id)));
    }

    fn fail_storage(&mut self, task_id: TaskId, error: &storage::StorageError, ctx: &mut Ctx) {
        log::error!(
            "task_id={task_id} error=\"{}\" Reading history for a WebSocket client failed.",
            engine::sink::error_chain(error)
        );
        self.fail_subscription(
            task_id,
            "the server could not read this task's history; subscribe again".into(),
            ctx,
        );
    }

    /// Reads the next page of history for the subscription's current phase.
    fn read_history(&mut self, task_id: TaskId, generation: u64, ctx: &mut Ctx) {
        let Some(sub) = self.subs.get(&task_id) else {
            return;
        };
        let (db, filter) = (self.state.db.clone(), sub.filter.clone());
        let query = LogQuery {
            after_seq: sub.cursor,
            before_seq: None,
            limit: self.state.ws.history_page,
        };
        // One page at a time per session, and a bounded number server-wide, so that
        // many subscriptions with filters SQL cannot narrow (`re`) cannot take every
        // database connection from REST and the engine.
        let (mine, server) = (self.history_turn.clone(), self.state.history_reads.clone());
        ctx.spawn(
            async move {
                let mine = mine.acquire_owned().await;
                let wait = tokio::time::timeout(HISTORY_WAIT, server.acquire_owned());
                let Ok(Ok(permit)) = wait.await else {
                    return None;
                };
                // The permits go with the database work and are given back when it
                // ends, not when this session next runs: that waits for its client
                // to read what was sent before.
                Some(
                    db.run(move |c| {
                        let _held = (mine, permit);
                        page_logs(c, task_id, &filter, &query)
                    })
                    .await,
                )
            }
            .into_actor(self)
            .map(move |page, act, ctx| act.history_read(task_id, generation, page, ctx)),
        );
    }

    /// `page` is `None` when no history permit freed up in time.
    fn history_read(
        &mut self,
        task_id: TaskId,
        generation: u64,
        page: Option<storage::Result<LogPage>>,
        ctx: &mut Ctx,
    ) {
        if !self.current(task_id, generation) {
            return;
        }
        let page = match page {
            Some(Ok(page)) => page,
            Some(Err(e)) => return self.fail_storage(task_id, &e, ctx),
            None => {
                return self.fail_subscription(
                    task_id,
                    "the server is busy reading other histories; subscribe again shortly".into(),
                    ctx,
                )
            }
        };
        let sub = self.subs.get_mut(&task_id).expect("checked by current()");
        let fresh = sub.history_page(page.logs, page.next_after_seq);
        for frame in frames::logs(task_id, &fresh) {
            ctx.text(frame);
        }
        if page.has_more {
            return self.read_history(task_id, generation, ctx);
        }
        match sub.phase {
            Phase::CatchUp => self.follow(task_id, generation, ctx),
            Phase::Joining => self.go_live(task_id, ctx),
            Phase::Live => {}
        }
    }

    fn follow(&mut self, task_id: TaskId, generation: u64, ctx: &mut Ctx) {
        if let Some(sub) = self.subs.get_mut(&task_id) {
            sub.start_joining();
        }
        let hub = self.state.hub.clone();
        let db = self.state.db.clone();
        let session = self.id;
        let interest = self
            .subs
            .get(&task_id)
            .map(|sub| Interest::from(&*sub.filter))
            .unwrap_or_default();
        ctx.spawn(
            async move {
                let pending = hub
                    .send(Follow {
                        session,
                        task_id,
                        interest,
                    })
                    .await;
                // Read after following: a status written before it is seen here, one
                // written after it arrives as a TaskUpdate.
                let task = db.run(move |c| storage::tasks::get_task(c, task_id)).await;
                (pending, task)
            }
            .into_actor(self)
            .map(move |(pending, task), act, ctx| {
                if !act.current(task_id, generation) {
                    return;
                }
                let sub = act.subs.get_mut(&task_id).expect("checked by current()");
                match (pending, task) {
                    (Ok(pending), Ok(task)) => {
                        if let Some(task) = task {
                            sub.note_status(task);
                        }
                        sub.joined(pending);
                        act.read_history(task_id, generation, ctx);
                    }
                    (_, Err(e)) => act.fail_storage(task_id, &e, ctx),
                    (Err(_), _) => {
                        act.fail_subscription(task_id, "the live stream is unavailable".into(), ctx)
                    }
                }
            }),
        );
    }

    fn go_live(&mut self, task_id: TaskId, ctx: &mut Ctx) {
        let Some(sub) = self.subs.get_mut(&task_id) else {
            return;
        };
        sub.go_live();
        let seq = sub.cursor;
        let status = sub.task.clone();
        self.flush(task_id, ctx);
        ctx.text(frames::caught_up(task_id, seq));
        if let Some(task) = status {
            ctx.text(self.task_frame(&task));
        }
    }

    fn flush(&mut self, task_id: TaskId, ctx: &mut Ctx) {
        if let Some(sub) = self.subs.get_mut(&task_id) {
            if !sub.outgoing.is_empty() {
                let parts = sub.outgoing.take();
                for frame in frames::live_logs(task_id, &parts) {
                    ctx.text(frame);
                }
            }
        }
    }

    fn flush_all(&mut self, ctx: &mut Ctx) {
        let ready: Vec<TaskId> = self
            .subs
            .iter()
            .filter(|(_, s)| !s.outgoing.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for task_id in ready {
            self.flush(task_id, ctx);
        }
    }
}

impl Actor for WsSession {
    type Context = Ctx;

    fn started(&mut self, ctx: &mut Ctx) {
        let ws = self.state.ws;
        self.state.hub.do_send(Join {
            session: self.id,
            inbox: self.inbox.clone(),
            wake: ctx.address().recipient(),
        });
        ctx.run_interval(ws.heartbeat(), move |act, ctx| {
            if act.last_heard.elapsed() > Duration::from_secs(ws.client_timeout_secs) {
                act.close(ctx, ws::CloseCode::Away, "client did not answer pings");
                return;
            }
            if act
                .token_hash
                .as_deref()
                .is_some_and(|h| !act.state.tokens.has_hash(h))
            {
                ctx.text(frames::error(
                    "the token of this connection was deleted",
                    None,
                ));
                act.close(ctx, ws::CloseCode::Policy, "token revoked");
                return;
            }
            if !act.check_overflow(ctx) {
                ctx.ping(b"");
            }
        });
        ctx.run_interval(Duration::from_millis(ws.coalesce_ms.max(1)), |act, ctx| {
            if !act.check_overflow(ctx) {
                act.flush_all(ctx);
            }
        });
        if self.caller.is_none() {
            ctx.run_later(Duration::from_secs(ws.auth_timeout_secs), |act, ctx| {
                if act.caller.is_none() {
                    ctx.text(frames::error(
                        "no auth message within the time allowed",
                        None,
                    ));
                    act.close(ctx, ws::CloseCode::Policy, "not authenticated");
                }
            });
        }
    }

    fn stopped(&mut self, _: &mut Ctx) {
        self.state.hub.do_send(Leave { session: self.id });
    }
}

impl WsSession {
    /// A `task` frame as this connection's caller may see it, with small params
    /// only (status frames from the hub already are; the one after `caught_up`
    /// comes from the database).
    fn task_frame(&self, task: &TaskInfo) -> String {
        let registry = &self.state.engine.registry;
        let summary;
        let task = if task.params_omitted {
            task
        } else {
            summary = task.summary();
            &summary
        };
        if redact::needed(registry, self.caller.as_ref(), task) {
            frames::task(&redact::for_caller(
                registry,
                self.caller.as_ref(),
                task.clone(),
            ))
        } else {
            frames::task(task)
        }
    }

    fn on_live_logs(&mut self, task_id: TaskId, batch: Arc<LogBatch>, ctx: &mut Ctx) {
        let limit = self.state.ws.frame_max_entries;
        let max_buffered = self.state.ws.max_queued_bytes;
        let Some(sub) = self.subs.get_mut(&task_id) else {
            return;
        };
        if !sub.live(batch, max_buffered) {
            self.inbox.overflow();
            self.check_overflow(ctx);
            return;
        }
        if sub.outgoing.len() >= limit {
            self.flush(task_id, ctx);
        }
    }

    fn on_status(&mut self, task: &TaskInfo, ctx: &mut Ctx) {
        match self.subs.get_mut(&task.id) {
            Some(sub) => {
                sub.note_status(task.clone());
                if sub.phase == Phase::Live {
                    // Records before the status, so a final status is the last word.
                    self.flush(task.id, ctx);
                    ctx.text(self.task_frame(task));
                }
            }
            None if self.watch_all => ctx.text(self.task_frame(task)),
            None => {}
        }
    }
}

impl Handler<Wake> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Ctx) {
        for delivery in self.inbox.take() {
            if self.check_overflow(ctx) {
                return;
            }
            match delivery {
                Delivery::Logs { task_id, batch } => self.on_live_logs(task_id, batch, ctx),
                Delivery::Status(task) => self.on_status(&task, ctx),
            }
        }
        self.check_overflow(ctx);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Ctx) {
        let msg = match item {
            Ok(msg) => msg,
            Err(e) => {
                log::debug!(
                    "session={} error=\"{e}\" WebSocket protocol error.",
                    self.id
                );
                self.close(ctx, ws::CloseCode::Protocol, "protocol error");
                return;
            }
        };
        self.last_heard = Instant::now();
        if self.caller.is_none() {
            // Before it authenticates a client gets nothing written back but the
            // answer to `auth`: it cannot make the server write to a socket it
            // does not read, and so stall its own session past the auth deadline.
            match msg {
                ws::Message::Text(text) => self.on_client_message(&text, ctx),
                ws::Message::Close(reason) => {
                    ctx.close(reason);
                    ctx.stop();
                }
                ws::Message::Ping(_) | ws::Message::Pong(_) | ws::Message::Nop => {}
                ws::Message::Binary(_) | ws::Message::Continuation(_) => {
                    self.close(ctx, ws::CloseCode::Policy, "not authenticated")
                }
            }
            return;
        }
        match msg {
            ws::Message::Text(text) => self.on_client_message(&text, ctx),
            ws::Message::Binary(_) => ctx.text(frames::error(
                "binary frames are not supported; send JSON text",
                None,
            )),
            ws::Message::Ping(payload) => ctx.pong(&payload),
            ws::Message::Pong(_) | ws::Message::Nop => {}
            ws::Message::Continuation(_) => {
                ctx.text(frames::error("fragmented frames are not supported", None))
            }
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
        }
    }
}
