//! Liveness and readiness: `/readyz` is 503 while log records cannot be written,
//! even though the database still answers reads, and 200 again once they are.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use protocol::TaskStatus;
use testkit::FreshDb;

use crate::helpers::{spawn_app_with, TestApp, Tweaks};

async fn wait_for(app: &TestApp, path: &str, wanted: StatusCode) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = app.get(path).await;
        if status == wanted {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} stayed {status}: {body}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn readiness_follows_the_writer_while_liveness_stays_up() {
    let fresh = FreshDb::new("sqlite");
    let path = fresh.url.trim_start_matches("sqlite://").to_owned();
    let app = spawn_app_with(fresh, Tweaks::default()).await;
    for path in ["/livez", "/readyz", "/healthz"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let task = app
        .start_task(
            "synthetic",
            serde_json::json!({"count": 8000, "rate": 2000}),
        )
        .await;
    // Another process takes SQLite's write lock mid-task: reads still work, the
    // task's records cannot be written.
    let mut holder = diesel::SqliteConnection::establish(&path).unwrap();
    holder.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let body = wait_for(&app, "/readyz", StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("writing log records fails"),
        "{body}"
    );
    let (status, _) = app.get("/healthz").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "healthz is readiness"
    );
    let (status, _) = app.get("/livez").await;
    assert_eq!(status, StatusCode::OK, "the process itself is fine");
    holder.batch_execute("COMMIT").unwrap();
    wait_for(&app, "/readyz", StatusCode::OK).await;
    let done = app.wait_done(task.id).await;
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(
        app.all_logs(task.id, "").await.len(),
        6000,
        "every INFO-and-above record kept"
    );
}
