//! Telling the other nodes on a PostgreSQL database that tokens or settings changed,
//! that tasks wait in the queue, that one of theirs is to be cancelled, or that a
//! task's records were stored or its status changed (`NOTIFY tasklens_changes`), and
//! hearing them ([`Listener`]). On SQLite there is one
//! server, so there is no one to tell.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sql_types::Text;
use diesel::{Connection, RunQueryDsl};
use protocol::TaskId;

use crate::db::Conn;
use crate::Result;

const CHANNEL: &str = "tasklens_changes";

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    Tokens,
    Settings,
    /// Tasks wait in the queue: nodes with room claim them.
    Queued,
    /// The node running `task` is to cancel it.
    Cancel {
        task: TaskId,
        by: Option<String>,
    },
    /// `node` stored `task`'s records from `first` up to `seq` (those before
    /// `first` were announced earlier; `None` from nodes of earlier versions).
    Logs {
        task: TaskId,
        first: Option<u64>,
        seq: u64,
        node: String,
    },
    /// `node` changed `task`'s status.
    Status {
        task: TaskId,
        node: String,
    },
    /// A node has followers of `task`: the node running it writes its records
    /// sooner.
    Watch {
        task: TaskId,
    },
    /// A node searches every task's records live: every node writes its records
    /// sooner.
    WatchAll,
}

/// NOTIFY payloads are limited to 8000 bytes; a name is cut well before that.
const MAX_BY_BYTES: usize = 256;

impl Change {
    fn payload(&self) -> String {
        match self {
            Change::Tokens => "tokens".into(),
            Change::Settings => "settings".into(),
            Change::Queued => "queued".into(),
            Change::WatchAll => "watch_all".into(),
            Change::Cancel { task, by } => {
                let mut by = by.clone().unwrap_or_default();
                if by.len() > MAX_BY_BYTES {
                    let mut end = MAX_BY_BYTES;
                    while !by.is_char_boundary(end) {
                        end -= 1;
                    }
                    by.truncate(end);
                }
                format!("cancel {task} {by}")
            }
            Change::Logs {
                task,
                first,
                seq,
                node,
            } => match first {
                // After the node, where earlier versions' parsers take it as part of
                // the node's name, which they only compare with their own.
                Some(first) => format!("logs {task} {seq} {node} {first}"),
                None => format!("logs {task} {seq} {node}"),
            },
            Change::Status { task, node } => format!("status {task} {node}"),
            Change::Watch { task } => format!("watch {task}"),
        }
    }

    fn parse(payload: &str) -> Option<Change> {
        match payload {
            "tokens" => Some(Change::Tokens),
            "settings" => Some(Change::Settings),
            "queued" => Some(Change::Queued),
            "watch_all" => Some(Change::WatchAll),
            _ => {
                let (kind, rest) = payload.split_once(' ')?;
                let (task, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                let task = task.parse().ok()?;
                match kind {
                    "cancel" => Some(Change::Cancel {
                        task,
                        by: (!rest.is_empty()).then(|| rest.to_owned()),
                    }),
                    "logs" => {
                        let (seq, rest) = rest.split_once(' ')?;
                        let (node, first) = match rest.split_once(' ') {
                            Some((node, first)) => (node, Some(first.parse().ok()?)),
                            None => (rest, None),
                        };
                        Some(Change::Logs {
                            task,
                            first,
                            seq: seq.parse().ok()?,
                            node: node.to_owned(),
                        })
                    }
                    "status" => Some(Change::Status {
                        task,
                        node: rest.to_owned(),
                    }),
                    "watch" if rest.is_empty() => Some(Change::Watch { task }),
                    _ => None,
                }
            }
        }
    }
}

/// Tells every node listening (this one included) that `what` changed. Called
/// after the change is committed, so a failure here must not turn it into an error:
/// it is logged, and other nodes catch up at their periodic refresh.
pub fn announce(conn: &mut Conn, what: Change) {
    if let Conn::Postgres(c) = conn {
        let sent = diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(CHANNEL)
            .bind::<Text, _>(what.payload())
            .execute(&mut **c);
        if let Err(e) = sent {
            log::warn!(
                "error=\"{e}\" change={what:?} Other nodes could not be told of a change; they see it at their next refresh."
            );
        }
    }
}

/// Sends announcements from a thread of its own, in order, so that callers never
/// wait for the database (nor does a process that exits while it is down).
/// Bounded: when [`ANNOUNCER_QUEUE`] wait, newer ones are dropped and logged; the
/// other nodes then catch up through their polls and refreshes.
#[derive(Clone)]
pub struct Announcer {
    tx: std::sync::mpsc::SyncSender<Change>,
}

/// Announcements that may wait for the database.
pub const ANNOUNCER_QUEUE: usize = 10_000;

impl Announcer {
    /// Starts the thread; it ends when every `Announcer` is dropped.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn(db: crate::Db) -> Result<Announcer> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Change>(ANNOUNCER_QUEUE);
        std::thread::Builder::new()
            .name("tasklens-announce".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let sent = db.run_blocking(|c| {
                        announce(c, first);
                        while let Ok(more) = rx.try_recv() {
                            announce(c, more);
                        }
                        Ok(())
                    });
                    if let Err(e) = sent {
                        log::warn!("error=\"{e}\" Could not tell other nodes of a change; they see it at their next poll.");
                    }
                }
            })
            .map_err(|e| {
                crate::StorageError::Background(format!("cannot start the announcer thread: {e}"))
            })?;
        Ok(Announcer { tx })
    }

    pub fn send(&self, change: Change) {
        if let Err(std::sync::mpsc::TrySendError::Full(change)) = self.tx.try_send(change) {
            log::warn!("change={change:?} Too many announcements wait for the database; this one is dropped.");
        }
    }
}

