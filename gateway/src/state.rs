//! What every handler can reach.

use actix::Addr;
use engine::Engine;
use storage::Db;

use crate::auth::TokenStore;
use crate::hub::LogHub;
use crate::ws::WsSettings;

pub struct AppState {
    pub engine: Engine,
    pub db: Db,
    pub hub: Addr<LogHub>,
    pub tokens: TokenStore,
    pub ws: WsSettings,
    /// Open WebSocket connections, bounded in all and per token.
    pub ws_connections: crate::ws::admission::Connections,
    /// Origins besides the server's own whose pages may open WebSockets.
    pub ws_allowed_origins: Vec<String>,
    /// Permits for reads that scan a whole task (index, an export chunk).
    pub heavy_reads: std::sync::Arc<tokio::sync::Semaphore>,
    /// Permits for WebSocket history pages, shared by all sessions.
    pub history_reads: std::sync::Arc<tokio::sync::Semaphore>,
    /// An export whose client reads nothing this long is disconnected.
    pub export_stall: std::time::Duration,
    /// Places for exports streaming at once.
    pub exports: std::sync::Arc<tokio::sync::Semaphore>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// `/metrics` answers without a token.
    pub metrics_public: bool,
}
