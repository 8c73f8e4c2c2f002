//! Serving the built console next to the API: its files, `index.html` for client-side
//! routes, and still a JSON error for anything under `/api` or `/ws` that is not an
//! endpoint (a script must never get the console's HTML, or an empty 404).

use awc::http::Method;
use testkit::FreshDb;

use crate::helpers::{json_or_null, spawn_app_with, Tweaks};

#[actix_rt::test]
async fn the_console_and_the_api_share_the_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><p>console</p>",
    )
    .unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log(1)").unwrap();
    let app = spawn_app_with(
        FreshDb::new("sqlite"),
        Tweaks {
            ui_dir: dir.path().to_owned(),
            ..Tweaks::default()
        },
    )
    .await;

    for page in ["/", "/tasks/67e55044-10b1-426f-9247-bb680e5fe0c8", "/login"] {
        let (status, body, _) = app.request(Method::GET, page, None, None).await;
        assert_eq!(status.as_u16(), 200, "{page}");
        assert_eq!(body, b"<!doctype html><p>console</p>", "{page}");
    }
    let (status, body, _) = app.request(Method::GET, "/app.js", None, None).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"console.log(1)"[..]));

    for (method, path) in [
        (Method::GET, "/api"),
        (Method::GET, "/api/nothing-here"),
        (
            Method::POST,
            "/api/tasks/67e55044-10b1-426f-9247-bb680e5fe0c8/retry",
        ),
        (Method::GET, "/ws/elsewhere"),
    ] {
        let (status, body, _) = app
            .request(method.clone(), path, Some(&app.admin), None)
            .await;
        assert_eq!(status.as_u16(), 404, "{method} {path}");
        let error = json_or_null(&body)["error"].as_str().map(str::to_owned);
        assert_eq!(
            error.as_deref(),
            Some(format!("no such endpoint: {method} {path}").as_str()),
            "{method} {path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
