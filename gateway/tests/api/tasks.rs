//! Tasks over REST: create, read, list, cancel, delete.

use actix_web::http::StatusCode;
use protocol::{TaskInfo, TaskList, TaskStatus};
use testkit::backends;

use crate::helpers::spawn_app;

#[actix_rt::test]
async fn a_task_is_created_run_and_listed() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (status, body, headers) = app
            .request(
                awc::http::Method::POST,
                "/api/tasks",
                Some(&app.viewer),
                Some((
                    "application/json",
                    br#"{"plugin":"synthetic","params":{"count":50}}"#.to_vec(),
                )),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let task: TaskInfo = serde_json::from_slice(&body).unwrap();
        assert_eq!(task.status, TaskStatus::Queued);
        assert_eq!(task.created_by.as_deref(), Some("viewer-1"));
        assert_eq!(
            headers.get("location").unwrap(),
            &format!("/api/tasks/{}", task.id)
        );
        let done = app.wait_done(task.id).await;
        assert_eq!(done.status, TaskStatus::Success, "{backend}");
        assert!(done.started_at.is_some() && done.finished_at >= done.started_at);

        for _ in 0..3 {
            app.run_task("synthetic", serde_json::json!({"count": 1}))
                .await;
        }
        let (status, body) = app.get("/api/tasks?limit=2").await;
        assert_eq!(status, StatusCode::OK);
        let first: TaskList = serde_json::from_value(body).unwrap();
        assert_eq!(first.tasks.len(), 2);
        let before = first.next_before.unwrap();
        let (_, body) = app
            .get(&format!("/api/tasks?limit=10&before={before}"))
            .await;
        let rest: TaskList = serde_json::from_value(body).unwrap();
        assert_eq!(rest.tasks.len(), 2);
        assert_eq!(rest.tasks.last().unwrap().id, task.id, "oldest last");
        let (_, body) = app.get("/api/tasks?status=success").await;
        assert_eq!(
            serde_json::from_value::<TaskList>(body)
                .unwrap()
                .tasks
                .len(),
            4
        );
        let (_, body) = app.get("/api/tasks?status=failed").await;
        assert!(serde_json::from_value::<TaskList>(body)
            .unwrap()
            .tasks
            .is_empty());

        let (status, plugins) = app.get_as(&app.viewer, "/api/plugins").await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<_> = plugins
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["demo_sync", "legacy_backup", "shell", "synthetic"]);
        assert_eq!(plugins[2]["privileged"], true);
        assert_eq!(plugins[1]["legacy"], true);
    }
}

fn listed(body: serde_json::Value) -> Vec<protocol::TaskId> {
    serde_json::from_value::<TaskList>(body)
        .unwrap()
        .tasks
        .iter()
        .map(|t| t.id)
        .collect()
}

/// The list's filters, and what a viewer's text search may not look into.
#[actix_rt::test]
async fn task_lists_filter_by_status_plugin_creator_and_text() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let mine = app
            .start_task_as(
                &app.viewer,
                "synthetic",
                serde_json::json!({"count": 1, "sources": ["Nightly_ORDERS"]}),
            )
            .await;
        let secret = app
            .run_task(
                "shell",
                serde_json::json!({"argv": ["true"], "env": {"API_KEY": "s3cr3t-value"}}),
            )
            .await;
        let admins = app.run_task("demo_sync", serde_json::json!({})).await;
        let mine = app.wait_done(mine.id).await;

        let (status, body) = app.get("/api/tasks?plugin=shell,demo_sync").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed(body), [admins.id, secret.id], "{backend}");
        let (_, body) = app.get("/api/tasks?created_by=viewer-1").await;
        assert_eq!(listed(body), [mine.id]);
        let (_, body) = app
            .get(&format!(
                "/api/tasks?status=success,failed&plugin=synthetic&created_since={}",
                mine.created_at
            ))
            .await;
        assert_eq!(listed(body), [mine.id]);
        let (_, body) = app.get("/api/tasks?q=nightly_orders").await;
        assert_eq!(listed(body), [mine.id]);
        let prefix = &mine.id.to_string()[..18];
        let (_, body) = app.get(&format!("/api/tasks?q={prefix}")).await;
        assert!(listed(body).contains(&mine.id));

        // A viewer sees `env` redacted; searching for its value must not tell it.
        let (_, body) = app.get("/api/tasks?q=s3cr3t").await;
        assert_eq!(listed(body), [secret.id], "an admin searches every param");
        let (status, body) = app.get_as(&app.viewer, "/api/tasks?q=s3cr3t").await;
        assert_eq!(status, StatusCode::OK);
        assert!(listed(body).is_empty(), "{backend}");
        let (_, body) = app
            .get_as(&app.viewer, &format!("/api/tasks?q={}", secret.id))
            .await;
        assert_eq!(
            listed(body.clone()),
            [secret.id],
            "ids are searched for everyone"
        );
        assert_eq!(body["tasks"][0]["params"]["env"]["API_KEY"], "[redacted]");
    }
}

