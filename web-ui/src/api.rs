//! REST calls to the Tasklens server, with the bearer token: every `/api/...` URL the
//! console uses is written here, once, behind a typed method.

use gloo_net::http::{Request, RequestBuilder, Response};
use protocol::api::{LogSettings, NodeInfo, PluginInfo, SearchPage};
use protocol::{
    ErrorBody, FilterSpec, LogEntry, LogPage, NewTask, SourceCount, TaskId, TaskInfo, TaskList,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::view_url::rest_query;

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

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let response = Self::check(self.auth(Request::get(path)).send().await).await?;
        response
            .json()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))
    }

    async fn get_text(&self, path: &str) -> Result<String, ApiError> {
        let response = Self::check(self.auth(Request::get(path)).send().await).await?;
        response
            .text()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))
    }

    /// Sends `body` as JSON with `builder`'s method and reads a JSON answer.
    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        builder: RequestBuilder,
        body: &B,
    ) -> Result<T, ApiError> {
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

    async fn delete(&self, path: &str) -> Result<(), ApiError> {
        Self::check(self.auth(Request::delete(path)).send().await)
            .await
            .map(|_| ())
    }

    /// `GET /api/plugins`.
    pub async fn plugins(&self) -> Result<Vec<PluginInfo>, ApiError> {
        self.get("/api/plugins").await
    }

    /// `GET /api/nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ApiError> {
        self.get("/api/nodes").await
    }

    /// `GET /api/tasks` with the query of `TaskQuery::api_query`.
    pub async fn tasks(&self, query: &str) -> Result<TaskList, ApiError> {
        self.get(&format!("/api/tasks?{query}")).await
    }

    /// `POST /api/tasks`.
    pub async fn submit(&self, task: &NewTask) -> Result<TaskInfo, ApiError> {
        self.send(Request::post("/api/tasks"), task).await
    }

    /// `GET /api/tasks/{id}`.
    pub async fn task(&self, id: TaskId) -> Result<TaskInfo, ApiError> {
        self.get(&format!("/api/tasks/{id}")).await
    }

    /// `POST /api/tasks/{id}/cancel`.
    pub async fn cancel(&self, id: TaskId) -> Result<(), ApiError> {
        let url = format!("/api/tasks/{id}/cancel");
        self.send::<_, serde_json::Value>(Request::post(&url), &serde_json::json!({}))
            .await
            .map(|_| ())
    }

    /// `DELETE /api/tasks/{id}`, with its logs.
    pub async fn delete_task(&self, id: TaskId) -> Result<(), ApiError> {
        self.delete(&format!("/api/tasks/{id}")).await
    }

    /// `GET /api/tasks/{id}/logs`: up to `limit` records after `after` that `filter`
    /// selects.
    pub async fn log_page(
        &self,
        id: TaskId,
        filter: &FilterSpec,
        after: u64,
        limit: usize,
    ) -> Result<LogPage, ApiError> {
        self.get(&with_filter(
            &format!("/api/tasks/{id}/logs"),
            filter,
            &format!("after_seq={after}&limit={limit}"),
        ))
        .await
    }

    /// The first record of `filter` after seq `from` (or the last before it when not
    /// `forward`): `GET /api/tasks/{id}/logs` with `limit=1`.
    pub async fn next_record(
        &self,
        id: TaskId,
        filter: &FilterSpec,
        from: u64,
        forward: bool,
    ) -> Result<Option<LogEntry>, ApiError> {
        let position = if forward {
            format!("after_seq={from}&limit=1")
        } else {
            format!("before_seq={}&limit=1", from.max(1))
        };
        let page: LogPage = self
            .get(&with_filter(
                &format!("/api/tasks/{id}/logs"),
                filter,
                &position,
            ))
            .await?;
        Ok(page.logs.into_iter().next())
    }

    /// `GET /api/tasks/{id}/logs/index`: the seqs of every record `filter` selects,
    /// ascending (sent as runs of consecutive seqs or one bit per seq, whichever the
    /// server found smaller).
    pub async fn log_index(&self, id: TaskId, filter: &FilterSpec) -> Result<Vec<u32>, ApiError> {
        let path = format!(
            "/api/tasks/{id}/logs/index?format=auto&{}",
            rest_query(filter)
        );
        let response = Self::check(self.auth(Request::get(&path)).send().await).await?;
        let bits = response.headers().get("x-index-format").as_deref() == Some("bits");
        let bytes = response
            .binary()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))?;
        Ok(match bits {
            true => decode_bits(&bytes),
            false => decode_index(&bytes),
        })
    }

    /// `GET /api/tasks/{id}/logs/export`: every record `filter` selects, as
    /// `format` (`text` or `ndjson`).
    pub async fn export(
        &self,
        id: TaskId,
        filter: &FilterSpec,
        format: &str,
    ) -> Result<String, ApiError> {
        self.get_text(&with_filter(
            &format!("/api/tasks/{id}/logs/export"),
            filter,
            &format!("format={format}"),
        ))
        .await
    }

    /// `GET /api/tasks/{id}/logs/sources`: counts per source and level.
    pub async fn source_counts(&self, id: TaskId) -> Result<Vec<SourceCount>, ApiError> {
        self.get(&format!("/api/tasks/{id}/logs/sources")).await
    }

    /// `GET /api/tasks/{id}/logs/groups`: the task's groups in seq order.
    pub async fn log_groups(&self, id: TaskId) -> Result<protocol::LogGroups, ApiError> {
        self.get(&format!("/api/tasks/{id}/logs/groups")).await
    }

    /// `GET /api/logs/search` with a query built by `SearchQuery::api_query`.
    pub async fn search(&self, query: &str) -> Result<SearchPage, ApiError> {
        self.get(&format!("/api/logs/search?{query}")).await
    }

    /// `GET /api/settings/logging`.
    pub async fn log_settings(&self) -> Result<LogSettings, ApiError> {
        self.get("/api/settings/logging").await
    }

    /// `PUT /api/settings/logging`.
    pub async fn set_log_settings(&self, settings: &LogSettings) -> Result<LogSettings, ApiError> {
        self.send(Request::put("/api/settings/logging"), settings)
            .await
    }

    /// Checks a token before it is kept: `GET /api/me`.
    pub async fn whoami(&self) -> Result<protocol::api::WhoAmI, ApiError> {
        self.get("/api/me").await
    }
}

