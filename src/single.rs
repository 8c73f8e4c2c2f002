//! One server per SQLite file, and one per spool directory. A second `tasklens serve`
//! on the same SQLite file would mark the first one's running tasks `interrupted` at
//! its start and then write beside it; two nodes sharing a spool directory would
//! append to one file and each store the other's spool at its start. Both are
//! refused, by an advisory lock (`flock`) on `<file>.lock` (or `<spool_dir>/
//! tasklens-spool.lock`) that the first server holds for as long as its process
//! lives (the kernel releases it when the process ends, however it ends: no stale
//! lock after a crash).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Holds the lock until dropped (at process exit).
pub struct ServerLock {
    _file: File,
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of the SQLite file `database`, or says who holds it.
pub fn lock(database: &Path) -> Result<ServerLock> {
    take(&lock_path(database), |holder| {
        format!(
            "another Tasklens server ({holder}) is already using the SQLite database {}; run one server per SQLite file (use PostgreSQL for several)",
            database.display()
        )
    })
}

/// Takes the lock of the spool directory `dir`, or says who holds it.
pub fn lock_spool(dir: &Path) -> Result<ServerLock> {
    take(&dir.join("tasklens-spool.lock"), |holder| {
        format!(
            "another Tasklens server ({holder}) is already using the spool directory {}; give each node on this host its own spool_dir (TASKLENS_SPOOL_DIR)",
            dir.display()
        )
    })
}

fn take(path: &Path, refusal: impl FnOnce(&str) -> String) -> Result<ServerLock> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock(2) on a descriptor we own.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !taken {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => "pid unknown".to_owned(),
            pid => format!("pid {pid}"),
        };
        bail!(refusal(&holder));
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(ServerLock { _file: file })
}
