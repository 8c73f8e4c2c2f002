//! REST routes, one module per resource. Handlers stay thin: parse and authorise,
//! then delegate to the engine or to storage through `Db::run`.
//!
//! [`endpoints`] is the one list of what the server answers and who may call it:
//! [`configure`] registers exactly that list, and a test walks it as anonymous,
//! viewer and admin, so the role × route matrix in `docs/security.md` stays true.
//! A node of role `engine` answers only [`ENGINE_PATHS`].

pub mod admin;
pub mod index_body;
pub mod logs;
pub mod search;
pub mod settings;
pub mod tasks;

use actix_web::http::Method;
use actix_web::{web, Route};

use crate::error::{no_route, wrong_method};
use engine::NodeRole;

/// What an `engine` node serves: probes, metrics, and workers (which it runs tasks
/// for); the API and the console are the gateways'.
pub const ENGINE_PATHS: [&str; 5] = ["/livez", "/readyz", "/healthz", "/metrics", "/ws/worker"];

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Anyone,
    /// A viewer or admin token; worker tokens get 403.
    Token,
    /// An admin token; viewers get 403.
    Admin,
    /// A worker or admin token; viewers get 403 (and only here may workers go).
    Worker,
}

/// One method on one path.
pub struct Endpoint {
    pub method: Method,
    /// The full path, `{name}` for a path parameter.
    pub path: &'static str,
    pub access: Access,
    route: fn() -> Route,
}

impl Endpoint {
    /// Whether a node of `role` answers it.
    pub fn served_by(&self, role: NodeRole) -> bool {
        role.serves_api() || ENGINE_PATHS.contains(&self.path)
    }
}

const API: &str = "/api";

/// Every endpoint the server answers (`/ws` included), in registration order.
pub fn endpoints() -> Vec<Endpoint> {
    use Access::{Admin, Anyone, Token, Worker};
    let e = |method: Method, path: &'static str, access: Access, route: fn() -> Route| Endpoint {
        method,
        path,
        access,
        route,
    };
    vec![
        e(Method::GET, "/livez", Anyone, || {
            web::get().to(admin::livez)
        }),
        e(Method::GET, "/readyz", Anyone, || {
            web::get().to(admin::readyz)
        }),
        e(Method::GET, "/metrics", Token, || {
            web::get().to(admin::metrics)
        }),
        // The older name of readiness, kept for existing probes.
        e(Method::GET, "/healthz", Anyone, || {
            web::get().to(admin::healthz)
        }),
        e(Method::GET, "/api/openapi.json", Anyone, || {
            web::get().to(crate::openapi::openapi_json)
        }),
        // The token comes with the upgrade or in the first message.
        e(Method::GET, "/ws", Anyone, || {
            web::get().to(crate::ws::route)
        }),
        // The token comes with the upgrade.
        e(Method::GET, "/ws/worker", Worker, || {
            web::get().to(crate::ws::worker::route)
        }),
        e(Method::GET, "/api/me", Token, || web::get().to(admin::me)),
        e(Method::GET, "/api/plugins", Token, || {
            web::get().to(tasks::list_plugins)
        }),
        e(Method::GET, "/api/workers", Token, || {
            web::get().to(tasks::list_workers)
        }),
        e(Method::GET, "/api/tasks", Token, || {
            web::get().to(tasks::list_tasks)
        }),
        e(Method::POST, "/api/tasks", Token, || {
            web::post().to(tasks::create_task)
        }),
        e(Method::GET, "/api/tasks/{id}", Token, || {
            web::get().to(tasks::get_task)
        }),
        e(Method::DELETE, "/api/tasks/{id}", Admin, || {
            web::delete().to(tasks::delete_task)
        }),
        e(Method::POST, "/api/tasks/{id}/cancel", Token, || {
            web::post().to(tasks::cancel_task)
        }),
        e(Method::GET, "/api/tasks/{id}/logs", Token, || {
            web::get().to(logs::page)
        }),
        e(Method::GET, "/api/tasks/{id}/logs/sources", Token, || {
            web::get().to(logs::sources)
        }),
        e(Method::GET, "/api/tasks/{id}/logs/export", Token, || {
            web::get().to(logs::export)
        }),
        e(Method::GET, "/api/tasks/{id}/logs/index", Token, || {
            web::get().to(logs::index)
        }),
        e(Method::GET, "/api/tasks/{id}/logs/groups", Token, || {
            web::get().to(logs::groups)
        }),
        e(Method::GET, "/api/logs/search", Token, || {
            web::get().to(search::search)
        }),
        e(Method::GET, "/api/settings/logging", Token, || {
            web::get().to(settings::get_logging)
        }),
        e(Method::PUT, "/api/settings/logging", Admin, || {
            web::put().to(settings::put_logging)
        }),
        e(Method::GET, "/api/tokens", Admin, || {
            web::get().to(admin::list_tokens)
        }),
        e(Method::POST, "/api/tokens", Admin, || {
            web::post().to(admin::create_token)
        }),
        e(Method::DELETE, "/api/tokens/{name}", Admin, || {
            web::delete().to(admin::delete_token)
        }),
        e(Method::POST, "/api/cleanup", Admin, || {
            web::post().to(admin::cleanup)
        }),
        e(Method::GET, "/api/nodes", Admin, || {
            web::get().to(admin::nodes)
        }),
        e(Method::GET, "/api/spool", Admin, || {
            web::get().to(admin::spool)
        }),
        e(Method::POST, "/api/spool/retry", Admin, || {
            web::post().to(admin::retry_spool)
        }),
    ]
}

/// Registers every endpoint `role` serves: one resource per path, a JSON 405 for
/// other methods, and a JSON 404 for unknown `/api` paths.
pub fn configure(cfg: &mut web::ServiceConfig, role: NodeRole) {
    let mut all = endpoints();
    all.retain(|e| e.served_by(role));
    let mut paths: Vec<&'static str> = Vec::new();
    for endpoint in &all {
        if !paths.contains(&endpoint.path) {
            paths.push(endpoint.path);
        }
    }
    let resource = |path: &'static str, local: &str| {
        all.iter()
            .filter(|e| e.path == path)
            .fold(web::resource(local.to_owned()), |r, e| r.route((e.route)()))
            .default_service(web::to(wrong_method))
    };
    // Without the default an unknown `/api` path would fall through to the app's
    // default (the console), never to a JSON error.
    let unknown = if role.serves_api() {
        web::to(no_route)
    } else {
        web::to(engine_only)
    };
    let mut api = web::scope(API).default_service(unknown);
    for path in &paths {
        match path.strip_prefix(API) {
            Some(local) => api = api.service(resource(path, local)),
            None => {
                cfg.service(resource(path, path));
            }
        }
    }
    cfg.service(api);
    if !role.serves_api() {
        cfg.default_service(web::to(engine_only));
    }
}

/// JSON 404 for what an `engine` node does not serve.
async fn engine_only(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    crate::error::ApiError::not_found(format!(
        "{} {}: this node runs tasks (role engine) and serves only {}; send API requests to a gateway",
        req.method(),
        req.path(),
        ENGINE_PATHS.join(", ")
    ))
    .error_response()
}
