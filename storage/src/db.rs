//! The database handle. The backend is chosen once, from the URL, at start:
//! `postgres://…` / `postgresql://…` selects PostgreSQL; `sqlite://PATH`, `sqlite:PATH`
//! or a plain path selects SQLite. Each backend gets its own typed r2d2 pool (an enum
//! of two pools rather than diesel's `MultiConnection`, which lacks `ON CONFLICT` and
//! `COPY`); query functions match on [`Conn`] through [`with_conn!`] and write the
//! query once where both backends accept it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::{Result, StorageError};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
/// The advisory lock PostgreSQL migrations run under (any constant of our own).
const MIGRATION_LOCK: i64 = 0x7461_736b_6c65_6e73; // "tasklens"

/// Where the database is and how to pool connections to it. Its `Debug` hides the
/// URL's password.
#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_max_size: u32,
    /// How long a SQLite statement waits for a lock held by another connection or
    /// process before failing (and being retried by the caller).
    pub busy_timeout_ms: u32,
    /// How long a pool checkout waits for a connection.
    pub connect_timeout_ms: u64,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &describe(&self.url))
            .field("pool_max_size", &self.pool_max_size)
            .field("busy_timeout_ms", &self.busy_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .finish()
    }
}

impl DatabaseSettings {
    /// The default database: a SQLite file under `./data/`.
    pub const DEFAULT_URL: &'static str = "sqlite://data/tasklens.db";

    pub fn new(url: impl Into<String>) -> Self {
        DatabaseSettings {
            url: url.into(),
            pool_max_size: 8,
            busy_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
        }
    }
}

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database location parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    /// Parses `TASKLENS_DATABASE_URL`.
    ///
    /// # Errors
    /// [`StorageError::Url`] for an empty URL, an unknown scheme or an in-memory SQLite
    /// database (each pooled connection would see a different one).
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |reason: &str| StorageError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            return Ok(Target::Postgres(trimmed.to_owned()));
        }
        let path = if let Some(rest) = trimmed.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = trimmed.strip_prefix("sqlite:") {
            rest
        } else if trimmed.contains("://") {
            return Err(bad(
                "unknown scheme: use postgres://…, sqlite://PATH or a file path",
            ));
        } else {
            trimmed
        };
        if path.is_empty() || path == ":memory:" || path.starts_with("file::memory:") {
            return Err(bad(
                "SQLite needs a file path (in-memory databases are not shared between connections)",
            ));
        }
        Ok(Target::Sqlite(PathBuf::from(path)))
    }
}

/// Per-connection SQLite set-up: a busy timeout so a briefly held lock is waited
/// for, foreign keys (needed for `ON DELETE CASCADE`; SQLite leaves them off per
/// connection). WAL is not set here: it is a property of the file, set once by
/// [`use_wal`] before any pool exists.
#[derive(Debug)]
struct SqliteTuning {
    busy_timeout_ms: u32,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteTuning {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {};
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -8000;
             PRAGMA temp_store = MEMORY;",
            self.busy_timeout_ms
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Per-connection PostgreSQL set-up. Every query Tasklens makes walks a B-tree in
/// index order and stops at a LIMIT; right after a bulk load the statistics are stale
/// and the planner would rather bitmap-scan a whole task and sort it (≈100 ms instead of
/// ≈5 ms for a page of a million-record task). Bitmap scans are never the better plan
/// for these queries, so they are switched off, and random reads priced as on an SSD.
#[derive(Debug)]
struct PostgresTuning;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for PostgresTuning {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute("SET enable_bitmapscan = off; SET random_page_cost = 1.1;")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

enum Pools {
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
    Postgres(Pool<ConnectionManager<PgConnection>>),
}

/// Connections of the pool reserved for the log writer.
const WRITER_POOL_SIZE: u32 = 2;

/// How long [`Db::run_background`] waits for a connection.
pub const BACKGROUND_CHECKOUT: Duration = Duration::from_millis(500);

/// A pooled database, cheap to clone.
///
/// Two pools: one for everything else, and a small one reserved for the log writer
/// ([`Db::run_writer`]), so that long reads (an index of a huge task, an export) can
/// never keep log records from being stored.
#[derive(Clone)]
pub struct Db {
    pools: Arc<Pools>,
    writer: Arc<Pools>,
    description: Arc<str>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("at", &self.description).finish()
    }
}

/// One checked-out connection.
pub enum Conn {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>),
    Postgres(PooledConnection<ConnectionManager<PgConnection>>),
}

impl Conn {
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Runs `$body` with `$c` bound to the concrete diesel connection of either backend;
/// the body is compiled once per backend.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite(pooled) => {
                let $c: &mut ::diesel::sqlite::SqliteConnection = &mut **pooled;
                $body
            }
            $crate::db::Conn::Postgres(pooled) => {
                let $c: &mut ::diesel::pg::PgConnection = &mut **pooled;
                $body
            }
        }
    };
}

