//! HTTPS and WSS end to end: the server serves TLS from PEM files (made here with a
//! private CA), and the CLI, `--follow` and `tasklens exec` speak https/wss to it
//! when told to trust that CA.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Server, ADMIN};
use testkit::{free_port, FreshDb};

/// A private CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem).
fn make_certificates(dir: &Path) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Tasklens test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    (
        write("ca.pem", ca.pem()),
        write("cert.pem", cert.pem()),
        write("key.pem", key.serialize_pem()),
    )
}

fn cli(server: &Server, https: &str, ca: Option<&str>, args: &[&str]) -> Output {
    let mut command = server.command(ADMIN, args);
    command.env("TASKLENS_SERVER", https);
    match ca {
        Some(ca) => command.env("TASKLENS_CA_CERT", ca),
        None => command.env_remove("TASKLENS_CA_CERT"),
    };
    command.output().unwrap()
}

#[test]
fn the_cli_follow_and_exec_speak_https_and_wss() {
    let fresh = FreshDb::new("sqlite");
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(dir.path());
    let port = free_port();
    let server = Server::launch_with(
        &fresh.url,
        port,
        None,
        &[
            ("TASKLENS_LOG", "warn"),
            ("TASKLENS_TLS_CERT", &cert),
            ("TASKLENS_TLS_KEY", &key),
        ],
    );
    let https = format!("https://127.0.0.1:{port}");

    let out = cli(&server, &https, Some(&ca), &["tasks"]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(
        &server,
        &https,
        Some(&ca),
        &["run", "synthetic", "-p", "count=200", "--follow"],
    );
    assert!(out.status.success(), "--follow over wss: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 150);
    let out = cli(
        &server,
        &https,
        Some(&ca),
        &["exec", "--", "echo", "over tls"],
    );
    assert!(out.status.success(), "exec over wss: {out:?}");
    let out = cli(&server, &https, Some(&ca), &["healthcheck"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Without the CA the server's certificate is not trusted: a clear error, no data.
    let out = cli(&server, &https, None, &["tasks"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("certificate") || err.contains("tls"), "{err}");
    // Plain HTTP to a TLS port gets nowhere either.
    let out = cli(
        &server,
        &format!("http://127.0.0.1:{port}"),
        None,
        &["tasks"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // A bad --ca-cert is refused before anything is sent.
    let out = cli(
        &server,
        &https,
        Some(&cert.replace("cert.pem", "nope.pem")),
        &["tasks"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-cert"));
}

#[test]
fn half_a_tls_configuration_is_refused_at_start() {
    let fresh = FreshDb::new("sqlite");
    let out = std::process::Command::new(common::BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TASKLENS_BIND", format!("127.0.0.1:{}", free_port()))
        .env("TASKLENS_DATABASE_URL", &fresh.url)
        .env("TASKLENS_TLS_CERT", "/nonexistent/cert.pem")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set both"),
        "{out:?}"
    );
}
