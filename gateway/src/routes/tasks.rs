//! `/api/plugins` and `/api/tasks`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use engine::manager::CancelOutcome;
use protocol::{
    ErrorBody, NewTask, PluginInfo, TaskId, TaskInfo, TaskList, TaskStatus, Timestamp, WorkerInfo,
};
use storage::tasks::{TaskListQuery, TaskText, MAX_TASK_PAGE, MAX_TASK_TEXT};

use crate::auth::{Admin, Caller};
use crate::error::ApiError;
use crate::openapi::{CancelRequested, TaskListParams};
use crate::params::{NoQuery, Params};
use crate::redact;
use crate::routes::logs::heavy_read;
use crate::state::AppState;

const TASK_LIST_KEYS: &[&str] = &[
    "status",
    "plugin",
    "created_by",
    "created_since",
    "created_until",
    "q",
    "limit",
    "before",
];
/// Most values one list parameter (`status`, `plugin`, `created_by`) may hold.
const MAX_LISTED: usize = 50;

/// Parses the `{id}` path segment.
pub fn task_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse()
        .map_err(|e: protocol::task::ParseTaskIdError| ApiError::bad_request(e.to_string()))
}

/// Reads a task or answers 404.
pub async fn existing_task(state: &AppState, id: TaskId) -> Result<protocol::TaskInfo, ApiError> {
    state
        .db
        .run(move |c| storage::tasks::get_task(c, id))
        .await?
        .ok_or_else(|| task_not_found(id))
}

pub fn task_not_found(id: TaskId) -> ApiError {
    ApiError::not_found(format!("task {id} not found"))
}

#[utoipa::path(get, path = "/api/plugins", tag = "tasks",
    responses((status = 200, body = Vec<PluginInfo>), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn list_plugins(
    state: web::Data<AppState>,
    _: Caller,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.plugins().await?))
}

/// `GET /api/workers`.
#[utoipa::path(get, path = "/api/workers", tag = "workers",
    responses((status = 200, body = Vec<WorkerInfo>), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn list_workers(
    state: web::Data<AppState>,
    _: Caller,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.workers().await?))
}

#[utoipa::path(post, path = "/api/tasks", tag = "tasks", request_body = NewTask,
    responses((status = 201, description = "Queued", body = TaskInfo), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn create_task(
    state: web::Data<AppState>,
    caller: Caller,
    _: NoQuery,
    body: web::Json<NewTask>,
) -> Result<HttpResponse, ApiError> {
    let NewTask {
        plugin,
        params,
        priority,
    } = body.into_inner();
    let submitted = state
        .engine
        .submit(engine::manager::StartTask {
            plugin,
            params,
            created_by: Some(caller.name.clone()),
            role: caller.role,
            priority,
        })
        .await;
    let task = match submitted {
        // Only a refusal lists the plugins there are (reading every node's).
        Err(engine::EngineError::UnknownPlugin(plugin)) => {
            let known: Vec<String> = state
                .engine
                .plugins()
                .await?
                .into_iter()
                .map(|p| p.name)
                .collect();
            return Err(ApiError::bad_request(format!("unknown plugin {plugin:?}"))
                .with_detail(serde_json::json!({ "plugins": known })));
        }
        other => other?,
    };
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/tasks/{}", task.id)))
        .json(task))
}

