//! What the hub delivers to a session: live batches and status changes, taken from
//! its inbox when it runs, and the frames they become.

use std::sync::Arc;

use actix::prelude::*;
use engine::batch::LogBatch;
use protocol::{TaskId, TaskInfo};

use super::{Ctx, WsSession};
use crate::hub::{Delivery, Wake};
use crate::redact;
use crate::ws::frames;
use crate::ws::subscription::Phase;

impl WsSession {
    pub(super) fn flush(&mut self, task_id: TaskId, ctx: &mut Ctx) {
        if let Some(sub) = self.subs.get_mut(&task_id) {
            if !sub.outgoing.is_empty() {
                let parts = sub.outgoing.take();
                for frame in frames::live_logs(task_id, &parts) {
                    ctx.text(frame);
                }
            }
        }
    }

    pub(super) fn flush_all(&mut self, ctx: &mut Ctx) {
        let ready: Vec<TaskId> = self
            .subs
            .iter()
            .filter(|(_, s)| !s.outgoing.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for task_id in ready {
            self.flush(task_id, ctx);
        }
    }

    /// A `task` frame as this connection's caller may see it.
    pub(super) fn task_frame(&self, task: &TaskInfo) -> String {
        let registry = &self.state.engine.registry;
        if redact::needed(registry, self.caller.as_ref(), task) {
            frames::task(&redact::for_caller(
                registry,
                self.caller.as_ref(),
                task.clone(),
            ))
        } else {
            frames::task(task)
        }
    }

    pub(super) fn on_live_logs(&mut self, task_id: TaskId, batch: Arc<LogBatch>, ctx: &mut Ctx) {
        let limit = self.state.ws.frame_max_entries;
        let max_buffered = self.state.ws.max_queued_bytes;
        let Some(sub) = self.subs.get_mut(&task_id) else {
            return;
        };
        if !sub.live(batch, max_buffered) {
            self.inbox.overflow();
            self.check_overflow(ctx);
            return;
        }
        if sub.outgoing.len() >= limit {
            self.flush(task_id, ctx);
        }
    }

    pub(super) fn on_status(&mut self, task: &TaskInfo, ctx: &mut Ctx) {
        match self.subs.get_mut(&task.id) {
            Some(sub) => {
                sub.note_status(task.clone());
                if sub.phase == Phase::Live {
                    // Records before the status, so a final status is the last word.
                    self.flush(task.id, ctx);
                    ctx.text(self.task_frame(task));
                }
            }
            None if self.watch_all => ctx.text(self.task_frame(task)),
            None => {}
        }
    }
}

impl Handler<Wake> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Ctx) {
        for delivery in self.inbox.take() {
            if self.check_overflow(ctx) {
                return;
            }
            match delivery {
                Delivery::Logs { task_id, batch } => self.on_live_logs(task_id, batch, ctx),
                Delivery::Matched { task_id, batch } => {
                    if let Some(search) = &self.search {
                        let passing = batch.entries.iter().filter(|e| search.matches(e));
                        for frame in frames::matched(task_id, passing) {
                            ctx.text(frame);
                        }
                    }
                }
                Delivery::Status(task) => self.on_status(&task, ctx),
            }
        }
        self.check_overflow(ctx);
    }
}
