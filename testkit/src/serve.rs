//! `tasklens serve` in a child process, for the binary's tests and the bench: started
//! with a clean environment (so nothing exported in the caller's shell changes what
//! is tested or measured), awaited on its port, and stopped by PID with SIGTERM.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// `BINARY serve` listening on `127.0.0.1:port` against `database_url` with the
/// given admin token; only `PATH` is kept from the caller's environment. Add more
/// `TASKLENS_*` settings, and stdio, before spawning.
pub fn command(binary: &Path, port: u16, database_url: &str, admin_token: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TASKLENS_BIND", format!("127.0.0.1:{port}"))
        .env("TASKLENS_DATABASE_URL", database_url)
        .env("TASKLENS_ADMIN_TOKEN", admin_token);
    if database_url.starts_with("postgres") {
        // A PostgreSQL server's default spool directory, ./data, is one per host:
        // servers started together would refuse each other.
        let spool =
            std::env::temp_dir().join(format!("tasklens-spool-{}-{port}", std::process::id()));
        command.env("TASKLENS_SPOOL_DIR", spool);
    }
    command
}

/// Waits until something accepts connections on `port`; false after `timeout`.
pub fn wait_listening(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// SIGTERM, then waits for the exit; `None` if it has not exited after `timeout`.
pub fn terminate(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    // SAFETY: kill(2) on the PID of a child we have not yet waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
