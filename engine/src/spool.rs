//! The spool: what the database could not take, kept in local files until it can.
//!
//! Three files in the spool directory, one JSON object per line:
//! - `tasklens-spool.jsonl`: records (`{"task_id": …, "entries": [records as the API
//!   shows them]}`) and final task statuses (`{"task_id": …, "outcome": {…}}`) that
//!   are durable here and not yet in the database. The sink appends to it at
//!   shutdown (what `shutdown_flush_timeout` did not get through) and during a long
//!   outage (when the buffer would pass its bound), fsynced with its directory.
//! - `tasklens-spool.replaying.jsonl`: the same, taken aside while it is written to
//!   the database, so that new lines never mix with the ones being stored.
//! - `tasklens-rejected.jsonl`: records the database refuses for good (the task's row
//!   deleted underneath, a value it cannot store), each line with the reason. Shown
//!   by `GET /api/spool` and `tasklens spool`, retried on request.
//!
//! [`replay`] stores the first two: at start before any task runs, and while running
//! once the database is back after a spill. Inserting is idempotent by
//! `(task_id, seq)`, so a batch that did reach the database before is harmless, and
//! a status only ends a task that has not ended. A line the database refuses moves
//! to the rejected file; a torn last line (a crash while spooling) is skipped.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::{LogEntry, RejectedTask, TaskId, TaskStatus, Timestamp};
use serde::{Deserialize, Serialize};
use storage::logs::insert_log_batches;
use storage::tasks::{finish_task, TaskOutcome};
use storage::{Db, LogBatchRef};

use crate::batch::LogBatch;

const FILE: &str = "tasklens-spool.jsonl";
const REPLAYING: &str = "tasklens-spool.replaying.jsonl";
const REJECTED: &str = "tasklens-rejected.jsonl";
const RETRYING: &str = "tasklens-rejected.retrying.jsonl";

/// Tasks `GET /api/spool` lists at most (the oldest first).
pub const REPORT_MAX_TASKS: usize = 1_000;

/// A task's final status, as spooled.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SpooledOutcome {
    status: TaskStatus,
    finished_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<&TaskOutcome> for SpooledOutcome {
    fn from(o: &TaskOutcome) -> Self {
        SpooledOutcome {
            status: o.status,
            finished_at: o.finished_at,
            result: o.result.clone(),
            error: o.error.clone(),
        }
    }
}

impl From<SpooledOutcome> for TaskOutcome {
    fn from(o: SpooledOutcome) -> Self {
        TaskOutcome {
            status: o.status,
            finished_at: o.finished_at,
            result: o.result,
            error: o.error,
        }
    }
}

#[derive(Serialize)]
struct LineOut<'a> {
    task_id: TaskId,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entries: Option<&'a [LogEntry]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<SpooledOutcome>,
}

#[derive(Deserialize)]
struct LineIn {
    task_id: TaskId,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    entries: Vec<LogEntry>,
    #[serde(default)]
    outcome: Option<SpooledOutcome>,
}

