//! `/ws`: live logs and task status over WebSocket.
//!
//! - [`session`]: `WsSession`, one actor per connection (the only file that uses the
//!   deprecated `actix-web-actors`; a move to `actix-ws` rewrites that file alone).
//! - [`subscription`]: the history → live hand-off of one followed task.
//! - [`frames`]: writing `logs` frames straight from shared batches.
//! - [`worker`]: `/ws/worker`, where remote workers run tasks.

pub mod admission;
pub mod frames;
pub mod session;
pub mod subscription;
pub mod worker;

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::bearer;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;
use protocol::ErrorBody;

/// WebSocket tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsSettings {
    /// Bytes of live records and status changes a client may leave unread (queued
    /// for its socket and not yet written) before it is judged too slow and closed.
    pub max_queued_bytes: u64,
    /// Live records are coalesced into one frame per task for this long.
    pub coalesce_ms: u64,
    /// A frame is sent early once it holds this many live records.
    pub frame_max_entries: usize,
    /// Records per history frame (one database page).
    pub history_page: usize,
    pub heartbeat_secs: u64,
    /// A client silent (no pong, no message) this long is disconnected, and so is
    /// one that leaves what it was sent unread this long.
    pub client_timeout_secs: u64,
    /// A connection opened without a token must send `auth` within this time.
    pub auth_timeout_secs: u64,
    pub max_subscriptions: usize,
    /// Open connections the server accepts; more get 503.
    pub max_connections: usize,
    /// Open connections per token; more get 429.
    pub max_connections_per_token: usize,
    /// Bytes of records a worker may have sent and not had acknowledged.
    pub worker_max_unacked_bytes: u64,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            max_queued_bytes: 16 << 20,
            coalesce_ms: 25,
            frame_max_entries: 500,
            history_page: 2_000,
            heartbeat_secs: 10,
            client_timeout_secs: 30,
            auth_timeout_secs: 10,
            max_subscriptions: 64,
            max_connections: 2_000,
            max_connections_per_token: 200,
            worker_max_unacked_bytes: 32 << 20,
        }
    }
}

impl WsSettings {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs.max(1))
    }

    pub fn client_timeout(&self) -> Duration {
        Duration::from_secs(self.client_timeout_secs.max(1))
    }
}

/// Checks what every WebSocket upgrade must pass (no unknown query parameters, an
/// allowed `Origin`) and returns the token it came with, from the `Authorization`
/// header or the `token` query parameter.
pub fn upgrade_token(req: &HttpRequest, state: &AppState) -> Result<Option<String>, ApiError> {
    let params = Params::parse(req.query_string(), &["token"])?;
    admission::check_origin(req, &state.ws_allowed_origins)?;
    Ok(match bearer(req)? {
        Some(token) => Some(token),
        None => params.text("token").map(str::to_owned),
    })
}

/// `GET /ws`: upgrades to a session. A token in the `Authorization` header or the
/// `token` query parameter is checked now (401 when wrong); without one the client
/// must send an `auth` message first.
#[utoipa::path(get, path = "/ws", tag = "logs", security((), ("token" = [])),
    params(("token" = Option<String>, Query, description = "The token, where a header cannot be set")),
    responses((status = 101, description = "Upgraded to the log stream protocol (docs/api.md)"), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn route(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let token = upgrade_token(&req, &state)?;
    let caller = match token {
        Some(token) => Some((
            state
                .tokens
                .authenticate(req.peer_addr().map(|a| a.ip()), &token)
                .and_then(crate::auth::Caller::not_worker)?,
            storage::tokens::hash_token(token.trim()),
        )),
        None => None,
    };
    let mut slot = state
        .ws_connections
        .open(caller.is_some(), req.peer_addr().map(|a| a.ip()))?;
    if let Some((_, hash)) = &caller {
        state.ws_connections.assign(&mut slot, hash)?;
    }
    session::start(state.into_inner(), caller, slot, &req, stream)
}
