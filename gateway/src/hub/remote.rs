//! Tasks running on other nodes (PostgreSQL): their records and statuses reach this
//! node's followers through the database. The node running a task announces each
//! write (`logs TASK SEQ NODE`) and each status change; the hub reads the new rows of
//! the tasks its sessions follow and delivers them like local batches, already
//! durable.
//!
//! Hand-off, as for local tasks: every record stored after a session's `Follow`
//! reaches it live, and the session reads the database once more after its `Follow`
//! for what was stored before. So a task's remote feed starts after the highest seq
//! announced before its first follower came (`heard`), and reads each later
//! announcement's rows in order, one read at a time. A status change waits for the
//! reads of its task under way, so a final status stays the last word.
//!
//! A live search over every task (`subscribe_all`) has no history: while one runs
//! here, every task another node announces gets a feed, which starts at the first
//! record of the announced write (or after what was heard before), and ends with
//! the task or the last search. The hub also tells the other nodes to write all
//! their records sooner (`watch_all`), as it does for a followed task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use engine::batch::LogBatch;
use protocol::{LogFilter, TaskId, Timestamp};
use storage::LogQuery;

use super::LogHub;

/// Another node stored `task`'s records from `first` (when known) up to `seq`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteLogs {
    pub task: TaskId,
    pub first: Option<u64>,
    pub seq: u64,
}

/// Another node changed `task`'s status.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteStatus {
    pub task: TaskId,
}

/// This node's listener missed other nodes' notices from about `since` on (its
/// connection broke): the followed tasks' records and every status change since are
/// read again, so no follower waits for ever for a final status.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resync {
    pub since: Timestamp,
    /// This node, whose own statuses reached its hub directly.
    pub node: String,
}

/// Status changes read again at most after a gap; beyond, watchers of the task
/// list see the older ones when they next load it.
const RESYNC_TASKS: usize = 1_000;

/// Rows read per trip to the database.
const READ_ROWS: usize = 5_000;

/// Tasks heard of while nobody here follows them; beyond this the oldest knowledge
/// is dropped (a feed then starts from the first record, which costs a longer read,
/// never a gap).
const MAX_HEARD: usize = 100_000;

/// Tasks of other nodes read at once for live searches; beyond this, tasks heard
/// of are not searched until others end, so that a flood of tasks cannot grow the
/// hub without bound.
const MAX_SEARCHED: usize = 10_000;

/// How often this node repeats that it follows a task (the node running it writes
/// that task's records every 100 ms for 30 s after each).
const REWATCH: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct Remote {
    /// The highest seq announced per task no session here follows.
    heard: HashMap<TaskId, u64>,
    feeds: HashMap<TaskId, RemoteFeed>,
    /// When this node last said it follows each followed task.
    watching: HashMap<TaskId, Instant>,
    /// When this node last said it searches every task live.
    searching: Option<Instant>,
}

struct RemoteFeed {
    delivered: u64,
    announced: u64,
    reading: bool,
    /// A status change came while rows were still to be read.
    status_waiting: bool,
}

impl Remote {
    /// No session here follows `task` any more. Its feed stays while `searched`.
    pub(super) fn unfollowed(&mut self, task: TaskId, searched: bool) {
        self.watching.remove(&task);
        if searched {
            return;
        }
        if let Some(feed) = self.feeds.remove(&task) {
            self.heard.insert(task, feed.announced.max(feed.delivered));
        }
    }

    pub(super) fn feeds(&self) -> usize {
        self.feeds.len()
    }

    /// The last live search here ended: the feeds of `idle` tasks, read only for
    /// searches, go.
    pub(super) fn unsearched(&mut self, idle: Vec<TaskId>) {
        self.searching = None;
        for task in idle {
            self.unfollowed(task, false);
        }
    }
}