/// Where the spool lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Spool { dir: dir.into() }
    }

    /// The directory it lives in.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The file records and statuses are appended to.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    fn replaying_path(&self) -> PathBuf {
        self.dir.join(REPLAYING)
    }

    /// The file of records the database refuses.
    pub fn rejected_path(&self) -> PathBuf {
        self.dir.join(REJECTED)
    }

    fn retrying_path(&self) -> PathBuf {
        self.dir.join(RETRYING)
    }

    /// Bytes waiting to be stored (not counting refused records).
    pub fn pending_bytes(&self) -> u64 {
        [self.path(), self.replaying_path()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Appends `batches`, then `outcomes`, and makes them durable on disk; returns
    /// the rows written.
    ///
    /// # Errors
    /// The directory or file cannot be created or written.
    pub fn write(
        &self,
        batches: &[Arc<LogBatch>],
        outcomes: &[(TaskId, TaskOutcome)],
    ) -> std::io::Result<usize> {
        let mut text = Vec::new();
        let rows = encode_batches(&mut text, batches, None)?;
        for (task_id, outcome) in outcomes {
            serde_json::to_writer(
                &mut text,
                &LineOut {
                    task_id: *task_id,
                    reason: None,
                    entries: None,
                    outcome: Some(outcome.into()),
                },
            )?;
            text.push(b'\n');
        }
        append_durably(&self.dir, &self.path(), &text)?;
        Ok(rows)
    }

    /// Appends records the database refuses, with the reason; returns the rows.
    ///
    /// # Errors
    /// The directory or file cannot be created or written.
    pub fn write_rejected(
        &self,
        batches: &[Arc<LogBatch>],
        reason: &str,
    ) -> std::io::Result<usize> {
        let mut text = Vec::new();
        let rows = encode_batches(&mut text, batches, Some(reason))?;
        append_durably(&self.dir, &self.rejected_path(), &text)?;
        Ok(rows)
    }

    /// The refused records, summed up per task (oldest first, at most
    /// [`REPORT_MAX_TASKS`]), and their total rows.
    ///
    /// # Errors
    /// The file exists but cannot be read.
    pub fn rejected(&self) -> std::io::Result<(Vec<RejectedTask>, u64)> {
        let mut tasks: Vec<RejectedTask> = Vec::new();
        let mut index: BTreeMap<TaskId, usize> = BTreeMap::new();
        let mut total = 0;
        for path in [self.retrying_path(), self.rejected_path()] {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in BufReader::new(file).lines() {
                let Ok(line) = serde_json::from_str::<LineIn>(&line?) else {
                    continue;
                };
                let rows = line.entries.len() as u64;
                total += rows;
                let (first, last) = (
                    line.entries.first().map_or(0, |e| e.seq),
                    line.entries.last().map_or(0, |e| e.seq),
                );
                match index.get(&line.task_id) {
                    Some(&i) => {
                        let task = &mut tasks[i];
                        task.rows += rows;
                        task.first_seq = task.first_seq.min(first);
                        task.last_seq = task.last_seq.max(last);
                    }
                    None if tasks.len() < REPORT_MAX_TASKS => {
                        index.insert(line.task_id, tasks.len());
                        tasks.push(RejectedTask {
                            task_id: line.task_id,
                            rows,
                            first_seq: first,
                            last_seq: last,
                            reason: line.reason.unwrap_or_default(),
                        });
                    }
                    None => {}
                }
            }
        }
        Ok((tasks, total))
    }
}

fn encode_batches(
    text: &mut Vec<u8>,
    batches: &[Arc<LogBatch>],
    reason: Option<&str>,
) -> std::io::Result<usize> {
    let mut rows = 0;
    for batch in batches.iter().filter(|b| !b.entries.is_empty()) {
        serde_json::to_writer(
            &mut *text,
            &LineOut {
                task_id: batch.task_id,
                reason,
                entries: Some(&batch.entries),
                outcome: None,
            },
        )?;
        text.push(b'\n');
        rows += batch.entries.len();
    }
    Ok(rows)
}

fn append_durably(dir: &Path, path: &Path, text: &[u8]) -> std::io::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let before = file.metadata()?.len();
    if let Err(e) = file.write_all(text).and_then(|()| file.sync_all()) {
        // A part written would glue the next attempt's first line to a torn one.
        let _ = file.set_len(before);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    pub rows: usize,
    /// Final statuses written.
    pub outcomes: usize,
    /// Unreadable lines skipped.
    pub skipped_lines: usize,
    /// Tasks whose records the database refused (moved to the rejected file), with
    /// the reason.
    pub refused: Vec<(TaskId, String)>,
}

/// Stores what the spool holds, then removes it.
///
/// # Errors
/// A file cannot be read or written, or the database fails for a reason other than
/// refusing rows; what is not stored yet stays spooled for the next attempt.
pub async fn replay(db: &Db, spool: &Spool) -> Result<Replayed, crate::EngineError> {
    let mut done = Replayed::default();
    loop {
        let replaying = spool.replaying_path();
        if !replaying.exists() {
            match std::fs::rename(spool.path(), &replaying) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
                Err(e) => return Err(spool_error(&spool.path(), e)),
            }
        }
        replay_file(db, spool, &replaying, &mut done).await?;
        std::fs::remove_file(&replaying).map_err(|e| spool_error(&replaying, e))?;
    }
}

