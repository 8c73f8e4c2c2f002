//! [`LogHub`]: fans emitted records and task status changes out to WebSocket sessions.
//!
//! State: per task, the batches emitted but not yet durable (`pending`, shared with the
//! sink, trimmed on [`LogsPersisted`]) and the sessions following it with their
//! [`Interest`]; per session, its [`Inbox`], the recipient that wakes it and whether
//! it watches every task's status.
//!
//! Messages: [`LogsAppended`], [`LogsPersisted`], [`TaskStatusChanged`] from the
//! engine; [`remote::RemoteLogs`] and [`remote::RemoteStatus`] about tasks running
//! on other nodes (see [`remote`]); [`Join`], [`Leave`], [`Follow`], [`Unfollow`],
//! [`WatchAll`], [`WatchAllLogs`] from sessions;
//! [`ForgetTask`] when a task is deleted.
//!
//! Hand-off: [`Follow`] registers the session and answers, in the same handler, with
//! the task's pending batches. Every record older than those is durable, and every
//! record emitted later reaches the session live, so a session that reads the
//! database after its `Follow` and then takes the snapshot misses nothing.
//!
//! Delivery: into each session's [`Inbox`], bounded in bytes, with one [`Wake`] when
//! it turns non-empty. A session's follow carries its [`Interest`] (level and
//! sources); a batch none of whose records can pass it is not delivered at all, and
//! one that can is charged only the bytes of the records at that level and above, so
//! a follower of rare ERROR lines costs little whatever the task's volume. A session
//! whose inbox passes its byte bound, or whose oldest delivery has waited untaken
//! longer than `max_unread` (checked every second), has fallen behind by what it did
//! not read: the hub drops it at once, releasing what it held, and wakes it; it
//! closes itself with a reason the next time it runs. A client that left a delivery
//! unread for `max_unread` reads nothing, not even that reason, so the hub shuts
//! its socket down at once; one dropped for bytes that has not run another
//! `max_unread` later is shut down too. Neither the engine nor the other
//! sessions ever wait for it.

pub mod inbox;
pub mod remote;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use engine::batch::LogBatch;
use engine::{LogsAppended, LogsPersisted, TaskStatusChanged};
use protocol::{LogFilter, LogLevel, TaskId, TaskInfo};

pub use inbox::{Delivery, Inbox, Pushed, Wake};

/// Identifies a WebSocket session within the hub.
pub type SessionId = u64;

/// The part of a session's filter the hub checks per batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interest {
    pub min_level: Option<LogLevel>,
    /// Any source when empty.
    pub sources: Vec<String>,
}

impl From<&LogFilter> for Interest {
    fn from(filter: &LogFilter) -> Self {
        Interest {
            min_level: filter.min_level,
            sources: filter.sources.clone(),
        }
    }
}

/// A session connects.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub session: SessionId,
    pub inbox: Arc<Inbox>,
    pub wake: Recipient<Wake>,
}

/// A session disconnects.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
}

/// Start delivering a task's records that may pass `interest` to a session (or
/// change the interest); replies with the task's not-yet-durable batches.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Arc<LogBatch>>")]
pub struct Follow {
    pub session: SessionId,
    pub task_id: TaskId,
    pub interest: Interest,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unfollow {
    pub session: SessionId,
    pub task_id: TaskId,
}

/// Deliver (or stop delivering) to a session every batch of every task whose records
/// may pass `interest`: a live search over all tasks (`subscribe_all`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WatchAllLogs {
    pub session: SessionId,
    pub interest: Option<Interest>,
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
    /// Batches put into a session's inbox.
    pub delivered_batches: u64,
    /// Batches not delivered to a follower because none of their records could pass
    /// its level or source filter.
    pub skipped_batches: u64,
    /// Tasks of other nodes whose records this hub reads, for followers or searches.
    pub remote_feeds: usize,
}

struct Link {
    inbox: Arc<Inbox>,
    wake: Recipient<Wake>,
    follows: HashSet<TaskId>,
    watch_all: bool,
}

impl Link {
    /// Returns false when the session overflowed.
    fn push(&self, item: Delivery, bytes: u64) -> bool {
        match self.inbox.push(item, bytes) {
            Pushed::Wake => {
                self.wake.do_send(Wake);
                true
            }
            Pushed::Queued => true,
            Pushed::Overflowed => false,
        }
    }
}

