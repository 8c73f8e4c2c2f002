//! The client commands. Each returns the process exit code.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use protocol::api::{CleanupReport, CleanupRequest, NewToken};
use protocol::{
    FilterSpec, LogEntry, LogPage, LogSettings, NewTask, PluginInfo, SearchPage, TaskInfo,
    TaskList, TokenCreated, TokenInfo,
};
use protocol::{SpoolReport, SpoolRetry};
use storage::logs::MAX_PAGE_LIMIT;
use storage::search::MAX_SEARCH_LIMIT;

use super::output::{self, print_entries, print_tasks, use_color};
use super::{
    follow, CleanupArgs, LogsArgs, PluginsArgs, RunArgs, SearchArgs, SettingsAction, SettingsArgs,
    SpoolArgs, TaskArgs, TasksArgs, TokensAction, TokensArgs, WaitArgs,
};
use crate::client::Client;

fn client(args: &super::ClientArgs) -> Result<Client> {
    args.client()
}

/// Builds the parameters object from `--params` and `--param KEY=VALUE`.
pub fn build_params(json: Option<&str>, pairs: &[(String, String)]) -> Result<serde_json::Value> {
    let mut params = match json {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str(text).context("--params is not valid JSON")? {
            serde_json::Value::Object(map) => map,
            other => bail!("--params must be a JSON object, not {other}"),
        },
    };
    for (key, raw) in pairs {
        let value =
            serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.clone()));
        params.insert(key.clone(), value);
    }
    Ok(serde_json::Value::Object(params))
}

pub async fn run(args: RunArgs) -> Result<i32> {
    let filter = args.filter.spec();
    if !args.follow && filter != FilterSpec::default() {
        bail!("the filter flags choose what --follow prints; add --follow, or filter later with `tasklens logs`");
    }
    let params = build_params(args.params_json.as_deref(), &args.params)?;
    let client = client(&args.client)?;
    let task: TaskInfo = client
        .post(
            "/api/tasks",
            &NewTask {
                plugin: args.plugin.clone(),
                params,
                priority: args.priority,
            },
        )
        .await?;
    let json = args.client.json(args.json);
    if !args.follow {
        if json {
            println!("{}", serde_json::to_string(&task)?);
        } else {
            println!("{}", task.id);
        }
        return Ok(0);
    }
    eprintln!(
        "task {} ({}) started; following its logs",
        task.id, task.plugin
    );
    follow::follow(&client, task.id, filter, 0, json).await
}

pub async fn tasks(args: TasksArgs) -> Result<i32> {
    let client = client(&args.client)?;
    let mut query = vec![("limit", args.limit.to_string())];
    let lists = [
        (
            "status",
            args.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        ),
        ("plugin", args.plugins.iter().map(String::as_str).collect()),
        (
            "created_by",
            args.created_by.iter().map(String::as_str).collect(),
        ),
    ];
    for (key, values) in lists {
        if !values.is_empty() {
            query.push((key, values.join(",")));
        }
    }
    if let Some(t) = args.since {
        query.push(("created_since", t.to_string()));
    }
    if let Some(t) = args.until {
        query.push(("created_until", t.to_string()));
    }
    if let Some(text) = &args.text {
        query.push(("q", text.clone()));
    }
    let path = format!(
        "/api/tasks?{}",
        serde_urlencoded::to_string(&query).expect("pairs encode")
    );
    let list: TaskList = client.get(&path).await?;
    let mut out = std::io::stdout().lock();
    if args.client.json(args.json) {
        for task in &list.tasks {
            serde_json::to_writer(&mut out, task)?;
            writeln!(out)?;
        }
    } else {
        print_tasks(&mut out, &list.tasks)?;
    }
    Ok(0)
}