#[utoipa::path(get, path = "/api/tasks", tag = "tasks", params(TaskListParams),
    responses((status = 200, body = TaskList), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn list_tasks(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(req.query_string(), TASK_LIST_KEYS)?;
    let text = match p.text("q") {
        Some(text) if text.len() > MAX_TASK_TEXT => {
            return Err(ApiError::bad_request(format!(
                "q is at most {MAX_TASK_TEXT} bytes, not {}",
                text.len()
            )))
        }
        Some(text) => Some(TaskText {
            text: text.to_owned(),
            sealed_plugins: if caller.is_admin() {
                Vec::new()
            } else {
                state.engine.registry.privileged_names()
            },
        }),
        None => None,
    };
    let (created_since, created_until) =
        p.time_range::<Timestamp>("created_since", "created_until")?;
    let query = TaskListQuery {
        statuses: p.list_of::<TaskStatus>("status", MAX_LISTED, "statuses")?,
        plugins: p.list_of("plugin", MAX_LISTED, "plugins")?,
        created_by: p.list_of("created_by", MAX_LISTED, "names")?,
        created_since,
        created_until,
        text,
        before: p.text("before").map(task_id).transpose()?,
        limit: p.number("limit", 1, MAX_TASK_PAGE as u64)?.unwrap_or(50) as usize,
    };
    // A text search may read every task's params: it waits its turn among the heavy reads.
    let _permit = match query.text {
        Some(_) => Some(heavy_read(&state.heavy_reads).await?),
        None => None,
    };
    let mut list = state
        .db
        .run(move |c| storage::tasks::list_tasks(c, &query))
        .await?;
    let registry = &state.engine.registry;
    list.tasks = list
        .tasks
        .into_iter()
        .map(|t| redact::for_caller(registry, Some(&caller), t))
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks", params(("id" = TaskId, Path)),
    responses((status = 200, body = TaskInfo), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn get_task(
    state: web::Data<AppState>,
    caller: Caller,
    _: NoQuery,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&path)?;
    let task = existing_task(&state, id).await?;
    Ok(HttpResponse::Ok().json(redact::for_caller(
        &state.engine.registry,
        Some(&caller),
        task,
    )))
}

#[utoipa::path(post, path = "/api/tasks/{id}/cancel", tag = "tasks", params(("id" = TaskId, Path)),
    responses((status = 200, description = "Cancelled", body = TaskInfo),
        (status = 202, description = "Requested: the task ends once its logs are stored", body = CancelRequested), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn cancel_task(
    state: web::Data<AppState>,
    caller: Caller,
    _: NoQuery,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&path)?;
    let task = existing_task(&state, id).await?;
    let privileged = state
        .engine
        .registry
        .get(&task.plugin)
        .is_some_and(|p| p.privileged());
    if privileged && !caller.is_admin() {
        return Err(ApiError::forbidden(format!(
            "tasks of plugin {:?} may only be cancelled by an admin",
            task.plugin
        )));
    }
    if !caller.is_admin() && task.created_by.as_deref() != Some(caller.name.as_str()) {
        return Err(ApiError::forbidden(
            "a viewer may cancel only the tasks it started; ask an admin to cancel this one",
        ));
    }
    let registry = &state.engine.registry;
    match state
        .engine
        .cancel_task(id, Some(caller.name.clone()))
        .await?
    {
        CancelOutcome::Cancelled(task) => {
            Ok(HttpResponse::Ok().json(redact::for_caller(registry, Some(&caller), *task)))
        }
        CancelOutcome::Requested => {
            let mut task = redact::for_caller(registry, Some(&caller), task);
            task.status = TaskStatus::Running;
            Ok(HttpResponse::Accepted().json(CancelRequested {
                task,
                message:
                    "cancellation requested; the task ends as cancelled once its logs are stored",
            }))
        }
    }
}

#[utoipa::path(delete, path = "/api/tasks/{id}", tag = "tasks", params(("id" = TaskId, Path)),
    responses((status = 204, description = "Deleted with its logs"), (status = "default", description = "An error, with a message", body = ErrorBody)))]
pub async fn delete_task(
    state: web::Data<AppState>,
    _: Admin,
    _: NoQuery,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&path)?;
    let task = existing_task(&state, id).await?;
    if !task.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "task {id} is {}; cancel it and delete it once it has ended",
            task.status
        )));
    }
    if state
        .db
        .run(move |c| storage::tasks::delete_task(c, id))
        .await?
    {
        state.hub.do_send(crate::hub::ForgetTask { task_id: id });
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("task {id} not found")))
    }
}
