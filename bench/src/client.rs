//! HTTP calls to the server under test, and the ingest, overhead and retrieval
//! measurements built on them.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use protocol::{LogPage, SearchPage, SourceCount, TaskId, TaskInfo, TaskList, TaskStatus};

use crate::report::Stats;
use crate::server::{Server, TOKEN};

/// The filters retrieval is measured with (label, query string).
pub const RETRIEVAL_FILTERS: &[(&str, &str)] = &[
    ("no filter", ""),
    ("level=INFO", "level=INFO"),
    (
        "level=WARNING&source=superset_api",
        "level=WARNING&source=superset_api",
    ),
    ("q=77", "q=77"),
    ("meta.dashboard_id=3", "meta.dashboard_id=3"),
    ("meta matching a single line", "meta.i=123456"),
    ("meta matching 0.1% of lines", "meta.tag=rare"),
    ("re=99$", "re=99%24"),
    ("q matching a single line", "q=record%20123456"),
    ("q matching nothing", "q=no%20such%20line"),
    (
        "q one line & meta.dashboard_id=6 (10%)",
        "q=record%20123456&meta.dashboard_id=6",
    ),
    ("q matching 0.4% of lines", "q=777"),
    (
        "re with a required literal (777\\d$, 0.1%)",
        "re=777%5Cd%24",
    ),
];

/// The searches across all tasks measured (label, query string, whether it finds
/// anything): the first page of 100 hits, newest task first.
pub const SEARCH_FILTERS: &[(&str, &str, bool)] = &[
    ("rare text, one line per task", "q=record%20123456", true),
    ("text matching nothing", "q=no%20such%20line", false),
    ("meta on one line per task", "meta.i=123456", true),
    ("level=ERROR", "level=ERROR", true),
];

/// Positions spread over a task of `rows` records (a fixed pseudo-random sequence,
/// the same for every filter and for the floor).
pub fn positions(rows: u64) -> impl Iterator<Item = u64> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    std::iter::repeat_with(move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % (rows * 99 / 100)
    })
}

/// What a client asks the server to compress with (`Accept-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// gzip, as browsers and this bench's client ask by default.
    Gzip,
    /// Nothing: the body as the floor encodes it.
    Identity,
}

pub struct Api {
    base: String,
    http: awc::Client,
}

