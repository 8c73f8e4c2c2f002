//! Floors: the parts underneath measured bare in the same run, so that every
//! Tasklens figure can be printed beside the best this machine's database does:
//! an insert of `task_logs`-shaped rows in transactions of the writer's largest
//! batch (prepared inserts of fixed row counts on SQLite, `COPY` on PostgreSQL; no
//! server, no counts, no index notes) and a keyset read of 1,000 rows plus their
//! JSON encoding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use protocol::{Body, LogEntry, LogLevel, LogPage, TaskId, TaskInfo, TaskStatus, Timestamp};
use storage::{DatabaseSettings, Db};

use crate::client::positions;
use crate::report::Stats;
use crate::server::{Backend, Database};

/// Rows per transaction of the bare insert: the writer's largest batch
/// (`batch_max_rows`).
const BATCH: u64 = 20_000;

/// Records shaped like the synthetic plugin's.
fn records(from: u64, n: u64) -> Vec<LogEntry> {
    const SOURCES: [&str; 3] = ["plugin", "superset_api", "system"];
    (from..from + n)
        .map(|i| LogEntry {
            seq: i + 1,
            timestamp: Timestamp(1_764_000_000_000_000 + i as i64),
            level: LogLevel::ALL[(i % 4) as usize],
            source: Arc::from(SOURCES[(i % 3) as usize]),
            body: Body::emitted(
                format_args!("synthetic record {i}"),
                Some(&serde_json::json!({"i": i, "dashboard_id": i % 10})),
            ),
            group: None,
            mark: None,
            worst: None,
        })
        .collect()
}

/// Records per second of a bare insert of `rows` rows into a fresh database.
pub fn bare_insert(backend: Backend, rows: u64) -> Result<f64> {
    let database = Database::create(backend)?;
    let db = Db::connect(&DatabaseSettings::new(database.url.clone()))?;
    let task = TaskInfo {
        id: TaskId(uuid::Uuid::now_v7()),
        plugin: "synthetic".into(),
        params: serde_json::json!({}),
        status: TaskStatus::Running,
        created_at: Timestamp(engine::logger::now_micros()),
        started_at: None,
        finished_at: None,
        result: None,
        error: None,
        created_by: None,
        params_omitted: false,
        node: None,
        priority: 0,
    };
    db.run_blocking(|c| storage::tasks::insert_task(c, &task, None))?;
    let mut busy = Duration::ZERO;
    let mut from = 0;
    while from < rows {
        let batch = records(from, BATCH.min(rows - from));
        let started = Instant::now();
        db.run_blocking(|c| storage::bare::insert_rows(c, task.id, &batch))?;
        busy += started.elapsed();
        from += batch.len() as u64;
    }
    Ok(rows as f64 / busy.as_secs_f64())
}

/// Latency of a bare 1,000-row keyset read plus encoding the page as the server
/// would, at the positions the REST retrieval uses.
pub fn bare_read(url: &str, task: TaskId, rows: u64, requests: usize) -> Result<Stats> {
    let db = Db::connect(&DatabaseSettings::new(url.to_owned()))?;
    let mut samples = Vec::with_capacity(requests);
    for (i, after) in positions(rows).take(requests + 10).enumerate() {
        let started = Instant::now();
        let logs = db.run_blocking(|c| storage::bare::read_rows(c, task, after, 1000))?;
        let page = LogPage {
            next_after_seq: logs.last().map_or(after, |e| e.seq),
            has_more: true,
            next_before_seq: None,
            scanned: None,
            logs,
        };
        let body = serde_json::to_vec(&page)?;
        std::hint::black_box(body);
        if i >= 10 {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(Stats::from_millis(samples))
}
