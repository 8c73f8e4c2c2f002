//! [`LogHub`]: fans emitted records and task status changes out to WebSocket sessions.
//!
//! State: per task, the batches emitted but not yet durable (`pending`, shared with the
//! sink, trimmed on [`LogsPersisted`]) and the sessions following it; per session, the
//! recipients to reach it and whether it watches every task's status.
//!
//! Messages: [`LogsAppended`], [`LogsPersisted`], [`TaskStatusChanged`] from the
//! engine; [`Join`], [`Leave`], [`Follow`], [`Unfollow`], [`WatchAll`] from sessions;
//! [`ForgetTask`] when a task is deleted.
//!
//! Hand-off: [`Follow`] registers the session and answers, in the same handler, with
//! the task's pending batches. Every record older than those is durable, and every
//! record emitted later reaches the session live, so a session that reads the
//! database after its `Follow` and then takes the snapshot misses nothing.
//!
//! Backpressure: delivery uses `try_send` into each session's bounded mailbox. A
//! session whose mailbox is full is dropped from the hub at once and flagged; it
//! closes itself with a reason the next time it runs. Neither the engine nor the
//! other sessions ever wait for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use engine::batch::LogBatch;
use engine::{LogsAppended, LogsPersisted, TaskStatusChanged};
use protocol::{TaskId, TaskInfo};

/// Identifies a WebSocket session within the hub.
pub type SessionId = u64;

/// A batch for a followed task.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LiveLogs {
    pub task_id: TaskId,
    pub batch: Arc<LogBatch>,
}

/// A status change of a followed or watched task.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct TaskUpdate {
    pub task: TaskInfo,
}

/// A session connects.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub session: SessionId,
    pub logs: Recipient<LiveLogs>,
    pub status: Recipient<TaskUpdate>,
    /// Set by the hub when the session's mailbox overflowed.
    pub overflowed: Arc<AtomicBool>,
}

/// A session disconnects.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
}

/// Start delivering a task's records to a session; replies with the task's
/// not-yet-durable batches.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Arc<LogBatch>>")]
pub struct Follow {
    pub session: SessionId,
    pub task_id: TaskId,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unfollow {
    pub session: SessionId,
    pub task_id: TaskId,
}

/// Deliver (or stop delivering) every task's status changes to a session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WatchAll {
    pub session: SessionId,
    pub on: bool,
}

/// A task was deleted: drop what the hub holds for it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetTask {
    pub task_id: TaskId,
}

/// Counters, for tests and diagnostics.
#[derive(Debug, Message)]
#[rtype(result = "HubStats")]
pub struct GetHubStats;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    pub sessions: usize,
    pub feeds: usize,
    pub pending_batches: usize,
    pub overflowed_sessions: u64,
}

struct Link {
    logs: Recipient<LiveLogs>,
    status: Recipient<TaskUpdate>,
    overflowed: Arc<AtomicBool>,
    follows: HashSet<TaskId>,
    watch_all: bool,
}

#[derive(Default)]
struct Feed {
    pending: VecDeque<Arc<LogBatch>>,
    followers: HashSet<SessionId>,
}

#[derive(Default)]
pub struct LogHub {
    sessions: HashMap<SessionId, Link>,
    feeds: HashMap<TaskId, Feed>,
    /// Highest durable seq of each unfinished task. Kept apart from the feeds (which
    /// come and go with followers) because the sink's notice can overtake the batch
    /// it is about; forgotten once the task ends, when everything is durable.
    durable: HashMap<TaskId, u64>,
    overflowed: u64,
}

impl LogHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops a session whose mailbox is full (or gone) and flags it.
    fn drop_session(&mut self, session: SessionId, full: bool) {
        if let Some(link) = self.sessions.remove(&session) {
            if full {
                self.overflowed += 1;
                link.overflowed.store(true, Ordering::SeqCst);
                log::warn!("session={session} A WebSocket client could not keep up and is being disconnected.");
            }
            for task in link.follows {
                if let Some(feed) = self.feeds.get_mut(&task) {
                    feed.followers.remove(&session);
                }
                self.gc(task);
            }
        }
    }

    fn gc(&mut self, task: TaskId) {
        if self
            .feeds
            .get(&task)
            .is_some_and(|f| f.followers.is_empty() && f.pending.is_empty())
        {
            self.feeds.remove(&task);
        }
    }

    fn deliver_status(&mut self, task: &TaskInfo) {
        let followers = self
            .feeds
            .get(&task.id)
            .map(|f| f.followers.clone())
            .unwrap_or_default();
        let mut failed = Vec::new();
        for (id, link) in &self.sessions {
            if link.watch_all || followers.contains(id) {
                if let Err(e) = link.status.try_send(TaskUpdate { task: task.clone() }) {
                    failed.push((*id, matches!(e, SendError::Full(_))));
                }
            }
        }
        for (id, full) in failed {
            self.drop_session(id, full);
        }
    }
}

