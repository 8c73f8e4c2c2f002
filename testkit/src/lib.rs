//! Test support shared by the storage, engine and gateway test suites.
//!
//! - [`backends`] lists the database backends this run tests: SQLite always, and
//!   PostgreSQL when `TASKLENS_TEST_PG_URL` points at a server (the README's test
//!   command starts one). With `TASKLENS_TEST_REQUIRE_PG=1` a missing URL is a failure,
//!   not a skip, so CI cannot silently test one backend only.
//! - [`FreshDb`] is an empty database of either backend, removed on drop.
//! - [`PgCluster`] is a private PostgreSQL server (`initdb` + `pg_ctl` on a free
//!   loopback port) that a test may stop and start, stopped by PID on drop.
//! - [`browser::Browser`] drives headless Chromium over WebDriver.

pub mod browser;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;

/// Names the backends under test: `"sqlite"` and, when configured, `"postgres"`.
pub fn backends() -> Vec<&'static str> {
    let mut out = vec!["sqlite"];
    match std::env::var("TASKLENS_TEST_PG_URL") {
        Ok(url) if !url.trim().is_empty() => out.push("postgres"),
        _ if std::env::var("TASKLENS_TEST_REQUIRE_PG").is_ok_and(|v| v == "1") => {
            panic!("TASKLENS_TEST_REQUIRE_PG=1 but TASKLENS_TEST_PG_URL is not set")
        }
        _ => eprintln!(
            "note: TASKLENS_TEST_PG_URL is not set; PostgreSQL cases are skipped (the README's test command sets it)"
        ),
    }
    out
}

/// An empty database for one test, dropped with it.
pub struct FreshDb {
    pub url: String,
    pub backend: &'static str,
    /// Holds the SQLite file's directory.
    pub dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl FreshDb {
    /// A new database of `backend` (`"sqlite"` or `"postgres"`).
    pub fn new(backend: &'static str) -> FreshDb {
        match backend {
            "sqlite" => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("tasklens.db").display());
                FreshDb {
                    url,
                    backend,
                    dir: Some(dir),
                    pg: None,
                }
            }
            "postgres" => {
                let admin = std::env::var("TASKLENS_TEST_PG_URL")
                    .expect("TASKLENS_TEST_PG_URL should point at a PostgreSQL server");
                let name = format!("tl_test_{}", uuid::Uuid::new_v4().simple());
                create_database(&admin, &name);
                FreshDb {
                    url: replace_database(&admin, &name),
                    backend,
                    dir: None,
                    pg: Some((admin, name)),
                }
            }
            other => panic!("unknown backend {other}"),
        }
    }

    /// A scratch directory that lives as long as this database.
    pub fn scratch_dir(&mut self) -> PathBuf {
        if self.dir.is_none() {
            self.dir = Some(tempfile::tempdir().expect("a temporary directory"));
        }
        self.dir.as_ref().unwrap().path().to_path_buf()
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut conn) = diesel::PgConnection::establish(admin) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// SQLite's write lock on a database file, held as another process would hold it
/// (`BEGIN EXCLUSIVE`): readers go on, writers wait and fail. Released when dropped.
pub struct SqliteWriteLock(diesel::SqliteConnection);

impl SqliteWriteLock {
    pub fn take(path: &Path) -> SqliteWriteLock {
        let mut conn = diesel::SqliteConnection::establish(&path.display().to_string())
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        conn.batch_execute("PRAGMA busy_timeout = 10000; BEGIN EXCLUSIVE")
            .expect("the write lock");
        SqliteWriteLock(conn)
    }
}

impl Drop for SqliteWriteLock {
    fn drop(&mut self) {
        let _ = self.0.batch_execute("COMMIT");
    }
}

/// Sets the largest file process `pid` may write (`RLIMIT_FSIZE`), `None` for no
/// limit: a disk that is full, for that process only.
pub fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let value = bytes.unwrap_or(libc::RLIM_INFINITY);
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system call on a struct that lives across it.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Creates database `name` on the server at `admin_url`.
pub fn create_database(admin_url: &str, name: &str) {
    let mut conn = diesel::PgConnection::establish(admin_url)
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
}

/// Ends the connections to the database of `url` whose `application_name` is
/// `name` (as if the network dropped them); how many there were.
pub fn terminate_connections(url: &str, name: &str) -> usize {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Ended {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        ended: i64,
    }
    let mut conn = diesel::PgConnection::establish(url)
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url}: {e}"));
    let row: Ended = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS ended FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .get_result(&mut conn)
    .unwrap_or_else(|e| panic!("cannot end connections named {name:?}: {e}"));
    row.ended as usize
}