/// A connection of its own that listens for changes.
pub struct Listener {
    conn: PgConnection,
}

impl Listener {
    /// Connects to the PostgreSQL database at `url` and listens, as node `node`
    /// (named in `pg_stat_activity.application_name`: `tasklens listen NODE`).
    ///
    /// # Errors
    /// The server cannot be reached.
    pub fn connect(url: &str, node: &str) -> Result<Listener> {
        let mut conn = PgConnection::establish(url)
            .map_err(|e| crate::StorageError::Connect(e.to_string()))?;
        diesel::sql_query("SELECT set_config('application_name', $1, false)")
            .bind::<diesel::sql_types::Text, _>(format!("tasklens listen {node}"))
            .execute(&mut conn)?;
        conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(Listener { conn })
    }

    /// The changes announced since the last call; never blocks.
    ///
    /// # Errors
    /// The connection broke (connect again; changes meanwhile were missed).
    pub fn poll(&mut self) -> Result<Vec<Change>> {
        let mut changes: Vec<Change> = Vec::new();
        // A task's record notices become one, from the lowest first seq to the
        // highest seq.
        let mut logs_at: std::collections::HashMap<TaskId, usize> = Default::default();
        for notification in self.conn.notifications_iter() {
            let Some(change) = Change::parse(&notification?.payload) else {
                continue;
            };
            if let Change::Logs {
                task, first, seq, ..
            } = &change
            {
                if let Some(Change::Logs {
                    first: known_first,
                    seq: known,
                    ..
                }) = logs_at.get(task).and_then(|&i| changes.get_mut(i))
                {
                    // Unknown (`None`) wins: it reads more, never less.
                    *known_first = (*known_first).min(*first);
                    *known = (*known).max(*seq);
                    continue;
                }
                logs_at.insert(*task, changes.len());
                changes.push(change);
            } else if !changes.contains(&change) {
                changes.push(change);
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_survives_its_payload_and_garbage_is_ignored() {
        let task: TaskId = "0190b9a3-0000-7000-8000-000000000001".parse().unwrap();
        for change in [
            Change::Tokens,
            Change::Settings,
            Change::Queued,
            Change::Cancel { task, by: None },
            Change::Cancel {
                task,
                by: Some("ops team".into()),
            },
            Change::Logs {
                task,
                first: Some(40),
                seq: 42,
                node: "engine-1".into(),
            },
            Change::Logs {
                task,
                first: None,
                seq: 1,
                node: "e1".into(),
            },
            Change::Status {
                task,
                node: "g:1".into(),
            },
            Change::Watch { task },
            Change::WatchAll,
        ] {
            assert_eq!(Change::parse(&change.payload()), Some(change.clone()));
        }
        let long = Change::Cancel {
            task,
            by: Some("é".repeat(MAX_BY_BYTES)),
        };
        let payload = long.payload();
        assert!(payload.len() < 8000);
        assert!(
            matches!(Change::parse(&payload), Some(Change::Cancel { by: Some(by), .. }) if by.len() <= MAX_BY_BYTES)
        );
        for garbage in [
            "",
            "logs",
            "logs x 1 n",
            "logs 0190b9a3-0000-7000-8000-000000000001 x n",
            "logs 0190b9a3-0000-7000-8000-000000000001 5 n x",
            "status",
            "what 0190b9a3-0000-7000-8000-000000000001",
        ] {
            assert_eq!(Change::parse(garbage), None, "{garbage:?}");
        }
    }
}
