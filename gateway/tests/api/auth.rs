//! Access: tokens, roles, 401 and 403.

use actix_web::http::StatusCode;
use protocol::TokenInfo;

use crate::helpers::spawn_app;

#[actix_rt::test]
async fn calls_without_a_valid_token_are_refused() {
    let app = spawn_app("sqlite").await;
    for path in [
        "/api/tasks",
        "/api/plugins",
        "/api/settings/logging",
        "/api/me",
    ] {
        let (status, body, headers) = app.request(awc::http::Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
        assert!(crate::helpers::json_or_null(&body)["error"]
            .as_str()
            .unwrap()
            .contains("bearer token"));
        let (status, _) = app.get_as("tlk_wrong", path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _, _) = app
        .request(awc::http::Method::GET, "/api/tasks", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app.get("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
}

#[actix_rt::test]
async fn a_malformed_authorization_header_is_a_clear_401() {
    let app = spawn_app("sqlite").await;
    let client = awc::Client::default();
    let cases: [(&[u8], &str); 5] = [
        (b"Basic dXNlcjpwdw==", "use Authorization: Bearer <token>"),
        (b"Bearer", "use Authorization: Bearer <token>"),
        (b"Bearer    ", "use Authorization: Bearer <token>"),
        (b"Token abc", "use Authorization: Bearer <token>"),
        (
            b"Bearer \xff\xfe",
            "the Authorization header is not readable text",
        ),
    ];
    for (value, message) in cases {
        let header = awc::http::header::HeaderValue::from_bytes(value).unwrap();
        let mut response = client
            .get(format!("{}/api/me", app.address))
            .insert_header((awc::http::header::AUTHORIZATION, header))
            .send()
            .await
            .unwrap();
        let body = response.body().await.unwrap();
        let shown = String::from_utf8_lossy(value);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{shown}");
        assert_eq!(
            crate::helpers::json_or_null(&body)["error"].as_str(),
            Some(message),
            "{shown}"
        );
    }
    let (status, _) = app.get("/api/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_rt::test]
async fn viewers_read_and_run_while_admins_also_manage() {
    let app = spawn_app("sqlite").await;
    let (status, me) = app.get_as(&app.viewer, "/api/me").await;
    assert_eq!(
        (status, me["role"].as_str()),
        (StatusCode::OK, Some("viewer"))
    );
    let (status, me) = app.get_as(&app.admin, "/api/me").await;
    assert_eq!(
        (status, me["role"].as_str()),
        (StatusCode::OK, Some("admin"))
    );

    let forbidden = [
        (
            awc::http::Method::PUT,
            "/api/settings/logging",
            Some(
                serde_json::json!({"app_log_level": "INFO", "task_log_level": "INFO", "belief_scope_enabled": true}),
            ),
        ),
        (awc::http::Method::GET, "/api/tokens", None),
        (
            awc::http::Method::POST,
            "/api/tokens",
            Some(serde_json::json!({"name": "x", "role": "admin"})),
        ),
        (
            awc::http::Method::POST,
            "/api/cleanup",
            Some(serde_json::json!({"older_than_days": 1})),
        ),
        (awc::http::Method::DELETE, "/api/tokens/viewer-1", None),
    ];
    for (method, path, body) in forbidden {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let (status, text, _) = app
            .request(method.clone(), path, Some(&app.viewer), body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(crate::helpers::json_or_null(&text)["error"]
            .as_str()
            .unwrap()
            .contains("admin"));
    }

    let (status, created) = app
        .post_as(
            &app.admin,
            "/api/tokens",
            serde_json::json!({"name": "ops", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let ops = created["token"].as_str().unwrap().to_owned();
    let (status, _) = app.get_as(&ops, "/api/tokens").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post_as(
            &app.admin,
            "/api/tokens",
            serde_json::json!({"name": "ops", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, listed) = app.get("/api/tokens").await;
    let listed: Vec<TokenInfo> = serde_json::from_value(listed).unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["admin", "ops", "viewer-1"]
    );
    assert!(
        !serde_json::to_string(&listed).unwrap().contains(&ops),
        "secrets are never listed"
    );

    let (status, _) = app.delete_as(&app.admin, "/api/tokens/ops").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get_as(&ops, "/api/tasks").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a deleted token stops working at once"
    );
    let (status, body) = app.delete_as(&app.admin, "/api/tokens/admin").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the last admin token cannot be deleted: {body}"
    );
}

#[actix_rt::test]
async fn cleanup_deletes_only_old_finished_tasks() {
    let app = spawn_app("sqlite").await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 10}))
        .await;
    let (status, report) = app
        .post_as(
            &app.admin,
            "/api/cleanup",
            serde_json::json!({"older_than_days": 1}),
        )
        .await;
    assert_eq!(
        (status, report["deleted_tasks"].as_u64()),
        (StatusCode::OK, Some(0))
    );
    // An age beyond any clock: nothing is that old (it must not wrap into the future).
    let (status, report) = app
        .post_as(
            &app.admin,
            "/api/cleanup",
            serde_json::json!({"older_than_days": u32::MAX}),
        )
        .await;
    assert_eq!(
        (status, report["deleted_tasks"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{report}"
    );
    let (status, report) = app
        .post_as(
            &app.admin,
            "/api/cleanup",
            serde_json::json!({"older_than_days": 0}),
        )
        .await;
    assert_eq!(
        (status, report["deleted_tasks"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let (status, _) = app.get(&format!("/api/tasks/{}", task.id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Guessing tokens is throttled per client address: past the allowance every
/// request that presents a token, even a valid one, gets 429 with `Retry-After`,
/// over REST and WebSocket alike.
#[actix_rt::test]
async fn invalid_tokens_beyond_the_allowance_get_429() {
    let app = crate::helpers::spawn_app_with(
        testkit::FreshDb::new("sqlite"),
        crate::helpers::Tweaks {
            auth_failures_per_minute: 5,
            ..Default::default()
        },
    )
    .await;
    // A request without any token is no guess and is not counted.
    for _ in 0..10 {
        let (status, _, _) = app
            .request(awc::http::Method::GET, "/api/tasks", None, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for i in 0..5 {
        let (status, _) = app.get_as(&format!("tlk_guess{i}"), "/api/tasks").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    for token in ["tlk_guess5", crate::helpers::ADMIN_TOKEN] {
        let (status, body, headers) = app
            .request(awc::http::Method::GET, "/api/tasks", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(crate::helpers::json_or_null(&body)["error"]
            .as_str()
            .unwrap()
            .contains("too many invalid tokens"));
        let wait: u64 = headers
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    let refused = awc::Client::new()
        .ws(format!("ws://127.0.0.1:{}/ws", app.port))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .connect()
        .await;
    match refused {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS)
        }
        other => panic!("{:?}", other.map(|(r, _)| r.status())),
    }
}