impl Api {
    pub fn new(server: &Server) -> Self {
        Api {
            base: server.base(),
            http: awc::Client::builder()
                .timeout(Duration::from_secs(300))
                .bearer_auth(TOKEN)
                .finish(),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let body = self.get_body(path, Encoding::Gzip).await?;
        serde_json::from_slice(&body).with_context(|| format!("GET {path}"))
    }

    /// The body of a successful `GET`, undecoded (uncompressed when it was sent
    /// compressed).
    async fn get_body(&self, path: &str, encoding: Encoding) -> Result<bytes::Bytes> {
        let request = self.http.get(format!("{}{path}", self.base));
        let request = match encoding {
            Encoding::Gzip => request,
            Encoding::Identity => request.insert_header(("Accept-Encoding", "identity")),
        };
        let mut response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GET {path}: {e}"))?;
        let body = response.body().limit(256 * 1024 * 1024).await?;
        if !response.status().is_success() {
            bail!(
                "GET {path}: {} {}",
                response.status(),
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body)
    }

    /// One gauge of `/metrics`, by name.
    pub async fn gauge(&self, name: &str) -> Result<f64> {
        let mut response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GET /metrics: {e}"))?;
        let body = response.body().limit(16 * 1024 * 1024).await?;
        let text = String::from_utf8_lossy(&body);
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .with_context(|| format!("no gauge {name} in /metrics"))
    }

    /// Waits until the text index holds every stored record; returns how long that
    /// took.
    pub async fn text_index_caught_up(&self) -> Result<Duration> {
        let started = std::time::Instant::now();
        while self.gauge("tasklens_text_index_pending_records").await? > 0.0 {
            if started.elapsed() > Duration::from_secs(1_800) {
                bail!("the text index did not catch up in 30 minutes");
            }
            actix_rt::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(started.elapsed())
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let request = match method {
            "PUT" => self.http.put(format!("{}{path}", self.base)),
            _ => self.http.post(format!("{}{path}", self.base)),
        };
        let mut response = request
            .send_json(&body)
            .await
            .map_err(|e| anyhow::anyhow!("{method} {path}: {e}"))?;
        let bytes = response.body().await?;
        if !response.status().is_success() {
            bail!(
                "{method} {path}: {} {}",
                response.status(),
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub async fn set_task_level(&self, level: &str) -> Result<()> {
        self.send(
            "PUT",
            "/api/settings/logging",
            serde_json::json!({"app_log_level": "WARNING", "task_log_level": level, "belief_scope_enabled": true}),
        )
        .await?;
        Ok(())
    }

    pub async fn start(&self, params: serde_json::Value) -> Result<TaskInfo> {
        self.start_plugin("synthetic", params).await
    }

    pub async fn start_plugin(&self, plugin: &str, params: serde_json::Value) -> Result<TaskInfo> {
        let created = self
            .send(
                "POST",
                "/api/tasks",
                serde_json::json!({"plugin": plugin, "params": params}),
            )
            .await?;
        Ok(serde_json::from_value(created)?)
    }

    /// A new token of `role`; returns its secret.
    pub async fn create_token(&self, name: &str, role: &str) -> Result<String> {
        let created = self
            .send(
                "POST",
                "/api/tokens",
                serde_json::json!({"name": name, "role": role}),
            )
            .await?;
        created["token"]
            .as_str()
            .map(str::to_owned)
            .context("the created token")
    }

    /// Waits until a connected worker offers `plugin`.
    pub async fn wait_for_plugin(&self, plugin: &str) -> Result<()> {
        for _ in 0..600 {
            let plugins: Vec<protocol::PluginInfo> = self.get("/api/plugins").await?;
            if plugins
                .iter()
                .any(|p| p.name == plugin && p.workers.as_ref().is_some_and(|w| !w.is_empty()))
            {
                return Ok(());
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("no worker offered {plugin} within 30 s")
    }

    /// The task's groups (`GET /api/tasks/{id}/logs/groups`).
    pub async fn groups(&self, id: TaskId) -> Result<protocol::LogGroups> {
        self.get(&format!("/api/tasks/{id}/logs/groups")).await
    }

    pub async fn wait(&self, id: TaskId) -> Result<TaskInfo> {
        loop {
            let task: TaskInfo = self.get(&format!("/api/tasks/{id}")).await?;
            if task.status.is_terminal() {
                if task.status != TaskStatus::Success {
                    bail!("task {id} ended {}: {:?}", task.status, task.error);
                }
                return Ok(task);
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs synthetic tasks of these sizes at once, unthrottled; returns the first
    /// task and the records/s from the first start to the last finish (a task finishes
    /// only once every record of it is stored).
    pub async fn ingest(&self, counts: &[u64]) -> Result<(TaskId, f64)> {
        self.ingest_with(counts, serde_json::json!({})).await
    }

    /// [`Api::ingest`] with more `synthetic` params for every task.
    pub async fn ingest_with(
        &self,
        counts: &[u64],
        params: serde_json::Value,
    ) -> Result<(TaskId, f64)> {
        let mut ids = Vec::new();
        for count in counts {
            let mut task = params.clone();
            task["count"] = serde_json::json!(count);
            ids.push(self.start(task).await?.id);
        }
        let mut first_start = i64::MAX;
        let mut last_end = i64::MIN;
        for id in &ids {
            let task = self.wait(*id).await?;
            first_start = first_start.min(task.started_at.context("started")?.as_micros());
            last_end = last_end.max(task.finished_at.context("finished")?.as_micros());
        }
        let total: u64 = counts.iter().sum();
        let secs = (last_end - first_start) as f64 / 1e6;
        Ok((ids[0], total as f64 / secs))
    }

    async fn task_seconds(&self, params: serde_json::Value) -> Result<f64> {
        let task = self.wait(self.start(params).await?.id).await?;
        Ok((task.finished_at.context("finished")?.as_micros()
            - task.started_at.context("started")?.as_micros()) as f64
            / 1e6)
    }

    /// Seconds of the CPU-bound task with every record logged, and with its records
    /// discarded at emission: the fastest of `runs` alternating runs each. Noise (other
    /// work on a shared machine) only ever adds time to CPU-bound work, so the minimum
    /// is the estimate least disturbed by it.
    pub async fn overhead(&self, count: u64, work: u64, runs: usize) -> Result<(f64, f64)> {
        let mut full = Vec::new();
        let mut discarded = Vec::new();
        // One warm-up of each, not counted.
        self.task_seconds(serde_json::json!({"count": count / 10, "work": work}))
            .await?;
        self.task_seconds(serde_json::json!({"count": count / 10, "work": work, "discard": true}))
            .await?;
        for _ in 0..runs {
            full.push(
                self.task_seconds(serde_json::json!({"count": count, "work": work}))
                    .await?,
            );
            discarded.push(
                self.task_seconds(
                    serde_json::json!({"count": count, "work": work, "discard": true}),
                )
                .await?,
            );
        }
        let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        Ok((fastest(&full), fastest(&discarded)))
    }

    /// Records stored in all tasks.
    /// The server's tasks (the first 500, more than any part starts).
    pub async fn tasks(&self) -> Result<Vec<TaskInfo>> {
        let list: TaskList = self.get("/api/tasks?limit=500").await?;
        Ok(list.tasks)
    }

    pub async fn stored_rows(&self) -> Result<u64> {
        let mut total = 0;
        for task in self.tasks().await? {
            let counts: Vec<SourceCount> = self
                .get(&format!("/api/tasks/{}/logs/sources", task.id))
                .await?;
            total += counts.iter().map(|c| c.count).sum::<u64>();
        }
        Ok(total)
    }

    /// Latency of `limit=1000` pages at spread-out positions of the task.
    pub async fn retrieval(
        &self,
        task: TaskId,
        rows: u64,
        query: &str,
        requests: usize,
        encoding: Encoding,
    ) -> Result<Stats> {
        let sep = if query.is_empty() { "" } else { "&" };
        let mut samples = Vec::with_capacity(requests);
        for (i, position) in positions(rows).take(requests + 10).enumerate() {
            let path =
                format!("/api/tasks/{task}/logs?{query}{sep}after_seq={position}&limit=1000");
            // Until the whole body is in: decoding it is the client's own work, and
            // the floor has none.
            let started = Instant::now();
            let body = self.get_body(&path, encoding).await?;
            let took = started.elapsed();
            let page: LogPage =
                serde_json::from_slice(&body).with_context(|| format!("GET {path}"))?;
            if page.logs.is_empty() && page.has_more {
                bail!("{path} returned an empty page with has_more");
            }
            // Level, source and most metadata filters match everywhere in the task;
            // text ones and `meta.i` (one line) may rightly find nothing after a late
            // position.
            let textual = ["q=", "re=", "meta.i="].iter().any(|k| query.contains(k));
            if page.logs.is_empty() && !textual {
                bail!("{path} returned no records");
            }
            if i >= 10 {
                samples.push(took.as_secs_f64() * 1000.0);
            }
        }
        Ok(Stats::from_millis(samples))
    }

    /// Latency of the first page of 100 hits of `GET /api/logs/search?{query}`, and
    /// how many hits it had. Fails on a page that stopped on the read budget, or
    /// that finds nothing when it should (`finds`) or something when it should not.
    pub async fn search(
        &self,
        query: &str,
        finds: bool,
        requests: usize,
    ) -> Result<(Stats, usize)> {
        let path = format!("/api/logs/search?{query}&limit=100");
        let mut samples = Vec::with_capacity(requests);
        let mut hits = 0;
        for i in 0..requests + 5 {
            let started = Instant::now();
            let page: SearchPage = self.get(&path).await?;
            let took = started.elapsed();
            if let Some(scanned) = page.scanned {
                bail!("{path} stopped after reading {scanned} records");
            }
            if page.hits.is_empty() == finds {
                bail!("{path} returned {} hits", page.hits.len());
            }
            hits = page.hits.len();
            if i >= 5 {
                samples.push(took.as_secs_f64() * 1000.0);
            }
        }
        Ok((Stats::from_millis(samples), hits))
    }
}
