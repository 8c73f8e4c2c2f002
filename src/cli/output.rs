//! How the CLI prints records and tasks.

use std::io::{IsTerminal, Write};

use protocol::{LogEntry, PluginInfo, SearchHit, TaskInfo};

/// Colour when stdout is a terminal and `NO_COLOR` is not set.
pub fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// One record as a line: time, level, `[source]`, message, metadata
/// (`protocol::line`, coloured for a terminal).
pub fn entry_line(entry: &LogEntry, color: bool) -> String {
    if color {
        protocol::line::terminal_line(entry)
    } else {
        protocol::line::text_line(entry)
    }
}

pub fn print_entries(
    out: &mut impl Write,
    entries: &[LogEntry],
    json: bool,
    color: bool,
) -> std::io::Result<()> {
    print_each(out, entries, json, |entry| entry_line(entry, color))
}

/// One line per item: its JSON, or `text` of it.
fn print_each<T: serde::Serialize>(
    out: &mut impl Write,
    items: &[T],
    json: bool,
    text: impl Fn(&T) -> String,
) -> std::io::Result<()> {
    for item in items {
        if json {
            serde_json::to_writer(&mut *out, item)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", text(item))?;
        }
    }
    Ok(())
}

/// Search hits: JSON lines, or the task and seq (as in a console permalink,
/// `TASK#L12`), the plugin, and the record's line.
pub fn print_hits(
    out: &mut impl Write,
    hits: &[SearchHit],
    json: bool,
    color: bool,
) -> std::io::Result<()> {
    print_each(out, hits, json, |hit| {
        format!(
            "{}#L{} {} {}",
            hit.task_id,
            hit.log.seq,
            hit.plugin,
            entry_line(&hit.log, color)
        )
    })
}

/// How long a task ran (or has been running), as `1m05s`.
pub fn duration(task: &TaskInfo) -> String {
    let Some(start) = task.started_at else {
        return "-".into();
    };
    let end = task
        .finished_at
        .map_or_else(engine::logger::now_micros, |t| t.as_micros());
    protocol::time::human_duration((end - start.as_micros()).max(0) as f64 / 1e6)
}

/// The plugins as a table: name, kind, connected workers, description.
pub fn print_plugins(out: &mut impl Write, plugins: &[PluginInfo]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24}  {:<10}  {:<20}  DESCRIPTION",
        "NAME", "KIND", "WORKERS"
    )?;
    for p in plugins {
        let (kind, workers) = match &p.workers {
            Some(ids) => (
                "remote",
                if ids.is_empty() {
                    "none connected".to_owned()
                } else {
                    ids.join(",")
                },
            ),
            None if p.privileged => ("admin", "-".to_owned()),
            None => ("built-in", "-".to_owned()),
        };
        let description = p.description.lines().next().unwrap_or("");
        writeln!(
            out,
            "{:<24}  {:<10}  {:<20}  {description}",
            p.name, kind, workers
        )?;
    }
    Ok(())
}

pub fn print_tasks(out: &mut impl Write, tasks: &[TaskInfo]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<36}  {:<11}  {:<14}  {:<27}  {:>8}  {:<12}  BY",
        "ID", "STATUS", "PLUGIN", "CREATED", "DURATION", "NODE"
    )?;
    for t in tasks {
        writeln!(
            out,
            "{:<36}  {:<11}  {:<14}  {:<27}  {:>8}  {:<12}  {}",
            t.id.to_string(),
            t.status.as_str(),
            t.plugin,
            t.created_at.to_string(),
            duration(t),
            t.node.as_deref().unwrap_or("-"),
            t.created_by.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// One task as text: a field per line.
pub fn print_task(out: &mut impl Write, task: &TaskInfo) -> std::io::Result<()> {
    let time = |t: Option<protocol::Timestamp>| t.map_or("-".to_owned(), |t| t.to_string());
    writeln!(out, "id        {}", task.id)?;
    writeln!(out, "plugin    {}", task.plugin)?;
    writeln!(out, "status    {}", task.status)?;
    writeln!(out, "node      {}", task.node.as_deref().unwrap_or("-"))?;
    writeln!(out, "priority  {}", task.priority)?;
    writeln!(
        out,
        "by        {}",
        task.created_by.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "created   {}", task.created_at)?;
    writeln!(out, "started   {}", time(task.started_at))?;
    writeln!(out, "finished  {}", time(task.finished_at))?;
    writeln!(out, "duration  {}", duration(task))?;
    writeln!(out, "params    {}", task.params)?;
    if let Some(result) = &task.result {
        writeln!(out, "result    {result}")?;
    }
    if let Some(error) = &task.error {
        writeln!(out, "error     {error}")?;
    }
    Ok(())
}