#[actix_rt::test]
async fn cancel_and_delete_follow_the_task_state() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let params = serde_json::json!({"count": 100000, "rate": 200});
        let task = app
            .start_task_as(&app.viewer, "synthetic", params.clone())
            .await;
        let admins = app.start_task("synthetic", params).await;
        actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;

        // A viewer cancels only what it started; an admin anything.
        let (status, body) = app
            .post_as(
                &app.viewer,
                &format!("/api/tasks/{}/cancel", admins.id),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body["error"]
            .as_str()
            .unwrap()
            .contains("only the tasks it started"));
        let (status, body) = app
            .post_as(
                &app.admin,
                &format!("/api/tasks/{}/cancel", admins.id),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(app.wait_done(admins.id).await.status, TaskStatus::Cancelled);

        let (status, body) = app
            .delete_as(&app.admin, &format!("/api/tasks/{}", task.id))
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "a running task is not deleted: {body}"
        );
        let (status, body) = app
            .post_as(
                &app.viewer,
                &format!("/api/tasks/{}/cancel", task.id),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let done = app.wait_done(task.id).await;
        assert_eq!(done.status, TaskStatus::Cancelled, "{backend}");
        assert_eq!(done.error.as_deref(), Some("cancelled by viewer-1"));
        let (status, body) = app
            .post_as(
                &app.admin,
                &format!("/api/tasks/{}/cancel", task.id),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["error"].as_str().unwrap().contains("already ended"));

        assert!(!app.all_logs(task.id, "").await.is_empty());
        let (status, _) = app
            .delete_as(&app.viewer, &format!("/api/tasks/{}", task.id))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app
            .delete_as(&app.admin, &format!("/api/tasks/{}", task.id))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.get(&format!("/api/tasks/{}", task.id)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.get(&format!("/api/tasks/{}/logs", task.id)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Checked in the database itself: no record of the task is left.
        let id = task.id;
        let left = app
            .db
            .run(move |c| storage::logs::max_seq(c, id))
            .await
            .unwrap();
        assert_eq!(left, 0, "{backend}: logs of a deleted task remain");
        let (status, _) = app
            .delete_as(&app.admin, &format!("/api/tasks/{}", task.id))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[actix_rt::test]
async fn shell_is_for_admins_and_its_output_is_logged() {
    let app = spawn_app("sqlite").await;
    let (status, body) = app
        .post_as(
            &app.viewer,
            "/api/tasks",
            serde_json::json!({"plugin": "shell", "params": {"argv": ["echo", "hi"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let task = app
        .run_task(
            "shell",
            serde_json::json!({"argv": ["sh", "-c", "echo out; echo err >&2"]}),
        )
        .await;
    assert_eq!(task.status, TaskStatus::Success);
    let logs = app.all_logs(task.id, "").await;
    let lines: Vec<_> = logs
        .iter()
        .map(|e| (e.source.to_string(), e.message().to_owned()))
        .collect();
    assert!(lines.contains(&("stdout".into(), "out".into())));
    assert!(lines.contains(&("stderr".into(), "err".into())));
}

#[actix_rt::test]
async fn logs_survive_a_restart_of_the_server() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let task = app
            .run_task("synthetic", serde_json::json!({"count": 5000}))
            .await;
        let before = app.all_logs(task.id, "").await;
        assert_eq!(before.len(), 3750);
        let running = app
            .start_task(
                "synthetic",
                serde_json::json!({"count": 10_000_000, "rate": 2000}),
            )
            .await;
        actix_rt::time::sleep(std::time::Duration::from_millis(500)).await;
        app.handle.shutdown().await;
        let crate::helpers::TestApp { fresh, .. } = app;
        let again = crate::helpers::spawn_app_with(fresh, Default::default()).await;
        let after = again.all_logs(task.id, "").await;
        assert_eq!(
            after, before,
            "{backend}: every line is there after the restart"
        );
        let interrupted = again.wait_done(running.id).await;
        assert_eq!(interrupted.status, TaskStatus::Interrupted);
        let kept = again.all_logs(running.id, "").await;
        assert!(
            kept.len() > 100,
            "{backend}: records emitted before shutdown were flushed ({})",
            kept.len()
        );
        assert!(kept.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    }
}

/// Params are capped (413) and checked by every plugin, legacy ones included (400).
#[actix_rt::test]
async fn oversized_or_unknown_params_are_refused_before_a_task_exists() {
    let app = spawn_app("sqlite").await;
    let big = "x".repeat(70 * 1024);
    for plugin in ["legacy_backup", "synthetic"] {
        let (status, body) = app
            .post_as(
                &app.viewer,
                "/api/tasks",
                serde_json::json!({"plugin": plugin, "params": {"blob": big}}),
            )
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{plugin}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("at most 65536"),
            "{body}"
        );
    }
    let (status, body) = app
        .post_as(
            &app.viewer,
            "/api/tasks",
            serde_json::json!({"plugin": "legacy_backup", "params": {"tables": 2, "blob": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("blob"), "{body}");
    let (_, list) = app.get("/api/tasks").await;
    assert!(list["tasks"].as_array().unwrap().is_empty(), "{list}");
}

/// The queue is bounded and so is each viewer's share of it: beyond either, 429
/// with Retry-After, and room comes back as tasks leave.
#[actix_rt::test]
async fn the_queue_and_each_viewers_share_of_it_are_bounded() {
    let app = crate::helpers::spawn_app_with(
        testkit::FreshDb::new("sqlite"),
        crate::helpers::Tweaks {
            max_concurrent_tasks: 1,
            max_queued_tasks: 3,
            max_tasks_per_viewer: 2,
            ..Default::default()
        },
    )
    .await;
    let slow = serde_json::json!({"count": 1_000_000, "rate": 10});
    let create = |token: String| {
        let body = serde_json::json!({"plugin": "synthetic", "params": slow.clone()});
        let app = &app;
        async move {
            let (status, body, headers) = app
                .request(
                    awc::http::Method::POST,
                    "/api/tasks",
                    Some(&token),
                    Some(("application/json", body.to_string().into_bytes())),
                )
                .await;
            (status, crate::helpers::json_or_null(&body), headers)
        }
    };
    let mut mine = Vec::new();
    for _ in 0..2 {
        let (status, body, _) = create(app.viewer.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        mine.push(body["id"].as_str().unwrap().to_owned());
    }
    let (status, body, headers) = create(app.viewer.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("max_tasks_per_viewer"));
    assert!(headers.contains_key("retry-after"));

    // Admins are not limited per token, only by the queue: one runs, three wait.
    for _ in 0..2 {
        let (status, body, _) = create(app.admin.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body, headers) = create(app.admin.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body["error"].as_str().unwrap().contains("max_queued_tasks"));
    assert!(headers.contains_key("retry-after"));

    // A viewer's task that leaves gives its room back.
    let (status, body) = app
        .post_as(
            &app.viewer,
            &format!("/api/tasks/{}/cancel", mine[1]),
            serde_json::json!({}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, body, _) = create(app.viewer.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Task lists and status frames carry small params only; large ones are left out
/// (`params_omitted`) and stay one `GET /api/tasks/{id}` away.
#[actix_rt::test]
async fn large_params_stay_out_of_lists_and_status_frames() {
    let app = spawn_app("sqlite").await;
    let mut watcher = app.ws(Some(&app.viewer)).await;
    watcher
        .send(serde_json::json!({"type": "subscribe_tasks"}))
        .await;
    actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    let sources: Vec<String> = (0..300)
        .map(|i| format!("a-rather-long-source-{i:04}"))
        .collect();
    let large = app
        .run_task(
            "synthetic",
            serde_json::json!({"count": 3, "sources": sources}),
        )
        .await;
    let small = app
        .run_task("synthetic", serde_json::json!({"count": 3}))
        .await;
    assert_eq!(large.status, TaskStatus::Success);

    let (_, list) = app.get("/api/tasks").await;
    let listed = |id: protocol::TaskId| {
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id.to_string())
            .cloned()
            .unwrap()
    };
    assert_eq!(listed(large.id)["params"], serde_json::Value::Null);
    assert_eq!(listed(large.id)["params_omitted"], true);
    assert_eq!(listed(small.id)["params"], serde_json::json!({"count": 3}));
    assert!(listed(small.id).get("params_omitted").is_none());
    let (_, full) = app.get(&format!("/api/tasks/{}", large.id)).await;
    assert_eq!(full["params"]["sources"].as_array().unwrap().len(), 300);
    assert!(full.get("params_omitted").is_none());

    let mut frames = 0;
    while frames < 3 {
        match watcher.next(std::time::Duration::from_secs(10)).await {
            Some(Ok(protocol::ServerMessage::Task { task })) if task.id == large.id => {
                frames += 1;
                assert!(task.params_omitted && task.params.is_null(), "{task:?}");
            }
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}
