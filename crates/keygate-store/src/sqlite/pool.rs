//! How connections to the database file are opened, and the connections reads use.
//!
//! A read runs on the thread that asks for it (see `db`): it takes a free connection,
//! runs its statements and lets the connection go. WAL gives each read transaction
//! its own snapshot, so reads never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::OpenFlags;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::db::Conn;
use crate::error::Result;

/// Read connections: reads that overlap beyond these wait for one.
const READERS: usize = 4;

/// Prepared statements kept per connection (keygate's queries number about a hundred).
const STATEMENTS: usize = 128;

/// Bytes the write-ahead log is cut back to when it starts over: above what a second
/// of writes fills at thousands of creates a second (see `writer`), so in steady use
/// the log is rewritten in place rather than grown.
const LOG_LIMIT: i64 = 128 * 1024 * 1024;

/// How a connection to the store's file is opened.
#[derive(Debug, Clone)]
pub(super) struct Opener {
    path: PathBuf,
    busy: Duration,
    auto_checkpoint: bool,
}

impl Opener {
    /// Connections to `path`: WAL, `synchronous=FULL` (a success response means the
    /// change survives a power cut too), foreign keys on, waiting up to 5 s for another
    /// process's write lock.
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            busy: Duration::from_secs(5),
            auto_checkpoint: true,
        }
    }

    /// The same, with SQLite's automatic checkpoints off (the writer's: see `writer`).
    pub(super) fn without_checkpoints(mut self) -> Self {
        self.auto_checkpoint = false;
        self
    }

    /// The same, waiting at most `busy` for another process's lock.
    #[cfg(test)]
    pub(super) fn busy_timeout(mut self, busy: Duration) -> Self {
        self.busy = busy;
        self
    }

    /// How long a connection waits for another process's lock.
    pub(super) fn busy(&self) -> Duration {
        self.busy
    }

    /// Opens a connection. Never creates the file: a database deleted under the running
    /// process must not be replaced by a new empty one.
    pub(super) fn open(&self) -> Result<Conn> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Conn::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.busy)?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(crate::StoreError::Corrupt(
                "the database file cannot be put in WAL mode",
            ));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if !self.auto_checkpoint {
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            // When the writer starts the log over, a log grown past this (by a burst,
            // or by a version of keygate whose log never started over) is cut back.
            conn.pragma_update(None, "journal_size_limit", LOG_LIMIT)?;
        }
        Ok(conn)
    }
}

/// The read connections; clones share them.
#[derive(Debug, Clone)]
pub(crate) struct ReadPool {
    conns: Arc<[Arc<Mutex<Conn>>]>,
    next: Arc<AtomicUsize>,
}

impl ReadPool {
    /// [`READERS`] connections opened with `opener`.
    pub(super) fn open(opener: &Opener) -> Result<Self> {
        let conns = (0..READERS)
            .map(|_| opener.open().map(|c| Arc::new(Mutex::new(c))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conns: conns.into(),
            next: Arc::default(),
        })
    }

    /// A connection for one read (or one read transaction): an idle one, or the next
    /// in turn once it is free.
    pub(crate) async fn acquire(&self) -> Result<ReadConn> {
        for c in self.conns.iter() {
            if let Ok(guard) = c.clone().try_lock_owned() {
                return ReadConn::ready(guard);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len().max(1);
        match self.conns.get(i) {
            Some(c) => ReadConn::ready(c.clone().lock_owned().await),
            None => Err(crate::StoreError::Unavailable),
        }
    }
}

/// A read connection, the caller's until dropped.
#[derive(Debug)]
pub(crate) struct ReadConn {
    conn: OwnedMutexGuard<Conn>,
}

impl ReadConn {
    fn ready(conn: OwnedMutexGuard<Conn>) -> Result<Self> {
        // A read transaction left open (an error part way) ends before the next read.
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK")?;
        }
        Ok(Self { conn })
    }

    /// Begins a read transaction: every statement until [`ReadConn::commit`] sees one
    /// snapshot of the file.
    pub(super) fn begin(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    /// Ends the read transaction.
    #[allow(clippy::unused_async)] // as sqlx's `Transaction::commit`: the shared code awaits it
    pub(crate) async fn commit(self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }
}

impl std::ops::Deref for ReadConn {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl std::ops::DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}
