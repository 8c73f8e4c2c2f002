//! `GET /api/logs/search`: records matching a log filter across every task (or the
//! tasks that match task conditions), newest task first, paged by cursor.

use actix_web::{web, HttpRequest, HttpResponse};
use protocol::{ErrorBody, SearchPage, TaskStatus, Timestamp};
use storage::search::{search_logs, SearchCursor, TaskConditions, MAX_SEARCH_LIMIT};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::{FilterParams, SearchParams};
use crate::params::Params;
use crate::routes::logs::{filter_from, heavy_read};
use crate::state::AppState;

const SEARCH_KEYS: &[&str] = &[
    "level",
    "source",
    "q",
    "re",
    "since",
    "until",
    "meta.",
    "plugin",
    "status",
    "created_since",
    "created_until",
    "cursor",
    "limit",
];
/// Most plugins one search may name.
const MAX_PLUGINS: usize = 50;

#[utoipa::path(get, path = "/api/logs/search", tag = "logs", params(FilterParams, SearchParams),
    responses((status = 200, body = SearchPage), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn search(
    state: web::Data<AppState>,
    _: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), SEARCH_KEYS)?;
    let filter = filter_from(&p)?;
    let (created_since, created_until) =
        p.time_range::<Timestamp>("created_since", "created_until")?;
    let conditions = TaskConditions {
        plugins: p.list_of("plugin", MAX_PLUGINS, "plugins")?,
        statuses: p.list_of::<TaskStatus>("status", usize::MAX, "statuses")?,
        created_since,
        created_until,
    };
    let cursor = match p.text("cursor") {
        None => None,
        Some(text) => Some(SearchCursor::decode(text).ok_or_else(|| {
            ApiError::bad_request("cursor: not one this server gave (pass next_cursor as it came)")
        })?),
    };
    let limit = p
        .number("limit", 1, MAX_SEARCH_LIMIT as u64)?
        .unwrap_or(100) as usize;
    // A search reads many tasks: it takes a place among the reads of whole logs.
    let _permit = heavy_read(&state.heavy_reads).await?;
    let found = state
        .db
        .run(move |c| search_logs(c, &filter, &conditions, cursor, limit))
        .await?;
    Ok(HttpResponse::Ok().json(SearchPage {
        has_more: found.next.is_some(),
        next_cursor: found.next.map(|c| c.encode()),
        hits: found.hits,
        scanned: found.scanned,
    }))
}
