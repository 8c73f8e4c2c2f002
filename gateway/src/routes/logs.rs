//! `/api/tasks/{id}/logs`: filtered pages, per-source counts, and the export of the
//! whole filtered log as NDJSON or plain text.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use protocol::{
    ErrorBody, FilterSpec, LogEntry, LogFilter, LogGroups, LogLevel, LogPage, SourceCount, TaskId,
    Timestamp,
};
use storage::logs::{page_logs, MAX_PAGE_LIMIT};
use storage::LogQuery;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openapi::{ExportParams, FilterParams, IndexParams, PageParams};
use crate::params::{NoQuery, Params};
use crate::routes::index_body::{IndexBody, Shape};
use crate::routes::tasks::{existing_task, task_id, task_not_found};
use crate::state::AppState;

const FILTER_KEYS: &[&str] = &["level", "source", "q", "re", "since", "until", "meta."];
const INDEX_KEYS: &[&str] = &[
    "level", "source", "q", "re", "since", "until", "meta.", "format",
];
const PAGE_KEYS: &[&str] = &[
    "level",
    "source",
    "q",
    "re",
    "since",
    "until",
    "meta.",
    "after_seq",
    "before_seq",
    "limit",
];
const EXPORT_KEYS: &[&str] = &[
    "level", "source", "q", "re", "since", "until", "meta.", "format",
];

/// Rows per database read while exporting.
const EXPORT_CHUNK: usize = 5_000;

