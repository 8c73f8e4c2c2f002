//! Plugins outside the server: a Python worker (the SDK in `clients/python`) and
//! `tasklens exec`.
//!
//! - Python ingest: one Python process logs `worker_records` records as fast as it
//!   can; records/s from the task's start to its end (the end is written once every
//!   record is durable).
//! - Python live latency: a Python task logs at a fixed rate while filtered
//!   WebSocket clients follow it; the time from `logger.info` (the record's
//!   timestamp, taken by the SDK) to receipt.
//! - `tasklens exec` of a command printing `exec_lines` lines: lines/s from
//!   starting `exec` to its exit (the task is final and every line durable by then).
//!
//! The Python is `TASKLENS_BENCH_PYTHON` (the bench script's venv, with the SDK
//! installed).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::client::Api;
use crate::live;
use crate::report::{thousands, Row};
use crate::server::Server;
use crate::Sizes;

const WORKER_MODULE: &str = r#"
import time
from tasklens import Worker

worker = Worker(capacity=2, name="bench")

@worker.plugin("bench_flood", description="logs count records as fast as it can")
def flood(ctx, params):
    info = ctx.logger.info
    for i in range(params["count"]):
        info("bench record", i=i, dashboard_id=i % 10)
    return {"records": params["count"]}

@worker.plugin("bench_paced", description="logs count records at rate records/s")
def paced(ctx, params):
    count, rate = params["count"], params["rate"]
    info = ctx.logger.with_source("superset_api").info
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0.001:
            time.sleep(delay)
        info(f"bench record {i}", dashboard_id=i % 10)
    return {"records": count}
"#;

/// A Python worker process, killed when dropped.
struct PythonWorker(Child);

impl Drop for PythonWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_python(server: &Server, token: &str, dir: &Path) -> Result<PythonWorker> {
    let python = std::env::var("TASKLENS_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    std::fs::write(dir.join("bench_worker.py"), WORKER_MODULE)?;
    let child = Command::new(&python)
        .args(["-m", "tasklens", "worker", "bench_worker:worker"])
        .env("PYTHONPATH", dir)
        .env("TASKLENS_SERVER", server.base())
        .env("TASKLENS_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {python} -m tasklens (set TASKLENS_BENCH_PYTHON to a Python with the SDK)"))?;
    Ok(PythonWorker(child))
}

pub async fn python(server: &Server, name: &str, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<()> {
    let api = Api::new(server);
    let token = api.create_token("bench-python", "worker").await?;
    let dir = tempfile::tempdir()?;
    let _worker = start_python(server, &token, dir.path())?;
    api.wait_for_plugin("bench_flood").await?;

    let task = api
        .start_plugin(
            "bench_flood",
            serde_json::json!({"count": sizes.worker_records}),
        )
        .await?;
    let done = api.wait(task.id).await?;
    let secs = (done.finished_at.context("finished")?.as_micros()
        - done.started_at.context("started")?.as_micros()) as f64
        / 1e6;
    let rate = sizes.worker_records as f64 / secs;
    rows.push(Row::new(
        name,
        &format!(
            "Python worker → durable, 1 process ({} records)",
            thousands(sizes.worker_records as f64)
        ),
        format!("{} records/s", thousands(rate)),
        "≥ 50,000/s",
    ));
    eprintln!("python ingest: {rate:.0}/s");

    let task = api
        .start_plugin(
            "bench_paced",
            serde_json::json!({"count": sizes.worker_live_records, "rate": sizes.worker_live_rate}),
        )
        .await?;
    let stats = live::follow(server, task.id, 10).await?;
    rows.push(Row::new(
        name,
        &format!(
            "live latency, Python logger.info → WebSocket, {} records/s, 10 filtered subscribers",
            thousands(sizes.worker_live_rate as f64)
        ),
        stats.to_string(),
        "p99 ≤ 100 ms",
    ));
    eprintln!("python live: {stats}");
    Ok(())
}

pub async fn exec(
    binary: &Path,
    server: &Server,
    name: &str,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let api = Api::new(server);
    let token = api.create_token("bench-exec", "worker").await?;
    let started = Instant::now();
    let out = Command::new(binary)
        .args([
            "exec",
            "--name",
            "seq",
            "--",
            "seq",
            "1",
            &sizes.exec_lines.to_string(),
        ])
        .env("TASKLENS_SERVER", server.base())
        .env("TASKLENS_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "tasklens exec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rate = sizes.exec_lines as f64 / secs;
    rows.push(Row::new(
        name,
        &format!(
            "tasklens exec of a command printing {} lines, end to end",
            thousands(sizes.exec_lines as f64)
        ),
        format!("{} lines/s ({secs:.2} s)", thousands(rate)),
        "≥ 200,000/s",
    ));
    eprintln!("exec: {rate:.0} lines/s");
    Ok(())
}
