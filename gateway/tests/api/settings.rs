//! Admin Settings > Logging over REST, and what each setting does to new records.

use actix_web::http::StatusCode;
use protocol::{LogLevel, LogSettings};
use testkit::backends;

use crate::helpers::spawn_app;

async fn put(app: &crate::helpers::TestApp, task: &str, belief: bool) {
    let (status, body) = app
        .put_as(
            &app.admin,
            "/api/settings/logging",
            serde_json::json!({"app_log_level": "INFO", "task_log_level": task, "belief_scope_enabled": belief}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_rt::test]
async fn logging_settings_apply_without_a_restart() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (status, body) = app.get_as(&app.viewer, "/api/settings/logging").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            serde_json::from_value::<LogSettings>(body).unwrap(),
            LogSettings::default()
        );

        put(&app, "WARNING", true).await;
        let task = app
            .run_task("synthetic", serde_json::json!({"count": 400}))
            .await;
        let logs = app.all_logs(task.id, "").await;
        assert_eq!(logs.len(), 200, "{backend}");
        assert!(logs.iter().all(|e| e.level >= LogLevel::Warning));

        put(&app, "DEBUG", true).await;
        let task = app
            .run_task("demo_sync", serde_json::json!({"dashboards": 3}))
            .await;
        let scoped = app.all_logs(task.id, "meta.scope=sync_dashboard").await;
        assert_eq!(
            scoped.len(),
            9,
            "{backend}: Entry, Coherence and Exit for 3 dashboards"
        );
        assert!(scoped.iter().all(|e| e.level == LogLevel::Debug));
        assert_eq!(app.all_logs(task.id, "level=DEBUG&q=Entry").await.len(), 3);

        put(&app, "INFO", true).await;
        let task = app
            .run_task("demo_sync", serde_json::json!({"dashboards": 3}))
            .await;
        assert!(
            app.all_logs(task.id, "meta.scope=sync_dashboard")
                .await
                .is_empty(),
            "DEBUG is below the INFO gate"
        );

        put(&app, "DEBUG", false).await;
        let task = app
            .run_task("demo_sync", serde_json::json!({"dashboards": 3}))
            .await;
        assert!(
            app.all_logs(task.id, "meta.scope=sync_dashboard")
                .await
                .is_empty(),
            "belief_scope switched off"
        );
        assert!(!app.all_logs(task.id, "").await.is_empty());

        let (_, body) = app.get("/api/settings/logging").await;
        assert_eq!(
            body,
            serde_json::json!({"app_log_level": "INFO", "task_log_level": "DEBUG", "belief_scope_enabled": false})
        );
    }
}
