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
/// Tasks deleted per transaction, so a large cleanup never holds the write lock long.
const DELETE_CHUNK: usize = 50;

/// Deletes finished tasks created more than `days` days ago. Returns how many.
///
/// # Errors
/// A database error; tasks deleted before it stay deleted.
pub async fn delete_older_than(db: &Db, days: u32) -> storage::Result<u64> {
    let cutoff = Timestamp(now_micros() - i64::from(days) * MICROS_PER_DAY);
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
        ctx.run_later(self.every.min(Duration::from_secs(5)), |act, ctx| {
            act.sweep(ctx)
        });
        ctx.run_interval(self.every, |act, ctx| act.sweep(ctx));
    }
}
