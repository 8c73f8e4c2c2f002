//! Headers on every response: the console's Content-Security-Policy and the other
//! browser protections, and caching by what was served.
//!
//! Caching: the console's assets have content-hashed names (`app.<16 hex>.js`, set by
//! `web-ui/build.sh`) and are cached for a year; `index.html` and every other page
//! are revalidated on each load, so an upgrade is picked up at once and a cached
//! script never meets a wasm module of another build; API answers are not stored.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;

/// Scripts only from the server (the wasm needs `'wasm-unsafe-eval'` to compile);
/// inline `style` attributes, which the log panel's virtual scrolling sets; nothing
/// may frame the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const REVALIDATE: &str = "no-cache";
pub const NOT_STORED: &str = "no-store";

/// The protections every response carries.
pub fn security() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
}

/// `name.<16 lower-case hex>.ext`, as `web-ui/build.sh` names what it hashed.
fn is_hashed_asset(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let mut parts = name.rsplitn(3, '.');
    let (Some(ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    ["js", "wasm", "css"].contains(&ext)
        && !stem.is_empty()
        && hash.len() == 16
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The `Cache-Control` for a response to `path`; `served_file` is whether the
/// answer is that file itself (200, not a page): only then may it be kept long.
pub fn cache_control(path: &str, served_file: bool) -> &'static str {
    if path.starts_with("/api")
        || path.starts_with("/ws")
        || matches!(path, "/healthz" | "/livez" | "/readyz" | "/metrics")
    {
        NOT_STORED
    } else if served_file && is_hashed_asset(path) {
        IMMUTABLE
    } else {
        REVALIDATE
    }
}

pub fn set_cache_control(path: &str, status: StatusCode, headers: &mut HeaderMap) {
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let served_file = status == StatusCode::OK && !html;
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control(path, served_file)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_hashed_assets_are_cached_for_long() {
        for path in [
            "/app.0123456789abcdef.js",
            "/app_bg.fedcba9876543210.wasm",
            "/style.00000000000000aa.css",
        ] {
            assert_eq!(cache_control(path, true), IMMUTABLE, "{path}");
            assert_eq!(
                cache_control(path, false),
                REVALIDATE,
                "{path}: not the file itself"
            );
        }
        for path in [
            "/",
            "/index.html",
            "/app.js",
            "/app.0123456789ABCDEF.js",
            "/app.0123.js",
            "/.0123456789abcdef.js",
            "/tasks/x",
            "/app.0123456789abcdef.html",
        ] {
            assert_eq!(cache_control(path, true), REVALIDATE, "{path}");
        }
        for path in ["/api/tasks", "/ws", "/healthz"] {
            assert_eq!(cache_control(path, true), NOT_STORED, "{path}");
        }
    }
}