/// The file a SQLite URL names (`None` for PostgreSQL or a URL that is not valid).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    match Target::parse(url) {
        Ok(Target::Sqlite(path)) => Some(path),
        _ => None,
    }
}

impl Db {
    /// Opens the database, creating the SQLite file and its directory if needed, and
    /// applies pending migrations. Blocking: call it before the actix system starts
    /// or on a blocking thread.
    ///
    /// # Errors
    /// Bad URL, unreachable server, or a migration that fails.
    pub fn connect(settings: &DatabaseSettings) -> Result<Db> {
        let target = Target::parse(&settings.url)?;
        if let Target::Sqlite(path) = &target {
            sqlite_multithread();
            create_parent_dir(path)?;
            use_wal(path, settings.busy_timeout_ms)?;
        }
        let pools = build_pools(&target, settings, settings.pool_max_size.max(2))?;
        match Self::checkout(&pools)? {
            Conn::Sqlite(mut conn) => {
                conn.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| StorageError::Migration(e.to_string()))?;
            }
            Conn::Postgres(mut conn) => {
                // Nodes starting together on an empty database would otherwise race
                // to create the same tables: one migrates, the others wait, then
                // find nothing left to do. The lock is the session's, so it is
                // released with the connection whatever happens.
                use diesel::connection::SimpleConnection;
                conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
                let migrated = conn
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|_| ())
                    .map_err(|e| StorageError::Migration(e.to_string()));
                let unlocked =
                    conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
                migrated?;
                unlocked?;
                // Today's partition and the next days'. Not fatal: until they exist,
                // records land in the default partition, and the engine retries.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as i64);
                let mut conn = Conn::Postgres(conn);
                if let Err(e) = crate::partitions::ensure(&mut conn, protocol::Timestamp(now)) {
                    let cause = std::error::Error::source(&e).map(|s| format!(": {s}"));
                    log::warn!(
                        "error=\"{e}{}\" The log table's partitions could not be created yet.",
                        cause.unwrap_or_default()
                    );
                }
            }
        }
        let writer = build_pools(&target, settings, WRITER_POOL_SIZE)?;
        Ok(Db {
            pools: Arc::new(pools),
            writer: Arc::new(writer),
            description: Arc::from(describe(&settings.url)),
        })
    }

    fn checkout(pools: &Pools) -> Result<Conn> {
        Ok(match pools {
            Pools::Sqlite(pool) => Conn::Sqlite(pool.get()?),
            Pools::Postgres(pool) => Conn::Postgres(pool.get()?),
        })
    }

    /// [`Db::checkout`] giving up after `timeout` rather than the pool's.
    fn checkout_within(pools: &Pools, timeout: Duration) -> Result<Conn> {
        Ok(match pools {
            Pools::Sqlite(pool) => Conn::Sqlite(pool.get_timeout(timeout)?),
            Pools::Postgres(pool) => Conn::Postgres(pool.get_timeout(timeout)?),
        })
    }

    pub fn backend(&self) -> Backend {
        match *self.pools {
            Pools::Sqlite(_) => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// The database location with any password removed, for operator logs.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Checks out a connection, blocking until one is free or the checkout times out.
    ///
    /// # Errors
    /// [`StorageError::Pool`] when no connection could be made in time.
    pub fn get(&self) -> Result<Conn> {
        Self::checkout(&self.pools)
    }

    /// Runs `f` on a connection on the current thread. For threads that may block
    /// (CLI, tests, plugin threads); async code uses [`Db::run`].
    pub fn run_blocking<R>(&self, f: impl FnOnce(&mut Conn) -> Result<R>) -> Result<R> {
        let mut conn = self.get()?;
        f(&mut conn)
    }

    /// Like [`Db::run`], on the pool reserved for the log writer.
    pub async fn run_writer<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<R> + Send + 'static,
    {
        let writer = self.writer.clone();
        on_blocking_thread(move || f(&mut Self::checkout(&writer)?)).await
    }

    /// [`Db::run`] for background work that can wait for a better moment (the
    /// indexer): the checkout gives up after [`BACKGROUND_CHECKOUT`] instead of the
    /// connect timeout, so that while the database is unreachable such work never
    /// holds a blocking thread, and with it the process at exit, for long.
    pub async fn run_background<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<R> + Send + 'static,
    {
        let pools = self.pools.clone();
        on_blocking_thread(move || f(&mut Self::checkout_within(&pools, BACKGROUND_CHECKOUT)?))
            .await
    }

    /// Runs `f` on a blocking thread, checkout included, so that neither the query nor
    /// waiting for a connection ever stalls an async executor or actor arbiter.
    pub async fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<R> + Send + 'static,
    {
        let db = self.clone();
        on_blocking_thread(move || db.run_blocking(f)).await
    }
}

/// Runs `job` on tokio's blocking threads, off the async ones.
async fn on_blocking_thread<R: Send + 'static>(
    job: impl FnOnce() -> Result<R> + Send + 'static,
) -> Result<R> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| StorageError::Background(e.to_string()))?
}