pub async fn task(args: TaskArgs) -> Result<i32> {
    let task: TaskInfo = client(&args.client)?
        .get(&format!("/api/tasks/{}", args.task))
        .await?;
    // JSON unless text is asked for: this command printed JSON before `--output`.
    if args.client.output == Some(super::Output::Text) {
        output::print_task(&mut std::io::stdout().lock(), &task)?;
    } else {
        println!("{}", serde_json::to_string_pretty(&task)?);
    }
    Ok(0)
}

/// The query string of a filter (for REST).
pub fn filter_query(spec: &FilterSpec) -> String {
    serde_urlencoded::to_string(spec.query_pairs()).expect("pairs encode")
}

pub async fn logs(args: LogsArgs) -> Result<i32> {
    let client = client(&args.client)?;
    let spec = args.filter.spec();
    let filter = filter_query(&spec);
    let json = args.client.json(args.json);
    let color = use_color() && !json;
    if let Some(n) = args.tail {
        let tail = tail(&client, &args, &filter, n as usize).await?;
        print_entries(&mut std::io::stdout().lock(), &tail, json, color)?;
        if !args.follow {
            return Ok(0);
        }
        // Fewer than asked means no older match existed either: the stream starts
        // after the last shown, or from the start when none was.
        let after = tail.last().map_or(0, |e| e.seq);
        return follow::follow(&client, args.task, spec, after, json).await;
    }
    if args.follow {
        return follow::follow(&client, args.task, spec, args.after_seq, json).await;
    }
    let mut out = std::io::stdout().lock();
    let mut after = args.after_seq;
    loop {
        let page: LogPage = client
            .get(&format!(
                "/api/tasks/{}/logs?{filter}&after_seq={after}&limit={MAX_PAGE_LIMIT}",
                args.task
            ))
            .await?;
        print_entries(&mut out, &page.logs, json, color)?;
        if !page.has_more {
            return Ok(0);
        }
        after = page.next_after_seq;
    }
}

/// `GET /api/logs/search`, page after page, until `--limit` records are printed or
/// none are left. A page that stopped on the server's read budget says so on stderr
/// and the search goes on from where it stopped.
pub async fn search(args: SearchArgs) -> Result<i32> {
    let client = client(&args.client)?;
    let mut spec = args.filter.spec();
    if args.text.is_some() {
        spec.q = args.text.clone();
    }
    let mut query = filter_query(&spec);
    let mut extra: Vec<(&str, String)> = Vec::new();
    if !args.plugins.is_empty() {
        extra.push(("plugin", args.plugins.join(",")));
    }
    if !args.statuses.is_empty() {
        let statuses: Vec<&str> = args.statuses.iter().map(|s| s.as_str()).collect();
        extra.push(("status", statuses.join(",")));
    }
    if let Some(t) = args.created_since {
        extra.push(("created_since", t.to_string()));
    }
    if let Some(t) = args.created_until {
        extra.push(("created_until", t.to_string()));
    }
    if !extra.is_empty() {
        let extra = serde_urlencoded::to_string(&extra).expect("pairs encode");
        query = if query.is_empty() {
            extra
        } else {
            format!("{query}&{extra}")
        };
    }
    let json = args.client.json(false);
    if args.follow {
        return super::live_search::live_search(&client, spec, &args.plugins, json).await;
    }
    let color = use_color() && !json;
    let mut out = std::io::stdout().lock();
    let mut left = args.limit as usize;
    let mut cursor: Option<String> = None;
    while left > 0 {
        let mut path = format!(
            "/api/logs/search?{query}{}limit={}",
            if query.is_empty() { "" } else { "&" },
            left.min(MAX_SEARCH_LIMIT)
        );
        if let Some(cursor) = &cursor {
            path.push('&');
            path.push_str(&serde_urlencoded::to_string([("cursor", cursor)]).expect("encodes"));
        }
        let page: SearchPage = client.get(&path).await?;
        if let Some(scanned) = page.scanned {
            eprintln!("(read {scanned} records without filling a page; going on)");
        }
        output::print_hits(&mut out, &page.hits, json, color)?;
        left = left.saturating_sub(page.hits.len());
        match page.next_cursor {
            Some(next) if page.has_more => cursor = Some(next),
            _ => break,
        }
    }
    Ok(0)
}

