//! REST routes, one module per resource. Handlers stay thin: parse and authorise,
//! then delegate to the engine or to storage through `Db::run`.

pub mod admin;
pub mod logs;
pub mod settings;
pub mod tasks;

use actix_web::web;

use crate::error::{no_route, wrong_method};

/// Registers every `/api` route and `/healthz`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(wrong_method));
    cfg.service(resource("/healthz").route(web::get().to(admin::healthz)))
        .service(
            web::scope("/api")
                // Without it an unknown `/api` path falls through to the app's default
                // (the console), never to a JSON error.
                .default_service(web::to(no_route))
                .service(resource("/me").route(web::get().to(admin::me)))
                .service(resource("/plugins").route(web::get().to(tasks::list_plugins)))
                .service(
                    resource("/tasks")
                        .route(web::get().to(tasks::list_tasks))
                        .route(web::post().to(tasks::create_task)),
                )
                .service(
                    resource("/tasks/{id}")
                        .route(web::get().to(tasks::get_task))
                        .route(web::delete().to(tasks::delete_task)),
                )
                .service(resource("/tasks/{id}/cancel").route(web::post().to(tasks::cancel_task)))
                .service(resource("/tasks/{id}/logs").route(web::get().to(logs::page)))
                .service(resource("/tasks/{id}/logs/sources").route(web::get().to(logs::sources)))
                .service(resource("/tasks/{id}/logs/export").route(web::get().to(logs::export)))
                .service(resource("/tasks/{id}/logs/index").route(web::get().to(logs::index)))
                .service(
                    resource("/settings/logging")
                        .route(web::get().to(settings::get_logging))
                        .route(web::put().to(settings::put_logging)),
                )
                .service(
                    resource("/tokens")
                        .route(web::get().to(admin::list_tokens))
                        .route(web::post().to(admin::create_token)),
                )
                .service(resource("/tokens/{name}").route(web::delete().to(admin::delete_token)))
                .service(resource("/cleanup").route(web::post().to(admin::cleanup))),
        );
}
