//! The spool: records the database could not take before the process had to stop,
//! kept in a local file and written to the database at the next start.
//!
//! At shutdown, what the sink still holds after `shutdown_flush_timeout` (database
//! down, locked, full) is appended to `tasklens-spool.jsonl` in the spool directory,
//! one batch per line (`{"task_id": …, "entries": [records as the API shows them]}`),
//! and fsynced with its directory. [`replay`] runs at start before any task: each
//! line is inserted (idempotent by `(task_id, seq)`, so a batch that did reach the
//! database before is harmless), a line the database refuses for good (its task
//! deleted meanwhile) is skipped with a warning, and the file is removed once every
//! line is in. A torn last line (a crash while spooling) is skipped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::{LogEntry, TaskId};
use serde::{Deserialize, Serialize};
use storage::logs::insert_log_batches;
use storage::{Db, LogBatchRef};

use crate::batch::LogBatch;

const FILE: &str = "tasklens-spool.jsonl";

#[derive(Serialize)]
struct LineOut<'a> {
    task_id: TaskId,
    entries: &'a [LogEntry],
}

#[derive(Deserialize)]
struct LineIn {
    task_id: TaskId,
    entries: Vec<LogEntry>,
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

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Appends `batches` and makes them durable on disk; returns the rows written.
    ///
    /// # Errors
    /// The directory or file cannot be created or written.
    pub fn write(&self, batches: &[Arc<LogBatch>]) -> std::io::Result<usize> {
        std::fs::create_dir_all(&self.dir)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path())?;
        let mut rows = 0;
        let mut text = Vec::new();
        for batch in batches.iter().filter(|b| !b.entries.is_empty()) {
            serde_json::to_writer(
                &mut text,
                &LineOut {
                    task_id: batch.task_id,
                    entries: &batch.entries,
                },
            )?;
            text.push(b'\n');
            rows += batch.entries.len();
        }
        file.write_all(&text)?;
        file.sync_all()?;
        File::open(&self.dir)?.sync_all()?;
        Ok(rows)
    }
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub rows: usize,
    pub skipped_lines: usize,
}

/// Writes a spool left by a previous run into the database, then removes it.
///
/// # Errors
/// The file cannot be read, or the database fails for a reason other than refusing
/// rows (the spool is then kept for the next start).
pub async fn replay(db: &Db, spool: &Spool) -> Result<Replayed, crate::EngineError> {
    let path = spool.path();
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => return Err(spool_error(&path, e)),
    };
    let mut done = Replayed::default();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| spool_error(&path, e))?;
        let Ok(batch) = serde_json::from_str::<LineIn>(&line) else {
            log::warn!(
                "path={} line={} A spool line could not be read (cut short by a crash?); it is skipped.",
                path.display(),
                number + 1
            );
            done.skipped_lines += 1;
            continue;
        };
        let rows = batch.entries.len();
        let written = db
            .run_writer(move |conn| {
                insert_log_batches(
                    conn,
                    &[LogBatchRef {
                        task_id: batch.task_id,
                        entries: &batch.entries,
                    }],
                )
            })
            .await;
        match written {
            Ok(_) => done.rows += rows,
            Err(e) if e.is_refusal() => {
                log::warn!(
                    "path={} line={} error=\"{}\" The database refuses a spooled batch (its task was deleted?); it is skipped.",
                    path.display(),
                    number + 1,
                    crate::sink::error_chain(&e)
                );
                done.skipped_lines += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::remove_file(&path).map_err(|e| spool_error(&path, e))?;
    Ok(done)
}

fn spool_error(path: &Path, e: std::io::Error) -> crate::EngineError {
    crate::EngineError::Spool(format!("{}: {e}", path.display()))
}
