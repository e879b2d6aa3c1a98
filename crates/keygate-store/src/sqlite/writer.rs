//! The one connection every SQLite write goes through, and the queue in front of it.
//!
//! SQLite lets one writer in at a time. Pooled connections racing for that lock each
//! sleep in SQLite's busy handler and retry, which put a 200 ms tail on concurrent
//! writes; and a pooled connection costs a second round trip to its worker thread on
//! every release (sqlx pings it). Here writers wait their turn in a fair (first come,
//! first served) queue inside the process, and then use a connection kept for writes
//! alone: no acquire, no release ping, no busy sleep (other processes, such as the
//! admin CLI, still meet SQLite's own lock and its busy timeout).
//!
//! Checkpoints (copying the write-ahead log back into the database file, an fsync of
//! its own) are taken off the write path too: SQLite would run one inside whichever
//! commit found the log past 1,000 pages (a token create writes about ten, most of
//! them index pages scattered by the random digests), stalling that request for
//! 30–80 ms about once in a hundred creates. The write connection has automatic
//! checkpoints off, and every [`CHECKPOINT_EVERY`] commits a passive checkpoint (which
//! never waits for a writer) runs on a pooled connection in the background. Its fsync
//! can still delay a commit's own on the same file system, so checkpoints are rare:
//! measured with 8 clients creating tokens, one every 64 commits left p99 at 15x p50,
//! one every 1,000 at 2x (`scripts/bench-writes`).
//!
//! A [`WriteTx`] dropped before its commit (an error, a request cancelled) is rolled
//! back at once by a task of its own, so the file's write lock is not held until the
//! next write; the next writer also rolls back anything still open. A connection whose
//! rollback or `BEGIN` fails is replaced (never by a new empty file: the reconnect does
//! not create one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use sqlx::ConnectOptions as _;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::Result;

/// The write connection and what is known of its state.
#[derive(Debug)]
pub(super) struct Writer {
    conn: SqliteConnection,
    /// A transaction was begun and not ended.
    open: bool,
    /// Its last rollback failed: it is replaced before the next write.
    broken: bool,
}

/// Commits between two background checkpoints (the log stays within tens of MB).
pub(super) const CHECKPOINT_EVERY: u32 = 1000;

/// The background checkpoints' state.
#[derive(Debug, Default)]
struct Checkpoints {
    commits: AtomicU32,
    running: AtomicBool,
}

/// The queue of writers and the connection behind it; clones share both.
#[derive(Debug, Clone)]
pub(super) struct Writers {
    writer: Arc<Mutex<Writer>>,
    options: Arc<SqliteConnectOptions>,
    /// Where checkpoints run (a read connection: a passive checkpoint takes no write
    /// lock).
    pool: SqlitePool,
    checkpoints: Arc<Checkpoints>,
}

impl Writers {
    /// Opens the write connection with `options` (the pool's own, automatic
    /// checkpoints off); checkpoints run on `pool`.
    pub(super) async fn open(options: SqliteConnectOptions, pool: SqlitePool) -> Result<Self> {
        // The file exists by now (the pool created it): a reconnect must never create
        // an empty one in place of a database deleted under the running process.
        let options = options
            .pragma("wal_autocheckpoint", "0")
            .create_if_missing(false);
        let conn = options.connect().await?;
        Ok(Self {
            writer: Arc::new(Mutex::new(Writer {
                conn,
                open: false,
                broken: false,
            })),
            options: Arc::new(options),
            pool,
            checkpoints: Arc::default(),
        })
    }

    /// Counts a commit; every [`CHECKPOINT_EVERY`] commits, starts a checkpoint unless
    /// one is still running.
    fn committed(&self) {
        let n = self.checkpoints.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(CHECKPOINT_EVERY)
            || self.checkpoints.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.checkpoints.running.store(false, Ordering::Release);
            return;
        };
        let (pool, checkpoints) = (self.pool.clone(), self.checkpoints.clone());
        rt.spawn(async move {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "a background checkpoint failed; the next one retries");
            }
            checkpoints.running.store(false, Ordering::Release);
        });
    }

    /// Waits for this writer's turn, then begins `BEGIN IMMEDIATE`.
    pub(super) async fn begin(&self) -> Result<WriteConn> {
        let mut w = self.writer.clone().lock_owned().await;
        if w.open {
            rollback(&mut w).await;
        }
        if w.broken {
            w.conn = self.options.connect().await?;
            w.broken = false;
        }
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut w.conn).await {
            // Busy past the timeout (another process), or a connection that no longer
            // works: either way the next write starts on a fresh one.
            w.broken = true;
            return Err(e.into());
        }
        w.open = true;
        Ok(WriteConn {
            w,
            writers: self.clone(),
        })
    }
}

