//! `GET /api/openapi.json`: the REST API described from the handlers' own
//! `#[utoipa::path]` attributes, with the bodies' schemas from `protocol`.
//!
//! The gateway's tests check it both ways: every endpoint in
//! [`crate::routes::endpoints`] is described (and nothing else), and every response
//! they receive validates against the schema of its route and status.

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::params::NoQuery;
use crate::routes::{admin, logs, search, settings, tasks};

/// `/livez`, `/readyz`: whether the server can do its work, and if not, why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// `sqlite` or `postgres` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
    /// What fails, when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/tasks/{id}/cancel` when the task is still stopping.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelRequested {
    pub task: protocol::TaskInfo,
    pub message: &'static str,
}

/// `GET /api/tasks` query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TaskListParams {
    /// Comma-separated statuses (any of them).
    status: Option<String>,
    /// Comma-separated plugin names (any of them).
    plugin: Option<String>,
    /// Comma-separated caller names: who started the task (any of them).
    created_by: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    created_since: Option<String>,
    /// Created before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    created_until: Option<String>,
    /// A prefix of the task's id, or text its params contain (as JSON text;
    /// case-insensitive), at most 200 bytes. A viewer's text does not look into
    /// privileged plugins' params.
    q: Option<String>,
    /// Tasks per page, 1–500 (50).
    limit: Option<u32>,
    /// The `next_before` of the previous page.
    #[param(value_type = Option<String>, format = "uuid")]
    before: Option<String>,
}

/// How `GET /api/tasks/{id}/logs/index` writes the seqs.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct IndexParams {
    /// `seqs` (default): one little-endian u32 per seq; `runs`: a (first, last)
    /// pair of them per run of consecutive seqs; `bits`: the first seq, then one bit
    /// per seq from it (bit i of byte j is seq first + 8j + i); `auto`: the smaller
    /// of `runs` and `bits`, named in `X-Index-Format`.
    format: Option<String>,
}

/// What selects records: the same filter for pages, the index, the export and
/// WebSocket subscriptions. `meta.KEY=VALUE` (any number) also selects on metadata.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FilterParams {
    /// This level and above.
    level: Option<protocol::LogLevel>,
    /// Comma-separated sources (any of them).
    source: Option<String>,
    /// Substring of the message, ASCII case-insensitive.
    q: Option<String>,
    /// Regular expression over the message.
    re: Option<String>,
    /// From this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
}

/// Paging of `GET /api/tasks/{id}/logs`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Records after this seq (forwards).
    after_seq: Option<u64>,
    /// Records before this seq (backwards); not with `after_seq`.
    before_seq: Option<u64>,
    /// Records per page, 1–10,000 (1,000).
    limit: Option<u32>,
}

/// Task conditions and paging of `GET /api/logs/search`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchParams {
    /// Only tasks of these plugins (comma-separated or repeated; at most 50).
    plugin: Option<String>,
    /// Only tasks with these statuses (comma-separated or repeated).
    status: Option<String>,
    /// Only tasks created at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    created_since: Option<String>,
    /// Only tasks created before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    created_until: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Hits per page, 1–1,000 (100).
    limit: Option<u32>,
}

/// `GET /api/tasks/{id}/logs/export` format.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ExportParams {
    /// `ndjson` (default) or `text`.
    format: Option<String>,
}

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`tasklens tokens create`); viewer, admin or worker",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tasklens",
        description = "Task engine with per-task logs. Roles per route: docs/security.md; WebSocket protocols: docs/api.md."
    ),
    security(("token" = [])),
    modifiers(&BearerToken),
    paths(
        admin::livez,
        admin::readyz,
        admin::healthz,
        admin::metrics,
        openapi_json,
        crate::ws::route,
        crate::ws::worker::route,
        admin::me,
        tasks::list_plugins,
        tasks::list_workers,
        tasks::list_tasks,
        tasks::create_task,
        tasks::get_task,
        tasks::delete_task,
        tasks::cancel_task,
        logs::page,
        logs::sources,
        logs::export,
        logs::index,
        logs::groups,
        search::search,
        settings::get_logging,
        settings::put_logging,
        admin::list_tokens,
        admin::create_token,
        admin::delete_token,
        admin::cleanup,
        admin::spool,
        admin::retry_spool,
        admin::nodes,
    )
)]
pub struct ApiDoc;

/// The document, as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises")
}

/// `GET /api/openapi.json`. Needs no token: it describes, it reveals nothing.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object),
        (status = "default", description = "An error, with a message", body = protocol::ErrorBody)))]
pub async fn openapi_json(_: NoQuery) -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| document().to_string());
    HttpResponse::Ok()
        .content_type("application/json")
        .body(text.as_str())
}