#[derive(Default)]
struct Feed {
    pending: VecDeque<Arc<LogBatch>>,
    followers: HashMap<SessionId, Interest>,
}

pub struct LogHub {
    /// How long a delivery may wait untaken before its session is judged too slow.
    max_unread: Duration,
    sessions: HashMap<SessionId, Link>,
    feeds: HashMap<TaskId, Feed>,
    /// The sessions with a live search over every task, and its level and sources:
    /// kept apart so that each appended batch visits only these, not every session.
    searches: HashMap<SessionId, Interest>,
    /// Highest durable seq of each unfinished task. Kept apart from the feeds (which
    /// come and go with followers) because the sink's notice can overtake the batch
    /// it is about; forgotten once the task ends, when everything is durable.
    durable: HashMap<TaskId, u64>,
    overflowed: u64,
    delivered: u64,
    skipped: u64,
    /// Sessions dropped as too slow, with when, until they have ended.
    stalled: Vec<(std::time::Instant, Arc<Inbox>)>,
    /// Where other nodes' records are read from, and how this node tells them which
    /// tasks it follows (PostgreSQL only).
    db: Option<storage::Db>,
    announcer: Option<storage::changes::Announcer>,
    remote: remote::Remote,
}

impl LogHub {
    pub fn new(max_unread: Duration) -> Self {
        LogHub {
            max_unread,
            sessions: HashMap::new(),
            feeds: HashMap::new(),
            searches: HashMap::new(),
            durable: HashMap::new(),
            overflowed: 0,
            delivered: 0,
            skipped: 0,
            stalled: Vec::new(),
            db: None,
            announcer: None,
            remote: remote::Remote::default(),
        }
    }

    /// Feeds this node's followers of tasks running on other nodes from `db`, and
    /// tells the other nodes which tasks it follows through `announcer`.
    pub fn reading_from(mut self, db: storage::Db, announcer: storage::changes::Announcer) -> Self {
        self.db = Some(db);
        self.announcer = Some(announcer);
        self
    }

    /// Drops the sessions whose clients left deliveries unread for too long, and
    /// disconnects them: such a client reads nothing, not even why it is closed.
    fn sweep(&mut self) {
        // A client that left a delivery unread too long, or did not authenticate
        // in time, reads nothing, not even why it is closed: it is disconnected. A
        // session that flagged itself too slow (while joining) is dropped and may
        // still read its reason. None of them may be able to run to close itself.
        let mut ended = Vec::new();
        for (id, link) in &self.sessions {
            let inbox = &link.inbox;
            if inbox.overflow_if_waiting(self.max_unread) {
                ended.push((*id, true, true));
            } else if inbox.past_deadline(Duration::from_secs(2)) {
                ended.push((*id, true, false));
            } else if inbox.overflowed() {
                ended.push((*id, false, true));
            }
        }
        for (id, disconnect, too_slow) in ended {
            if disconnect {
                if let Some(link) = self.sessions.get(&id) {
                    link.inbox.disconnect();
                }
            }
            self.drop_session(id, too_slow);
        }
        // Only the hub still holding the inbox means the session has ended.
        let max_unread = self.max_unread;
        self.stalled.retain(|(since, inbox)| {
            if Arc::strong_count(inbox) == 1 {
                return false;
            }
            if since.elapsed() > max_unread {
                log::warn!("A WebSocket client read nothing for too long after being told it is too slow; its connection is shut down.");
                inbox.disconnect();
                return false;
            }
            true
        });
    }

    /// Drops a session; one that overflowed is woken so that it closes itself.
    fn drop_session(&mut self, session: SessionId, overflowed: bool) {
        self.stop_search(session);
        if let Some(link) = self.sessions.remove(&session) {
            if overflowed {
                self.overflowed += 1;
                link.wake.do_send(Wake);
                self.stalled
                    .push((std::time::Instant::now(), link.inbox.clone()));
                log::warn!("session={session} A WebSocket client did not read what it was sent and is being disconnected.");
            }
            for task in link.follows {
                if let Some(feed) = self.feeds.get_mut(&task) {
                    feed.followers.remove(&session);
                }
                self.gc(task);
            }
        }
    }

