//! HTTPS: the server's certificate chain and key (PEM files), served with rustls
//! (its `ring` provider). A proxy in front (nginx, Caddy; see docs/operations.md) is
//! the other way to get TLS.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::StartError;

/// A connection accepted over TLS.
pub type TlsStream = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;

/// `tls_cert` (the chain, leaf first) and `tls_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The rustls configuration serving `files`.
///
/// # Errors
/// A file that cannot be read or holds no certificate or key, or a key that does
/// not match the certificate.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, StartError> {
    let bad = |what: String| StartError::Tls(what);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad(format!("tls_cert {}: {e}", files.cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("tls_cert {}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(bad(format!(
            "tls_cert {}: no certificate in it",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| bad(format!("tls_key {}: {e}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(format!(
                "tls_cert and tls_key do not make a usable pair: {e}"
            ))
        })
}