impl LogHub {
    /// Tells the other nodes which followed tasks want their records written
    /// sooner: each newly followed task, and the others every [`REWATCH`]; and all
    /// of them while a live search runs here.
    pub(super) fn announce_watched(&mut self) {
        let Some(announcer) = self.announcer.clone() else {
            return;
        };
        let now = Instant::now();
        if !self.searches.is_empty()
            && self
                .remote
                .searching
                .is_none_or(|sent| now.duration_since(sent) >= REWATCH)
        {
            self.remote.searching = Some(now);
            announcer.send(storage::changes::Change::WatchAll);
        }
        let mut due = Vec::new();
        for (task, feed) in &self.feeds {
            if feed.followers.is_empty() {
                continue;
            }
            let fresh = self
                .remote
                .watching
                .get(task)
                .is_some_and(|sent| now.duration_since(*sent) < REWATCH);
            if !fresh {
                self.remote.watching.insert(*task, now);
                due.push(*task);
            }
        }
        for task in due {
            announcer.send(storage::changes::Change::Watch { task });
        }
    }

    fn followed(&self, task: TaskId) -> bool {
        self.feeds
            .get(&task)
            .is_some_and(|f| !f.followers.is_empty())
    }

    /// Other nodes' tasks whose records this hub reads for live searches alone.
    pub(super) fn searched_only(&self) -> Vec<TaskId> {
        let feeds = self.remote.feeds.keys();
        feeds.filter(|t| !self.followed(**t)).copied().collect()
    }

    /// A task of another node ended: a feed kept only for live searches goes.
    fn ended_remotely(&mut self, task: TaskId) {
        if !self.followed(task) {
            self.remote.feeds.remove(&task);
        }
    }

    /// Reads what `task` has stored beyond what was delivered, then delivers any
    /// status change that waited for it.
    fn read_remote(&mut self, task: TaskId, ctx: &mut Context<Self>) {
        let Some(db) = self.db.clone() else { return };
        let Some(feed) = self.remote.feeds.get_mut(&task) else {
            return;
        };
        if feed.reading {
            return;
        }
        if feed.delivered >= feed.announced {
            if std::mem::take(&mut feed.status_waiting) {
                self.load_status(task, ctx);
            }
            return;
        }
        feed.reading = true;
        let query = LogQuery {
            after_seq: feed.delivered,
            before_seq: None,
            limit: READ_ROWS,
        };
        ctx.spawn(
            async move {
                db.run(move |c| {
                    storage::logs::page_logs(c, task, &LogFilter::default(), &query)
                })
                .await
            }
            .into_actor(self)
            .map(move |page, hub, ctx| {
                let Some(feed) = hub.remote.feeds.get_mut(&task) else {
                    return;
                };
                feed.reading = false;
                match page {
                    Ok(page) if !page.logs.is_empty() => {
                        feed.delivered = page.logs.last().map_or(feed.delivered, |e| e.seq);
                        let batch = Arc::new(LogBatch::new(task, page.logs));
                        hub.deliver_batch(task, &batch);
                        hub.deliver_to_searches(task, &batch);
                    }
                    // What was announced is stored: nothing left means a notice ran
                    // ahead of a read that already took it.
                    Ok(_) => feed.delivered = feed.announced,
                    Err(e) => {
                        log::warn!(
                            "error=\"{err}\" task={task} Could not read another node's records for live followers; the next notice retries.",
                            err = engine::sink::error_chain(&e),
                        );
                        return;
                    }
                }
                hub.read_remote(task, ctx);
            }),
        );
    }

    /// Reads `task` from the database and delivers its status.
    fn load_status(&mut self, task: TaskId, ctx: &mut Context<Self>) {
        let Some(db) = self.db.clone() else { return };
        ctx.spawn(
            async move { db.run(move |c| storage::tasks::get_task(c, task)).await }
                .into_actor(self)
                .map(move |found, hub, _| match found {
                    Ok(Some(info)) => {
                        if info.status.is_terminal() {
                            hub.remote.heard.remove(&task);
                            hub.ended_remotely(task);
                        }
                        hub.deliver_status(info);
                    }
                    Ok(None) => {}
                    Err(e) => log::warn!(
                        "error=\"{err}\" task={task} Could not read another node's task status for this node's watchers.",
                        err = engine::sink::error_chain(&e),
                    ),
                }),
        );
    }
}