/// Ends an open transaction; a connection that cannot is marked for replacement.
async fn rollback(w: &mut Writer) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(&mut w.conn).await {
        tracing::warn!(error = %e, "a write transaction could not be rolled back; reconnecting");
        w.broken = true;
    }
    w.open = false;
}

/// A write connection inside `BEGIN IMMEDIATE`, this writer's until it is committed
/// or dropped.
pub(super) struct WriteConn {
    w: OwnedMutexGuard<Writer>,
    writers: Writers,
}

impl WriteConn {
    /// Commits. On failure the transaction stays open and is rolled back when this
    /// value is dropped.
    pub(super) async fn commit(mut self) -> Result<()> {
        sqlx::query("COMMIT").execute(&mut self.w.conn).await?;
        self.w.open = false;
        self.writers.committed();
        Ok(())
    }
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        if !self.w.open {
            return;
        }
        // The guard is released right after this; the task takes the connection back
        // (or finds the next writer already rolled it back).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let writer = self.writers.writer.clone();
            rt.spawn(async move {
                let mut w = writer.lock().await;
                if w.open {
                    rollback(&mut w).await;
                }
            });
        }
    }
}

impl std::ops::Deref for WriteConn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.w.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.w.conn
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    async fn setup(dir: &tempfile::TempDir) -> (Writers, SqlitePool, SqliteConnectOptions) {
        let options = SqliteConnectOptions::from_str("sqlite:")
            .unwrap_or_else(|e| panic!("{e}"))
            .filename(dir.path().join("w.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .connect_with(options.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let w = Writers::open(options.clone(), pool.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (w, pool, options)
    }

    async fn count(pool: &SqlitePool) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_write_dropped_before_its_commit_is_rolled_back_and_frees_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (w, pool, options) = setup(&dir).await;
        let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(tx);
        assert_eq!(
            count(&pool).await,
            0,
            "nothing of the dropped write is seen"
        );
        // Another process's writer (no busy timeout) gets the file once the rollback
        // task has run, without any write of this process coming first.
        let mut other = options
            .clone()
            .busy_timeout(Duration::ZERO)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut got = false;
        for _ in 0..200 {
            if sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut other)
                .await
                .is_ok()
            {
                got = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(got, "the dropped write still holds the file's write lock");
        sqlx::query("ROLLBACK")
            .execute(&mut other)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The queue goes on: the next write commits.
        let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count(&pool).await, 1);
    }

    #[tokio::test]
    async fn a_write_refused_while_another_process_holds_the_file_leaves_the_queue_working() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (_, pool, options) = setup(&dir).await;
        let options = options.busy_timeout(Duration::from_millis(50));
        let w = Writers::open(options.clone(), pool.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut other = options.connect().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(w.begin().await.is_err(), "the file is another's");
        sqlx::query("ROLLBACK")
            .execute(&mut other)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count(&pool).await, 1);
    }

    #[tokio::test]
    async fn writers_take_turns_and_every_commit_lands() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (w, pool, _) = setup(&dir).await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    for j in 0..20 {
                        let mut tx = w.begin().await?;
                        sqlx::query("INSERT INTO t VALUES ($1)")
                            .bind(i * 100 + j)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                    }
                    Ok::<_, crate::StoreError>(())
                })
            })
            .collect();
        for t in tasks {
            t.await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(count(&pool).await, 320);
        assert_eq!(
            w.checkpoints.commits.load(Ordering::Relaxed),
            320,
            "every commit counted towards the next checkpoint"
        );
    }
}
