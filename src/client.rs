//! A small client for the Tasklens API, used by the CLI commands.

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
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self> {
        let base = server.trim().trim_end_matches('/').to_owned();
        if base.starts_with("https://") {
            bail!("--server {base}: https is not supported by this client yet; use http:// (for example through an SSH tunnel)");
        }
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            bail!("--server must be an http:// URL such as http://127.0.0.1:8080, not {server:?}");
        }
        let http = awc::Client::builder()
            .timeout(Duration::from_secs(120))
            .finish();
        Ok(Client { base, token, http })
    }

    /// `ws://host:port/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.base.trim_start_matches("http://"))
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
