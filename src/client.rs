//! A small client for the Tasklens API, used by the CLI commands.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::Stream;
use protocol::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where the server is and how to authenticate.
pub struct Client {
    base: String,
    token: Option<String>,
    http: awc::Client,
    /// For `https://` servers: the public roots plus `--ca-cert`.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A client of `server` (`http://` or `https://`); `ca_cert` is a PEM file of
    /// certificates to trust besides the public roots (a private CA, or the server's
    /// own self-signed certificate's issuer).
    pub fn new(server: &str, token: Option<String>, ca_cert: Option<&Path>) -> Result<Self> {
        let base = server.trim().trim_end_matches('/').to_owned();
        let host = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .unwrap_or("");
        if host.is_empty() {
            bail!("--server must be an http:// or https:// URL such as http://127.0.0.1:8080, not {server:?}");
        }
        let tls = if base.starts_with("https://") {
            Some(Arc::new(tls_config(ca_cert)?))
        } else {
            if ca_cert.is_some() {
                bail!("--ca-cert is for https:// servers; {base} is plain http");
            }
            None
        };
        let mut client = Client {
            base,
            token,
            http: awc::Client::default(),
            tls,
        };
        client.http = client.awc(Duration::from_secs(120));
        Ok(client)
    }

    /// An HTTP and WebSocket client for this server (TLS when it is `https://`).
    pub fn awc(&self, timeout: Duration) -> awc::Client {
        let builder = awc::Client::builder().timeout(timeout);
        match &self.tls {
            Some(config) => builder
                .connector(awc::Connector::new().rustls_0_23(config.clone()))
                .finish(),
            None => builder.finish(),
        }
    }

    /// `ws://host:port/ws` (`wss://` for an https server).
    pub fn ws_url(&self) -> String {
        match self.base.strip_prefix("https://") {
            Some(host) => format!("wss://{host}/ws"),
            None => format!("ws://{}/ws", self.base.trim_start_matches("http://")),
        }
    }

    /// `ws://host:port/ws/worker`.
    pub fn worker_ws_url(&self) -> String {
        format!("{}/worker", self.ws_url())
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn request(&self, method: awc::http::Method, path: &str) -> awc::ClientRequest {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self.request(awc::http::Method::GET, path).send().await;
        self.decode(path, response).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let response = self
            .request(awc::http::Method::POST, path)
            .send_json(body)
            .await;
        self.decode(path, response).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let response = self
            .request(awc::http::Method::PUT, path)
            .send_json(body)
            .await;
        self.decode(path, response).await
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        let response = self.request(awc::http::Method::DELETE, path).send().await;
        let mut response = self.check(path, response).await?;
        let _ = response.body().await;
        Ok(())
    }

    async fn check<S>(
        &self,
        path: &str,
        response: Result<awc::ClientResponse<S>, awc::error::SendRequestError>,
    ) -> Result<awc::ClientResponse<S>>
    where
        S: Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let mut response = response.map_err(|e| {
            anyhow!(
                "cannot reach the Tasklens server at {} ({e}); is `tasklens serve` running there?",
                self.base
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.body().limit(1024 * 1024).await.unwrap_or_default();
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        let hint = match status.as_u16() {
            401 => " (pass --token or set TASKLENS_TOKEN)",
            _ => "",
        };
        bail!("{} {path}: {message}{hint}", status.as_u16())
    }

    async fn decode<T: DeserializeOwned, S>(
        &self,
        path: &str,
        response: Result<awc::ClientResponse<S>, awc::error::SendRequestError>,
    ) -> Result<T>
    where
        S: Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let mut response = self.check(path, response).await?;
        let body = response
            .body()
            .limit(512 * 1024 * 1024)
            .await
            .with_context(|| format!("reading the answer to {path}"))?;
        serde_json::from_slice(&body)
            .with_context(|| format!("the answer to {path} is not what this client expects"))
    }
}

/// TLS for the CLI: the public web roots, plus the certificates of `ca_cert`.
fn tls_config(ca_cert: Option<&Path>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("--ca-cert {}: cannot read it", path.display()))?
        {
            let cert = cert
                .with_context(|| format!("--ca-cert {}: not a PEM certificate", path.display()))?;
            roots.add(cert).with_context(|| {
                format!("--ca-cert {}: not a usable certificate", path.display())
            })?;
            added += 1;
        }
        if added == 0 {
            bail!("--ca-cert {}: no certificate in it", path.display());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // WebSockets upgrade HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
