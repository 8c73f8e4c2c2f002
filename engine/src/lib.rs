//! The Tasklens runtime: task actors, the plugin API and the log pipeline.
//!
//! ```text
//! plugin code ─ TaskLogger ─(batch)─┬─► LogSink ─► task_logs (durable, in batches)
//!                                   └─► EngineEvents::logs ─► (gateway LogHub)
//! ```
//!
//! - [`engine`]: [`Engine::start`] wires everything on the current actix system.
//! - [`manager`]: `TaskManager`, which creates, queues, cancels and shuts down tasks.
//! - [`task`]: `TaskActor`, one per running task; runs the plugin on its own thread
//!   and ends the task only after its logs are durable.
//! - [`logger`]: `TaskLogger`, seq numbering, the level gate and batched hand-over.
//! - [`sink`]: `LogSink`, batched inserts with retry and backpressure.
//! - [`spool`]: records kept on local disk when the database cannot take them at shutdown.
//! - [`batch`]: shared batches and the `BufferGate` that bounds un-durable records.
//! - [`settings`]: `SettingsActor` and `LiveSettings` (runtime logging settings).
//! - [`plugin`]: the plugin API, legacy adapter and `log` capture, belief_scope, built-ins.
//! - [`remote`]: plugins in other processes (workers), reached through the same messages.
//! - [`retention`]: deletion of old finished tasks.
//! - [`text_indexer`]: SQLite's trigram index of messages, kept behind ingest.
//! - [`events`]: what the engine publishes (records appended, persisted, task status).

pub mod batch;
pub mod cancel;
pub mod engine;
pub mod error;
pub mod events;
pub mod logger;
pub mod manager;
pub mod node;
pub mod plugin;
pub mod remote;
pub mod retention;
pub mod settings;
pub mod sink;
pub mod spool;
pub mod task;
pub mod text_indexer;

pub use engine::{Engine, EngineSettings, NodeRole};
pub use error::EngineError;
pub use events::{EngineEvents, LogsAppended, LogsPersisted, TaskStatusChanged};
pub use logger::TaskLogger;
pub use plugin::{
    ActorPlugin, AnyPlugin, BlockingPlugin, Describe, PluginError, PluginRegistry, TaskContext,
};
pub use sink::LogSinkSettings;
