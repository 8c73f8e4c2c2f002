//! Several nodes on one PostgreSQL database, as processes on loopback: a gateway and
//! two engines. Measures how fast the shared queue starts tasks submitted to the
//! gateway, the latency of records from an engine to subscribers on the gateway, and
//! ingest through the gateway on two engines against one.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use protocol::TaskInfo;

use crate::client::Api;
use crate::report::{thousands, Row};
use crate::server::{Database, Server};
use crate::{live, Sizes};

/// Submitters working at once against the gateway.
const SUBMITTERS: u64 = 8;

pub async fn gateway_and_engines(
    binary: &std::path::Path,
    db: &Database,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let gateway = Server::start_env(
        binary,
        db,
        &[
            ("TASKLENS_ROLE", "gateway"),
            ("TASKLENS_NODE_ID", "bench-gateway"),
            ("TASKLENS_MAX_QUEUED_TASKS", "1000000"),
        ],
    )?;
    let mut engines = Vec::new();
    for id in ["bench-engine-1", "bench-engine-2"] {
        engines.push(Server::start_env(
            binary,
            db,
            &[
                ("TASKLENS_ROLE", "engine"),
                ("TASKLENS_NODE_ID", id),
                ("TASKLENS_MAX_CONCURRENT_TASKS", "64"),
            ],
        )?);
    }

    // The queue: nearly empty tasks (one record each), submitted as fast as
    // SUBMITTERS clients can; from the first submission to the last start.
    let per = (sizes.queue_tasks / SUBMITTERS).max(1);
    let submitted = futures_util::future::join_all((0..SUBMITTERS).map(|_| {
        let api = Api::new(&gateway);
        async move {
            let mut ids = Vec::new();
            for _ in 0..per {
                ids.push(api.start(serde_json::json!({"count": 1})).await?.id);
            }
            Ok::<_, anyhow::Error>(ids)
        }
    }))
    .await;
    let api = Api::new(&gateway);
    let mut tasks: Vec<TaskInfo> = Vec::new();
    for ids in submitted {
        for id in ids? {
            tasks.push(api.wait(id).await?);
        }
    }
    let first = tasks.iter().map(|t| t.created_at.as_micros()).min();
    let last = tasks
        .iter()
        .filter_map(|t| t.started_at.map(|s| s.as_micros()))
        .max();
    let (first, last) = first.zip(last).context("no task started")?;
    let rate = tasks.len() as f64 / ((last - first) as f64 / 1e6);
    let mut on: BTreeMap<String, usize> = BTreeMap::new();
    for task in &tasks {
        *on.entry(task.node.clone().unwrap_or_default()).or_default() += 1;
    }
    let spread: Vec<String> = on.iter().map(|(n, c)| format!("{c} on {n}")).collect();
    eprintln!("queue: {rate:.0} tasks/s ({})", spread.join(", "));
    rows.push(Row::new(
        "postgres",
        &format!(
            "queue: {} one-record tasks submitted to a gateway, claimed and started by 2 engines",
            thousands(tasks.len() as f64)
        ),
        format!("{} tasks/s ({})", thousands(rate), spread.join(", ")),
        "≥ 500 tasks/s",
    ));

    // Records from an engine to subscribers on the gateway.
    let task = api
        .start(serde_json::json!({"count": sizes.cross_node_records, "rate": 20_000}))
        .await?;
    let stats = live::follow(&gateway, task.id, 10).await?;
    eprintln!("cross-node live: {stats}");
    rows.push(Row::new(
        "postgres",
        "cross-node live latency (engine → 10 filtered subscribers on the gateway), 20,000 records/s",
        stats.to_string(),
        "p99 ≤ 250 ms",
    ));

    // Ingest: ten unthrottled tasks through the gateway, on two engines, then on one
    // (the same run, so the ratio is fair on a shared machine).
    let counts = vec![(sizes.ingest / 10).max(1); 10];
    let (_, two) = api.ingest(&counts).await?;
    let second = engines.pop().context("two engines")?;
    second.stop()?;
    let (_, one) = api.ingest(&counts).await?;
    eprintln!("ingest through a gateway: {two:.0} records/s on two engines, {one:.0} on one");
    rows.push(Row::new(
        "postgres",
        &format!(
            "ingest, 10 tasks × {} records through a gateway: two engines against one",
            thousands(counts[0] as f64)
        ),
        format!(
            "{} records/s on two engines, {} on one ({:.2}×)",
            thousands(two),
            thousands(one),
            two / one
        ),
        "report",
    ));
    for engine in engines {
        engine.stop()?;
    }
    gateway.stop()
}
