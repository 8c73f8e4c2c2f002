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

impl StorageError {
    /// Whether retrying the same write can never succeed: the database refuses the
    /// rows themselves (a constraint, such as the task's row being gone, or a value
    /// it cannot store), as opposed to being unreachable, busy or full.
    pub fn is_refusal(&self) -> bool {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        match self {
            StorageError::Query(Error::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    Kind::ForeignKeyViolation | Kind::CheckViolation | Kind::NotNullViolation
                ) || {
                    let message = info.message().to_ascii_lowercase();
                    [
                        "violates foreign key constraint",
                        "foreign key constraint failed",
                        "invalid byte sequence",
                        "has no equivalent in encoding",
                        "unsupported unicode escape",
                        "value too long",
                    ]
                    .iter()
                    .any(|m| message.contains(m))
                }
            }
            StorageError::Query(Error::SerializationError(_)) => true,
            _ => false,
        }
    }

    /// Whether the database is there but taken for now: SQLite's write lock held
    /// past the busy timeout, PostgreSQL's lock timeout, or every pooled connection
    /// in use. The same request may well succeed a moment later.
    pub fn is_busy(&self) -> bool {
        use diesel::result::Error;
        match self {
            StorageError::Query(Error::DatabaseError(_, info)) => {
                let message = info.message().to_ascii_lowercase();
                [
                    "database is locked",
                    "database table is locked",
                    "database is busy",
                    "canceling statement due to lock timeout",
                ]
                .iter()
                .any(|m| message.contains(m))
            }
            StorageError::Pool(_) => true,
            _ => false,
        }
    }
}
