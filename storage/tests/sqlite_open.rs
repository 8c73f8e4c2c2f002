//! Opening a new SQLite database must be quiet: the pool opens several connections
//! at once, and any of them racing another for the lock used to surface as an
//! `ERROR r2d2 database is locked` line at every first start.

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
