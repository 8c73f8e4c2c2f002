//! Telling the other nodes on a PostgreSQL database that tokens or settings changed
//! (`NOTIFY tasklens_changes`), and hearing them ([`Listener`]). On SQLite there is
//! one server, so there is no one to tell.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;

use crate::db::Conn;
use crate::Result;

const CHANNEL: &str = "tasklens_changes";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    Tokens,
    Settings,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Tokens => "tokens",
            Change::Settings => "settings",
        }
    }

    fn parse(payload: &str) -> Option<Change> {
        match payload {
            "tokens" => Some(Change::Tokens),
            "settings" => Some(Change::Settings),
            _ => None,
        }
    }
}

/// Tells every node listening (this one included) that `what` changed. Called
/// after the change is committed, so a failure here must not turn it into an error:
/// it is logged, and other nodes catch up at their periodic refresh.
pub fn announce(conn: &mut Conn, what: Change) {
    if let Conn::Postgres(c) = conn {
        if let Err(e) = c.batch_execute(&format!("NOTIFY {CHANNEL}, '{}'", what.as_str())) {
            log::warn!(
                "error=\"{e}\" change={} Other nodes could not be told of a change; they see it at their next refresh.",
                what.as_str()
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
