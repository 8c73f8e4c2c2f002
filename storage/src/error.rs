//! Storage errors. Any of these reaching an HTTP handler is a 5xx: bad input is
//! rejected before a query is built.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database query failed")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available")]
    Pool(#[from] r2d2::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database URL {url:?} is not usable: {reason}")]
    Url { url: String, reason: String },
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("database worker thread failed: {0}")]
    Background(String),
}
