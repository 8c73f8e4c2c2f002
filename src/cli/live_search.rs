//! `tasklens search --follow`: a live search over every task (`subscribe_all`),
//! printed as the records arrive, until interrupted. Nothing is read back after a
//! dropped connection (a live search has no history): what was logged meanwhile is
//! found by `tasklens search` without `--follow`, as the message on reconnecting says.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use protocol::{ClientMessage, FilterSpec, SearchHit, ServerMessage, TaskId, TaskInfo};

use super::follow::{connect, next_message, send, FollowError, Incoming};
use super::output::{print_hits, use_color};
use crate::client::Client;

const MAX_RECONNECTS: u32 = 20;

pub async fn live_search(
    client: &Client,
    filter: FilterSpec,
    plugins: &[String],
    json: bool,
) -> Result<i32> {
    let color = use_color() && !json;
    let mut known: HashMap<TaskId, String> = HashMap::new();
    let mut attempts = 0;
    loop {
        let why = match stream_once(client, &filter, plugins, &mut known, json, color).await {
            Ok(why) | Err(FollowError::Transient(why)) => why,
            Err(FollowError::Fatal(e)) => return Err(e),
        };
        attempts += 1;
        if attempts > MAX_RECONNECTS {
            bail!("lost the connection to the server {MAX_RECONNECTS} times; last: {why}");
        }
        eprintln!("connection lost ({why}); searching live again (tasklens search finds what was logged meanwhile)");
        tokio::time::sleep(Duration::from_millis(250 * u64::from(attempts.min(8)))).await;
    }
}

/// Streams until the connection ends; returns why.
async fn stream_once(
    client: &Client,
    filter: &FilterSpec,
    plugins: &[String],
    known: &mut HashMap<TaskId, String>,
    json: bool,
    color: bool,
) -> Result<String, FollowError> {
    let mut conn = connect(client).await?;
    let search = ClientMessage::SubscribeAll {
        filter: filter.clone(),
    };
    send(&mut conn, &search).await?;
    let out = std::io::stdout();
    loop {
        let msg = match next_message(&mut conn).await? {
            Incoming::Message(msg) => msg,
            Incoming::Closed(why) => return Ok(why),
        };
        match msg {
            ServerMessage::Matched { task_id, entries } => {
                let plugin = plugin_of(client, known, task_id).await;
                if !plugins.is_empty() && !plugins.contains(&plugin) {
                    continue;
                }
                let hits: Vec<SearchHit> = entries
                    .into_iter()
                    .map(|log| SearchHit {
                        task_id,
                        plugin: plugin.clone(),
                        log,
                    })
                    .collect();
                print_hits(&mut out.lock(), &hits, json, color)
                    .map_err(|e| FollowError::Fatal(e.into()))?;
            }
            // A bad filter is refused before anything is searched.
            ServerMessage::Error { message, .. } => {
                return Err(FollowError::Fatal(anyhow!("{message}")));
            }
            ServerMessage::Logs { .. }
            | ServerMessage::CaughtUp { .. }
            | ServerMessage::Task { .. } => {}
        }
    }
}

/// The task's plugin, asked of the server once per task (`?` if it cannot say).
async fn plugin_of(client: &Client, known: &mut HashMap<TaskId, String>, task: TaskId) -> String {
    if let Some(plugin) = known.get(&task) {
        return plugin.clone();
    }
    // A search left running for weeks sees many tasks: keep the names bounded.
    if known.len() >= 10_000 {
        known.clear();
    }
    let plugin = match client.get::<TaskInfo>(&format!("/api/tasks/{task}")).await {
        Ok(info) => info.plugin,
        Err(_) => "?".into(),
    };
    known.insert(task, plugin.clone());
    plugin
}
