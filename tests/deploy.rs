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
    assert_eq!(names, ["db", "engine", "gateway"]);
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
    let volumes_of = |service: &Yaml| -> Vec<String> {
        service["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|v| text(v, "a volume").to_owned())
            .collect()
    };
    assert!(volumes_of(db).contains(&"db-data:/var/lib/postgresql/data".to_owned()));
    for (name, role) in [("engine", "engine"), ("gateway", "gateway")] {
        let node = &compose["services"][name];
        let check: Vec<&str> = node["healthcheck"]["test"]
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
            ],
            "{name}"
        );
        assert_eq!(
            node["depends_on"]["db"]["condition"].as_str(),
            Some("service_healthy"),
            "{name}"
        );
        let env = &node["environment"];
        assert_eq!(text(&env["TASKLENS_ROLE"], "the role"), role);
        let spool = text(&env["TASKLENS_SPOOL_DIR"], "the spool dir");
        assert!(spool.starts_with("/var/lib/tasklens/"), "{name}: {spool}");
        // The spool survives re-creation, and no two nodes share one.
        let volumes = volumes_of(node);
        assert_eq!(volumes.len(), 1, "{name}");
        assert!(
            volumes[0].ends_with("/var/lib/tasklens"),
            "{name}: {volumes:?}"
        );
    }
    let engine = &compose["services"]["engine"];
    assert_eq!(engine["deploy"]["replicas"].as_i64(), Some(2));
    assert_eq!(
        volumes_of(engine),
        ["/var/lib/tasklens"],
        "each replica its own (anonymous) volume"
    );
    assert!(
        engine["environment"]["TASKLENS_NODE_ID"].is_badvalue(),
        "replicas are named by their host"
    );
    assert!(engine["ports"].is_badvalue(), "engines are not published");
    let gateway = &compose["services"]["gateway"];
    assert_eq!(
        gateway["ports"].as_vec().map(|p| text(&p[0], "a port")),
        Some("${TASKLENS_PUBLISH:-127.0.0.1:8080}:8080")
    );
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

/// Every `TASKLENS_*` a service sets, with its value.
fn service_settings(compose: &Yaml, service: &str) -> Vec<(String, String)> {
    compose["services"][service]["environment"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| (text(k, "a name").to_owned(), text(v, "a value").to_owned()))
        .collect()
}

/// Every `TASKLENS_*` of the commented single-node variant and of the Dockerfile.
fn single_node_settings() -> Vec<(String, String)> {
    let commented = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let env_line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENV "))
        .expect("the Dockerfile sets TASKLENS_* defaults");
    let mut settings: Vec<(String, String)> = Vec::new();
    let found = commented
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| l.trim_start_matches('#').trim().split_once(": "))
        .chain(
            env_line
                .split_whitespace()
                .filter_map(|kv| kv.split_once('=')),
        );
    for (key, value) in found {
        if key.starts_with("TASKLENS_") && !settings.iter().any(|(k, _)| k == key) {
            settings.push((key.to_owned(), value.to_owned()));
        }
    }
    settings
}

/// Starts the server with `settings` on `db_url`; values that name the container's
/// world are replaced by this machine's.
fn launch_as_deployed(db_url: &str, settings: &[(String, String)], spool: &Path) -> Server {
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
            "TASKLENS_SPOOL_DIR" => (k.as_str(), spool.to_str().unwrap()),
            "TASKLENS_UI_DIR" => (k.as_str(), "/nonexistent"),
            _ => (k.as_str(), v.as_str()),
        })
        .collect();
    Server::launch_with(db_url, free_port(), None, &local)
}

/// The server refuses an unknown `TASKLENS_*` at start: it must start with these.
#[test]
fn every_setting_the_deployment_sets_is_one_the_server_accepts() {
    let single = single_node_settings();
    let names: Vec<&str> = single.iter().map(|(k, _)| k.as_str()).collect();
    for expected in [
        "TASKLENS_DATABASE_URL",
        "TASKLENS_ADMIN_TOKEN",
        "TASKLENS_BIND",
        "TASKLENS_UI_DIR",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let fresh = FreshDb::new("sqlite");
    let spool = tempfile::tempdir().unwrap();
    let server = launch_as_deployed(&fresh.url, &single, spool.path());
    stdout(&server.cli(&["tasks"]));
    drop(server);

    if std::env::var_os("TASKLENS_TEST_PG_URL").is_none() {
        eprintln!(
            "skipped the PostgreSQL services: no PostgreSQL for tests (TASKLENS_TEST_PG_URL)"
        );
        return;
    }
    // The compose topology as processes: the gateway takes the task, an engine runs it.
    let compose = compose();
    let fresh = FreshDb::new("postgres");
    let spools = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut engine = service_settings(&compose, "engine");
    engine.push(("TASKLENS_NODE_ID".into(), "engine-1".into()));
    let engine = launch_as_deployed(&fresh.url, &engine, spools[0].path());
    let gateway = launch_as_deployed(
        &fresh.url,
        &service_settings(&compose, "gateway"),
        spools[1].path(),
    );
    assert!(engine.cli(&["healthcheck"]).status.success());
    assert!(gateway.cli(&["healthcheck"]).status.success());
    let task = common::synthetic(&gateway, 400, 10_000);
    assert_eq!(
        common::wait_done(&gateway, &task).status,
        protocol::TaskStatus::Success
    );
}
