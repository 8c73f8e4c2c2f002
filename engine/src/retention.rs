//! Retention: deletes finished tasks (and, by cascade, their logs) older than a
//! number of days, periodically when `retention_days` is set, and on demand
//! (`tasklens cleanup --older-than 30d`, `POST /api/cleanup`). On PostgreSQL whole
//! days of records go first, by dropping their partitions; the tasks left are
//! deleted one at a time, their records a step at a time.
//!
//! [`PartitionUpkeep`] keeps PostgreSQL's next days' partitions created.

use std::time::Duration;

use actix::prelude::*;
use protocol::Timestamp;
use storage::Db;
use storage::{partitions, tasks};

use crate::logger::now_micros;

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;
/// Tasks listed per query. Each is then deleted in a statement of its own, so a
/// large cleanup holds the write lock for one task's logs at a time, never for all.
const DELETE_CHUNK: usize = 50;
/// Records deleted per statement: on SQLite a step holds the write lock for tens of
/// milliseconds, so a task of millions of records never stops ingest for long.
const RECORDS_PER_STEP: usize = 10_000;

/// Deletes tasks that finished more than `days` days ago. Returns how many.
///
/// # Errors
/// A database error; tasks deleted before it stay deleted.
pub async fn delete_older_than(db: &Db, days: u32) -> storage::Result<u64> {
    // Saturating: an absurd age must mean "nothing is that old", never wrap into
    // a cutoff in the future that would delete every finished task.
    let age = i64::from(days).saturating_mul(MICROS_PER_DAY);
    delete_finished_before(db, Timestamp(now_micros().saturating_sub(age))).await
}

/// Deletes the tasks that finished before `cutoff`: whole days by partition first
/// (PostgreSQL), then each task left, its records in steps. Returns how many.
///
/// # Errors
/// A database error; tasks deleted before it stay deleted.
pub async fn delete_finished_before(db: &Db, cutoff: Timestamp) -> storage::Result<u64> {
    let dropped = db.run(move |c| partitions::drop_expired(c, cutoff)).await?;
    let mut deleted = 0u64;
    for d in dropped {
        log::info!(
            "partition={} deleted_tasks={} A day of old records was dropped whole.",
            d.partition,
            d.tasks
        );
        deleted += d.tasks;
    }
    loop {
        let ids = db
            .run(move |c| tasks::finished_before(c, cutoff, DELETE_CHUNK))
            .await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        for id in ids {
            if db
                .run(move |c| tasks::delete_task_in_steps(c, id, RECORDS_PER_STEP))
                .await?
            {
                deleted += 1;
            }
        }
    }
}

/// Runs [`delete_older_than`] every `every` (first run shortly after start).
pub struct RetentionActor {
    db: Db,
    days: u32,
    every: Duration,
}

impl RetentionActor {
    pub fn new(db: Db, days: u32, every: Duration) -> Self {
        RetentionActor { db, days, every }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let days = self.days;
        ctx.spawn(
            async move { delete_older_than(&db, days).await }
                .into_actor(self)
                .map(move |result, _, _| match result {
                    Ok(0) => {}
                    Ok(n) => {
                        log::info!("deleted_tasks={n} retention_days={days} Old tasks deleted.")
                    }
                    Err(e) => {
                        log::warn!(
                            "error=\"{err}\" Retention cleanup failed; it will run again.",
                            err = crate::sink::error_chain(&e)
                        )
                    }
                }),
        );
    }
}

impl Actor for RetentionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The first sweep soon after start, then one every `every` from there: two
        // timers started together would sweep twice at once when `every` is short.
        ctx.run_later(self.every.min(Duration::from_secs(5)), |act, ctx| {
            act.sweep(ctx);
            ctx.run_interval(act.every, |act, ctx| act.sweep(ctx));
        });
    }
}

/// Every hour, creates the PostgreSQL partitions of the next days that are missing
/// (the first at start, by `Db::connect`). Any node may; one at a time does.
pub struct PartitionUpkeep {
    db: Db,
}

impl PartitionUpkeep {
    const EVERY: Duration = Duration::from_secs(3_600);

    pub fn new(db: Db) -> Self {
        PartitionUpkeep { db }
    }
}

impl Actor for PartitionUpkeep {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Self::EVERY, |act, ctx| {
            let db = act.db.clone();
            ctx.spawn(
                async move {
                    let now = Timestamp(now_micros());
                    match db.run(move |c| partitions::ensure(c, now)).await {
                        Ok(created) if !created.is_empty() => {
                            log::info!("partitions={created:?} Log partitions created.")
                        }
                        Ok(_) => {}
                        Err(e) => log::warn!(
                            "error=\"{}\" Log partitions could not be created; retrying in an hour.",
                            crate::sink::error_chain(&e)
                        ),
                    }
                }
                .into_actor(act),
            );
        });
    }
}
