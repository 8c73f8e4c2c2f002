//! Serving the built console next to the API: its files, `index.html` for client-side
//! routes, and still a JSON error for anything under `/api` or `/ws` that is not an
//! endpoint (a script must never get the console's HTML, or an empty 404).

use awc::http::Method;
use testkit::FreshDb;

use crate::helpers::{json_or_null, spawn_app_with, Tweaks};

/// A server whose console is the files in `dir`.
async fn serving(dir: &std::path::Path) -> crate::helpers::TestApp {
    spawn_app_with(
        FreshDb::new("sqlite"),
        Tweaks {
            ui_dir: dir.to_owned(),
            ..Tweaks::default()
        },
    )
    .await
}

#[actix_rt::test]
async fn the_console_and_the_api_share_the_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><p>console</p>",
    )
    .unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log(1)").unwrap();
    let app = serving(dir.path()).await;

    for page in ["/", "/tasks/67e55044-10b1-426f-9247-bb680e5fe0c8", "/login"] {
        let (status, body, _) = app.request(Method::GET, page, None, None).await;
        assert_eq!(status.as_u16(), 200, "{page}");
        assert_eq!(body, b"<!doctype html><p>console</p>", "{page}");
    }
    let (status, body, _) = app.request(Method::GET, "/app.js", None, None).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"console.log(1)"[..]));
    for missing in [
        "/app.fedcba9876543210.js",
        "/app_bg.0000000000000000.wasm",
        "/x.css",
    ] {
        let (status, body, _) = app.request(Method::GET, missing, None, None).await;
        assert_eq!(status.as_u16(), 404, "{missing}");
        assert!(json_or_null(&body)["error"].is_string(), "{missing}");
    }
}

/// Every response carries the browser protections; the console's page is
/// revalidated on each load, its content-hashed assets are cached for a year, and
/// API answers are not stored.
#[actix_rt::test]
async fn responses_carry_security_and_cache_headers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
    std::fs::write(dir.path().join("app.0123456789abcdef.js"), "1").unwrap();
    std::fs::write(dir.path().join("app.js"), "1").unwrap();
    let app = serving(dir.path()).await;
    for (path, token, cache) in [
        ("/", None, "no-cache"),
        (
            "/tasks/67e55044-10b1-426f-9247-bb680e5fe0c8",
            None,
            "no-cache",
        ),
        ("/app.js", None, "no-cache"),
        // A hashed name with no file behind it is a 404, never the page cached
        // for a year under that name.
        ("/app.fedcba9876543210.js", None, "no-cache"),
        (
            "/app.0123456789abcdef.js",
            None,
            "public, max-age=31536000, immutable",
        ),
        ("/api/tasks", Some(app.admin.as_str()), "no-store"),
        ("/api/tasks", None, "no-store"),
        ("/healthz", None, "no-store"),
        ("/readyz", None, "no-store"),
        ("/livez", None, "no-store"),
    ] {
        let (_, _, headers) = app.request(Method::GET, path, token, None).await;
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| panic!("{path}: no {name}"))
        };
        assert_eq!(header("cache-control"), cache, "{path}");
        let csp = header("content-security-policy");
        for part in [
            "frame-ancestors 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
    }

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
