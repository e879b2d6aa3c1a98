//! The embedded SQLite backend: one file, WAL mode, foreign keys on, migrations
//! applied at start-up. Every mutation runs in a `BEGIN IMMEDIATE` transaction so a
//! read-then-write (such as the token limit check) cannot be raced by another writer,
//! including the admin CLI working on the same file.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::error::{Result, StoreError};
use crate::health::Health;
use crate::seal::MasterKey;

/// Nothing to add to a read-then-write: `BEGIN IMMEDIATE` already holds the file.
macro_rules! row_lock {
    () => {
        ""
    };
}

mod dialect;
mod file;
mod migrate;
mod writer;
// The shared queries, compiled once more for this backend: that is the point.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

/// The SQLite store. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Seals and unseals LMv1 access keys.
    key: Arc<MasterKey>,
    /// The database file as opened: writes commit only while it is still this file.
    file: Arc<file::DbFile>,
    /// Whether writes are going through.
    health: Arc<Health>,
    /// The queue of writers and the connection they write on.
    writers: writer::Writers,
}

/// A database URL keygate understands for SQLite: `sqlite://PATH`, `sqlite:PATH` or a
/// plain path. Returns `None` for anything else.
pub fn sqlite_path(url: &str) -> Option<&str> {
    if url.contains("://") && !url.starts_with("sqlite://") {
        return None;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty()).then_some(path)
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`, applies migrations and
    /// checks `key` against the store's check value (recording it on a new store).
    pub async fn open(path: &str, key: MasterKey) -> Result<Self> {
        // Created (or tightened) to 0600 before SQLite opens it: it holds password hashes,
        // token digests and sealed keys, and SQLite gives its WAL and shared-memory
        // files the database file's mode.
        file::create_private(std::path::Path::new(path))?;
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(StoreError::Database)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a success response means the change survives a power cut too.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Rows cross from SQLite's worker thread in batches; larger batches cut the
            // per-row hand-off cost of loading the token index.
            .row_buffer_size(1024);
        let pool = SqlitePoolOptions::new()
            // Reads; writes have a connection of their own (see `writer`).
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            // A connection whose transaction could not be rolled back (SQLite may end a
            // transaction on its own after SQLITE_FULL or an I/O error, and sqlx then
            // still counts it as open) is closed rather than handed to the next write.
            .before_acquire(|conn, _| {
                let ok = crate::health::reusable(conn);
                Box::pin(async move { Ok(ok) })
            })
            // The pool already pings every connection as it is released (which also
            // carries out a rollback queued by a dropped transaction); an in-process
            // SQLite connection needs no second ping when it is taken again.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        migrate::run(&pool).await?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        if !sql::setup::master_key_matches(&mut tx, &key).await? {
            return Err(StoreError::MasterKey(format!(
                "the master key does not match the one the database {path} was set up with; \
                 start keygate with the original key (--master-key-file)"
            )));
        }
        tx.commit().await?;
        let file = Arc::new(file::DbFile::opened(std::path::Path::new(path))?);
        let checked = file.clone();
        let writers =
            writer::Writers::open(options, pool.clone(), Arc::new(move || checked.check())).await?;
        Ok(Self {
            pool,
            key: Arc::new(key),
            file,
            health: Arc::new(Health::default()),
            writers,
        })
    }

    /// The underlying pool, for tests and benchmarks that inspect the file.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A `BEGIN IMMEDIATE` transaction on the write connection, once the writers
    /// queued before it are done: it takes the file's write lock at once, so a
    /// read-then-write inside it cannot be raced by another writer.
    async fn write(&self) -> Result<WriteTx> {
        Ok(WriteTx {
            tx: self.writers.begin().await?,
        })
    }

    /// A write no follower reads: SQLite has one kind of write transaction.
    async fn unlocked(&self) -> Result<WriteTx> {
        self.write().await
    }

    /// One read transaction: WAL gives every statement in it the same view.
    async fn snapshot_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin().await?)
    }

    /// That the database file is still the one opened and has room; a failure is noted
    /// in the store's health.
    fn check_file(&self) -> Result<()> {
        self.file
            .check()
            .and_then(|()| self.file.space())
            .inspect_err(|e| {
                if let StoreError::Degraded(f) = e {
                    self.health.fault(*f);
                }
            })
    }

    /// No announcements to follow: the followers poll.
    #[allow(clippy::unused_self)]
    fn watch(
        &self,
        on_change: Arc<dyn Fn() + Send + Sync>,
        on_lost: Arc<dyn Fn() + Send + Sync>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let _ = (on_change, on_lost, stop);
        None
    }
}

/// A write transaction that commits only while the database file on disk is still the
/// one this store opened and can be written: a change committed into a deleted file
/// would be acknowledged and then lost at the next start.
pub(crate) struct WriteTx {
    tx: writer::WriteConn,
}

impl WriteTx {
    /// Commits (the writers check the file before every commit, shared or not).
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}
