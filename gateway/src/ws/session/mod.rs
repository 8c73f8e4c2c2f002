//! `WsSession`: one actor per WebSocket connection.
//!
//! State: the caller (once authenticated), the followed tasks ([`Subscription`]s),
//! whether it watches all tasks' status, and the time the client was last heard from.
//!
//! Messages: client frames (`StreamHandler`), [`Wake`] from the `LogHub` when its
//! [`Inbox`] holds live batches and status changes, and the answers of its own
//! database reads.
//!
//! Parts: `requests` (what the client asks: its token, subscriptions), `history`
//! (each subscription's read of what is stored), `live` (the hub's batches and
//! statuses, through each [`Subscription`], the transport-neutral hand-off that
//! serves this node's tasks and other nodes' alike). This file is the transport.
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
use protocol::TaskId;

use super::admission::Slot;
use super::frames;
use super::subscription::Subscription;
use crate::auth::Caller;
use crate::hub::{Inbox, Join, Leave, SessionId};
use crate::state::AppState;

mod history;
mod live;
mod requests;

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
        tokens_seen: 0,
        subs: HashMap::new(),
        watch_all: false,
        search: None,
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
    /// Digest of the token the session authenticated with: checked whenever the
    /// token cache is reloaded, so a deleted token ends its sessions too, on every
    /// node within moments.
    token_hash: Option<String>,
    /// The token cache's generation when the token was last found in it.
    tokens_seen: u64,
    subs: HashMap<TaskId, Subscription>,
    watch_all: bool,
    /// The live search over every task (`subscribe_all`), if any.
    search: Option<protocol::LogFilter>,
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
    /// Whether the session's token is gone from the cache (looked up only when the
    /// cache has been reloaded since the last look).
    fn token_revoked(&mut self) -> bool {
        let Some(hash) = self.token_hash.as_deref() else {
            return false;
        };
        self.state.tokens.deleted_since(hash, &mut self.tokens_seen)
    }

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
            if !act.check_overflow(ctx) {
                ctx.ping(b"");
            }
        });
        ctx.run_interval(Duration::from_millis(ws.coalesce_ms.max(1)), |act, ctx| {
            if act.token_revoked() {
                ctx.text(frames::error(
                    "the token of this connection was deleted",
                    None,
                ));
                act.close(ctx, ws::CloseCode::Policy, "token revoked");
                return;
            }
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