async fn replay_file(
    db: &Db,
    spool: &Spool,
    path: &Path,
    done: &mut Replayed,
) -> Result<(), crate::EngineError> {
    let file = File::open(path).map_err(|e| spool_error(path, e))?;
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| spool_error(path, e))?;
        let Ok(line) = serde_json::from_str::<LineIn>(&line) else {
            log::warn!(
                "path={} line={} A spool line could not be read (cut short by a crash?); it is skipped.",
                path.display(),
                number + 1
            );
            done.skipped_lines += 1;
            continue;
        };
        let task_id = line.task_id;
        if let Some(outcome) = line.outcome {
            let outcome = TaskOutcome::from(outcome);
            match db
                .run_writer(move |c| finish_task(c, task_id, &outcome))
                .await
            {
                Ok(_) => done.outcomes += 1,
                Err(e) if e.is_refusal() => {
                    log::warn!("task_id={task_id} error=\"{}\" A spooled final status is refused; the task keeps the status it has.", crate::sink::error_chain(&e));
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        let entries = Arc::new(line.entries);
        let rows = entries.len();
        let written = insert(db, task_id, entries.clone()).await;
        match written {
            Ok(_) => done.rows += rows,
            Err(e) if e.is_refusal() => {
                let reason = crate::sink::error_chain(&e);
                log::error!(
                    "task_id={task_id} rows={rows} error=\"{reason}\" The database refuses spooled records; they are kept in {REJECTED} (see `tasklens spool`)."
                );
                let batch = Arc::new(LogBatch::new(task_id, Arc::unwrap_or_clone(entries)));
                spool
                    .write_rejected(&[batch], &reason)
                    .map_err(|e| spool_error(&spool.rejected_path(), e))?;
                if !done.refused.iter().any(|(t, _)| *t == task_id) {
                    done.refused.push((task_id, reason));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// What a retry of the refused records did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retried {
    pub stored_rows: u64,
    pub refused_rows: u64,
}

/// Tries the refused records again: those the database now takes are stored, the
/// others go back to the rejected file. Must not run twice at once (the sink
/// serialises it).
///
/// # Errors
/// A file cannot be read or written, or the database fails for a reason other than
/// refusing rows; the records not tried yet are kept.
pub async fn retry_rejected(db: &Db, spool: &Spool) -> Result<Retried, crate::EngineError> {
    let retrying = spool.retrying_path();
    if !retrying.exists() {
        match std::fs::rename(spool.rejected_path(), &retrying) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Retried::default()),
            Err(e) => return Err(spool_error(&spool.rejected_path(), e)),
        }
    }
    let mut done = Retried::default();
    let file = File::open(&retrying).map_err(|e| spool_error(&retrying, e))?;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| spool_error(&retrying, e))?;
        let Ok(parsed) = serde_json::from_str::<LineIn>(&line) else {
            continue;
        };
        let rows = parsed.entries.len() as u64;
        let task_id = parsed.task_id;
        let written = insert(db, task_id, Arc::new(parsed.entries)).await;
        match written {
            Ok(_) => done.stored_rows += rows,
            Err(e) if e.is_refusal() => {
                done.refused_rows += rows;
                let mut text = line.into_bytes();
                text.push(b'\n');
                append_durably(&spool.dir, &spool.rejected_path(), &text)
                    .map_err(|e| spool_error(&spool.rejected_path(), e))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::remove_file(&retrying).map_err(|e| spool_error(&retrying, e))?;
    Ok(done)
}

/// Stores one task's spooled records (idempotent by `(task_id, seq)`).
async fn insert(db: &Db, task_id: TaskId, entries: Arc<Vec<LogEntry>>) -> storage::Result<usize> {
    db.run_writer(move |conn| {
        insert_log_batches(
            conn,
            &[LogBatchRef {
                task_id,
                entries: &entries,
            }],
        )
    })
    .await
}

fn spool_error(path: &Path, e: std::io::Error) -> crate::EngineError {
    crate::EngineError::Spool(format!("{}: {e}", path.display()))
}
