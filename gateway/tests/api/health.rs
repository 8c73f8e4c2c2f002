//! Liveness and readiness: `/readyz` is 503 while log records cannot be written,
//! even though the database still answers reads, and 200 again once they are.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use protocol::TaskStatus;
use testkit::FreshDb;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, Tweaks};

async fn metrics(app: &TestApp) -> String {
    let (status, body, headers) = app
        .request(
            actix_web::http::Method::GET,
            "/metrics",
            Some(&app.viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain")));
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of a metric (summed over its labels).
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[actix_rt::test]
async fn metrics_count_what_the_server_did() {
    let app = spawn_app("sqlite").await;
    let (status, _, _) = app
        .request(actix_web::http::Method::GET, "/metrics", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a token is needed");
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 4000}))
        .await;
    app.get_as(&app.viewer, &format!("/api/tasks/{}", task.id))
        .await;
    let text = metrics(&app).await;
    assert!(
        value(&text, "tasklens_records_ingested_total") >= 3000.0,
        "{text}"
    );
    assert!(
        value(&text, "tasklens_records_stored_total") >= 3000.0,
        "{text}"
    );
    assert!(value(&text, "tasklens_flushes_total") >= 1.0);
    assert!(value(&text, "tasklens_flush_duration_seconds_count") >= 1.0);
    assert_eq!(value(&text, "tasklens_records_buffered"), 0.0);
    assert!(
        text.contains(r#"tasklens_tasks{status="success"} 1"#),
        "{text}"
    );
    // Requests are labelled by route pattern, never by a task's id.
    assert!(text.contains(r#"route="/api/tasks/{id}""#), "{text}");
    assert!(!text.contains(&task.id.to_string()));
}

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
            serde_json::json!({"count": 16000, "rate": 2000}),
        )
        .await;
    // Once the task runs and some of its records are stored (so that the lock below
    // meets records, not the task's own start) ...
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.all_logs(task.id, "").await.is_empty() {
        assert!(Instant::now() < deadline, "the task did not start logging");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
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
    let during = metrics(&app).await;
    assert!(
        value(&during, "tasklens_records_buffered") > 0.0,
        "{during}"
    );
    assert!(
        value(&during, "tasklens_flush_failures_total") > 0.0,
        "{during}"
    );
    let (status, _) = app.get("/livez").await;
    assert_eq!(status, StatusCode::OK, "the process itself is fine");
    holder.batch_execute("COMMIT").unwrap();
    wait_for(&app, "/readyz", StatusCode::OK).await;
    let done = app.wait_done(task.id).await;
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(
        app.all_logs(task.id, "").await.len(),
        12000,
        "every INFO-and-above record kept"
    );
}