/// The last `n` matching records, oldest first. A page may hold fewer than asked
/// while older matches exist (a request reads a bounded number of stored records,
/// and `--re` cannot be narrowed by the database), so pages are read backwards
/// until `n` are found or none are left.
async fn tail(client: &Client, args: &LogsArgs, filter: &str, n: usize) -> Result<Vec<LogEntry>> {
    let mut pages = Vec::new();
    let mut found = 0;
    let mut before = i64::MAX as u64;
    loop {
        let page: LogPage = client
            .get(&format!(
                "/api/tasks/{}/logs?{filter}&before_seq={before}&limit={}",
                args.task,
                n - found
            ))
            .await?;
        found += page.logs.len();
        pages.push(page.logs);
        match page.next_before_seq {
            Some(next) if page.has_more && found < n => before = next,
            _ => break,
        }
    }
    Ok(pages.into_iter().rev().flatten().collect())
}

pub async fn cancel(args: TaskArgs) -> Result<i32> {
    let answer: serde_json::Value = client(&args.client)?
        .post(
            &format!("/api/tasks/{}/cancel", args.task),
            &serde_json::json!({}),
        )
        .await?;
    if args.client.json(false) {
        println!("{}", serde_json::to_string(&answer)?);
        return Ok(0);
    }
    match answer.get("message").and_then(|m| m.as_str()) {
        Some(message) => println!("{}: {message}", args.task),
        None => println!("{}: cancelled", args.task),
    }
    Ok(0)
}

pub async fn delete(args: TaskArgs) -> Result<i32> {
    client(&args.client)?
        .delete(&format!("/api/tasks/{}", args.task))
        .await?;
    if args.client.json(false) {
        println!(
            "{}",
            serde_json::json!({"task_id": args.task, "deleted": true})
        );
    } else {
        println!("{}: deleted with its logs", args.task);
    }
    Ok(0)
}

pub async fn settings(args: SettingsArgs) -> Result<i32> {
    let client = client(&args.client)?;
    let mut current: LogSettings = client.get("/api/settings/logging").await?;
    if let Some(SettingsAction::Set {
        app_level,
        task_level,
        belief_scope,
    }) = args.action
    {
        current.app_log_level = app_level.unwrap_or(current.app_log_level);
        current.task_log_level = task_level.unwrap_or(current.task_log_level);
        current.belief_scope_enabled = belief_scope.unwrap_or(current.belief_scope_enabled);
        current = client.put("/api/settings/logging", &current).await?;
    }
    if args.client.json(false) {
        println!("{}", serde_json::to_string(&current)?);
        return Ok(0);
    }
    println!("app_log_level        {}", current.app_log_level);
    println!("task_log_level       {}", current.task_log_level);
    println!("belief_scope_enabled {}", current.belief_scope_enabled);
    Ok(0)
}

pub async fn cleanup(args: CleanupArgs) -> Result<i32> {
    let report: CleanupReport = client(&args.client)?
        .post(
            "/api/cleanup",
            &CleanupRequest {
                older_than_days: args.older_than,
            },
        )
        .await?;
    if args.client.json(false) {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(0);
    }
    println!(
        "deleted {} finished tasks older than {} days",
        report.deleted_tasks, args.older_than
    );
    Ok(0)
}

pub async fn spool(args: SpoolArgs) -> Result<i32> {
    let client = client(&args.client)?;
    let json = args.client.json(args.json);
    if args.retry {
        let done: SpoolRetry = client
            .post("/api/spool/retry", &serde_json::json!({}))
            .await?;
        if json {
            println!("{}", serde_json::to_string(&done)?);
        } else {
            println!(
                "stored {} records; {} still refused",
                done.stored_rows, done.refused_rows
            );
        }
        return Ok(0);
    }
    let report: SpoolReport = client.get("/api/spool").await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(0);
    }
    println!(
        "{} bytes spooled, waiting for the database; {} records refused",
        report.pending_bytes, report.rejected_rows
    );
    for task in &report.rejected {
        println!(
            "{}  {:>8} records  seq {}-{}  {}",
            task.task_id, task.rows, task.first_seq, task.last_seq, task.reason
        );
    }
    Ok(0)
}

