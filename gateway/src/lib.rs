//! The HTTP side of Tasklens.
//!
//! - [`startup`]: [`Application::build`] assembles database, engine, hub and server.
//! - [`routes`]: the REST API (`/api/...`, `/healthz`).
//! - [`auth`]: bearer tokens, roles, the token cache and the first admin token.
//! - [`hub`]: `LogHub`, live fan-out of records and status to WebSocket sessions.
//! - [`ws`]: `/ws`, one `WsSession` actor per connection, with server-side filters.
//! - [`error`]: `ApiError`, the JSON error body of every failure.
//! - [`headers`]: security and caching headers on every response.
//! - [`metrics`]: `/metrics` in Prometheus' text format.
//! - [`params`]: strict query-string parsing.
//! - [`redact`]: what viewers do not see of privileged tasks.
//! - [`tls`]: serving HTTPS with rustls.
//! - [`ui`]: the built web console and client-side routes.

pub mod auth;
pub mod error;
pub mod headers;
pub mod hub;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod redact;
pub mod routes;
pub mod startup;
pub mod state;
pub mod tls;
pub mod ui;
pub mod ws;

pub use startup::{AppConfig, AppHandle, Application, HttpSettings, Secret, StartError};
pub use ws::WsSettings;
