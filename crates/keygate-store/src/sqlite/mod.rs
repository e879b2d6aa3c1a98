//! The embedded SQLite backend: one file, WAL mode, foreign keys on, migrations
//! applied at start-up. Every mutation runs in a `BEGIN IMMEDIATE` transaction so a
//! read-then-write (such as the token limit check) cannot be raced by another writer,
//! including the admin CLI working on the same file.
//!
//! SQLite is driven through rusqlite, its statements run by the thread that makes
//! them (`db`); only what waits for the disk or another process leaves that thread's
//! tasks to others ([`blocking`]).

use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::health::Health;
use crate::seal::MasterKey;

/// Nothing to add to a read-then-write: `BEGIN IMMEDIATE` already holds the file.
macro_rules! row_lock {
    () => {
        ""
    };
}

mod db;
mod dialect;
mod file;
mod migrate;
mod pool;
mod writer;
// The shared queries, compiled once more for this backend: that is the point.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

/// The SQLite store. Cloning shares its connections.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Connections for reads.
    pool: pool::ReadPool,
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
        let path = std::path::Path::new(path);
        // Created (or tightened) to 0600 before SQLite opens it: it holds password hashes,
        // token digests and sealed keys, and SQLite gives its WAL and shared-memory
        // files the database file's mode.
        file::create_private(path)?;
        let opener = pool::Opener::new(path);
        let mut conn = opener.open()?;
        migrate::run(&mut conn)?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        // (An early return closes the connection, which rolls the transaction back.)
        if !futures_ready(sql::setup::master_key_matches(&mut conn, &key))? {
            return Err(StoreError::MasterKey(format!(
                "the master key does not match the one the database {} was set up with; \
                 start keygate with the original key (--master-key-file)",
                path.display()
            )));
        }
        conn.execute_batch("COMMIT")?;
        drop(conn);
        let file = Arc::new(file::DbFile::opened(path)?);
        let checked = file.clone();
        let pool = pool::ReadPool::open(&opener)?;
        let writers = writer::Writers::open(
            &opener.without_checkpoints(),
            Arc::new(move || checked.check()),
        )?;
        Ok(Self {
            pool,
            key: Arc::new(key),
            file,
            health: Arc::new(Health::default()),
            writers,
        })
    }

    /// Runs `f` on one of the store's read connections: for tests and benchmarks that
    /// look into (or tamper with) the file as a second program would.
    pub async fn with_connection<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let c = self.pool.acquire().await?;
        Ok(f(&c)?)
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
    async fn snapshot_tx(&self) -> Result<pool::ReadConn> {
        let mut c = self.pool.acquire().await?;
        c.begin()?;
        Ok(c)
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
    type Target = db::Conn;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Runs `f`, which may wait for the disk (or for another process's lock), without
/// holding up the other tasks of a multi-threaded runtime: tokio moves them to
/// another thread meanwhile. Elsewhere (a single-threaded runtime: the admin CLI,
/// tests) it simply runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h)
            if matches!(
                h.runtime_flavor(),
                tokio::runtime::RuntimeFlavor::MultiThread
            ) =>
        {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The output of a future that is already complete, as every future of the shared
/// queries on SQLite is (see `db`): lets code that is not async run them.
fn futures_ready<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => Err(StoreError::Corrupt(
            "a SQLite store call waited on something other than SQLite",
        )),
    }
}