impl Handler<RemoteLogs> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: RemoteLogs, ctx: &mut Context<Self>) {
        let followed = self.followed(msg.task);
        let searched = !self.searches.is_empty() && self.remote.feeds.len() < MAX_SEARCHED;
        if !followed && !searched && !self.remote.feeds.contains_key(&msg.task) {
            if self.remote.heard.len() >= MAX_HEARD && !self.remote.heard.contains_key(&msg.task) {
                self.remote.heard.clear();
            }
            let heard = self.remote.heard.entry(msg.task).or_default();
            *heard = (*heard).max(msg.seq);
            return;
        }
        let heard = &mut self.remote.heard;
        let feed = self.remote.feeds.entry(msg.task).or_insert_with(|| {
            // A follower reads what was stored before its `Follow` itself; a search
            // takes what was stored from this write on.
            let fresh = if followed {
                0
            } else {
                msg.first.map_or(0, |first| first.saturating_sub(1))
            };
            let start = heard.remove(&msg.task).unwrap_or(fresh);
            RemoteFeed {
                delivered: start,
                announced: start,
                reading: false,
                status_waiting: false,
            }
        });
        feed.announced = feed.announced.max(msg.seq);
        self.read_remote(msg.task, ctx);
    }
}

impl Handler<RemoteStatus> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: RemoteStatus, ctx: &mut Context<Self>) {
        match self.remote.feeds.get_mut(&msg.task) {
            Some(feed) if feed.reading || feed.delivered < feed.announced => {
                feed.status_waiting = true;
            }
            _ => self.load_status(msg.task, ctx),
        }
    }
}

impl Handler<Resync> for LogHub {
    type Result = ();

    fn handle(&mut self, msg: Resync, ctx: &mut Context<Self>) {
        let Some(db) = self.db.clone() else { return };
        // Followed tasks, and those read for live searches.
        let mut followed: Vec<TaskId> = self
            .feeds
            .iter()
            .filter(|(_, feed)| !feed.followers.is_empty())
            .map(|(task, _)| *task)
            .collect();
        followed.extend(self.searched_only());
        let since = msg.since;
        ctx.spawn(
            async move {
                db.run(move |c| {
                    let mut stored = Vec::with_capacity(followed.len());
                    for task in followed {
                        stored.push((task, storage::logs::max_seq(c, task)?));
                    }
                    let changed = storage::tasks::changed_since(c, since, RESYNC_TASKS)?;
                    Ok((stored, changed))
                })
                .await
            }
            .into_actor(self)
            .map(move |read, hub, ctx| match read {
                Ok((stored, changed)) => {
                    // Through the usual handlers, so a followed task's status still
                    // comes after its records.
                    for (task, seq) in stored {
                        // Unless its feed went meanwhile (the task ended).
                        if !hub.followed(task) && !hub.remote.feeds.contains_key(&task) {
                            continue;
                        }
                        hub.handle(
                            RemoteLogs {
                                task,
                                first: None,
                                seq,
                            },
                            ctx,
                        );
                    }
                    for task in changed {
                        if task.node.as_deref() == Some(msg.node.as_str()) {
                            continue;
                        }
                        if hub.remote.feeds.contains_key(&task.id) || hub.followed(task.id) {
                            hub.handle(RemoteStatus { task: task.id }, ctx);
                        } else {
                            hub.deliver_status(task);
                        }
                    }
                }
                Err(e) => log::warn!(
                    "error=\"{err}\" Could not read again what other nodes changed while this node was not listening.",
                    err = engine::sink::error_chain(&e)
                ),
            }),
        );
    }
}
