//! A write the database will never accept, for one task: that task is stopped and
//! the others, logging at the same time into the same batches, lose nothing.

use std::time::Duration;

use actix_web::http::StatusCode;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use protocol::{SpoolReport, SpoolRetry, TaskStatus};
use testkit::{backends, FreshDb};

use crate::helpers::{spawn_app_with, Tweaks};

/// Runs SQL behind the server's back, `{id}` standing for the task id's literal.
fn execute(url: &str, id: protocol::TaskId, sql: &str) {
    let hex = hex::encode(id.as_bytes());
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut conn = diesel::SqliteConnection::establish(path).unwrap();
        let sql = sql.replace("{id}", &format!("x'{hex}'"));
        conn.batch_execute(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; {sql}"
        ))
        .unwrap();
    } else {
        let mut conn = diesel::PgConnection::establish(url).unwrap();
        conn.batch_execute(&sql.replace("{id}", &format!("decode('{hex}', 'hex')")))
            .unwrap();
    }
}

/// Deletes a task's row (its records go with it), so that every later record of it
/// breaks the foreign key; a copy is kept in `saved_tasks` for [`restore_row`].
fn delete_row(url: &str, id: protocol::TaskId) {
    execute(
        url,
        id,
        "CREATE TABLE saved_tasks AS SELECT * FROM tasks WHERE id = {id}; DELETE FROM tasks WHERE id = {id}",
    );
}

/// What an operator restoring the row from a backup does.
fn restore_row(url: &str, id: protocol::TaskId) {
    execute(
        url,
        id,
        "INSERT INTO tasks SELECT * FROM saved_tasks WHERE id = {id}",
    );
}

#[actix_rt::test]
async fn a_task_whose_records_are_refused_stops_and_the_others_lose_nothing() {
    for backend in backends() {
        let spool = tempfile::tempdir().unwrap();
        let app = spawn_app_with(
            FreshDb::new(backend),
            Tweaks {
                spool_dir: Some(spool.path().to_owned()),
                ..Tweaks::default()
            },
        )
        .await;
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

        // The refused records are kept, shown to an admin, and stored by a retry once
        // the database takes them.
        let (status, report) = app.get("/api/spool").await;
        assert_eq!(status, StatusCode::OK, "{backend}: {report}");
        let report: SpoolReport = serde_json::from_value(report).unwrap();
        assert_eq!(report.pending_bytes, 0, "{backend}: nothing waits");
        let [refused] = report.rejected.as_slice() else {
            panic!("{backend}: one task's records are refused: {report:?}");
        };
        assert_eq!(refused.task_id, victim.id);
        assert!(refused.rows > 0 && refused.rows == report.rejected_rows);
        assert_eq!(
            refused.last_seq - refused.first_seq + 1,
            refused.rows,
            "{backend}: each refused record once"
        );
        assert!(
            refused.reason.to_lowercase().contains("foreign key"),
            "{backend}: {}",
            refused.reason
        );
        let (status, retry) = app
            .post_as(&app.admin, "/api/spool/retry", serde_json::json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend}: {retry}");
        let retry: SpoolRetry = serde_json::from_value(retry).unwrap();
        assert_eq!(
            (retry.stored_rows, retry.refused_rows),
            (0, refused.rows),
            "{backend}: still refused"
        );
        restore_row(&app.fresh.url, victim.id);
        let (_, retry) = app
            .post_as(&app.admin, "/api/spool/retry", serde_json::json!({}))
            .await;
        let retry: SpoolRetry = serde_json::from_value(retry).unwrap();
        assert_eq!((retry.stored_rows, retry.refused_rows), (refused.rows, 0));
        let stored: Vec<u64> = app
            .all_logs(victim.id, "")
            .await
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(
            stored,
            (refused.first_seq..=refused.last_seq).collect::<Vec<_>>(),
            "{backend}: the refused records are stored, once each"
        );
        let (_, report) = app.get("/api/spool").await;
        assert_eq!(report["rejected_rows"], 0, "{backend}: {report}");
    }
}
