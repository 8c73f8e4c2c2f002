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
    /// Permits for reads that scan a whole task (index, export).
    pub heavy_reads: std::sync::Arc<tokio::sync::Semaphore>,
}
