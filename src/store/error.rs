//! The store's error: what failed, and whether a retry may succeed.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or asked us to retry (connection lost, pool exhausted,
    /// shutting down, serialisation failure): nothing was written; the caller may retry.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The session was consumed by a concurrent request.
    #[error("session already consumed")]
    SessionConsumed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database url (want sqlite:// or postgres://)")]
    UnsupportedUrl,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if matches!(e, sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) {
            // E.g. an id column whose value lost its prefix (see `ids`).
            StoreError::Corrupt(e.to_string())
        } else if is_transient(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}

/// Errors after which nothing was decided and a retry may succeed.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // PostgreSQL: class 08 connection exception, 57P0x shutdown / cannot connect now,
            // 40001 serialization failure, 40P01 deadlock. SQLite: 5 BUSY, 6 LOCKED (and extended codes).
            code.starts_with("08")
                || code.starts_with("57P0")
                || code == "40001"
                || code == "40P01"
                || code == "5"
                || code == "6"
                || code
                    .parse::<u32>()
                    .is_ok_and(|c| c & 0xff == 5 || c & 0xff == 6)
        }
        _ => false,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
