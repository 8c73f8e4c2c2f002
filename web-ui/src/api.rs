//! REST calls to the Tasklens server, with the bearer token.

use gloo_net::http::{Request, RequestBuilder, Response};
use protocol::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 401: the token is missing or no longer valid; the console logs out.
    Unauthorized,
    /// Any other error status, with the server's message.
    Status(u16, String),
    /// The server could not be reached or answered something unreadable.
    Network(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unauthorized => f.write_str("your token is not valid any more; log in again"),
            ApiError::Status(code, message) => write!(f, "{message} ({code})"),
            ApiError::Network(why) => write!(f, "cannot reach the server: {why}"),
        }
    }
}

/// A client bound to one token.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    token: String,
}

impl Api {
    pub fn new(token: impl Into<String>) -> Self {
        Api {
            token: token.into(),
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn auth(&self, builder: RequestBuilder) -> RequestBuilder {
        builder.header("Authorization", &format!("Bearer {}", self.token))
    }

    async fn check(response: Result<Response, gloo_net::Error>) -> Result<Response, ApiError> {
        let response = response.map_err(|e| ApiError::Network(e.to_string()))?;
        match response.status() {
            200..=299 => Ok(response),
            401 => Err(ApiError::Unauthorized),
            code => {
                let message = match response.json::<ErrorBody>().await {
                    Ok(body) => body.error,
                    Err(_) => response.status_text(),
                };
                Err(ApiError::Status(code, message))
            }
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let response = Self::check(self.auth(Request::get(path)).send().await).await?;
        response
            .json()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))
    }

    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ApiError> {
        let response = Self::check(self.auth(Request::get(path)).send().await).await?;
        response
            .binary()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))
    }

    pub async fn get_text(&self, path: &str) -> Result<String, ApiError> {
        let response = Self::check(self.auth(Request::get(path)).send().await).await?;
        response
            .text()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))
    }

    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let builder = match method {
            "PUT" => Request::put(path),
            "DELETE" => Request::delete(path),
            _ => Request::post(path),
        };
        let request = self
            .auth(builder)
            .json(body)
            .map_err(|e| ApiError::Network(e.to_string()))?;
        let response = Self::check(request.send().await).await?;
        response
            .json()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))
    }

    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        Self::check(self.auth(Request::delete(path)).send().await)
            .await
            .map(|_| ())
    }

    /// Checks a token before it is kept: `GET /api/me`.
    pub async fn whoami(&self) -> Result<protocol::api::WhoAmI, ApiError> {
        self.get("/api/me").await
    }
}