    /// Ends a session's live search, and with the last one the feeds of other
    /// nodes' tasks that only searches read.
    fn stop_search(&mut self, session: SessionId) {
        if self.searches.remove(&session).is_some() && self.searches.is_empty() {
            let idle = self.searched_only();
            self.remote.unsearched(idle);
        }
    }

    fn gc(&mut self, task: TaskId) {
        if self.feeds.get(&task).is_none_or(|f| f.followers.is_empty()) {
            self.remote.unfollowed(task, !self.searches.is_empty());
        }
        if self
            .feeds
            .get(&task)
            .is_some_and(|f| f.followers.is_empty() && f.pending.is_empty())
        {
            self.feeds.remove(&task);
        }
    }

    /// Puts `batch` into the inbox of each follower of `task` it may interest.
    fn deliver_batch(&mut self, task: TaskId, batch: &Arc<LogBatch>) {
        let Some(feed) = self.feeds.get(&task) else {
            return;
        };
        let mut failed = Vec::new();
        for (session, interest) in &feed.followers {
            let bytes = batch.bytes_passing(interest.min_level, &interest.sources);
            if bytes == 0 {
                self.skipped += 1;
                continue;
            }
            if let Some(link) = self.sessions.get(session) {
                let delivery = Delivery::Logs {
                    task_id: task,
                    batch: batch.clone(),
                };
                self.delivered += 1;
                if !link.push(delivery, bytes) {
                    failed.push(*session);
                }
            }
        }
        for session in failed {
            self.drop_session(session, true);
        }
    }

    /// Puts `batch` into the inbox of each live search it may interest.
    fn deliver_to_searches(&mut self, task: TaskId, batch: &Arc<LogBatch>) {
        let mut failed = Vec::new();
        for (session, interest) in &self.searches {
            let Some(link) = self.sessions.get(session) else {
                continue;
            };
            let bytes = batch.bytes_passing(interest.min_level, &interest.sources);
            if bytes == 0 {
                self.skipped += 1;
                continue;
            }
            self.delivered += 1;
            let delivery = Delivery::Matched {
                task_id: task,
                batch: batch.clone(),
            };
            if !link.push(delivery, bytes) {
                failed.push(*session);
            }
        }
        for session in failed {
            self.drop_session(session, true);
        }
    }

    fn deliver_status(&mut self, task: TaskInfo) {
        // Small params only (large ones stay behind `GET /api/tasks/{id}`), and one
        // copy that every session shares, serialised once to know its cost.
        let task = if task.params_omitted {
            task
        } else {
            task.summary()
        };
        let bytes = serde_json::to_vec(&task).map_or(0, |v| v.len() as u64);
        let task = Arc::new(task);
        let feed = self.feeds.get(&task.id);
        let mut failed = Vec::new();
        for (id, link) in &self.sessions {
            let interested = link.watch_all || feed.is_some_and(|f| f.followers.contains_key(id));
            if interested && !link.push(Delivery::Status(task.clone()), bytes) {
                failed.push(*id);
            }
        }
        for id in failed {
            self.drop_session(id, true);
        }
    }
}

impl Actor for LogHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Engine events arrive with do_send; nothing here waits on them.
        ctx.set_mailbox_capacity(1_000_000);
        ctx.run_interval(Duration::from_secs(1), |hub, _| {
            hub.sweep();
            hub.announce_watched();
        });
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
        self.deliver_batch(task, &msg.batch);
        self.deliver_to_searches(task, &msg.batch);
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
        self.deliver_status(msg.task);
    }
}

impl Handler<Join> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        self.sessions.insert(
            msg.session,
            Link {
                inbox: msg.inbox,
                wake: msg.wake,
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
        feed.followers.insert(msg.session, msg.interest);
        let pending = feed.pending.iter().cloned().collect();
        self.announce_watched();
        MessageResult(pending)
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

impl Handler<WatchAllLogs> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: WatchAllLogs, _: &mut Context<Self>) {
        match msg.interest {
            Some(interest) if self.sessions.contains_key(&msg.session) => {
                self.searches.insert(msg.session, interest);
                self.announce_watched();
            }
            _ => self.stop_search(msg.session),
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
            delivered_batches: self.delivered,
            skipped_batches: self.skipped,
            remote_feeds: self.remote.feeds(),
        })
    }
}

#[cfg(test)]
mod tests;
