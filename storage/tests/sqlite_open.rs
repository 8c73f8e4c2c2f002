//! Opening a new SQLite database must be quiet: the pool opens several connections
//! at once, and any of them racing another for the lock used to surface as an
//! `ERROR r2d2 database is locked` line at every first start. And the first open
//! puts SQLite in its multi-thread mode. Every test here opens through `Db::connect`
//! before anything else touches SQLite, as the server does.

use std::sync::Mutex;

use storage::{DatabaseSettings, Db};

static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            ERRORS.lock().unwrap().push(format!(
                "{} {}: {}",
                record.level(),
                record.target(),
                record.args()
            ));
        }
    }
    fn flush(&self) {}
}

#[test]
fn a_new_sqlite_database_opens_without_lock_errors() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..40 {
        let path = dir.path().join(format!("fresh-{i}/tasklens.db"));
        let db = Db::connect(&DatabaseSettings {
            pool_max_size: 8,
            ..DatabaseSettings::new(path.to_string_lossy())
        })
        .expect("a fresh database opens");
        drop(db);
    }
    let errors = ERRORS.lock().unwrap();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_first_connect_puts_sqlite_in_multi_thread_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasklens.db");
    let _db = Db::connect(&DatabaseSettings::new(path.to_string_lossy())).unwrap();
    assert_eq!(storage::db::sqlite_multithreaded(), Some(true));

    // Checked by SQLite itself: a connection opened with the process's default mode
    // has no mutex of its own in multi-thread mode (and has one when serialized).
    let name = std::ffi::CString::new(path.to_string_lossy().as_bytes()).unwrap();
    let mut handle: *mut libsqlite3_sys::sqlite3 = std::ptr::null_mut();
    // SAFETY: a plain open and close of a connection this test alone uses.
    unsafe {
        let rc = libsqlite3_sys::sqlite3_open_v2(
            name.as_ptr(),
            &mut handle,
            libsqlite3_sys::SQLITE_OPEN_READWRITE,
            std::ptr::null(),
        );
        assert_eq!(rc, libsqlite3_sys::SQLITE_OK);
        let mutex = libsqlite3_sys::sqlite3_db_mutex(handle);
        libsqlite3_sys::sqlite3_close(handle);
        assert!(mutex.is_null(), "the connection is serialized");
    }
}
