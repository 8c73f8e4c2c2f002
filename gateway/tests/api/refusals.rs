//! A write the database will never accept, for one task: that task is stopped and
//! the others, logging at the same time into the same batches, lose nothing.

use std::time::Duration;

use actix_web::http::StatusCode;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use protocol::TaskStatus;
use testkit::backends;

use crate::helpers::spawn_app;

/// Deletes a task's row behind the server's back (its records go with it), so
/// that every later record of it breaks the foreign key.
fn delete_row(url: &str, id: protocol::TaskId) {
    let hex = hex::encode(id.as_bytes());
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut conn = diesel::SqliteConnection::establish(path).unwrap();
        conn.batch_execute(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; DELETE FROM tasks WHERE id = x'{hex}'"
        ))
        .unwrap();
    } else {
        let mut conn = diesel::PgConnection::establish(url).unwrap();
        conn.batch_execute(&format!(
            "DELETE FROM tasks WHERE id = decode('{hex}', 'hex')"
        ))
        .unwrap();
    }
}

#[actix_rt::test]
async fn a_task_whose_records_are_refused_stops_and_the_others_lose_nothing() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let params = serde_json::json!({"count": 16_000, "rate": 4_000});
        let victim = app.start_task("synthetic", params.clone()).await;
        let others = [
            app.start_task("synthetic", params.clone()).await,
            app.start_task("synthetic", params.clone()).await,
        ];
        actix_rt::time::sleep(Duration::from_millis(800)).await;
        delete_row(&app.fresh.url, victim.id);
        for task in &others {
            let done = app.wait_done(task.id).await;
            assert_eq!(done.status, TaskStatus::Success, "{backend}: {done:?}");
            let stored = app.all_logs(task.id, "").await;
            assert_eq!(
                stored.len(),
                12_000,
                "{backend}: every INFO-and-above record"
            );
            assert!(stored.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        }
        let (status, _) = app.get(&format!("/api/tasks/{}", victim.id)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The writer is healthy and the server goes on.
        let (status, body) = app.get("/readyz").await;
        assert_eq!(status, StatusCode::OK, "{backend}: {body}");
        let after = app
            .run_task("synthetic", serde_json::json!({"count": 1000}))
            .await;
        assert_eq!(after.status, TaskStatus::Success);
        assert_eq!(app.all_logs(after.id, "").await.len(), 750);
    }
}