fn build_pools(target: &Target, settings: &DatabaseSettings, size: u32) -> Result<Pools> {
    let timeout = Duration::from_millis(settings.connect_timeout_ms.max(100));
    Ok(match target {
        Target::Sqlite(path) => {
            let manager = ConnectionManager::<SqliteConnection>::new(path.to_string_lossy());
            let pool = Pool::builder()
                .max_size(size)
                .connection_timeout(timeout)
                .connection_customizer(Box::new(SqliteTuning {
                    busy_timeout_ms: settings.busy_timeout_ms,
                }))
                .build(manager)
                .map_err(|e| StorageError::Connect(format!("{}: {e}", path.display())))?;
            Pools::Sqlite(pool)
        }
        Target::Postgres(url) => {
            let manager = ConnectionManager::<PgConnection>::new(url.clone());
            let pool = Pool::builder()
                .max_size(size)
                .connection_timeout(timeout)
                .connection_customizer(Box::new(PostgresTuning))
                .build(manager)
                .map_err(|e| StorageError::Connect(e.to_string()))?;
            Pools::Postgres(pool)
        }
    })
}

/// Puts the file in WAL mode (so readers never block the writer) through one lone
/// connection. Switching the journal mode needs the file to itself, and SQLite
/// reports a conflict there at once instead of waiting out the busy timeout: done
/// per pooled connection, the pool's simultaneous first connections failed each
/// other with "database is locked" on every new database.
fn use_wal(path: &Path, busy_timeout_ms: u32) -> Result<()> {
    use diesel::Connection;
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| StorageError::Connect(format!("{}: {e}", path.display())))?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA journal_mode = WAL;"
    ))
    .map_err(|e| StorageError::Connect(format!("{}: {e}", path.display())))
}

