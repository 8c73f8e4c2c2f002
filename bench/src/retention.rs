//! Retention on a table of 10,000,000 records (storage level, no server: retention
//! runs inside the server through these same functions). Ten past days of tasks are
//! loaded; the first five expire and are deleted task by task, as retention did
//! before partitions (one `DELETE` per task); then the last five expire and go
//! through today's retention (`engine::retention::delete_finished_before`): whole
//! days by partition drop on PostgreSQL, records in steps of 10,000 elsewhere.
//! Meanwhile a probe stores a batch of 1,000 records every 50 ms, as the log writer
//! would, and the longest a batch took is the pause the pass caused to ingest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use protocol::{Body, LogEntry, LogLevel, TaskId, TaskInfo, TaskStatus, Timestamp};
use storage::{tasks, DatabaseSettings, Db, LogBatchRef};

use crate::report::{thousands, Row, Stats};
use crate::server::{Backend, Database};
use crate::Sizes;

const DAYS: usize = 10;
const TASKS_PER_DAY: usize = 10;
const LOAD_BATCH: u64 = 10_000;
const PROBE_BATCH: u64 = 1_000;
const PROBE_EVERY: Duration = Duration::from_millis(50);
const HOUR_US: i64 = 3_600_000_000;

pub async fn passes(backend: Backend, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    let name = backend.name();
    // A database of its own: the other parts' rows would change the table's size.
    let database = Database::create(backend)?;
    let db = Db::connect(&DatabaseSettings::new(database.url.clone()))
        .context("opening the retention database")?;
    let today = chrono::Utc::now().date_naive();
    let days: Vec<chrono::NaiveDate> = (0..DAYS)
        .map(|i| today - chrono::Days::new(40 - i as u64))
        .collect();
    db.run(move |c| storage::partitions::ensure_days(c, &days))
        .await?;
    let per_task = sizes.table_rows / (DAYS * TASKS_PER_DAY) as u64;

    let started = Instant::now();
    let mut day_starts = Vec::new();
    for i in 0..DAYS {
        let start = today - chrono::Days::new(40 - i as u64);
        let ms = start
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        day_starts.push(ms * 1000);
        for t in 0..TASKS_PER_DAY {
            let task = finished_task(ms + t as i64 * 60_000);
            let load_task = task.clone();
            db.run(move |c| tasks::insert_task(c, &load_task, None))
                .await?;
            let mut seq = 0;
            while seq < per_task {
                let n = LOAD_BATCH.min(per_task - seq);
                let entries = records(seq, n);
                seq += n;
                let id = task.id;
                db.run_writer(move |c| {
                    storage::logs::insert_log_batches(
                        c,
                        &[LogBatchRef {
                            task_id: id,
                            entries: &entries,
                        }],
                    )
                })
                .await?;
            }
        }
    }
    let loaded = per_task * (DAYS * TASKS_PER_DAY) as u64;
    let rate = loaded as f64 / started.elapsed().as_secs_f64();
    let bytes = db.run(storage::logs::stored_bytes).await?;
    eprintln!("retention: loaded {loaded} records at {rate:.0}/s, {bytes} bytes");
    rows.push(Row::new(
        name,
        "retention table: records, bulk load (storage, no server)",
        format!(
            "{} records at {} records/s",
            thousands(loaded as f64),
            thousands(rate)
        ),
        "",
    ));
    rows.push(Row::new(
        name,
        "disk per record, records and indexes",
        format!("{:.0} bytes", bytes as f64 / loaded as f64),
        "",
    ));

    let probe_task = finished_task(chrono::Utc::now().timestamp_millis());
    let probe_id = probe_task.id;
    db.run(move |c| tasks::insert_task(c, &probe_task, None))
        .await?;
    let probe = Probe::start(db.clone(), probe_id);

    // Before partitions: each expired task deleted by one statement.
    let half = day_starts[DAYS / 2] - HOUR_US;
    let pass = probe.during(|| async {
        let ids = db
            .run(move |c| tasks::finished_before(c, Timestamp(half), 1_000))
            .await?;
        for id in &ids {
            let id = *id;
            db.run(move |c| tasks::delete_task(c, id)).await?;
        }
        Ok(ids.len() as u64)
    });
    let (took, deleted, pause) = pass.await?;
    report(
        rows,
        name,
        "one DELETE per task (before)",
        loaded / 2,
        took,
        deleted,
        &pause,
    );
    let after_delete = db.run(storage::logs::stored_bytes).await?;
    if backend == Backend::Postgres {
        // A DELETE leaves dead rows for VACUUM: part of its cost, paid later.
        let pass = probe.during(|| async {
            db.run(storage::logs::vacuum).await?;
            Ok(0)
        });
        let (took, _, pause) = pass.await?;
        eprintln!("retention: VACUUM after the DELETE took {took:?}; ingest batches {pause}");
        let after_vacuum = db.run(storage::logs::stored_bytes).await?;
        rows.push(Row::new(
            name,
            "VACUUM task_logs after that DELETE",
            format!(
                "{:.1} s; ingest batch meanwhile: p50 {:.1} ms, longest {:.0} ms; on disk {} → {} MB",
                took.as_secs_f64(),
                pause.p50,
                pause.max,
                after_delete >> 20,
                after_vacuum >> 20
            ),
            "",
        ));
    }

    // Today's retention.
    let all = day_starts[DAYS - 1] + 24 * HOUR_US;
    let pass = probe.during(|| async {
        Ok(engine::retention::delete_finished_before(&db, Timestamp(all)).await?)
    });
    let (took, deleted, pause) = pass.await?;
    let how = match backend {
        Backend::Postgres => "partition drop",
        Backend::Sqlite => "DELETE in steps of 10,000",
    };
    report(rows, name, how, loaded / 2, took, deleted, &pause);
    let after = db.run(storage::logs::stored_bytes).await?;
    rows.push(Row::new(
        name,
        "on disk: loaded → after the first half → after the second",
        format!(
            "{} → {} → {} MB",
            bytes >> 20,
            after_delete >> 20,
            after >> 20
        ),
        "",
    ));
    probe.stop();
    Ok(())
}