/// The filter described by `level`, `source`, `q`, `re`, `since`, `until`, `meta.KEY`.
pub fn filter_from(p: &Params) -> Result<LogFilter, ApiError> {
    debug_assert!(FILTER_KEYS.iter().all(|k| PAGE_KEYS.contains(k)));
    let spec = FilterSpec {
        level: p.parsed::<LogLevel>("level")?,
        sources: p.list("source"),
        q: p.text("q").map(str::to_owned),
        re: p.text("re").map(str::to_owned),
        meta: p.prefixed("meta.").into_iter().collect(),
        since: p.parsed::<Timestamp>("since")?,
        until: p.parsed::<Timestamp>("until")?,
    };
    LogFilter::parse(&spec).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[utoipa::path(get, path = "/api/tasks/{id}/logs", tag = "logs", params(("id" = TaskId, Path), FilterParams, PageParams),
    responses((status = 200, body = LogPage), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn page(
    state: web::Data<AppState>,
    _: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&path)?;
    let p = Params::parse(req.query_string(), PAGE_KEYS)?;
    let filter = filter_from(&p)?;
    let after_seq = p.number("after_seq", 0, i64::MAX as u64)?;
    let before_seq = p.number("before_seq", 1, i64::MAX as u64)?;
    if after_seq.is_some() && before_seq.is_some() {
        return Err(ApiError::bad_request(
            "after_seq and before_seq cannot be combined: page forwards with after_seq, or backwards with before_seq",
        ));
    }
    let query = LogQuery {
        after_seq: after_seq.unwrap_or(0),
        before_seq,
        limit: p.number("limit", 1, MAX_PAGE_LIMIT as u64)?.unwrap_or(1000) as usize,
    };
    // The task's existence and its page in one trip to a database thread.
    let page = state
        .db
        .run(move |c| match storage::tasks::get_task(c, id)? {
            Some(_) => page_logs(c, id, &filter, &query).map(Some),
            None => Ok(None),
        })
        .await?
        .ok_or_else(|| task_not_found(id))?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /api/tasks/{id}/logs/index`: the seqs of every matching record, ascending,
/// as little-endian `u32`s (`application/octet-stream`; the count is in
/// `X-Total-Count`). The console scrolls over this index; position `i` of the filtered
/// log is record `seq[i]`. With `format=runs` the body is `(first, last)` pairs of
/// `u32`s instead, one per run of consecutive seqs: a task's whole log is 8 bytes;
/// `format=bits` one bit per seq, and `format=auto` the smaller of the two (see
/// [`index_body`](super::index_body)); `X-Index-Format` names the shape sent.
#[utoipa::path(get, path = "/api/tasks/{id}/logs/index", tag = "logs", params(("id" = TaskId, Path), FilterParams, IndexParams),
    responses((status = 200, description = "The seqs of every matching record as little-endian u32s (with format=runs, (first, last) pairs of them; with format=bits, the first seq then one bit per seq; with format=auto, the smaller, named in X-Index-Format); the count in X-Total-Count", content_type = "application/octet-stream", body = Vec<u8>), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn index(
    state: web::Data<AppState>,
    _: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&path)?;
    let p = Params::parse(req.query_string(), INDEX_KEYS)?;
    let shapes: &[Shape] = match p.text("format") {
        None | Some("seqs") => &[],
        Some("runs") => &[Shape::Runs],
        Some("bits") => &[Shape::Bits],
        Some("auto") => &[Shape::Runs, Shape::Bits],
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be seqs, runs, bits or auto, not {other:?}"
            )))
        }
    };
    let filter = filter_from(&p)?;
    existing_task(&state, id).await?;
    let _permit = heavy_read(&state.heavy_reads).await?;
    let too_large = |what: &str| {
        ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{what}, too many for one index; narrow the filter (level, source, since/until) or page with after_seq"
            ),
        )
    };
    let too_far = || {
        ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "this task has more than 4,294,967,295 records; page it with after_seq instead",
        )
    };
    if shapes.is_empty() {
        let seqs = state
            .db
            .run(move |c| storage::logs::matching_seqs(c, id, &filter, MAX_INDEX_RECORDS))
            .await?;
        if seqs.len() > MAX_INDEX_RECORDS {
            return Err(too_large(&format!(
                "more than {MAX_INDEX_RECORDS} records match"
            )));
        }
        let mut body = Vec::with_capacity(seqs.len() * 4);
        for seq in &seqs {
            body.extend_from_slice(&u32::try_from(*seq).map_err(|_| too_far())?.to_le_bytes());
        }
        return Ok(index_response(seqs.len() as u64, None, body));
    }
    // Bounded by what goes over the wire, not by seqs: a whole log is one run
    // however long it is.
    let built = state
        .db
        .run(move |c| {
            let mut body = IndexBody::new(shapes);
            storage::logs::each_matching_run(c, id, &filter, &mut |first, last| {
                body.push_run(first, last)
            })?;
            Ok(body)
        })
        .await?;
    if built.too_far {
        return Err(too_far());
    }
    let count = built.count;
    match built.finish() {
        Some((shape, body)) => Ok(index_response(count, Some(shape), body)),
        None => Err(too_large(match shapes {
            [Shape::Runs] => "more than 4,000,000 runs of consecutive seqs match",
            [Shape::Bits] => "the matching seqs span more than 268,435,456 seqs",
            _ => "more than 4,000,000 runs of consecutive seqs match, over more than 268,435,456 seqs",
        })),
    }
}

/// The index answer: the count in `X-Total-Count`, the shape in `X-Index-Format`.
fn index_response(count: u64, shape: Option<Shape>, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("X-Total-Count", count.to_string()))
        .insert_header(("X-Index-Format", shape.map_or("seqs", Shape::name)))
        .body(body)
}

#[utoipa::path(get, path = "/api/tasks/{id}/logs/sources", tag = "logs", params(("id" = TaskId, Path)),
    responses((status = 200, body = Vec<SourceCount>), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn sources(
    state: web::Data<AppState>,
    _: Caller,
    _: NoQuery,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&path)?;
    existing_task(&state, id).await?;
    let counts = state
        .db
        .run(move |c| storage::logs::source_counts(c, id))
        .await?;
    Ok(HttpResponse::Ok().json(counts))
}

/// `GET /api/tasks/{id}/logs/groups`: the task's groups (foldable sections) in seq
/// order, each with its size, times and worst level, at most
/// [`storage::logs::MAX_GROUPS`].
#[utoipa::path(get, path = "/api/tasks/{id}/logs/groups", tag = "logs", params(("id" = TaskId, Path)),
    responses((status = 200, body = LogGroups), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn groups(
    state: web::Data<AppState>,
    _: Caller,
    _: NoQuery,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&path)?;
    existing_task(&state, id).await?;
    // An open group's worst level is read from the records after it.
    let _permit = heavy_read(&state.heavy_reads).await?;
    let groups = state
        .db
        .run(move |c| storage::logs::list_groups(c, id))
        .await?;
    Ok(HttpResponse::Ok().json(groups))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExportFormat {
    Ndjson,
    Text,
}

#[utoipa::path(get, path = "/api/tasks/{id}/logs/export", tag = "logs", params(("id" = TaskId, Path), FilterParams, ExportParams),
    responses((status = 200, description = "Every matching record, streamed", content((LogEntry = "application/x-ndjson"), (String = "text/plain; charset=utf-8"))), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn export(
    state: web::Data<AppState>,
    _: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&path)?;
    let p = Params::parse(req.query_string(), EXPORT_KEYS)?;
    let format = match p.text("format").unwrap_or("ndjson") {
        "ndjson" | "json" => ExportFormat::Ndjson,
        "text" | "txt" => ExportFormat::Text,
        other => {
            return Err(ApiError::bad_request(format!(
                "format must be ndjson or text, not {other:?}"
            )))
        }
    };
    let filter = Arc::new(filter_from(&p)?);
    existing_task(&state, id).await?;
    let db = state.db.clone();
    // A place among the exports streaming now, held for the whole transfer; the
    // heavy-read permit only while a chunk is read, so a client that downloads
    // slowly holds no database capacity while its socket drains.
    let slot = state.exports.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("{EXPORTS} exports are streaming already; try again shortly"),
        )
        .retry_after(PERMIT_WAIT)
    })?;
    let progress = Arc::new(Progress::new(slot));
    watch_for_stall(
        Arc::downgrade(&progress),
        crate::ws::admission::ConnSocket::duplicate(&req),
        state.export_stall,
    );
    let heavy = state.heavy_reads.clone();
    let chunks = futures_util::stream::unfold(Some(0u64), move |after| {
        let (db, filter, heavy, progress) =
            (db.clone(), filter.clone(), heavy.clone(), progress.clone());
        async move {
            progress.touch();
            let after = after?;
            let _permit = match heavy_read(&heavy).await {
                Ok(permit) => permit,
                Err(e) => return Some((Err(e.into()), None)),
            };
            let page = db
                .run(move |c| {
                    page_logs(
                        c,
                        id,
                        &filter,
                        &LogQuery {
                            after_seq: after,
                            before_seq: None,
                            limit: EXPORT_CHUNK,
                        },
                    )
                })
                .await;
            match page {
                Ok(page) => {
                    let next = page.has_more.then_some(page.next_after_seq);
                    Some((Ok::<_, actix_web::Error>(render(&page.logs, format)), next))
                }
                Err(e) => {
                    // Mid-stream the status is already sent; cutting the body short
                    // tells the client the export is incomplete.
                    Some((Err(ApiError::internal(&e).into()), None))
                }
            }
        }
    });
    let (content_type, extension) = match format {
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
        ExportFormat::Text => ("text/plain; charset=utf-8", "log"),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format!("task-{id}.{extension}"))],
        })
        .streaming(chunks))
}

/// An export in flight: its place among the exports, and when its stream last
/// produced a chunk (it is only asked for the next one once the client has read
/// the previous one).
struct Progress {
    _slot: tokio::sync::OwnedSemaphorePermit,
    started: std::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn new(slot: tokio::sync::OwnedSemaphorePermit) -> Self {
        Progress {
            _slot: slot,
            started: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Disconnects a download whose client has read nothing for `stall`: its stream is
/// not polled while the socket is full, so the watch runs beside it, and ends with
/// the stream.
fn watch_for_stall(
    progress: std::sync::Weak<Progress>,
    socket: Option<std::net::TcpStream>,
    stall: Duration,
) {
    let Some(socket) = socket else { return };
    let every = (stall / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(progress) = progress.upgrade() else {
                return;
            };
            if progress.idle() > stall {
                log::warn!(
                    "An export's client read nothing for {} s; its connection is shut down.",
                    stall.as_secs()
                );
                let _ = socket.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    });
}

/// The most records one index answer lists (4 bytes each: 32 MiB).
pub const MAX_INDEX_RECORDS: usize = 8_000_000;

/// Reads that scan a whole task at once (index, one export chunk).
pub const HEAVY_READS: usize = 2;
/// Exports streaming at once.
pub const EXPORTS: usize = 4;
/// How long a request waits for a heavy-read permit before it gets 503.
const PERMIT_WAIT: Duration = Duration::from_secs(10);

/// A heavy-read permit, or 503 with `Retry-After` when none frees up in time.
pub(crate) async fn heavy_read(
    permits: &tokio::sync::Semaphore,
) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    match tokio::time::timeout(PERMIT_WAIT, permits.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(e)) => Err(ApiError::internal(&e)),
        Err(_) => Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy reading other logs in full; try again shortly",
        )
        .retry_after(PERMIT_WAIT)),
    }
}

fn render(entries: &[LogEntry], format: ExportFormat) -> Bytes {
    let mut out = Vec::with_capacity(entries.len() * 128);
    for entry in entries {
        match format {
            ExportFormat::Ndjson => {
                serde_json::to_writer(&mut out, entry).expect("entries serialise");
                out.push(b'\n');
            }
            ExportFormat::Text => {
                out.extend_from_slice(protocol::line::text_line(entry).as_bytes());
                out.push(b'\n');
            }
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use actix_web::http::StatusCode;
    use proptest::prelude::*;
    use protocol::{ClientMessage, TaskId};

    use super::*;

    fn specs() -> impl Strategy<Value = FilterSpec> {
        (
            prop::option::of(prop::sample::select(LogLevel::ALL.to_vec())),
            // Not empty: REST drops an empty item of a list (`source=a,,b`) where
            // JSON refuses one, a difference kept on purpose.
            prop::collection::vec("[a-z_][a-z_ ]{0,7}", 0..3),
            prop::option::of(".{0,10}"),
            prop::option::of(prop::sample::select(vec![
                "", "a+", "^x$", "[0-9]{2}", "(", "\\d",
            ])),
            prop::collection::btree_map("[a-z.]{0,6}", ".{0,6}", 0..3),
            prop::option::of(-10_000_000_000_000_000i64..10_000_000_000_000_000),
            prop::option::of(0i64..4_000_000_000_000_000),
        )
            .prop_map(|(level, sources, q, re, meta, since, until)| FilterSpec {
                level,
                sources,
                q,
                re: re.map(str::to_owned),
                meta: meta.into_iter().collect::<BTreeMap<_, _>>(),
                since: since.map(Timestamp),
                until: until.map(Timestamp),
            })
    }

    proptest! {
        /// The query string a client writes for a filter reads back, through the
        /// REST parser, as the same filter, or is refused as the filter itself is.
        #[test]
        fn a_filters_query_string_reads_back_as_the_same_filter(spec in specs()) {
            let query = serde_urlencoded::to_string(spec.query_pairs()).unwrap();
            let via_rest = Params::parse(&query, PAGE_KEYS).and_then(|p| filter_from(&p));
            match (via_rest, LogFilter::parse(&spec)) {
                (Ok(rest), Ok(direct)) => prop_assert_eq!(rest.to_spec(), direct.to_spec()),
                (Err(e), Err(_)) => prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST),
                (rest, direct) => prop_assert!(
                    false,
                    "{query}: REST {:?}, direct {:?}",
                    rest.map(|f| f.to_spec()),
                    direct.map(|f| f.to_spec())
                ),
            }
        }

        /// Any query string is a filter or a 400 with a message, never a panic.
        #[test]
        fn any_query_string_is_a_filter_or_a_400(query in ".{0,80}") {
            if let Err(e) = Params::parse(&query, PAGE_KEYS).and_then(|p| filter_from(&p)) {
                prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST);
                prop_assert!(!e.message().is_empty());
            }
        }

        /// WebSocket client messages read back as what was written, and any text is
        /// a message or an error, never a panic.
        #[test]
        fn client_messages_read_back_and_junk_is_an_error(
            spec in specs(),
            after_seq in any::<u64>(),
            token in ".{0,20}",
            kind in 0u8..6,
            junk in ".{0,60}",
        ) {
            let task_id = TaskId(uuid::Uuid::from_u128(u128::from(after_seq)));
            let message = match kind {
                0 => ClientMessage::Auth { token },
                1 => ClientMessage::Subscribe { task_id, filter: spec, after_seq },
                2 => ClientMessage::SetFilter { task_id, filter: spec, after_seq },
                3 => ClientMessage::Unsubscribe { task_id },
                4 => ClientMessage::SubscribeTasks {},
                _ => ClientMessage::UnsubscribeTasks {},
            };
            let text = serde_json::to_string(&message).unwrap();
            prop_assert_eq!(serde_json::from_str::<ClientMessage>(&text).unwrap(), message);
            let _ = serde_json::from_str::<ClientMessage>(&junk);
        }
    }
}
