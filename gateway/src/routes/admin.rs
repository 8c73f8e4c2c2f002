//! Health (`/livez`, `/readyz`, `/healthz`), `/metrics`, `/api/me`, `/api/tokens` and
//! `/api/cleanup`.

use actix_web::{web, HttpRequest, HttpResponse};
use protocol::api::{CleanupReport, CleanupRequest, NewToken, WhoAmI};
use protocol::{ErrorBody, NodeInfo, SpoolReport, SpoolRetry, Timestamp, TokenCreated, TokenInfo};
use storage::tokens;

use crate::auth::{generate_token, Admin, Caller};
use crate::error::ApiError;
use crate::openapi::Health;
use crate::params::NoQuery;
use crate::state::AppState;

/// `GET /metrics`: Prometheus' text format. Any token (viewer or admin), or none when
/// `metrics_public` is set.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("token" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    if !state.metrics_public {
        crate::auth::authenticate(&req)?;
    }
    let text = state.metrics.render(&state).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

/// `GET /livez`: the process answers. Needs no token.
#[utoipa::path(get, path = "/livez", tag = "operations", security(()),
    responses((status = 200, description = "The process answers", body = Health)))]
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        database: None,
        error: None,
    })
}

/// `GET /readyz` (and `/healthz`): the database answers **and** log records are
/// being written (the last flush succeeded, or nothing waits in memory or in the
/// spool); 503 with the reason
/// otherwise. Needs no token (load balancers call it) and reveals nothing but the
/// backend's kind and which of the two fails.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database is unreachable or writes fail", body = Health)))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let reachable = state
        .db
        .run(|c| storage::tasks::list_tasks(c, &Default::default()).map(|_| ()))
        .await;
    let backend = match state.db.backend() {
        storage::Backend::Sqlite => "sqlite",
        storage::Backend::Postgres => "postgres",
    };
    let unavailable = |reason: String| {
        HttpResponse::ServiceUnavailable().json(Health {
            status: "unavailable",
            database: Some(backend),
            error: Some(reason),
        })
    };
    if let Err(e) = reachable {
        log::warn!(
            "error=\"{}\" Readiness check cannot reach the database.",
            engine::sink::error_chain(&e)
        );
        return unavailable("database unreachable".into());
    }
    let failures = state.engine.writer.failures();
    let pending = state.engine.gate.pending();
    let spooled = state.engine.spool_pending_bytes();
    if failures > 0 && (pending > 0 || spooled > 0) {
        return unavailable(format!(
            "writing log records fails ({failures} attempts in a row); {pending} records are held in memory, {spooled} bytes in the spool"
        ));
    }
    HttpResponse::Ok().json(Health {
        status: "ok",
        database: Some(backend),
        error: None,
    })
}

/// `GET /healthz`: the older name of readiness, kept for existing probes.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database is unreachable or writes fail", body = Health)))]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    readyz(state).await
}

#[utoipa::path(get, path = "/api/me", tag = "tokens",
    responses((status = 200, body = WhoAmI), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn me(caller: Caller, _: NoQuery) -> HttpResponse {
    HttpResponse::Ok().json(WhoAmI {
        name: caller.name,
        role: caller.role,
    })
}

#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenInfo>), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn list_tokens(
    state: web::Data<AppState>,
    _: Admin,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    let stored = state.db.run(tokens::list_tokens).await?;
    let listed: Vec<TokenInfo> = stored.iter().map(TokenInfo::from).collect();
    Ok(HttpResponse::Ok().json(listed))
}

fn valid_token_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c))
}

#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, description = "The only time the secret is shown", body = TokenCreated), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn create_token(
    state: web::Data<AppState>,
    _: Admin,
    _: NoQuery,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let NewToken { name, role } = body.into_inner();
    if !valid_token_name(&name) {
        return Err(ApiError::bad_request(
            "name must be 1 to 64 characters of letters, digits, '_', '.', '@' or '-'",
        ));
    }
    let token = generate_token();
    let (stored_name, secret) = (name.clone(), token.clone());
    let now = Timestamp(engine::logger::now_micros());
    let created = state
        .db
        .run(move |c| tokens::insert_token(c, &stored_name, role, &secret, now))
        .await?;
    if !created {
        return Err(ApiError::conflict(format!(
            "a token named {name:?} already exists"
        )));
    }
    state.tokens.reload(&state.db).await?;
    Ok(HttpResponse::Created().json(TokenCreated { name, role, token }))
}

#[utoipa::path(delete, path = "/api/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "The last admin token", body = ErrorBody), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn delete_token(
    state: web::Data<AppState>,
    _: Admin,
    _: NoQuery,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let deleted_name = name.clone();
    let outcome = state
        .db
        .run(move |c| tokens::delete_token_keeping_an_admin(c, &deleted_name))
        .await?;
    match outcome {
        tokens::TokenDeletion::Deleted => {
            state.tokens.reload(&state.db).await?;
            Ok(HttpResponse::NoContent().finish())
        }
        tokens::TokenDeletion::NotFound => {
            Err(ApiError::not_found(format!("no token named {name:?}")))
        }
        tokens::TokenDeletion::LastAdmin => Err(ApiError::conflict(
            "this is the last admin token; create another admin token first",
        )),
    }
}

#[utoipa::path(post, path = "/api/cleanup", tag = "operations", request_body = CleanupRequest,
    responses((status = 200, body = CleanupReport), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn cleanup(
    state: web::Data<AppState>,
    Admin(caller): Admin,
    _: NoQuery,
    body: web::Json<CleanupRequest>,
) -> Result<HttpResponse, ApiError> {
    let days = body.older_than_days;
    let deleted = engine::retention::delete_older_than(&state.db, days).await?;
    log::info!(
        "token={} older_than_days={days} deleted_tasks={deleted} Cleanup ran.",
        caller.name
    );
    Ok(HttpResponse::Ok().json(CleanupReport {
        deleted_tasks: deleted,
    }))
}

/// What waits in the spool: bytes not yet stored and the records the database
/// refuses, per task.
#[utoipa::path(get, path = "/api/spool", tag = "operations",
    responses((status = 200, body = SpoolReport), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn spool(
    state: web::Data<AppState>,
    _: Admin,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.spool_report().await?))
}

/// Tries the refused records again; one retry at a time (409 while one runs).
#[utoipa::path(post, path = "/api/spool/retry", tag = "operations",
    responses((status = 200, body = SpoolRetry), (status = 409, description = "A retry already runs", body = ErrorBody), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn retry_spool(
    state: web::Data<AppState>,
    Admin(caller): Admin,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    let done = state.engine.retry_rejected().await?;
    log::info!(
        "token={} stored_rows={} refused_rows={} Refused records were tried again.",
        caller.name,
        done.stored_rows,
        done.refused_rows
    );
    Ok(HttpResponse::Ok().json(done))
}

/// The server processes sharing the database.
#[utoipa::path(get, path = "/api/nodes", tag = "operations",
    responses((status = 200, body = Vec<NodeInfo>), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn nodes(
    state: web::Data<AppState>,
    _: Admin,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.nodes().await?))
}