pub async fn tokens(args: TokensArgs) -> Result<i32> {
    let client = client(&args.client)?;
    let json = args.client.json(false);
    match args.action {
        TokensAction::List => {
            let tokens: Vec<TokenInfo> = client.get("/api/tokens").await?;
            if json {
                println!("{}", serde_json::to_string(&tokens)?);
            } else {
                for t in tokens {
                    println!("{:<24} {:<7} {}", t.name, t.role, t.created_at);
                }
            }
        }
        TokensAction::Create { name, role } => {
            let created: TokenCreated =
                client.post("/api/tokens", &NewToken { name, role }).await?;
            eprintln!(
                "token {:?} ({}) created; it is shown only now:",
                created.name, created.role
            );
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!("{}", created.token);
            }
        }
        TokensAction::Delete { name } => {
            client.delete(&format!("/api/tokens/{name}")).await?;
            if json {
                println!("{}", serde_json::json!({"name": name, "deleted": true}));
            } else {
                println!("token {name:?} deleted");
            }
        }
    }
    Ok(0)
}

/// How often `wait` looks at first, and at most once the task has run a while.
const WAIT_POLL_FIRST: Duration = Duration::from_millis(200);
const WAIT_POLL_MOST: Duration = Duration::from_secs(2);

pub async fn wait(args: WaitArgs) -> Result<i32> {
    let client = client(&args.client)?;
    let deadline = args
        .timeout
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut every = WAIT_POLL_FIRST;
    loop {
        let task: TaskInfo = client.get(&format!("/api/tasks/{}", args.task)).await?;
        if task.status.is_terminal() {
            eprintln!("task {} ended: {}", task.id, task.status);
            if args.client.json(false) {
                println!("{}", serde_json::to_string(&task)?);
            }
            return Ok(follow::exit_code(task.status));
        }
        if deadline.is_some_and(|d| Instant::now() + every > d) {
            bail!(
                "task {} is still {} after {} s",
                task.id,
                task.status,
                args.timeout.unwrap_or_default()
            );
        }
        tokio::time::sleep(every).await;
        every = (every * 2).min(WAIT_POLL_MOST);
    }
}

pub async fn plugins(args: PluginsArgs) -> Result<i32> {
    let plugins: Vec<PluginInfo> = client(&args.client)?.get("/api/plugins").await?;
    let mut out = std::io::stdout().lock();
    if args.client.json(args.json) {
        serde_json::to_writer_pretty(&mut out, &plugins)?;
        writeln!(out)?;
    } else {
        output::print_plugins(&mut out, &plugins)?;
    }
    Ok(0)
}

/// `GET /readyz`: 0 when ready, 1 when the server answers that it is not (or does not
/// answer in time), with the reason on stderr.
pub async fn healthcheck(args: super::HealthcheckArgs) -> Result<i32> {
    // Readiness needs no token: none is sent.
    let (server, _) = super::login::resolve(&args.client, super::login::saved()?);
    let client = Client::new(&server, None, args.client.ca_cert.as_deref())?;
    let url = format!("{}/readyz", client.base());
    let answer = client
        .awc(std::time::Duration::from_secs(args.timeout))
        .get(&url)
        .send()
        .await;
    let mut response = match answer {
        Ok(response) => response,
        Err(e) => {
            eprintln!("not ready: {url}: {e}");
            return Ok(1);
        }
    };
    let body = response.body().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    if response.status().is_success() {
        if args.client.json(false) {
            println!("{text}");
        } else {
            println!("ready: {text}");
        }
        Ok(0)
    } else {
        eprintln!("not ready ({}): {text}", response.status());
        Ok(1)
    }
}
