//! [`ApiError`]: every error response, rendered as `{"error": "...", "detail": ...}`.
//! Validation and access errors are 4xx with a message for the caller; anything
//! unexpected is a 500 whose cause chain goes to the operator log, never to the client.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use engine::EngineError;
use protocol::ErrorBody;
use storage::StorageError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    detail: Option<serde_json::Value>,
    /// Seconds for a `Retry-After` header (429, 503).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    /// Adds `Retry-After`, rounded up to whole seconds (at least 1).
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, message)
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// A failure that is the server's, not the caller's: logged with its causes.
    pub fn internal(error: &dyn std::error::Error) -> Self {
        log::error!(
            "error=\"{}\" Request failed.",
            engine::sink::error_chain(error)
        );
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error; see the server log",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(ErrorBody {
            error: self.message.clone(),
            detail: self.detail.clone(),
        })
    }
}

/// How long a client is told to wait before retrying a request the busy database
/// could not take.
const BUSY_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        if e.is_busy() {
            log::warn!(
                "error=\"{}\" The database is busy; answered 503.",
                engine::sink::error_chain(&e)
            );
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is busy (or its connections all in use); try again shortly",
            )
            .retry_after(BUSY_RETRY);
        }
        ApiError::internal(&e)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::UnknownPlugin(_)
            | EngineError::BadParams { .. }
            | EngineError::BadPriority(_)
            | EngineError::Worker(_) => ApiError::bad_request(message),
            EngineError::PrivilegedPlugin(_) => ApiError::forbidden(message),
            EngineError::ParamsTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
            }
            EngineError::QueueFull { .. } | EngineError::TooManyTasks { .. } => {
                ApiError::too_many_requests(message).retry_after(std::time::Duration::from_secs(5))
            }
            EngineError::TaskNotFound(_) => ApiError::not_found(message),
            EngineError::TaskEnded { .. } | EngineError::RetryRunning => {
                ApiError::conflict(message)
            }
            EngineError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message),
            EngineError::Storage(inner) => inner.into(),
            EngineError::Mailbox(inner) => ApiError::internal(&inner),
            spool @ EngineError::Spool(_) => ApiError::internal(&spool),
        }
    }
}

/// JSON 404 for paths no route serves.
pub async fn no_route(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::not_found(format!("no such endpoint: {} {}", req.method(), req.path()))
        .error_response()
}

/// JSON 405 for a known path with the wrong method.
pub async fn wrong_method(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
    .error_response()
}

/// Turns actix's extractor errors (bad JSON, bad path, bad query) into JSON 4xx.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(1024 * 1024)
        .error_handler(|err, _| {
            use actix_web::error::JsonPayloadError as E;
            let api = match &err {
                E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body is larger than 1 MiB",
                ),
                E::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send the body as JSON with Content-Type: application/json",
                ),
                E::Deserialize(e) => ApiError::bad_request(format!("invalid JSON body: {e}")),
                other => ApiError::bad_request(format!("unreadable body: {other}")),
            };
            api.into()
        })
}

pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default()
        .error_handler(|err, _| ApiError::bad_request(format!("bad path: {err}")).into())
}

pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default()
        .error_handler(|err, _| ApiError::bad_request(format!("bad query string: {err}")).into())
}
