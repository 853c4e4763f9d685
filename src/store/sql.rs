//! The SQL store: one implementation of every store trait, over `sqlx::AnyPool`, for PostgreSQL
//! (production replicas) and SQLite (the embedded zero-setup default). The schema and the SQL are
//! the same on both (`$n` parameters, Unix-millisecond BIGINT times, text ids, blobs), so each method
//! is written once, in the module of its aggregate; the few statements that differ come from
//! [`Dialect`].

use super::{StoreError, StoreResult};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::AnyConnection;
use sqlx::{AnyPool, Row};
use std::str::FromStr;
use std::time::Duration;

static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite writers wait this long for the write lock before failing with BUSY.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database is behind the pool, and the statements in which the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The dialect of a database URL: `sqlite:…` or `postgres://…`.
    pub fn of_url(url: &str) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }

    /// How a write transaction begins. PostgreSQL: plain BEGIN (READ COMMITTED). SQLite: BEGIN
    /// IMMEDIATE takes the single write lock up front, which serialises writers (and so the audit
    /// chain) and avoids the deadlock of two deferred transactions upgrading at once.
    fn begin(self) -> &'static str {
        match self {
            Dialect::Postgres => "BEGIN",
            Dialect::Sqlite => "BEGIN IMMEDIATE",
        }
    }

    /// The statement (`$1`: tenant id) that serialises the audit appends of one tenant until the
    /// transaction ends, so two replicas never fork the chain. PostgreSQL: a transaction-scoped
    /// advisory lock (selected from, as the Any driver cannot decode `void`). SQLite: none needed,
    /// writers are serialised by BEGIN IMMEDIATE.
    pub(super) fn audit_chain_lock(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => {
                Some("SELECT 1 AS locked FROM pg_advisory_xact_lock(hashtext($1))")
            }
            Dialect::Sqlite => None,
        }
    }

    /// The statement that orders the gallery change feed: held until the transaction ends, so
    /// feed rows commit in the order of their sequence numbers and a poller reading `seq > last`
    /// never skips one (docs/architecture.md, "The gallery feed"). PostgreSQL: a transaction-scoped
    /// advisory lock in the two-key space (apart from the audit chain's one-key locks), taken as the
    /// last statement before commit. SQLite: none needed, writers are serialised.
    pub(super) fn gallery_feed_lock(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some("SELECT 1 AS locked FROM pg_advisory_xact_lock(21, 0)"),
            Dialect::Sqlite => None,
        }
    }

    /// Suffix of a SELECT that locks the rows it reads until the transaction ends (SQLite's
    /// immediate transaction already holds the database's write lock).
    pub(super) fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// Suffix of a SELECT that claims due work: rows another replica has locked are skipped.
    pub(super) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Dialect::Postgres => &PG_MIGRATOR,
            Dialect::Sqlite => &SQLITE_MIGRATOR,
        }
    }
}

/// The store over one connection pool. Its methods are in the modules of the aggregates
/// (`tenants`, `sessions`, `enrollments`, …), one definition each.
pub struct SqlStore {
    pub(super) pool: AnyPool,
    pub(super) dialect: Dialect,
}

impl SqlStore {
    /// Opens the database named by the URL (`sqlite://PATH` or `postgres://…`). A SQLite database
    /// file (and its directory) is created if missing, in WAL mode, with foreign keys enforced.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of_url(url)?;
        let options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout);
        let pool = match dialect {
            Dialect::Postgres => options.connect(url).await?,
            Dialect::Sqlite => {
                prepare_sqlite(url).await?;
                options
                    .after_connect(|conn, _| Box::pin(sqlite_session_pragmas(conn)))
                    .connect(url)
                    .await?
            }
        };
        Ok(Self { pool, dialect })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A write transaction, begun as the dialect needs.
    pub(super) async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.pool.begin_with(self.dialect.begin()).await?)
    }
}

/// Creates the SQLite database (and its directory) if missing and switches it to WAL, once, on a
/// native connection: the Any driver opens connections from the URL alone, and the journal mode is a
/// property of the database file that every later connection inherits.
async fn prepare_sqlite(url: &str) -> StoreResult<()> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions, Connection};
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    if let Some(dir) = options
        .get_filename()
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    }
    options.connect().await?.close().await?;
    Ok(())
}

/// The per-connection settings of a SQLite connection (the native driver's options, which a URL
/// cannot carry).
async fn sqlite_session_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    let busy = format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis());
    sqlx::query(&busy).execute(&mut *conn).await?;
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The database itself: which backend, its schema, whether it answers.
#[async_trait::async_trait]
pub trait DatabaseStore: Send + Sync {
    fn backend(&self) -> &'static str;
    async fn migrate(&self) -> StoreResult<()>;
    /// The database answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;
    /// Every migration this binary knows is applied.
    async fn migrations_current(&self) -> StoreResult<bool>;
}

#[async_trait::async_trait]
impl DatabaseStore for SqlStore {
    fn backend(&self) -> &'static str {
        self.dialect.name()
    }

    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> StoreResult<()> {
        self.dialect.migrator().run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrations_current(&self) -> StoreResult<bool> {
        let applied: Vec<i64> =
            sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>("version"))
                .collect::<Result<_, _>>()?;
        Ok(self
            .dialect
            .migrator()
            .iter()
            .all(|m| applied.contains(&m.version)))
    }
}

/// A 32-byte hash column.
pub(super) fn hash32(bytes: Vec<u8>) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sqlite_store_is_created_in_wal_mode_with_its_connection_settings() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/store.db", dir.path().display());
        let store = SqlStore::connect(&url, 2, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(store.dialect(), Dialect::Sqlite);
        store.migrate().await.unwrap();
        assert!(store.migrations_current().await.unwrap());
        let mut conn = store.pool().acquire().await.unwrap();
        let pragma = |name: &'static str| format!("PRAGMA {name}");
        let journal: String = sqlx::query(&pragma("journal_mode"))
            .fetch_one(&mut *conn)
            .await
            .unwrap()
            .get(0);
        assert_eq!(journal, "wal");
        let foreign_keys: i64 = sqlx::query(&pragma("foreign_keys"))
            .fetch_one(&mut *conn)
            .await
            .unwrap()
            .get(0);
        assert_eq!(foreign_keys, 1);
        let busy: i64 = sqlx::query(&pragma("busy_timeout"))
            .fetch_one(&mut *conn)
            .await
            .unwrap()
            .get(0);
        assert_eq!(busy, 10_000);
    }

    #[test]
    fn urls_name_their_dialect() {
        assert_eq!(Dialect::of_url("sqlite::memory:").unwrap(), Dialect::Sqlite);
        assert_eq!(
            Dialect::of_url("postgresql://u@h/db").unwrap(),
            Dialect::Postgres
        );
        assert!(matches!(
            Dialect::of_url("mysql://u@h/db"),
            Err(StoreError::UnsupportedUrl)
        ));
    }
}
