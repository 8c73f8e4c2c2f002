//! Wire types shared by the Tasklens server (`gateway`, `engine`, `storage`) and the
//! wasm console (`web-ui`), so that both sides of every REST body and WebSocket frame
//! are one definition and cannot drift.
//!
//! - [`level`]: [`LogLevel`], ordered so that "this level and above" is `>=`.
//! - [`time`]: [`Timestamp`], UTC microseconds, written as RFC 3339.
//! - [`entry`]: [`LogEntry`], one stored/streamed log record, and source-name rules;
//!   [`body`]: its message and metadata, in one allocation.
//! - [`task`]: [`TaskStatus`], [`TaskInfo`] and the task request bodies.
//! - [`filter`]: [`FilterSpec`] (what a client asks for) and, with the `matcher`
//!   feature, the validated [`LogFilter`] whose `matches` is the single definition of
//!   what a filter selects, used by REST, WebSocket and tests alike.
//! - [`api`]: the other REST bodies (log pages, source counts, settings, tokens, errors).
//! - [`ws`]: WebSocket client and server frames.
//! - [`line`]: a record as one line of text, for the export, the CLI and the console.

pub mod api;
pub mod body;
pub mod entry;
pub mod filter;
pub mod group;
pub mod level;
pub mod line;
#[cfg(feature = "matcher")]
pub mod literals;
pub mod task;
pub mod time;
pub mod worker;
pub mod ws;

pub use api::{
    ErrorBody, LogGroup, LogGroups, LogPage, LogSettings, NodeInfo, PluginInfo, RejectedTask, Role,
    SearchHit, SearchPage, SourceCount, SpoolReport, SpoolRetry, TokenCreated, TokenInfo,
    WorkerInfo,
};
pub use body::Body;
pub use entry::{LogEntry, MAX_MESSAGE_BYTES, MAX_METADATA_BYTES, MAX_SOURCE_CHARS};
pub use filter::FilterSpec;
#[cfg(feature = "matcher")]
pub use filter::{FilterError, LogFilter, MetaCondition};
pub use group::GroupMark;
pub use level::{LogLevel, ParseLevelError};
pub use task::{NewTask, TaskId, TaskInfo, TaskList, TaskStatus};
pub use time::Timestamp;
pub use ws::{ClientMessage, ServerMessage};

/// OpenAPI schemas of the types whose JSON form serde is told by hand.
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{RefOr, Schema};
    use utoipa::{PartialSchema, ToSchema};

    fn string(format: Option<SchemaFormat>, description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(format)
            .description(Some(description))
    }

    impl PartialSchema for crate::Timestamp {
        fn schema() -> RefOr<Schema> {
            string(
                Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)),
                "RFC 3339, UTC, microseconds",
            )
            .into()
        }
    }
    impl ToSchema for crate::Timestamp {}

    impl PartialSchema for crate::TaskId {
        fn schema() -> RefOr<Schema> {
            string(Some(SchemaFormat::Custom("uuid".into())), "A task id").into()
        }
    }
    impl ToSchema for crate::TaskId {}

    impl PartialSchema for crate::LogLevel {
        fn schema() -> RefOr<Schema> {
            string(None, "A record's level")
                .enum_values(Some(["DEBUG", "INFO", "WARNING", "ERROR"]))
                .into()
        }
    }
    impl ToSchema for crate::LogLevel {}
}
