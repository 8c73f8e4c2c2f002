//! Telling the other nodes on a PostgreSQL database that tokens or settings changed,
//! that tasks wait in the queue or that one of theirs is to be cancelled (`NOTIFY
//! tasklens_changes`), and hearing them ([`Listener`]). On SQLite there is one
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
}

/// NOTIFY payloads are limited to 8000 bytes; a name is cut well before that.
const MAX_BY_BYTES: usize = 256;

impl Change {
    fn payload(&self) -> String {
        match self {
            Change::Tokens => "tokens".into(),
            Change::Settings => "settings".into(),
            Change::Queued => "queued".into(),
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
        }
    }

    fn parse(payload: &str) -> Option<Change> {
        match payload {
            "tokens" => Some(Change::Tokens),
            "settings" => Some(Change::Settings),
            "queued" => Some(Change::Queued),
            _ => {
                let rest = payload.strip_prefix("cancel ")?;
                let (task, by) = rest.split_once(' ')?;
                Some(Change::Cancel {
                    task: task.parse().ok()?,
                    by: (!by.is_empty()).then(|| by.to_owned()),
                })
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

/// A connection of its own that listens for changes.
pub struct Listener {
    conn: PgConnection,
}

impl Listener {
    /// Connects to the PostgreSQL database at `url` and listens.
    ///
    /// # Errors
    /// The server cannot be reached.
    pub fn connect(url: &str) -> Result<Listener> {
        let mut conn = PgConnection::establish(url)
            .map_err(|e| crate::StorageError::Connect(e.to_string()))?;
        conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(Listener { conn })
    }

    /// The changes announced since the last call; never blocks.
    ///
    /// # Errors
    /// The connection broke (connect again; changes meanwhile were missed).
    pub fn poll(&mut self) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        for notification in self.conn.notifications_iter() {
            if let Some(change) = Change::parse(&notification?.payload) {
                if !changes.contains(&change) {
                    changes.push(change);
                }
            }
        }
        Ok(changes)
    }
}
