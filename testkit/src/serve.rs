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

/// Waits until `child` itself listens on `127.0.0.1:port`: `Err` says why not (it
/// exited, or `timeout` passed).
///
/// The kernel is asked who owns the listening socket, rather than whether a
/// connection is accepted there: CI saw a connection accepted on the port while the
/// server was still starting (its first CLI call was then refused), so an accepted
/// connection does not prove the server is up.
pub fn wait_listening(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut foreign_seen = false;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!(
                "the server exited ({status}) before listening on {port}"
            ));
        }
        let listeners = listening_inodes(port);
        if !listeners.is_empty() {
            if owns_any(child.id(), &listeners) {
                return Ok(());
            }
            if !foreign_seen {
                // Not a failure: the wait goes on for the server's own socket. Said
                // once, so that a log shows the port was taken meanwhile.
                eprintln!(
                    "port {port}: a listening socket not of pid {} (inodes {listeners:?})",
                    child.id()
                );
                foreign_seen = true;
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the server did not listen on {port} within {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The inodes of the TCP sockets listening on `port` (any local address).
fn listening_inodes(port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let suffix = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let listening = fields.get(1)?.ends_with(&suffix) && *fields.get(3)? == LISTEN;
                    listening.then(|| fields.get(9)?.parse().ok())?
                })
                .collect::<Vec<u64>>()
        })
        .collect()
}

/// Whether process `pid` holds a descriptor of one of these sockets.
fn owns_any(pid: u32, inodes: &[u64]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_process_listening_on_the_port_is_not_the_server_listening() {
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = other.local_addr().unwrap().port();
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let waited = wait_listening(&mut child, port, Duration::from_millis(300));
        let _ = child.kill();
        let _ = child.wait();
        assert!(waited.unwrap_err().contains("did not listen"));
    }

    #[test]
    fn a_server_that_exits_is_said_to_have_exited() {
        let mut child = Command::new("true").spawn().unwrap();
        let port = crate::free_port();
        let waited = wait_listening(&mut child, port, Duration::from_secs(10));
        assert!(waited.unwrap_err().contains("exited"));
    }

    #[test]
    fn the_childs_own_listening_socket_is_found() {
        let port = crate::free_port();
        let script = format!(
            "import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen();time.sleep(5)"
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        let waited = wait_listening(&mut child, port, Duration::from_secs(10));
        let _ = child.kill();
        let _ = child.wait();
        waited.unwrap();
    }
}