/// `path?` with the filter's parameters, then `more`.
fn with_filter(path: &str, filter: &FilterSpec, more: &str) -> String {
    let query = rest_query(filter);
    let sep = if query.is_empty() { "" } else { "&" };
    format!("{path}?{query}{sep}{more}")
}

/// The body of `GET /logs/index?format=runs`: `(first, last)` pairs of
/// little-endian `u32`s, expanded to every seq. Pairs out of order are skipped
/// rather than trusted.
fn decode_index(bytes: &[u8]) -> Vec<u32> {
    let ends: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let count: usize = ends
        .chunks_exact(2)
        .map(|r| r[1].saturating_sub(r[0]) as usize + usize::from(r[0] <= r[1]))
        .sum();
    let mut seqs = Vec::with_capacity(count);
    for run in ends.chunks_exact(2) {
        if run[0] <= run[1] {
            seqs.extend(run[0]..=run[1]);
        }
    }
    seqs
}

/// The body of `GET /logs/index?format=bits`: the first seq as a little-endian
/// `u32`, then one bit per seq from it (bit `i` of byte `j` is seq `first + 8j + i`).
fn decode_bits(bytes: &[u8]) -> Vec<u32> {
    let Some((first, bits)) = bytes.split_first_chunk::<4>() else {
        return Vec::new();
    };
    let first = u32::from_le_bytes(*first);
    let count = bits.iter().map(|b| b.count_ones() as usize).sum();
    let mut seqs = Vec::with_capacity(count);
    for (j, byte) in bits.iter().enumerate() {
        let mut byte = *byte;
        while byte != 0 {
            let i = byte.trailing_zeros();
            match u32::try_from(j * 8 + i as usize)
                .ok()
                .and_then(|offset| first.checked_add(offset))
            {
                Some(seq) => seqs.push(seq),
                None => return seqs,
            }
            byte &= byte - 1;
        }
    }
    seqs
}

#[cfg(test)]
mod tests {
    use super::{decode_bits, decode_index};

    #[test]
    fn index_bits_expand_to_every_seq_from_the_first() {
        assert_eq!(
            decode_bits(&[3, 0, 0, 0, 0b1111_1101, 0b0001_0111]),
            [3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]
        );
        assert!(decode_bits(&[]).is_empty());
        assert!(
            decode_bits(&[1, 0]).is_empty(),
            "a cut first seq is dropped"
        );
        assert_eq!(
            decode_bits(&[0xFF, 0xFF, 0xFF, 0xFF, 0b11]),
            [u32::MAX],
            "no seq past u32"
        );
    }

    #[test]
    fn index_runs_expand_to_every_seq() {
        let body: Vec<u8> = [1u32, 3, 7, 7, 9, 10, 5, 4]
            .iter()
            .flat_map(|n| n.to_le_bytes())
            .collect();
        assert_eq!(decode_index(&body), [1, 2, 3, 7, 9, 10]);
        assert!(decode_index(&[]).is_empty());
        assert!(decode_index(&body[..6]).is_empty(), "a cut pair is dropped");
    }
}
