//! Serves the built console (`web-ui/dist`): its files, and `index.html` for every
//! other GET outside `/api` and `/ws`, so client-side routes (`/tasks/{id}`,
//! `/admin/settings/logging`, `/login`) survive a reload. Without a build, `/` says
//! how to make one.

use std::path::{Path, PathBuf};

use actix_files::{Files, NamedFile};
use actix_web::dev::{fn_service, ServiceRequest, ServiceResponse};
use actix_web::{web, HttpResponse};

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
        cfg.default_service(web::to(move |req: actix_web::HttpRequest| {
            let shown = shown.clone();
            async move {
                if req.path() == "/" || !req.path().starts_with("/api") {
                    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
                        "<!doctype html><title>Tasklens</title><h1>Tasklens is running</h1>\
                         <p>The web console is not built (no <code>{shown}/index.html</code>). \
                         Build it with <code>./scripts/run.sh</code> or <code>web-ui/build.sh</code>, \
                         or set <code>TASKLENS_UI_DIR</code>. The API is at <code>/api</code>.</p>"
                    ))
                } else {
                    HttpResponse::NotFound().json(protocol::ErrorBody {
                        error: format!("no such endpoint: {} {}", req.method(), req.path()),
                        detail: None,
                    })
                }
            }
        }));
    }
}

async fn spa_fallback(
    req: ServiceRequest,
    index: PathBuf,
) -> Result<ServiceResponse, actix_web::Error> {
    let (req, _) = req.into_parts();
    let path = req.path().to_owned();
    if path.starts_with("/api/") || path == "/api" || path.starts_with("/ws") {
        let response = HttpResponse::NotFound().json(protocol::ErrorBody {
            error: format!("no such endpoint: {} {path}", req.method()),
            detail: None,
        });
        return Ok(ServiceResponse::new(req, response));
    }
    let file = NamedFile::open_async(index).await?;
    let response = file.into_response(&req);
    Ok(ServiceResponse::new(req, response))
}