fn report(
    rows: &mut Vec<Row>,
    name: &str,
    how: &str,
    records: u64,
    took: Duration,
    tasks: u64,
    pause: &Stats,
) {
    eprintln!("retention {how}: {tasks} tasks in {took:?}; ingest batches {pause}");
    rows.push(Row::new(
        name,
        &format!("retention of {} records, {how}", thousands(records as f64)),
        format!(
            "{:.1} s ({tasks} tasks); ingest batch of 1,000 meanwhile: p50 {:.1} ms, longest {:.0} ms",
            took.as_secs_f64(),
            pause.p50,
            pause.max
        ),
        "",
    ));
}

fn finished_task(created_ms: i64) -> TaskInfo {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        (created_ms / 1000) as u64,
        (created_ms % 1000) as u32 * 1_000_000,
    );
    TaskInfo {
        id: TaskId(uuid::Uuid::new_v7(ts)),
        plugin: "synthetic".into(),
        params: serde_json::json!({}),
        status: TaskStatus::Success,
        created_at: Timestamp(created_ms * 1000),
        started_at: Some(Timestamp(created_ms * 1000)),
        finished_at: Some(Timestamp(created_ms * 1000 + HOUR_US)),
        result: None,
        error: None,
        created_by: Some("bench".into()),
        params_omitted: false,
        node: None,
        priority: 0,
    }
}

/// Records shaped like the synthetic plugin's.
fn records(after: u64, n: u64) -> Vec<LogEntry> {
    let source: Arc<str> = Arc::from("plugin");
    (after + 1..=after + n)
        .map(|seq| LogEntry {
            seq,
            timestamp: Timestamp(1_700_000_000_000_000 + seq as i64),
            level: LogLevel::ALL[(seq % 4) as usize],
            source: source.clone(),
            body: Body::emitted(
                format_args!("synthetic record {seq}: processed item batch=42 status=ok"),
                Some(&serde_json::json!({"i": seq, "dashboard_id": seq % 10})),
            ),
            group: None,
            mark: None,
            worst: None,
        })
        .collect()
}

/// Stores a batch every [`PROBE_EVERY`] on a thread of its own and keeps how long
/// each took.
struct Probe {
    stop: Arc<AtomicBool>,
    taken: Arc<Mutex<Vec<f64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Probe {
    fn start(db: Db, task: TaskId) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(Mutex::new(Vec::new()));
        let (flag, out) = (stop.clone(), taken.clone());
        let thread = std::thread::spawn(move || {
            let mut seq = 0;
            while !flag.load(Ordering::Relaxed) {
                let entries = records(seq, PROBE_BATCH);
                seq += PROBE_BATCH;
                let at = Instant::now();
                let stored = db.run_blocking(|c| {
                    storage::logs::insert_log_batches(
                        c,
                        &[LogBatchRef {
                            task_id: task,
                            entries: &entries,
                        }],
                    )
                });
                let took = at.elapsed();
                if let Err(e) = stored {
                    eprintln!("probe batch failed: {e}");
                }
                out.lock().unwrap().push(took.as_secs_f64() * 1000.0);
                std::thread::sleep(PROBE_EVERY.saturating_sub(took));
            }
        });
        Probe {
            stop,
            taken,
            thread: Some(thread),
        }
    }

    /// Runs a pass; returns how long it took, what it returned, and the probe's
    /// batches meanwhile.
    async fn during<F, Fut>(&self, pass: F) -> Result<(Duration, u64, Stats)>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<u64>>,
    {
        self.taken.lock().unwrap().clear();
        let at = Instant::now();
        let n = pass().await?;
        let took = at.elapsed();
        // A pass shorter than a batch still gets the batch it overlapped.
        while self.taken.lock().unwrap().is_empty() {
            actix_rt::time::sleep(PROBE_EVERY).await;
        }
        let samples = std::mem::take(&mut *self.taken.lock().unwrap());
        Ok((took, n, Stats::from_millis(samples)))
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
