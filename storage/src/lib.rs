//! Tasklens persistence. Every line of SQL in the project lives in this crate.
//!
//! - [`db`]: [`Db`], the pooled connection to SQLite or PostgreSQL chosen by URL,
//!   migrations applied on connect, and [`Db::run`], the one door through which async
//!   code reaches the database (checkout and query on a blocking thread).
//! - [`schema`] / [`models`]: the diesel schema shared by both backends and the row types.
//! - [`logs`]: batch insert of log records (multi-row `INSERT` on SQLite, `COPY` on
//!   PostgreSQL, idempotent on retry), filtered keyset paging and per-source counts.
//! - [`tasks`], [`settings`], [`tokens`], [`nodes`]: the other tables; [`queue`]: the
//!   queue every node takes tasks from; [`partitions`]: PostgreSQL's daily
//!   partitions of `task_logs`, created ahead and dropped by retention.
//!
//! Functions here are plain and synchronous over a [`Conn`]; none of them knows about
//! actors or HTTP.

pub mod bare;
pub mod changes;
pub mod db;
pub mod error;
pub mod logs;
pub mod models;
pub mod nodes;
pub mod partitions;
pub mod queue;
pub mod schema;
pub mod search;
pub mod settings;
pub mod tasks;
pub mod text_index;
pub mod tokens;

pub use db::{Backend, Conn, DatabaseSettings, Db};
pub use error::StorageError;
pub use logs::{LogBatchRef, LogQuery};

/// Result of a storage operation.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