/// The same URL pointing at database `name`.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; bind it soon), never the same
/// twice in one process. Taken below the kernel's ephemeral range (32768 and up on
/// Linux), which port-0 binds and every outgoing connection draw from: a port
/// found free there can be a client's by the time a server binds it, and a server
/// that cannot bind exits after another test's server answered on that port.
///
/// The probe binds without listening: a listening probe accepts connections, and
/// a child forked meanwhile by another thread holds it open until its `exec`.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Test binaries of one run start apart in this range (by pid).
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(997) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if bindable(port) {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + SPAN)
}

/// Whether a server could bind `127.0.0.1:port` now: bound (with `SO_REUSEADDR`, as
/// the standard library's listeners are) but never listening, and closed at once.
fn bindable(port: u16) -> bool {
    use socket2::{Domain, Socket, Type};
    let Ok(socket) = Socket::new(Domain::IPV4, Type::STREAM, None) else {
        return false;
    };
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    socket.set_reuse_address(true).is_ok() && socket.bind(&address.into()).is_ok()
}

/// A private PostgreSQL server in a temporary directory, on a free loopback port.
pub struct PgCluster {
    pub port: u16,
    pub data_dir: PathBuf,
    bin_dir: PathBuf,
    _root: Option<tempfile::TempDir>,
    as_postgres_user: bool,
}

impl PgCluster {
    /// Runs `initdb` in a new temporary directory and starts the server, tuned for
    /// tests (no fsync: a crash of the test machine loses nothing anyone needs).
    pub fn start() -> PgCluster {
        Self::start_with(false)
    }

    /// Like [`PgCluster::start`], but with PostgreSQL's default durability (fsync,
    /// synchronous commit): what benchmarks of "durable" must measure.
    pub fn start_durable() -> PgCluster {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> PgCluster {
        let root = tempfile::Builder::new()
            .prefix("tasklens-pg-")
            .tempdir()
            .expect("a temporary directory");
        let mut cluster = PgCluster::init_with(root.path(), durable);
        cluster._root = Some(root);
        cluster.start_server();
        cluster
    }

    /// Runs `initdb` under `root` (which must exist) without starting the server.
    pub fn init(root: &Path) -> PgCluster {
        Self::init_with(root, false)
    }

    fn init_with(root: &Path, durable: bool) -> PgCluster {
        let bin_dir = pg_bin_dir();
        // initdb refuses to run as root; the postgresql package's `postgres` user owns it then.
        let as_postgres_user = unsafe { libc::geteuid() } == 0;
        let data_dir = root.join("data");
        if as_postgres_user {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(root));
        }
        let mut cluster = PgCluster {
            port: free_port(),
            data_dir,
            bin_dir,
            _root: None,
            as_postgres_user,
        };
        let mut initdb = cluster.command("initdb");
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
                "-D",
            ])
            .arg(&cluster.data_dir);
        run(&mut initdb);
        let conf = if durable {
            "\nmax_connections = 300\nshared_buffers = 256MB\n"
        } else {
            "\nfsync = off\nfull_page_writes = off\nsynchronous_commit = off\nmax_connections = 300\nshared_buffers = 128MB\n"
        };
        let conf_path = cluster.data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text.push_str(conf);
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        cluster.port = free_port();
        cluster
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin_dir.join(tool);
        if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.data_dir.join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
                self.port
            ))
            .args(["-w", "-t", "60", "start"]);
        run(&mut pg_ctl);
        let deadline = Instant::now() + Duration::from_secs(30);
        while diesel::PgConnection::establish(&self.admin_url()).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not come up on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop_server(&self) {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        let _ = pg_ctl.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }

    /// The postmaster's PID, from `postmaster.pid`.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data_dir.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self._root.is_none() {
            return; // not ours to stop (opened by `init` for a caller that manages it)
        }
        if let Some(pid) = self.pid() {
            unsafe { libc::kill(pid, libc::SIGQUIT) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Where `initdb` and `pg_ctl` live: `TASKLENS_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), else `PATH`.
pub fn pg_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TASKLENS_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match which {
        Some(path) => PathBuf::from(path).parent().unwrap().to_path_buf(),
        None => panic!("PostgreSQL's initdb was not found; install the postgresql package"),
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            replace_database("postgres://u@h:5/postgres", "x"),
            "postgres://u@h:5/x"
        );
        assert_eq!(
            replace_database("postgres://u@h:5", "x"),
            "postgres://u@h:5/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
