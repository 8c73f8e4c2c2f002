//! The shipped deployment files: `docker-compose.yml` has the services it promises,
//! each with a health check and a restart policy, its data on volumes, and every
//! `TASKLENS_*` it (or the Dockerfile, or the commented SQLite variant) sets is a
//! setting the real server accepts. No Docker engine runs here: the server is
//! started as a process with those settings instead.

mod common;

use std::path::Path;

use common::{stdout, Server};
use testkit::{free_port, FreshDb};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Yaml {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    YamlLoader::load_from_str(&text)
        .expect("docker-compose.yml is YAML")
        .remove(0)
}

fn text<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what} is a string: {yaml:?}"))
}

#[test]
fn the_compose_file_has_its_services_health_checks_volumes_and_restarts() {
    let compose = compose();
    let services = compose["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().map(|k| text(k, "a service name")).collect();
    assert_eq!(names, ["db", "tasklens"]);
    for (name, service) in services {
        let name = text(name, "a service name");
        assert_eq!(
            service["restart"].as_str(),
            Some("unless-stopped"),
            "{name}"
        );
        let test = service["healthcheck"]["test"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name} has a health check"));
        assert!(!test.is_empty(), "{name}");
    }
    let db = &compose["services"]["db"];
    assert!(text(&db["image"], "db's image").starts_with("postgres:16"));
    let tasklens = &compose["services"]["tasklens"];
    let check: Vec<&str> = tasklens["healthcheck"]["test"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|y| text(y, "a health check word"))
        .collect();
    assert_eq!(
        check,
        [
            "CMD",
            "tasklens",
            "healthcheck",
            "--server",
            "http://127.0.0.1:8080"
        ]
    );
    assert_eq!(
        tasklens["depends_on"]["db"]["condition"].as_str(),
        Some("service_healthy")
    );
    // Data survives re-creation: the database's and the server's (its spool).
    for (service, path) in [
        (db, "/var/lib/postgresql/data"),
        (tasklens, "/var/lib/tasklens"),
    ] {
        let mounted = service["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|v| text(v, "a volume"))
            .any(|v| v.ends_with(&format!(":{path}")));
        assert!(mounted, "a volume on {path}");
    }
    let spool = text(
        &tasklens["environment"]["TASKLENS_SPOOL_DIR"],
        "the spool dir",
    );
    assert!(spool.starts_with("/var/lib/tasklens/"), "{spool}");
    let volumes = compose["volumes"].as_hash().expect("volumes");
    assert_eq!(volumes.len(), 2);
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile
            .contains(r#"CMD ["tasklens", "healthcheck", "--server", "http://127.0.0.1:8080"]"#),
        "the image declares the same health check"
    );
    assert!(
        dockerfile.contains("cargo chef cook"),
        "the dependencies build in a layer of their own"
    );
}

/// Every `TASKLENS_*` the deployment sets, with its value.
fn deployment_settings() -> Vec<(String, String)> {
    let compose = compose();
    let mut settings: Vec<(String, String)> = compose["services"]["tasklens"]["environment"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| (text(k, "a name").to_owned(), text(v, "a value").to_owned()))
        .collect();
    let commented = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let env_line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENV "))
        .expect("the Dockerfile sets TASKLENS_* defaults");
    let more = commented
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim().split_once(": "))
        .chain(
            env_line
                .split_whitespace()
                .filter_map(|kv| kv.split_once('=')),
        );
    for (key, value) in more {
        if key.starts_with("TASKLENS_") && !settings.iter().any(|(k, _)| k == key) {
            settings.push((key.to_owned(), value.to_owned()));
        }
    }
    settings
}

#[test]
fn every_setting_the_deployment_sets_is_one_the_server_accepts() {
    let settings = deployment_settings();
    let names: Vec<&str> = settings.iter().map(|(k, _)| k.as_str()).collect();
    for expected in [
        "TASKLENS_DATABASE_URL",
        "TASKLENS_ADMIN_TOKEN",
        "TASKLENS_NODE_ID",
        "TASKLENS_SPOOL_DIR",
        "TASKLENS_BIND",
        "TASKLENS_UI_DIR",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    // The server refuses an unknown TASKLENS_* at start: it must start with these.
    // Values that name the container's world are replaced by this machine's.
    let fresh = FreshDb::new("sqlite");
    let spool = tempfile::tempdir().unwrap();
    let local: Vec<(&str, &str)> = settings
        .iter()
        .filter(|(k, _)| {
            ![
                "TASKLENS_DATABASE_URL",
                "TASKLENS_ADMIN_TOKEN",
                "TASKLENS_BIND",
            ]
            .contains(&k.as_str())
        })
        .map(|(k, v)| match k.as_str() {
            "TASKLENS_SPOOL_DIR" => (k.as_str(), spool.path().to_str().unwrap()),
            "TASKLENS_UI_DIR" => (k.as_str(), "/nonexistent"),
            _ => (k.as_str(), v.as_str()),
        })
        .collect();
    let server = Server::launch_with(&fresh.url, free_port(), None, &local);
    stdout(&server.cli(&["tasks"]));
}
