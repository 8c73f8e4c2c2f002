//! Serves the built console (`web-ui/dist`): its files, and `index.html` for every
//! other GET outside `/api` and `/ws`, so client-side routes (`/tasks/{id}`,
//! `/admin/settings/logging`, `/login`) survive a reload. Without a build, `/` says
//! how to make one. Unknown `/api` paths never get here (the `/api` scope answers
//! them); unknown `/ws…` paths get the same JSON 404.

use std::path::{Path, PathBuf};

use actix_files::{Files, NamedFile};
use actix_web::dev::{fn_service, ServiceRequest, ServiceResponse};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::no_route;

/// `/ws/…`: not the console's, so a JSON 404 rather than HTML. So is a missing
/// script, module or stylesheet: the page in its place would be cached and run as
/// one.
fn is_api(req: &HttpRequest) -> bool {
    let path = req.path();
    path.starts_with("/ws")
        || [".js", ".wasm", ".css", ".map"]
            .iter()
            .any(|e| path.ends_with(e))
}

pub fn configure(cfg: &mut web::ServiceConfig, dir: &Path) {
    let index = dir.join("index.html");
    if index.is_file() {
        let spa_index = index.clone();
        cfg.service(
            Files::new("/", dir)
                .index_file("index.html")
                .prefer_utf8(true)
                .default_handler(fn_service(move |req: ServiceRequest| {
                    let index = spa_index.clone();
                    async move { spa_fallback(req, index).await }
                })),
        );
    } else {
        let shown = dir.display().to_string();
        cfg.default_service(web::to(move |req: HttpRequest| {
            let shown = shown.clone();
            async move {
                if is_api(&req) {
                    return no_route(req).await;
                }
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(format!(
                        "<!doctype html><title>Tasklens</title><h1>Tasklens is running</h1>\
                     <p>The web console is not built (no <code>{shown}/index.html</code>). \
                     Build it with <code>./scripts/run.sh</code> or <code>web-ui/build.sh</code>, \
                     or set <code>TASKLENS_UI_DIR</code>. The API is at <code>/api</code>.</p>"
                    ))
            }
        }));
    }
}

async fn spa_fallback(
    req: ServiceRequest,
    index: PathBuf,
) -> Result<ServiceResponse, actix_web::Error> {
    let (req, _) = req.into_parts();
    if is_api(&req) {
        let response = no_route(req.clone()).await;
        return Ok(ServiceResponse::new(req, response));
    }
    let file = NamedFile::open_async(index).await?;
    let response = file.into_response(&req);
    Ok(ServiceResponse::new(req, response))
}
