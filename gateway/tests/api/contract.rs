//! Every response the gateway tests receive is checked against the OpenAPI
//! document (`GET /api/openapi.json`): the route and method are described, the
//! status is one the operation lists (or its `default`), the content type is one
//! it declares, and a JSON body validates against the schema given for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::http::StatusCode;
use awc::http::header::HeaderMap;
use serde_json::Value;

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(gateway::openapi::document)
}

/// The described path `path` (no query) falls under, if any.
fn template(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    document()["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .find(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
        })
        .map(String::as_str)
}

type Validators = Mutex<HashMap<String, Arc<jsonschema::Validator>>>;

/// A validator for `schema`, whose `$ref`s point into the document's components.
fn validator(key: String, schema: &Value) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Validators> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    cache
        .entry(key)
        .or_insert_with(|| {
            let mut root = schema.clone();
            root["components"] = document()["components"].clone();
            closed(&mut root);
            Arc::new(
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("a valid schema: {e}\n{root}")),
            )
        })
        .clone()
}

/// Makes every object schema with listed properties refuse others, so that a field
/// the document does not describe fails the check too.
fn closed(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(closed);
        }
        Value::Array(items) => items.iter_mut().for_each(closed),
        _ => {}
    }
}

/// Panics unless the response is one the document describes.
pub fn check(method: &str, url_path: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) {
    let path = url_path.split('?').next().unwrap();
    let Some(template) = template(path) else {
        // Outside the API (the console) or an unknown API path, which every API
        // route answers the same way: a JSON 404.
        if path.starts_with("/api/") {
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
            check_error(path, body);
        }
        return;
    };
    let method = method.to_ascii_lowercase();
    let Some(operation) = document()["paths"][template].get(&method) else {
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        return check_error(path, body);
    };
    let responses = &operation["responses"];
    let Some(response) = responses
        .get(status.as_str())
        .or_else(|| responses.get("default"))
    else {
        panic!("{method} {template}: status {status} is not described in the OpenAPI document");
    };
    // A request cut short before its handler ran (408 from a starved test thread)
    // has no body to check.
    if body.is_empty() && headers.get("content-type").is_none() {
        return;
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(content) = response["content"].as_object() else {
        // Upgrades (101) and 204s carry no content; a body would be undocumented.
        assert!(
            body.is_empty(),
            "{method} {template} {status}: an undescribed body"
        );
        return;
    };
    let media = content_type.split(';').next().unwrap().trim();
    let declared = content
        .iter()
        .find(|(k, _)| k.split(';').next().unwrap().trim() == media);
    let Some((declared_type, media_type)) = declared else {
        panic!(
            "{method} {template} {status}: content type {content_type:?} is not among {:?}",
            content.keys().collect::<Vec<_>>()
        );
    };
    if media != "application/json" {
        return;
    }
    let value: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{method} {template} {status}: not JSON: {e}"));
    let schema = &media_type["schema"];
    let key = format!("{method} {template} {status} {declared_type}");
    let validator = validator(key, schema);
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status}: the body does not match the OpenAPI schema: {errors:?}\nbody: {value}"
    );
}

fn check_error(path: &str, body: &[u8]) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = serde_json::json!({"$ref": "#/components/schemas/ErrorBody"});
    let validator = validator("ErrorBody".into(), &error);
    assert!(
        validator.is_valid(&value),
        "{path}: not an ErrorBody: {value}"
    );
}

#[actix_rt::test]
async fn every_route_is_described_and_only_those() {
    let app = crate::helpers::spawn_app("sqlite").await;
    let (status, served) = app.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        &served,
        document(),
        "the served document is the generated one"
    );
    let mut described: Vec<(String, String)> = Vec::new();
    for (path, item) in document()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut registered: Vec<(String, String)> = gateway::routes::endpoints()
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_owned()))
        .collect();
    described.sort();
    registered.sort();
    assert_eq!(described, registered);
    // Each operation says what its errors look like.
    for (method, path) in &described {
        let responses = &document()["paths"][path][method.to_lowercase()]["responses"];
        let errors_described = responses.get("default").is_some()
            || ["/livez", "/readyz", "/healthz"].contains(&path.as_str());
        assert!(
            errors_described,
            "{method} {path}: no default (error) response"
        );
    }
}

#[test]
fn the_check_refuses_what_the_document_does_not_describe() {
    let mut json = HeaderMap::new();
    json.insert(
        awc::http::header::CONTENT_TYPE,
        awc::http::header::HeaderValue::from_static("application/json"),
    );
    let fails = |method: &str, path: &str, status: u16, body: &[u8]| {
        let json = json.clone();
        let (method, path, body) = (method.to_owned(), path.to_owned(), body.to_vec());
        std::panic::catch_unwind(move || {
            check(
                &method,
                &path,
                StatusCode::from_u16(status).unwrap(),
                &json,
                &body,
            )
        })
        .is_err()
    };
    let me = |body: &[u8]| fails("GET", "/api/me", 200, body);
    assert!(!me(br#"{"name":"a","role":"viewer"}"#));
    assert!(me(br#"{"name":5,"role":"viewer"}"#), "a wrong type");
    assert!(me(br#"{"name":"a","role":"root"}"#), "not one of the enum");
    assert!(
        me(br#"{"name":"a","role":"viewer","x":1}"#),
        "an undescribed field"
    );
    let bad_time = br#"{"logs":[{"seq":1,"timestamp":"yesterday","level":"INFO","source":"s","message":"m"}],"next_after_seq":1,"has_more":false}"#;
    assert!(
        fails("GET", "/api/tasks/x/logs", 200, bad_time),
        "a bad format"
    );
    assert!(
        fails("GET", "/api/me", 404, br#"{"message":"no"}"#),
        "not an ErrorBody"
    );
    assert!(
        fails("PATCH", "/api/me", 200, b"{}"),
        "an undescribed method"
    );
}