impl Actor for LogHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Engine events arrive with do_send; nothing here waits on them.
        ctx.set_mailbox_capacity(1_000_000);
    }
}

impl Handler<LogsAppended> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: LogsAppended, _: &mut Context<Self>) {
        let task = msg.batch.task_id;
        let durable = self.durable.get(&task).copied().unwrap_or(0);
        let feed = self.feeds.entry(task).or_default();
        if msg.batch.last_seq() > durable {
            feed.pending.push_back(msg.batch.clone());
        }
        let mut failed = Vec::new();
        for session in &feed.followers {
            if let Some(link) = self.sessions.get(session) {
                let delivery = LiveLogs {
                    task_id: task,
                    batch: msg.batch.clone(),
                };
                if let Err(e) = link.logs.try_send(delivery) {
                    failed.push((*session, matches!(e, SendError::Full(_))));
                }
            }
        }
        for (session, full) in failed {
            self.drop_session(session, full);
        }
        self.gc(task);
    }
}

impl Handler<LogsPersisted> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: LogsPersisted, _: &mut Context<Self>) {
        let durable = self.durable.entry(msg.task_id).or_default();
        *durable = (*durable).max(msg.up_to_seq);
        let durable = *durable;
        if let Some(feed) = self.feeds.get_mut(&msg.task_id) {
            while feed
                .pending
                .front()
                .is_some_and(|b| b.last_seq() <= durable)
            {
                feed.pending.pop_front();
            }
        }
        self.gc(msg.task_id);
    }
}

impl Handler<TaskStatusChanged> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: TaskStatusChanged, _: &mut Context<Self>) {
        if msg.task.status.is_terminal() {
            // A task ends only once all its records are durable.
            self.durable.remove(&msg.task.id);
            if let Some(feed) = self.feeds.get_mut(&msg.task.id) {
                feed.pending.clear();
            }
            self.gc(msg.task.id);
        }
        self.deliver_status(&msg.task);
    }
}

impl Handler<Join> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        self.sessions.insert(
            msg.session,
            Link {
                logs: msg.logs,
                status: msg.status,
                overflowed: msg.overflowed,
                follows: HashSet::new(),
                watch_all: false,
            },
        );
    }
}

impl Handler<Leave> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.drop_session(msg.session, false);
    }
}

impl Handler<Follow> for LogHub {
    type Result = MessageResult<Follow>;

    fn handle(&mut self, msg: Follow, _: &mut Context<Self>) -> Self::Result {
        let Some(link) = self.sessions.get_mut(&msg.session) else {
            return MessageResult(Vec::new());
        };
        link.follows.insert(msg.task_id);
        let feed = self.feeds.entry(msg.task_id).or_default();
        feed.followers.insert(msg.session);
        MessageResult(feed.pending.iter().cloned().collect())
    }
}

impl Handler<Unfollow> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: Unfollow, _: &mut Context<Self>) {
        if let Some(link) = self.sessions.get_mut(&msg.session) {
            link.follows.remove(&msg.task_id);
        }
        if let Some(feed) = self.feeds.get_mut(&msg.task_id) {
            feed.followers.remove(&msg.session);
        }
        self.gc(msg.task_id);
    }
}

impl Handler<WatchAll> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: WatchAll, _: &mut Context<Self>) {
        if let Some(link) = self.sessions.get_mut(&msg.session) {
            link.watch_all = msg.on;
        }
    }
}

impl Handler<ForgetTask> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: ForgetTask, _: &mut Context<Self>) {
        self.durable.remove(&msg.task_id);
        if let Some(feed) = self.feeds.get_mut(&msg.task_id) {
            feed.pending.clear();
        }
        self.gc(msg.task_id);
    }
}

impl Handler<GetHubStats> for LogHub {
    type Result = MessageResult<GetHubStats>;

    fn handle(&mut self, _: GetHubStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(HubStats {
            sessions: self.sessions.len(),
            feeds: self.feeds.len(),
            pending_batches: self.feeds.values().map(|f| f.pending.len()).sum(),
            overflowed_sessions: self.overflowed,
        })
    }
}
