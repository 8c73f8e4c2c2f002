//! The servers under test: `tasklens serve` (release build) in a child process on a
//! free port, against a SQLite file in a temporary directory or a private PostgreSQL
//! with default durability (fsync and synchronous commit on).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testkit::{free_port, serve, PgCluster};

pub const TOKEN: &str = "bench-admin-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A database for one backend's runs, removed at the end.
pub struct Database {
    pub url: String,
    _dir: tempfile::TempDir,
    _pg: Option<PgCluster>,
}

impl Database {
    pub fn create(backend: Backend) -> Result<Database> {
        let dir = tempfile::Builder::new()
            .prefix("tasklens-bench-")
            .tempdir()?;
        Ok(match backend {
            Backend::Sqlite => Database {
                url: format!("sqlite://{}", dir.path().join("bench.db").display()),
                _dir: dir,
                _pg: None,
            },
            Backend::Postgres => {
                let cluster = PgCluster::start_durable();
                testkit::create_database(&cluster.admin_url(), "bench");
                Database {
                    url: testkit::replace_database(&cluster.admin_url(), "bench"),
                    _dir: dir,
                    _pg: Some(cluster),
                }
            }
        })
    }
}

/// The release `tasklens` binary: `TASKLENS_BIN`, or the one beside this program.
pub fn tasklens_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("TASKLENS_BIN") {
        return Ok(PathBuf::from(path));
    }
    let here = std::env::current_exe()?;
    let beside = here.with_file_name("tasklens");
    if !beside.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p tasklens` or set TASKLENS_BIN",
            beside.display()
        );
    }
    Ok(beside)
}

pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(binary: &Path, db: &Database) -> Result<Server> {
        Self::start_with_ui(binary, db, None)
    }

    pub fn start_with_ui(binary: &Path, db: &Database, ui_dir: Option<&Path>) -> Result<Server> {
        Self::launch(binary, db, ui_dir, &[])
    }

    /// With these settings added (a role, a node id).
    pub fn start_env(binary: &Path, db: &Database, env: &[(&str, &str)]) -> Result<Server> {
        Self::launch(binary, db, None, env)
    }

    fn launch(
        binary: &Path,
        db: &Database,
        ui_dir: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Result<Server> {
        let port = free_port();
        let child = serve::command(binary, port, &db.url, TOKEN)
            .env(
                "TASKLENS_UI_DIR",
                ui_dir.map_or_else(|| "/nonexistent".into(), |d| d.display().to_string()),
            )
            .env("TASKLENS_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Server { child, port };
        serve::wait_listening(&mut server.child, port, Duration::from_secs(60))
            .map_err(|why| anyhow::anyhow!(why))?;
        Ok(server)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Peak resident memory since the server started (VmHWM), in MB.
    pub fn peak_rss_mb(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }

    /// SIGTERM, then wait for the clean exit (every record flushed).
    pub fn stop(mut self) -> Result<()> {
        match serve::terminate(&mut self.child, Duration::from_secs(120))? {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("the server exited with {status}"),
            None => bail!("the server did not stop within 120 s of SIGTERM"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
