//! `/api/settings/logging`: anyone may read; admins change, and the change applies to
//! running tasks and the server's own log without a restart.

use actix_web::{web, HttpResponse};
use engine::settings::{GetLogSettings, UpdateLogSettings};
use protocol::{ErrorBody, LogSettings};

use crate::auth::{Admin, Caller};
use crate::error::ApiError;
use crate::params::NoQuery;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/settings/logging", tag = "settings",
    responses((status = 200, body = LogSettings), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn get_logging(
    state: web::Data<AppState>,
    _: Caller,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    let current = state
        .engine
        .settings
        .send(GetLogSettings)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok().json(current))
}

#[utoipa::path(put, path = "/api/settings/logging", tag = "settings", request_body = LogSettings,
    responses((status = 200, description = "The settings now in force", body = LogSettings), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn put_logging(
    state: web::Data<AppState>,
    Admin(caller): Admin,
    _: NoQuery,
    body: web::Json<LogSettings>,
) -> Result<HttpResponse, ApiError> {
    let settings = body.into_inner();
    let applied = state
        .engine
        .settings
        .send(UpdateLogSettings { settings })
        .await
        .map_err(|e| ApiError::internal(&e))??;
    log::info!(
        "token={} Logging settings updated through the API.",
        caller.name
    );
    Ok(HttpResponse::Ok().json(applied))
}