fn create_parent_dir(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Connect(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

/// Whether SQLite runs in this process without its per-connection locks (its
/// multi-thread mode): `Some(true)` once [`Db::connect`] set it before SQLite
/// started, `Some(false)` when SQLite had already started (it keeps its default),
/// `None` before any SQLite database was opened through [`Db::connect`].
pub fn sqlite_multithreaded() -> Option<bool> {
    SQLITE_MULTITHREAD.get().copied()
}

static SQLITE_MULTITHREAD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Puts SQLite in its multi-thread mode, once, before it starts. Its default
/// (serialized) takes and releases a connection's mutex in every call, each column
/// of each row read included: 7% of the CPU of a 1,000-record page. The pool hands
/// a connection to one thread at a time, which is all that mode asks (SQLite's own
/// global state keeps its locks).
fn sqlite_multithread() {
    SQLITE_MULTITHREAD.get_or_init(|| {
        // SAFETY: sqlite3_config is called with an option that takes no argument.
        // SQLite refuses it (SQLITE_MISUSE, changing nothing) once it has started,
        // as when something in the process opened a database before.
        let rc =
            unsafe { libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD) };
        if rc != libsqlite3_sys::SQLITE_OK {
            log::debug!(
                "SQLite keeps its serialized mode: it started before the first connect (code {rc})"
            );
        }
        rc == libsqlite3_sys::SQLITE_OK
    });
}

/// Bytes SQLite holds in this process (its page caches above all: up to
/// `cache_size` per connection, filled as the database grows). 0 on PostgreSQL,
/// whose caches live in its own server.
pub fn sqlite_memory_used() -> u64 {
    // SAFETY: a read of SQLite's global memory statistics, thread-safe by contract.
    let used = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    u64::try_from(used).unwrap_or(0)
}

/// The URL without its password (`postgres://user:***@host/db`).
pub fn describe(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The last '@' ends the credentials: a password may itself contain '@'.
    match rest.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_backend() {
        assert_eq!(
            Target::parse("sqlite://data/x.db").unwrap(),
            Target::Sqlite("data/x.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:/tmp/x.db").unwrap(),
            Target::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            Target::parse("./x.db").unwrap(),
            Target::Sqlite("./x.db".into())
        );
        assert!(matches!(
            Target::parse("postgresql://u:p@h/db").unwrap(),
            Target::Postgres(_)
        ));
        for bad in [
            "",
            "  ",
            "mysql://h/db",
            "sqlite://",
            "sqlite::memory:",
            ":memory:",
        ] {
            let err = Target::parse(bad).unwrap_err();
            assert!(matches!(err, StorageError::Url { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn every_pooled_sqlite_connection_is_tuned() {
        use diesel::sql_types::{BigInt, Text};
        use diesel::{QueryableByName, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Mode {
            #[diesel(sql_type = Text)]
            journal_mode: String,
        }
        #[derive(QueryableByName)]
        struct Flag {
            #[diesel(sql_type = BigInt)]
            foreign_keys: i64,
        }
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").to_string_lossy().into_owned();
        let db = Db::connect(&DatabaseSettings::new(url)).unwrap();
        // Hold several connections at once so the check covers more than the first.
        let mut held: Vec<Conn> = (0..4).map(|_| db.get().unwrap()).collect();
        for conn in &mut held {
            let Conn::Sqlite(conn) = conn else {
                panic!("a SQLite URL opened another backend")
            };
            let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
                .get_result(&mut **conn)
                .unwrap();
            assert_eq!(mode.journal_mode, "wal");
            let fk: Flag = diesel::sql_query("PRAGMA foreign_keys")
                .get_result(&mut **conn)
                .unwrap();
            assert_eq!(fk.foreign_keys, 1);
        }
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            describe("postgres://tl:secret@127.0.0.1:5432/tl"),
            "postgres://tl:***@127.0.0.1:5432/tl"
        );
        assert_eq!(describe("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(
            describe("postgres://tl:p@ss@h/db"),
            "postgres://tl:***@h/db"
        );
    }
}
