//! [`TextIndexer`] moves records into SQLite's trigram and metadata indexes, and
//! PostgreSQL's metadata index, behind ingest.
//!
//! Indexing a record costs about three times what storing it does, so the writer
//! only notes which seqs are unindexed and this actor indexes them a step at a time
//! (see `storage::text_index`). SQLite has one writer at a time, and the machine
//! serves clients too: while tasks are logging (records waited to be written, or
//! arrived, during the step), the indexer pauses after each step as long as the step
//! took, so ingest and everything else keep at least half of the database's and a
//! core's time; when nothing was logged it goes on at once. On PostgreSQL every
//! engine node runs one; their steps take different ranges. Reads scan what is not
//! indexed yet, so a backlog makes searches of the newest records slower, never
//! wrong.

use std::time::{Duration, Instant};

use std::sync::Arc;

use actix::prelude::*;
use storage::Db;

use crate::batch::BufferGate;
use crate::sink::WriterHealth;

/// Records indexed per step on SQLite: a few milliseconds of the database's write
/// lock.
const SQLITE_STEP: usize = 2_000;
/// Records indexed per step on PostgreSQL, which has no such lock: two blocks of its
/// trigram index (`storage::text_index::postgres::BLOCK_SEQS`), so that fewer steps
/// append to each block's rows, and each step's trigram counts cover more records.
const POSTGRES_STEP: usize = 8_192;
/// How often an idle indexer looks for new records.
const IDLE: Duration = Duration::from_millis(200);

pub struct TextIndexer {
    db: Db,
    /// Records not yet durable: ingest is under way while any wait.
    gate: Arc<BufferGate>,
    /// Whether the log writer's last write failed: the database is then down or
    /// refusing, and indexing waits rather than add attempts of its own (each holds
    /// a blocking thread, and at exit the process, while it waits for a connection).
    writer: Arc<WriterHealth>,
}

impl TextIndexer {
    pub fn new(db: Db, gate: Arc<BufferGate>, writer: Arc<WriterHealth>) -> Self {
        TextIndexer { db, gate, writer }
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.writer.failures() > 0 {
            ctx.run_later(IDLE * 5, |act, ctx| act.step(ctx));
            return;
        }
        let db = self.db.clone();
        let step = match db.backend() {
            storage::Backend::Sqlite => SQLITE_STEP,
            storage::Backend::Postgres => POSTGRES_STEP,
        };
        let started = Instant::now();
        let admitted = self.gate.admitted();
        ctx.spawn(
            async move {
                db.run_background(move |c| storage::text_index::index_step(c, step))
                    .await
            }
            .into_actor(self)
            .map(move |result, act, ctx| {
                let next = match result {
                    Ok(0) => IDLE,
                    Ok(_) if act.gate.pending() == 0 && act.gate.admitted() == admitted => {
                        Duration::ZERO
                    }
                    Ok(_) => started.elapsed(),
                    Err(e) => {
                        log::warn!(
                            "error=\"{}\" Indexing log messages failed; retrying.",
                            crate::sink::error_chain(&e)
                        );
                        IDLE * 5
                    }
                };
                ctx.run_later(next, |act, ctx| act.step(ctx));
            }),
        );
    }
}

impl Actor for TextIndexer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.step(ctx);
    }
}
