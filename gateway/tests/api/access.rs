//! The role × route matrix: every endpoint the server registers, called as
//! anonymous, viewer and admin, answers as `gateway::routes::endpoints` says, and
//! `docs/security.md` lists each one with the same roles.

use actix_web::http::StatusCode;
use gateway::routes::{endpoints, Access};

use crate::helpers::spawn_app;

fn who(access: Access) -> &'static str {
    match access {
        Access::Anyone => "anyone",
        Access::Token => "viewer, admin",
        Access::Admin => "admin",
        Access::Worker => "worker, admin",
    }
}

/// A harmless body each endpoint accepts.
fn body(method: &str, path: &str, role: &str) -> Option<serde_json::Value> {
    Some(match (method, path) {
        ("POST", "/api/tasks") => {
            serde_json::json!({"plugin": "synthetic", "params": {"count": 1}})
        }
        ("PUT", "/api/settings/logging") => serde_json::json!({
            "app_log_level": "INFO", "task_log_level": "INFO", "belief_scope_enabled": false
        }),
        ("POST", "/api/tokens") => {
            serde_json::json!({"name": format!("matrix-{role}"), "role": "viewer"})
        }
        ("POST", "/api/cleanup") => serde_json::json!({"older_than_days": 36500}),
        ("POST", _) | ("PUT", _) => serde_json::json!({}),
        _ => return None,
    })
}

#[actix_rt::test]
async fn every_route_answers_each_role_as_the_matrix_says() {
    let app = spawn_app("sqlite").await;
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
        .expect("docs/security.md");
    let unknown_task = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let worker = app.token("matrix-worker", "worker").await;
    let all = endpoints();
    assert!(all.len() >= 19, "the matrix covers every endpoint");
    for endpoint in all {
        let (method, path) = (endpoint.method.as_str(), endpoint.path);
        let row = format!("| `{method} {path}` | {} |", who(endpoint.access));
        assert!(docs.contains(&row), "docs/security.md has no row {row}");
        let url = path
            .replace("{id}", unknown_task)
            .replace("{name}", "nobody");
        for (role, token) in [
            ("anonymous", None),
            ("viewer", Some(app.viewer.as_str())),
            ("admin", Some(app.admin.as_str())),
            ("worker", Some(worker.as_str())),
        ] {
            let body =
                body(method, path, role).map(|b| ("application/json", b.to_string().into_bytes()));
            let (status, text, _) = app
                .request(endpoint.method.clone(), &url, token, body)
                .await;
            let text = String::from_utf8_lossy(&text);
            let denied = [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN];
            match (endpoint.access, role) {
                // Log streams are for people: a worker token is refused there too.
                (Access::Anyone, "worker") if path == "/ws" => {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{role} {method} {path}: {text}"
                    )
                }
                (Access::Anyone, _) => assert!(
                    !denied.contains(&status),
                    "{role} {method} {path}: {status} {text}"
                ),
                (_, "anonymous") => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {text}")
                }
                (Access::Admin | Access::Worker, "viewer")
                | (Access::Token | Access::Admin, "worker") => {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{role} {method} {path}: {text}"
                    )
                }
                _ => assert!(
                    !denied.contains(&status),
                    "{role} {method} {path}: {status} {text}"
                ),
            }
            assert!(
                !status.is_server_error(),
                "{role} {method} {path}: {status} {text}"
            );
        }
    }
}
