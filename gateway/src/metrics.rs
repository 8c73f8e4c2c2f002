//! `/metrics`: the server's state in Prometheus' text format (the `prometheus`
//! crate). Request counts and durations are recorded as requests end; the rest is
//! read from the engine, the hub and the database when scraped, so that a scrape
//! costs the hot paths nothing.

use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use protocol::TaskStatus;

use crate::error::ApiError;
use crate::state::AppState;

pub struct Metrics {
    registry: Registry,
    http: HistogramVec,
    flush_seconds: Histogram,
    records_appended: IntCounter,
    records_stored: IntCounter,
    records_rejected: IntCounter,
    records_spooled: IntCounter,
    flushes: IntCounter,
    flush_failures: IntCounter,
    ws_slow_closed: IntCounter,
    records_buffered: IntGauge,
    tasks: IntGaugeVec,
    tasks_running: IntGauge,
    ws_sessions: IntGauge,
    spool_bytes: IntGauge,
    database_up: IntGauge,
    sqlite_memory: IntGauge,
    text_index_backlog: IntGauge,
    /// The engine's and hub's totals at the last scrape, to advance counters by.
    last: Mutex<Totals>,
}

#[derive(Default, Clone, Copy)]
struct Totals {
    appended: u64,
    stored: u64,
    rejected: u64,
    spooled: u64,
    flushes: u64,
    failures: u64,
    slow: u64,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("a valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("a valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http = HistogramVec::new(
            HistogramOpts::new(
                "tasklens_http_request_duration_seconds",
                "HTTP requests by route pattern, method and status, and how long they took",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            &["route", "method", "status"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(http.clone()))
            .expect("registered once");
        let flush_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "tasklens_flush_duration_seconds",
                "How long each write of a batch of log records to the database took",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
        )
        .expect("a valid metric");
        registry
            .register(Box::new(flush_seconds.clone()))
            .expect("registered once");
        let tasks = IntGaugeVec::new(
            Opts::new("tasklens_tasks", "Tasks in the database by status"),
            &["status"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(tasks.clone()))
            .expect("registered once");
        Metrics {
            records_appended: counter(
                &registry,
                "tasklens_records_ingested_total",
                "Log records handed to the writer",
            ),
            records_stored: counter(
                &registry,
                "tasklens_records_stored_total",
                "Log records made durable",
            ),
            records_rejected: counter(
                &registry,
                "tasklens_records_rejected_total",
                "Log records the database refused for good (their task was stopped)",
            ),
            records_spooled: counter(
                &registry,
                "tasklens_records_spooled_total",
                "Log records written to the spool (at shutdown, or when the buffer is full during an outage)",
            ),
            flushes: counter(
                &registry,
                "tasklens_flushes_total",
                "Successful writes of log records",
            ),
            flush_failures: counter(
                &registry,
                "tasklens_flush_failures_total",
                "Failed writes of log records (retried)",
            ),
            ws_slow_closed: counter(
                &registry,
                "tasklens_ws_slow_clients_closed_total",
                "WebSocket clients closed for leaving too much unread",
            ),
            records_buffered: gauge(
                &registry,
                "tasklens_records_buffered",
                "Log records handed over and not yet durable",
            ),
            tasks_running: gauge(
                &registry,
                "tasklens_tasks_running",
                "Tasks running on this server",
            ),
            ws_sessions: gauge(
                &registry,
                "tasklens_ws_sessions",
                "Open WebSocket sessions following logs",
            ),
            spool_bytes: gauge(
                &registry,
                "tasklens_spool_bytes",
                "Bytes of spool waiting to be stored in the database",
            ),
            database_up: gauge(
                &registry,
                "tasklens_database_up",
                "1 when the database answered this scrape's query, else 0",
            ),
            sqlite_memory: gauge(
                &registry,
                "tasklens_sqlite_memory_bytes",
                "Memory SQLite holds in this process, page caches above all (0 on PostgreSQL)",
            ),
            text_index_backlog: gauge(
                &registry,
                "tasklens_text_index_pending_records",
                "Stored records the text and metadata indexes have yet to take (an upper bound)",
            ),
            registry,
            http,
            flush_seconds,
            tasks,
            last: Mutex::default(),
        }
    }

    /// Records one finished request. `route` is the matched pattern
    /// (`/api/tasks/{id}`), never the raw path, so ids do not multiply series.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http
            .with_label_values(&[route, method, &status.to_string()])
            .observe(took.as_secs_f64());
    }

    /// Reads the current state and renders every metric.
    pub async fn render(&self, state: &AppState) -> Result<String, ApiError> {
        let engine = &state.engine;
        let sink = engine
            .sink
            .send(engine::sink::GetSinkStats)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let hub = state
            .hub
            .send(crate::hub::GetHubStats)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let running = engine
            .manager
            .send(engine::manager::ListRunning)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        // During an outage, which is when metrics matter most, the rest still answers.
        let by_status = state.db.run(storage::tasks::count_by_status).await.ok();
        let now = Totals {
            appended: sink.appended_rows,
            // Spooled records count once they reach the database.
            stored: sink.durable_rows + sink.unspooled_rows,
            rejected: sink.rejected_rows,
            spooled: sink.spooled_rows,
            flushes: sink.flushes,
            failures: sink.failed_flushes,
            slow: hub.overflowed_sessions,
        };
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let advance = |c: &IntCounter, now: u64, then: u64| c.inc_by(now.saturating_sub(then));
            advance(&self.records_appended, now.appended, last.appended);
            advance(&self.records_stored, now.stored, last.stored);
            advance(&self.records_rejected, now.rejected, last.rejected);
            advance(&self.records_spooled, now.spooled, last.spooled);
            advance(&self.flushes, now.flushes, last.flushes);
            advance(&self.flush_failures, now.failures, last.failures);
            advance(&self.ws_slow_closed, now.slow, last.slow);
            *last = now;
        }
        for seconds in engine.writer.take_durations() {
            self.flush_seconds.observe(seconds);
        }
        self.records_buffered.set(engine.gate.pending() as i64);
        self.tasks_running.set(running.len() as i64);
        self.ws_sessions.set(hub.sessions as i64);
        self.spool_bytes.set(engine.spool_pending_bytes() as i64);
        self.database_up.set(i64::from(by_status.is_some()));
        self.sqlite_memory
            .set(storage::db::sqlite_memory_used() as i64);
        if let Ok(backlog) = state.db.run(storage::text_index::backlog).await {
            self.text_index_backlog.set(backlog as i64);
        }
        if let Some(by_status) = by_status {
            for status in TaskStatus::ALL {
                self.tasks.with_label_values(&[status.as_str()]).set(0);
            }
            for (status, n) in by_status {
                self.tasks.with_label_values(&[status.as_str()]).set(n);
            }
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| ApiError::internal(&e))?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}
