//! Malformed input for every endpoint: a clear 4xx JSON error, never a 5xx, and the
//! server keeps serving everyone else.

use actix_web::http::StatusCode;
use awc::http::Method;

use crate::helpers::{json_or_null, spawn_app};

/// Method, path, body (content type and bytes), expected status, words the error must contain.
type Case<'a> = (Method, String, Option<(&'a str, Vec<u8>)>, u16, &'a str);

#[actix_rt::test]
async fn malformed_requests_get_a_clear_4xx_and_never_a_5xx() {
    let app = spawn_app("sqlite").await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 10}))
        .await;
    let id = task.id.to_string();
    let unknown = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let json = |s: &str| Some(("application/json", s.as_bytes().to_vec()));
    let huge = format!(
        r#"{{"plugin":"synthetic","params":{{"x":"{}"}}}}"#,
        "a".repeat(2 * 1024 * 1024)
    );
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/api/tasks".into(),
            json("{not json"),
            400,
            "invalid JSON",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json("[]"),
            400,
            "invalid JSON",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"params":{}}"#),
            400,
            "plugin",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"plugin":"synthetic","parms":{}}"#),
            400,
            "parms",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"plugin":"nope"}"#),
            400,
            "unknown plugin",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"plugin":"synthetic","priority":5000}"#),
            400,
            "priority 5000 is out of range",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"plugin":"synthetic","priority":"high"}"#),
            400,
            "priority",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"plugin":"synthetic","priority":1.5}"#),
            400,
            "priority",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"plugin":"synthetic","params":{"count":-5}}"#),
            400,
            "count",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"plugin":"synthetic","params":[1]}"#),
            400,
            "object",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"plugin":"shell","params":{"argv":[]}}"#),
            400,
            "argv",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            json(r#"{"plugin":"demo_sync","params":{"dashboards":"many"}}"#),
            400,
            "dashboards",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            Some(("text/plain", b"plugin=synthetic".to_vec())),
            415,
            "Content-Type",
        ),
        (
            Method::POST,
            "/api/tasks".into(),
            Some(("application/json", huge.into_bytes())),
            413,
            "1 MiB",
        ),
        (
            Method::GET,
            "/api/tasks?status=done".into(),
            None,
            400,
            "status",
        ),
        (
            Method::GET,
            "/api/tasks?status=running,done".into(),
            None,
            400,
            "status",
        ),
        (
            Method::GET,
            format!("/api/tasks?plugin={}", vec!["p"; 51].join(",")),
            None,
            400,
            "at most 50",
        ),
        (
            Method::GET,
            format!("/api/tasks?q={}", "x".repeat(201)),
            None,
            400,
            "at most 200 bytes",
        ),
        (
            Method::GET,
            "/api/tasks?created_since=yesterday".into(),
            None,
            400,
            "created_since",
        ),
        (
            Method::GET,
            "/api/tasks?created_since=2026-12-01T00:00:00Z&created_until=2026-11-01T00:00:00Z"
                .into(),
            None,
            400,
            "before created_until",
        ),
        (Method::GET, "/api/tasks?limit=0".into(), None, 400, "limit"),
        (
            Method::GET,
            "/api/tasks?limit=abc".into(),
            None,
            400,
            "limit",
        ),
        (
            Method::GET,
            "/api/tasks?before=xyz".into(),
            None,
            400,
            "task id",
        ),
        (
            Method::GET,
            "/api/tasks?sort=asc".into(),
            None,
            400,
            "unknown parameter",
        ),
        (
            Method::GET,
            "/api/tasks/not-a-uuid".into(),
            None,
            400,
            "task id",
        ),
        (
            Method::GET,
            format!("/api/tasks/{unknown}"),
            None,
            404,
            "not found",
        ),
        (
            Method::POST,
            format!("/api/tasks/{unknown}/cancel"),
            None,
            404,
            "not found",
        ),
        (
            Method::POST,
            "/api/tasks/zzz/cancel".into(),
            None,
            400,
            "task id",
        ),
        (
            Method::DELETE,
            "/api/tasks/zzz".into(),
            None,
            400,
            "task id",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?level=LOUD"),
            None,
            400,
            "unknown level",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?levle=INFO"),
            None,
            400,
            "unknown parameter",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?limit=0"),
            None,
            400,
            "limit",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?limit=10001"),
            None,
            400,
            "limit",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?after_seq=-1"),
            None,
            400,
            "after_seq",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?after_seq=1e3"),
            None,
            400,
            "after_seq",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?before_seq=0"),
            None,
            400,
            "before_seq",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?re=(unclosed"),
            None,
            400,
            "regular expression",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?since=yesterday"),
            None,
            400,
            "RFC 3339",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z"),
            None,
            400,
            "earlier",
        ),
        (
            Method::GET,
            "/api/logs/search?q=x&cursor=nonsense".into(),
            None,
            400,
            "cursor",
        ),
        (
            Method::GET,
            "/api/logs/search?q=x&cursor=1.0123456789abcdef0123456789abcdef.-1".into(),
            None,
            400,
            "cursor",
        ),
        (
            Method::GET,
            "/api/logs/search?status=done".into(),
            None,
            400,
            "status",
        ),
        (
            Method::GET,
            "/api/logs/search?limit=1001".into(),
            None,
            400,
            "limit",
        ),
        (
            Method::GET,
            "/api/logs/search?task=abc".into(),
            None,
            400,
            "unknown parameter",
        ),
        (
            Method::GET,
            "/api/logs/search?created_since=2026-01-02T00:00:00Z&created_until=2026-01-01T00:00:00Z".into(),
            None,
            400,
            "created_since",
        ),
        (
            Method::GET,
            "/api/logs/search?created_until=soon".into(),
            None,
            400,
            "RFC 3339",
        ),
        (
            Method::GET,
            "/api/logs/search?re=(unclosed".into(),
            None,
            400,
            "regular expression",
        ),
        (
            Method::GET,
            "/api/logs/search?plugin=p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,p10,p11,p12,p13,p14,p15,p16,p17,p18,p19,p20,p21,p22,p23,p24,p25,p26,p27,p28,p29,p30,p31,p32,p33,p34,p35,p36,p37,p38,p39,p40,p41,p42,p43,p44,p45,p46,p47,p48,p49,p50".into(),
            None,
            400,
            "at most 50 plugins",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?meta.=5"),
            None,
            400,
            "unknown parameter",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?meta.a%22b=5"),
            None,
            400,
            "metadata key",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?q={}", "x".repeat(1001)),
            None,
            400,
            "longer than",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?source=%20"),
            None,
            200,
            "",
        ),
        // A NUL, which no stored text holds and SQL text cannot carry: no match, no 500.
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?q=rec%00ord&re=b%00c"),
            None,
            200,
            "",
        ),
        (
            Method::GET,
            "/api/logs/search?q=rec%00ord".into(),
            None,
            200,
            "",
        ),
        (
            Method::GET,
            format!("/api/tasks/{unknown}/logs"),
            None,
            404,
            "not found",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs/sources?x=1"),
            None,
            400,
            "unknown parameter",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?before_seq=abc"),
            None,
            400,
            "before_seq must be",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?before_seq=99999999999999999999"),
            None,
            400,
            "before_seq must be",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs?after_seq=3&before_seq=9"),
            None,
            400,
            "cannot be combined",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs/index?limit=5"),
            None,
            400,
            "unknown parameter \"limit\"",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs/index?format=bitmap"),
            None,
            400,
            "format must be seqs, runs, bits or auto",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs/index?level=LOUD"),
            None,
            400,
            "level",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs/index?re=(unclosed"),
            None,
            400,
            "re",
        ),
        (
            Method::GET,
            format!("/api/tasks/{unknown}/logs/index"),
            None,
            404,
            "not found",
        ),
        (
            Method::GET,
            "/api/tasks/zzz/logs/index".into(),
            None,
            400,
            "task id",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs/groups?limit=5"),
            None,
            400,
            "unknown parameter",
        ),
        (
            Method::GET,
            format!("/api/tasks/{unknown}/logs/groups"),
            None,
            404,
            "not found",
        ),
        (
            Method::GET,
            "/api/tasks/zzz/logs/groups".into(),
            None,
            400,
            "task id",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs/export?after_seq=5"),
            None,
            400,
            "unknown parameter \"after_seq\"",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs/export?level=LOUD"),
            None,
            400,
            "level",
        ),
        (
            Method::GET,
            format!("/api/tasks/{unknown}/logs/export"),
            None,
            404,
            "not found",
        ),
        (
            Method::GET,
            format!("/api/tasks/{unknown}/logs/sources"),
            None,
            404,
            "not found",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}/logs/export?format=xml"),
            None,
            400,
            "format",
        ),
        (
            Method::PUT,
            "/api/settings/logging".into(),
            json(r#"{"app_log_level":"INFO"}"#),
            400,
            "task_log_level",
        ),
        (
            Method::PUT,
            "/api/settings/logging".into(),
            json(r#"{"app_log_level":"LOUD","task_log_level":"INFO","belief_scope_enabled":true}"#),
            400,
            "unknown level",
        ),
        (
            Method::PUT,
            "/api/settings/logging".into(),
            json(
                r#"{"app_log_level":"INFO","task_log_level":"INFO","belief_scope_enabled":"yes"}"#,
            ),
            400,
            "invalid",
        ),
        (
            Method::PUT,
            "/api/settings/logging".into(),
            json(
                r#"{"app_log_level":"INFO","task_log_level":"INFO","belief_scope_enabled":true,"extra":1}"#,
            ),
            400,
            "extra",
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            json(r#"{"name":"a b","role":"viewer"}"#),
            400,
            "name",
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            json(r#"{"name":"ok","role":"root"}"#),
            400,
            "root",
        ),
        (
            Method::DELETE,
            "/api/tokens/nobody".into(),
            None,
            404,
            "no token",
        ),
        (
            Method::POST,
            "/api/cleanup".into(),
            json(r#"{"older_than_days":-1}"#),
            400,
            "invalid",
        ),
        (
            Method::POST,
            "/api/cleanup".into(),
            json(r#"{}"#),
            400,
            "older_than_days",
        ),
        (
            Method::POST,
            "/api/cleanup".into(),
            json(r#"{"older_than_days":"5"}"#),
            400,
            "invalid",
        ),
        (
            Method::POST,
            "/api/cleanup".into(),
            json(r#"{"older_than_days":1.5}"#),
            400,
            "invalid",
        ),
        (
            Method::POST,
            "/api/cleanup".into(),
            json(r#"{"older_than_days":5,"dry_run":true}"#),
            400,
            "dry_run",
        ),
        (
            Method::POST,
            "/api/cleanup?force=1".into(),
            json(r#"{"older_than_days":5}"#),
            400,
            "takes no query parameters",
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            json(r#"{"role":"viewer"}"#),
            400,
            "name",
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            json(r#"{"name":"no-role"}"#),
            400,
            "role",
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            json(r#"{"name":"ok","role":"viewer","expires":"never"}"#),
            400,
            "expires",
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            Some(("text/plain", b"name=ok".to_vec())),
            415,
            "application/json",
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            json(&format!(
                r#"{{"name":"{}","role":"viewer"}}"#,
                "n".repeat(65)
            )),
            400,
            "name",
        ),
        (
            Method::GET,
            "/api/tokens?all=1".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::GET,
            "/api/me?x=1".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::GET,
            "/api/plugins?x=1".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::GET,
            "/api/workers?x=1".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::GET,
            "/metrics?format=json".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::GET,
            "/api/openapi.json?version=2".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::GET,
            "/api/nodes?alive=1".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::GET,
            "/api/spool?task=1".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::POST,
            "/api/spool/retry?all=1".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::GET,
            format!("/api/tasks/{id}?verbose=1"),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::POST,
            format!("/api/tasks/{id}/cancel?now=1"),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::DELETE,
            format!("/api/tasks/{unknown}?force=1"),
            None,
            400,
            "takes no query parameters",
        ),
        (
            Method::GET,
            "/api/settings/logging?x=1".into(),
            None,
            400,
            "takes no query parameters",
        ),
        (Method::PATCH, "/api/tasks".into(), None, 405, "not allowed"),
        (
            Method::DELETE,
            "/api/settings/logging".into(),
            None,
            405,
            "not allowed",
        ),
        (
            Method::GET,
            "/api/nothing-here".into(),
            None,
            404,
            "no such endpoint",
        ),
        (Method::POST, "/ws".into(), None, 405, "not allowed"),
    ];
    for (method, path, body, want, needle) in cases {
        let (status, text, _) = app
            .request(method.clone(), &path, Some(&app.admin), body)
            .await;
        let shown = String::from_utf8_lossy(&text[..text.len().min(300)]).into_owned();
        assert_eq!(status.as_u16(), want, "{method} {path}: {shown}");
        if want >= 400 {
            let error = json_or_null(&text)["error"].as_str().map(str::to_owned);
            let error =
                error.unwrap_or_else(|| panic!("{method} {path}: no JSON error body: {shown}"));
            assert!(
                error.contains(needle),
                "{method} {path}: {error:?} should mention {needle:?}"
            );
        }
    }
    // Nothing above hurt the server.
    let again = app
        .run_task("synthetic", serde_json::json!({"count": 10}))
        .await;
    assert_eq!(again.status, protocol::TaskStatus::Success);
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}
