//! Retention: deletes finished tasks (and, by cascade, their logs) older than a
//! number of days, periodically when `retention_days` is set, and on demand
//! (`tasklens cleanup --older-than 30d`, `POST /api/cleanup`).

use std::time::Duration;

use actix::prelude::*;
use protocol::Timestamp;
use storage::tasks;
use storage::Db;

use crate::logger::now_micros;

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;
/// Tasks listed per query. Each is then deleted in a statement of its own, so a
/// large cleanup holds the write lock for one task's logs at a time, never for all.
const DELETE_CHUNK: usize = 50;

/// Deletes tasks that finished more than `days` days ago. Returns how many.
///
/// # Errors
/// A database error; tasks deleted before it stay deleted.
pub async fn delete_older_than(db: &Db, days: u32) -> storage::Result<u64> {
    // Saturating: an absurd age must mean "nothing is that old", never wrap into
    // a cutoff in the future that would delete every finished task.
    let age = i64::from(days).saturating_mul(MICROS_PER_DAY);
    let cutoff = Timestamp(now_micros().saturating_sub(age));
    let mut deleted = 0u64;
    loop {
        let ids = db
            .run(move |c| tasks::finished_before(c, cutoff, DELETE_CHUNK))
            .await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        for id in ids {
            if db.run(move |c| tasks::delete_task(c, id)).await? {
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
                        log::warn!("error=\"{e}\" Retention cleanup failed; it will run again.")
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
