//! The history → live hand-off of a subscription: pages of history, `Follow`, the
//! last page, then live (see [`super::super::subscription`] for the phases).

use actix::prelude::*;
use protocol::{LogPage, TaskId};
use storage::logs::page_logs;
use storage::LogQuery;

use super::{Ctx, WsSession, HISTORY_WAIT};
use crate::hub::{Follow, Interest};
use crate::ws::frames;
use crate::ws::subscription::Phase;

impl WsSession {
    /// Reads the next page of history for the subscription's current phase.
    pub(super) fn read_history(&mut self, task_id: TaskId, generation: u64, ctx: &mut Ctx) {
        let Some(sub) = self.subs.get(&task_id) else {
            return;
        };
        let (db, filter) = (self.state.db.clone(), sub.filter.clone());
        let query = LogQuery {
            after_seq: sub.cursor,
            before_seq: None,
            limit: self.state.ws.history_page,
        };
        // One page at a time per session, and a bounded number server-wide, so that
        // many subscriptions with filters SQL cannot narrow (`re`) cannot take every
        // database connection from REST and the engine.
        let (mine, server) = (self.history_turn.clone(), self.state.history_reads.clone());
        ctx.spawn(
            async move {
                let mine = mine.acquire_owned().await;
                let wait = tokio::time::timeout(HISTORY_WAIT, server.acquire_owned());
                let Ok(Ok(permit)) = wait.await else {
                    return None;
                };
                // The permits go with the database work and are given back when it
                // ends, not when this session next runs: that waits for its client
                // to read what was sent before.
                Some(
                    db.run(move |c| {
                        let _held = (mine, permit);
                        page_logs(c, task_id, &filter, &query)
                    })
                    .await,
                )
            }
            .into_actor(self)
            .map(move |page, act, ctx| act.history_read(task_id, generation, page, ctx)),
        );
    }

    /// `page` is `None` when no history permit freed up in time.
    pub(super) fn history_read(
        &mut self,
        task_id: TaskId,
        generation: u64,
        page: Option<storage::Result<LogPage>>,
        ctx: &mut Ctx,
    ) {
        if !self.current(task_id, generation) {
            return;
        }
        let page = match page {
            Some(Ok(page)) => page,
            Some(Err(e)) => return self.fail_storage(task_id, &e, ctx),
            None => {
                return self.fail_subscription(
                    task_id,
                    "the server is busy reading other histories; subscribe again shortly".into(),
                    ctx,
                )
            }
        };
        let sub = self.subs.get_mut(&task_id).expect("checked by current()");
        let fresh = sub.history_page(page.logs, page.next_after_seq);
        for frame in frames::logs(task_id, &fresh) {
            ctx.text(frame);
        }
        if page.has_more {
            return self.read_history(task_id, generation, ctx);
        }
        match sub.phase {
            Phase::CatchUp => self.follow(task_id, generation, ctx),
            Phase::Joining => self.go_live(task_id, ctx),
            Phase::Live => {}
        }
    }

    pub(super) fn follow(&mut self, task_id: TaskId, generation: u64, ctx: &mut Ctx) {
        if let Some(sub) = self.subs.get_mut(&task_id) {
            sub.start_joining();
        }
        let hub = self.state.hub.clone();
        let db = self.state.db.clone();
        let session = self.id;
        let interest = self
            .subs
            .get(&task_id)
            .map(|sub| Interest::from(&*sub.filter))
            .unwrap_or_default();
        ctx.spawn(
            async move {
                let pending = hub
                    .send(Follow {
                        session,
                        task_id,
                        interest,
                    })
                    .await;
                // Read after following: a status written before it is seen here, one
                // written after it arrives as a TaskUpdate.
                let task = db.run(move |c| storage::tasks::get_task(c, task_id)).await;
                (pending, task)
            }
            .into_actor(self)
            .map(move |(pending, task), act, ctx| {
                if !act.current(task_id, generation) {
                    return;
                }
                let sub = act.subs.get_mut(&task_id).expect("checked by current()");
                match (pending, task) {
                    (Ok(pending), Ok(task)) => {
                        if let Some(task) = task {
                            sub.note_status(task);
                        }
                        sub.joined(pending);
                        act.read_history(task_id, generation, ctx);
                    }
                    (_, Err(e)) => act.fail_storage(task_id, &e, ctx),
                    (Err(_), _) => {
                        act.fail_subscription(task_id, "the live stream is unavailable".into(), ctx)
                    }
                }
            }),
        );
    }

    pub(super) fn go_live(&mut self, task_id: TaskId, ctx: &mut Ctx) {
        let Some(sub) = self.subs.get_mut(&task_id) else {
            return;
        };
        sub.go_live();
        let seq = sub.cursor;
        let status = sub.task.clone();
        self.flush(task_id, ctx);
        ctx.text(frames::caught_up(task_id, seq));
        // Read from the database, so with all its params: small ones only, as in
        // every status frame the hub delivers.
        if let Some(task) = status {
            ctx.text(self.task_frame(&task.summary()));
        }
    }
}
