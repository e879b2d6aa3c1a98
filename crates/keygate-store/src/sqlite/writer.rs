//! The one connection every SQLite write goes through, the queue in front of it, and
//! the commits writers share.
//!
//! SQLite lets one writer in at a time. Pooled connections racing for that lock each
//! sleep in SQLite's busy handler and retry, which put a 200 ms tail on concurrent
//! writes. Here writers wait their turn in a fair (first come, first served) queue
//! inside the process, and then use a connection kept for writes alone: no busy
//! sleep (other processes, such as the admin CLI, still meet SQLite's own lock).
//!
//! **Threads.** A writer's statements run on its own thread, as every SQLite call of
//! keygate's does (see `db`): they touch memory only. What waits — the `COMMIT` for
//! the disk's fsync, a `BEGIN IMMEDIATE` for the admin CLI to let go of the file —
//! runs through [`super::blocking`], which has tokio move the runtime's other work to
//! another thread meanwhile, so requests that need no write (verifications above
//! all) never wait for a disk. A commit is not async: once begun it runs to its end,
//! and every writer of its group is answered, even if the request that asked for it
//! has gone away. Before committing alone, a writer yields once: the requests that
//! have arrived meanwhile reach the queue first and share its commit (measured with
//! 8 clients, that doubled the creates per second).
//!
//! Checkpoints (copying the write-ahead log back into the database file, an fsync of
//! its own) are taken off the write path too: SQLite would run one inside whichever
//! commit found the log past 1,000 pages (a token create writes about ten, most of
//! them index pages scattered by the random digests), stalling that request for
//! 30–80 ms about once in a hundred creates. The write connection has automatic
//! checkpoints off, and every [`CHECKPOINT_EVERY`] writes a passive checkpoint (which
//! never waits for a writer) runs in the background on a thread of its own at the
//! lowest CPU priority, with a connection of its own. Its fsync
//! can still delay a commit's own on the same file system, so checkpoints are rare:
//! measured with 8 clients creating tokens, one every 64 commits left p99 at 15x p50,
//! one every 1,000 at 2x (`scripts/bench-writes`).
//!
//! SQLite writes the log from its start again only when a transaction begins with
//! every frame already copied, which a checkpoint beside steady writes never leaves:
//! so the writer itself copies the last few frames between two transactions, at most
//! once a second ([`finish_checkpoint`]), and the log is rewritten in place instead of
//! growing without end (a growing file costs every commit's fsync more).
//!
//! A [`WriteConn`] dropped before its part is done (an error, a request cancelled) is
//! undone at once by a task of its own (rolled back to its savepoint, or the whole
//! transaction when it opened it), so the file's write lock is not held until the
//! next write, and that task commits the group waiting before it if nobody else is
//! queued; the next writer also undoes anything still unfinished. A connection whose
//! rollback or `BEGIN` fails is replaced (never by a new empty file: the reconnect
//! does not create one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use keygate_core::clock::Stopwatch;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::db::Conn;
use super::pool::Opener;
#[cfg(test)]
use super::pool::ReadPool;
use crate::error::{Result, StoreError};
use crate::health::Fault;

/// Most writers that share one commit: bounds how long the first of them waits.
pub(super) const MAX_GROUP: usize = 32;

/// Why a shared commit failed, as each writer of the group is told.
#[derive(Debug, Clone)]
enum Failure {
    Degraded(Fault),
    Unavailable,
    Other(String),
}

impl Failure {
    fn of(e: &StoreError) -> Self {
        match e {
            StoreError::Degraded(f) => Self::Degraded(*f),
            StoreError::Unavailable => Self::Unavailable,
            other => Self::Other(other.to_string()),
        }
    }

    fn into_error(self) -> StoreError {
        match self {
            Self::Degraded(f) => StoreError::Degraded(f),
            Self::Unavailable => StoreError::Unavailable,
            Self::Other(m) => StoreError::Database(sqlx::Error::Protocol(format!(
                "the shared commit failed: {m}"
            ))),
        }
    }
}

/// The writers whose parts are done and wait for their group's commit.
type Waiting = Vec<oneshot::Sender<std::result::Result<(), Failure>>>;

/// The write connection and what is known of its state.
#[derive(Debug)]
pub(super) struct Writer {
    conn: Conn,
    /// A transaction was begun and not ended.
    open: bool,
    /// The current (or last) holder's part runs inside a savepoint: it joined a group.
    savepoint: bool,
    /// The current (or last) holder has not finished its part: it is undone before
    /// anything else runs on the connection.
    unfinished: bool,
    /// The group's finished parts, waiting for the commit.
    waiting: Waiting,
    /// Its last rollback failed: it is replaced before the next write.
    broken: bool,
    /// When it last finished a background checkpoint (see [`finish_checkpoint`]).
    finished: Option<Stopwatch>,
}

/// Writes between two background checkpoints.
pub(super) const CHECKPOINT_EVERY: u32 = 1000;

/// The background checkpoints' state.
#[derive(Debug, Default)]
struct Checkpoints {
    /// Writes committed.
    commits: AtomicU32,
    /// `COMMIT`s run (fewer than writes when writers share them).
    syncs: AtomicU32,
    running: AtomicBool,
    /// A background checkpoint ended: the writer copies what was written meanwhile
    /// before its next transaction, so that transaction starts the log over.
    finish: AtomicBool,
}

/// What must hold before any commit (the database file is still the one opened and
/// can be written: a change committed into a deleted file would be acknowledged and
/// then lost).
pub(super) type BeforeCommit = Arc<dyn Fn() -> Result<()> + Send + Sync>;

/// The queue of writers and the connection behind it; clones share both.
#[derive(Clone)]
pub(super) struct Writers {
    writer: Arc<Mutex<Writer>>,
    /// Writers waiting for the connection (a writer that is done commits at once when
    /// there are none).
    queued: Arc<AtomicUsize>,
    opener: Arc<Opener>,
    checkpoints: Arc<Checkpoints>,
    before_commit: BeforeCommit,
}

impl std::fmt::Debug for Writers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writers")
            .field("queued", &self.queued)
            .field("checkpoints", &self.checkpoints)
            .finish_non_exhaustive()
    }
}

/// Counts a writer as queued until it holds the connection (or gives up waiting).
struct Queued {
    writers: Writers,
    /// Still waiting (not yet holding the connection).
    waiting: bool,
}

impl Queued {
    /// The writer holds the connection now.
    fn served(mut self) {
        self.waiting = false;
        self.writers.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.waiting && self.writers.queued.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one queued gave up: a group left open for it is committed by
            // whoever comes next, or by this task if nobody does.
            self.writers.settle_later();
        }
    }
}

impl Writers {
    /// Opens the write connection with `opener` (automatic checkpoints off; the
    /// background checkpoints open theirs with it); `before_commit` runs before every
    /// `COMMIT`, which it can refuse.
    pub(super) fn open(opener: &Opener, before_commit: BeforeCommit) -> Result<Self> {
        let conn = opener.open()?;
        // Inside the process the queue decides who writes; SQLite's own wait (for
        // another process) is taken off the runtime's threads (see `begin`).
        conn.busy_timeout(Duration::ZERO)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(Writer {
                conn,
                open: false,
                savepoint: false,
                unfinished: false,
                waiting: Vec::new(),
                broken: false,
                finished: None,
            })),
            queued: Arc::default(),
            opener: Arc::new(opener.clone()),
            checkpoints: Arc::default(),
            before_commit,
        })
    }

    /// A new write connection, as [`Writers::open`] makes it.
    fn connect(&self) -> Result<Conn> {
        let conn = self.opener.open()?;
        conn.busy_timeout(Duration::ZERO)?;
        Ok(conn)
    }

    /// Counts `n` committed writes; every [`CHECKPOINT_EVERY`], starts a checkpoint
    /// unless one is still running.
    fn committed(&self, n: u32) {
        let before = self.checkpoints.commits.fetch_add(n, Ordering::Relaxed);
        if before / CHECKPOINT_EVERY == (before + n) / CHECKPOINT_EVERY
            || self.checkpoints.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (opener, checkpoints) = (self.opener.clone(), self.checkpoints.clone());
        // A thread of its own at the lowest CPU priority: it copies some thousands of
        // pages, and on a busy machine requests come first (measured with 8 clients
        // creating tokens on one core, the checkpoint set the p99).
        let spawned = std::thread::Builder::new()
            .name("keygate-checkpoint".into())
            .spawn(move || {
                let _ = rustix::process::nice(19);
                let r = opener.open().and_then(|c| background_checkpoint(&c));
                match r {
                    Ok(()) => checkpoints.finish.store(true, Ordering::Release),
                    Err(e) => {
                        tracing::warn!(error = %e, "a background checkpoint failed; the next one retries");
                    }
                }
                checkpoints.running.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.checkpoints.running.store(false, Ordering::Release);
        }
    }

    /// Waits for this writer's turn, then begins its part: `BEGIN IMMEDIATE`, or a
    /// savepoint in the transaction a group left open.
    pub(super) async fn begin(&self) -> Result<WriteConn> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        let queued = Queued {
            writers: self.clone(),
            waiting: true,
        };
        let mut w = self.writer.clone().lock_owned().await;
        // Holding the connection now: no longer queued (and the group is this
        // writer's to commit or extend, so nothing to settle).
        queued.served();
        undo(&mut w);
        if w.broken && !w.open {
            w.conn = self.connect()?;
            w.broken = false;
        }
        // Right after a background checkpoint, or not until the next one: later, the
        // writes made meanwhile would be the writer's to copy.
        if !w.open
            && self.checkpoints.finish.swap(false, Ordering::AcqRel)
            && w.finished.is_none_or(|s| s.elapsed() >= FINISH_EVERY)
        {
            finish_checkpoint(&mut w.conn);
            w.finished = Some(Stopwatch::start());
        }
        let (statement, savepoint) = if w.open {
            ("SAVEPOINT part", true)
        } else {
            ("BEGIN IMMEDIATE", false)
        };
        // Marked before the statement runs, and put back if it fails: from here on
        // the part is this writer's to finish, or the next one's to undo.
        let was_open = w.open;
        w.open = true;
        w.savepoint = savepoint;
        w.unfinished = true;
        if let Err(e) = start(&mut w.conn, statement, self.opener.busy()) {
            w.open = was_open;
            w.savepoint = false;
            w.unfinished = false;
            if savepoint {
                // The group cannot go on in this transaction: it ends here (its
                // writers hear the outcome).
                let _ = self.commit_group(&mut w);
            } else {
                // Busy past the timeout (another process), or a connection that no
                // longer works: either way the next write starts on a fresh one.
                w.broken = true;
            }
            return Err(e);
        }
        Ok(WriteConn {
            w,
            writers: self.clone(),
        })
    }

    /// Commits the group waiting on `w` (every part in it done, the holder's too, or
    /// undone), tells every writer in it the outcome, and returns it.
    fn commit_group(&self, w: &mut Writer) -> Result<()> {
        let waiting = std::mem::take(&mut w.waiting);
        if !w.open {
            return Ok(());
        }
        let r = match (self.before_commit)() {
            Ok(()) => super::blocking(|| w.conn.execute_batch("COMMIT")).map_err(StoreError::from),
            Err(e) => Err(e),
        };
        match &r {
            Ok(()) => {
                w.open = false;
                w.savepoint = false;
                self.checkpoints.syncs.fetch_add(1, Ordering::Relaxed);
                self.committed(u32::try_from(waiting.len()).unwrap_or(u32::MAX));
                for tx in waiting {
                    let _ = tx.send(Ok(()));
                }
            }
            Err(e) => {
                // Refused, or SQLite may have kept the transaction open: it is rolled
                // back before the next write.
                w.unfinished = true;
                w.savepoint = false;
                let failure = Failure::of(e);
                for tx in waiting {
                    let _ = tx.send(Err(failure.clone()));
                }
            }
        }
        r
    }

    /// Soon, and after the writers already queued: undoes an unfinished part and
    /// commits a group nobody is left to commit.
    fn settle_later(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let writers = self.clone();
        rt.spawn(async move {
            let mut w = writers.writer.clone().lock_owned().await;
            undo(&mut w);
            if writers.queued.load(Ordering::Acquire) == 0 {
                let _ = writers.commit_group(&mut w);
            }
        });
    }
}

/// Least time between two checkpoints finished on the write path. Each holds up the
/// writes that arrive meanwhile while it copies the last frames and syncs the database
/// file (measured with 8 clients creating tokens: 1–3 ms on a small file, 7–10 ms with
/// 100,000 tokens, nearly all of it that fsync). Between two, the log gains about a
/// second of writes at most.
const FINISH_EVERY: Duration = Duration::from_secs(1);

/// Frames the writer may be left to copy when a background checkpoint ends (see
/// [`finish_checkpoint`]): about what a dozen writes add.
const LEFT_TO_FINISH: i64 = 128;

/// Passive checkpoints (which never wait for a writer) on `conn`, again while the
/// writes made during the last one left more than [`LEFT_TO_FINISH`] frames uncopied,
/// a few times at most: what is left is the writer's to copy, on its path.
fn background_checkpoint(conn: &Conn) -> Result<()> {
    for _ in 0..8 {
        let (log, copied): (i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })?;
        if log - copied <= LEFT_TO_FINISH {
            break;
        }
    }
    Ok(())
}

/// Copies into the database file what the log gained while a background checkpoint
/// ran (a few hundred frames under load, against its thousands), on the write
/// connection between transactions, when no write can add more. SQLite starts the log
/// over at the next transaction only if every frame in it was copied before that
/// transaction began; under steady writes a checkpoint on another connection never
/// gets there, and the log grew without end: every commit then also grew the file,
/// and an fsync of a growing file costs the file system more (measured: hundreds of
/// MB after a minute of creates, and one client's creates at a third of the floor
/// instead of about half).
fn finish_checkpoint(conn: &mut Conn) {
    let r = super::blocking(|| conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())));
    if let Err(e) = r {
        tracing::warn!(error = %e, "finishing a background checkpoint failed; the next one retries");
    }
}

/// Runs `BEGIN IMMEDIATE` (or `SAVEPOINT`): at once when the file's write lock is
/// free, as it is unless another process (the admin CLI) holds it; else waits up to
/// `busy` for it, off the runtime's threads.
fn start(conn: &mut Conn, statement: &str, busy: Duration) -> Result<()> {
    match conn.execute_batch(statement) {
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            super::blocking(|| {
                conn.busy_timeout(busy)?;
                let r = conn.execute_batch(statement);
                conn.busy_timeout(Duration::ZERO)?;
                r
            })?;
            Ok(())
        }
        r => Ok(r?),
    }
}

/// Undoes the last holder's unfinished part: back to its savepoint (the group goes
/// on), or the whole transaction when it opened it. A connection that cannot is
/// marked for replacement, and the group it held is told the writes failed.
fn undo(w: &mut Writer) {
    if !w.unfinished {
        return;
    }
    if w.savepoint {
        if w.conn
            .execute_batch("ROLLBACK TO part; RELEASE part")
            .is_ok()
        {
            w.savepoint = false;
            w.unfinished = false;
            return;
        }
        w.savepoint = false;
    }
    let failure = Failure::Other("a write in the same transaction could not be undone".into());
    for tx in std::mem::take(&mut w.waiting) {
        let _ = tx.send(Err(failure.clone()));
    }
    if let Err(e) = w.conn.execute_batch("ROLLBACK") {
        tracing::warn!(error = %e, "a write transaction could not be rolled back; reconnecting");
        w.broken = true;
    }
    w.open = false;
    w.unfinished = false;
}

/// A writer's part of a write transaction (`BEGIN IMMEDIATE`, or a savepoint in a
/// group's), the connection this writer's until it is committed or dropped.
pub(super) struct WriteConn {
    w: OwnedMutexGuard<Writer>,
    writers: Writers,
}

impl WriteConn {
    /// Finishes this part and commits it: at once when nobody is queued, else with
    /// the writers behind it (see the module documentation). Returns once the commit
    /// that holds it is done. On failure before the part is finished, the part is
    /// undone when this value is dropped.
    pub(super) async fn commit(mut self) -> Result<()> {
        if self.w.savepoint {
            self.w.conn.execute_batch("RELEASE part")?;
            self.w.savepoint = false;
        }
        self.w.unfinished = false;
        let (tx, rx) = oneshot::channel();
        self.w.waiting.push(tx);
        // Writers whose requests have arrived get to queue first (a task that yields
        // runs again after the tasks already woken), so they can share this commit.
        tokio::task::yield_now().await;
        let share =
            self.writers.queued.load(Ordering::Acquire) > 0 && self.w.waiting.len() < MAX_GROUP;
        if share {
            // Lets the next writer in, with the transaction still open.
            drop(self);
        } else {
            // Not async: begun, it runs to its end and answers the whole group.
            let _ = self.writers.commit_group(&mut self.w);
            drop(self);
        }
        match rx.await {
            Ok(r) => r.map_err(Failure::into_error),
            // Only if the runtime is shutting down under it.
            Err(_) => Err(Failure::Other("the commit never ran".into()).into_error()),
        }
    }
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        if self.w.unfinished
            || (!self.w.waiting.is_empty() && self.writers.queued.load(Ordering::Acquire) == 0)
        {
            // The guard is released right after this; the task takes the connection
            // back after the writers already queued (or finds one of them settled it).
            self.writers.settle_later();
        }
    }
}

impl std::ops::Deref for WriteConn {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.w.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.w.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pool = ReadPool;

    fn open(path: &std::path::Path) -> Opener {
        Opener::new(path)
    }

    async fn setup(dir: &tempfile::TempDir) -> (Writers, Pool, Opener) {
        let path = dir.path().join("w.db");
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER)"))
            .unwrap_or_else(|e| panic!("{e}"));
        let opener = open(&path);
        let pool = ReadPool::open(&opener).unwrap_or_else(|e| panic!("{e}"));
        let w = Writers::open(&opener, Arc::new(|| Ok(()))).unwrap_or_else(|e| panic!("{e}"));
        (w, pool, opener)
    }

    async fn count(pool: &Pool) -> i64 {
        let c = pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
        c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Another program's connection to the same file, which never waits for a lock.
    fn other(opener: &Opener) -> Conn {
        let c = opener.open().unwrap_or_else(|e| panic!("{e}"));
        c.busy_timeout(Duration::ZERO)
            .unwrap_or_else(|e| panic!("{e}"));
        c
    }

    #[tokio::test]
    async fn a_write_dropped_before_its_commit_is_rolled_back_and_frees_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (w, pool, options) = setup(&dir).await;
        let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        insert(&mut tx, 1).await;
        drop(tx);
        assert_eq!(
            count(&pool).await,
            0,
            "nothing of the dropped write is seen"
        );
        // Another process's writer (no busy timeout) gets the file once the rollback
        // task has run, without any write of this process coming first.
        let other = other(&options);
        let mut got = false;
        for _ in 0..200 {
            if other.execute_batch("BEGIN IMMEDIATE").is_ok() {
                got = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(got, "the dropped write still holds the file's write lock");
        other
            .execute_batch("ROLLBACK")
            .unwrap_or_else(|e| panic!("{e}"));
        // The queue goes on: the next write commits.
        let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        insert(&mut tx, 2).await;
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count(&pool).await, 1);
    }

    #[tokio::test]
    async fn a_write_refused_while_another_process_holds_the_file_leaves_the_queue_working() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (_, pool, options) = setup(&dir).await;
        let options = options.busy_timeout(Duration::from_millis(50));
        let w = Writers::open(&options, Arc::new(|| Ok(()))).unwrap_or_else(|e| panic!("{e}"));
        let other = other(&options);
        other
            .execute_batch("BEGIN IMMEDIATE")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(w.begin().await.is_err(), "the file is another's");
        other
            .execute_batch("ROLLBACK")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        insert(&mut tx, 3).await;
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
                        let tx = w.begin().await?;
                        tx.execute("INSERT INTO t VALUES (?1)", [i * 100 + j])?;
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

    #[tokio::test]
    async fn writers_whose_requests_arrive_together_share_a_commit_on_one_thread() {
        // A single-threaded runtime, as one runtime worker is: the writers are all
        // ready to run when the first commits, and only get to queue if it yields.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (w, pool, _) = setup(&dir).await;
        let tasks: Vec<_> = (0..8)
            .map(|v| {
                let w = w.clone();
                tokio::spawn(async move {
                    let tx = w.begin().await?;
                    tx.execute("INSERT INTO t VALUES (?1)", [v])?;
                    tx.commit().await
                })
            })
            .collect();
        for t in tasks {
            t.await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(count(&pool).await, 8);
        let syncs = w.checkpoints.syncs.load(Ordering::Relaxed);
        assert!(syncs < 8, "8 writes arriving together took {syncs} COMMITs");
    }

    /// Frames in the write-ahead log (its last frame's number: SQLite writes the log
    /// from its start again once everything in it is in the database file).
    async fn frames_in_log(opener: &Opener) -> i64 {
        let c = other(opener);
        // PASSIVE copies what it can without waiting for anyone and reports the
        // log's size, or that another checkpoint (the background one) runs.
        for _ in 0..500 {
            let (busy, log): (i64, i64) = c
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap_or_else(|e| panic!("{e}"));
            if busy == 0 {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("another checkpoint never let go");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_log_starts_over_after_a_background_checkpoint_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // The writer as the store opens it: SQLite's own checkpoints off.
        let (_, pool, opener) = setup(&dir).await;
        let w = Writers::open(&opener.clone().without_checkpoints(), Arc::new(|| Ok(())))
            .unwrap_or_else(|e| panic!("{e}"));
        let write = |v: i64| {
            let w = w.clone();
            async move {
                let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
                insert(&mut tx, v).await;
                tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
            }
        };
        for v in 0..i64::from(CHECKPOINT_EVERY) - 1 {
            write(v).await;
        }
        // A read that began before the last write: the background checkpoint cannot
        // copy what it does not see, as under steady load it misses what the writes
        // made meanwhile.
        let reader = other(&opener);
        reader
            .execute_batch("BEGIN; SELECT COUNT(*) FROM t;")
            .unwrap_or_else(|e| panic!("{e}"));
        write(i64::from(CHECKPOINT_EVERY)).await;
        let before = frames_in_log(&opener).await;
        assert!(
            before >= i64::from(CHECKPOINT_EVERY),
            "one frame a write at least: {before}"
        );
        // The background checkpoint started by the last write ends on its own.
        for _ in 0..500 {
            if !w.checkpoints.running.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !w.checkpoints.running.load(Ordering::Acquire),
            "the checkpoint never ended"
        );
        reader
            .execute_batch("COMMIT")
            .unwrap_or_else(|e| panic!("{e}"));
        for v in 0..10 {
            write(10_000 + v).await;
        }
        let after = frames_in_log(&opener).await;
        assert!(
            after <= 20,
            "the log still holds {after} frames after 10 more writes (it held {before}): it grows without end"
        );
        assert_eq!(count(&pool).await, i64::from(CHECKPOINT_EVERY) + 10);
    }

    async fn insert(tx: &mut WriteConn, v: i64) {
        tx.execute("INSERT INTO t VALUES (?1)", [v])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn values(pool: &Pool) -> Vec<i64> {
        let c = pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
        c.prepare("SELECT v FROM t ORDER BY v")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until `n` writers are queued for the connection.
    async fn until_queued(w: &Writers, n: usize) {
        for _ in 0..500 {
            if w.queued.load(Ordering::Acquire) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{n} writers never queued");
    }

    #[tokio::test]
    async fn writers_queued_behind_one_share_its_commit_and_a_failed_part_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (w, pool, _) = setup(&dir).await;
        let mut first = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        insert(&mut first, 1).await;
        // Two more writers queue behind it: one whose part fails, one that commits.
        let failing = tokio::spawn({
            let w = w.clone();
            async move {
                let mut tx = w.begin().await?;
                insert(&mut tx, 2).await;
                // An error in the part: dropped without its commit.
                drop(tx);
                Ok::<_, StoreError>(())
            }
        });
        until_queued(&w, 1).await;
        let last = tokio::spawn({
            let w = w.clone();
            async move {
                let mut tx = w.begin().await?;
                insert(&mut tx, 3).await;
                tx.commit().await
            }
        });
        until_queued(&w, 2).await;
        // Writers are queued: the first leaves its part for the group's commit.
        first.commit().await.unwrap_or_else(|e| panic!("{e}"));
        failing
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        last.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            values(&pool).await,
            vec![1, 3],
            "both committed parts landed, the failed one did not"
        );
        assert_eq!(w.checkpoints.commits.load(Ordering::Relaxed), 2);
        assert_eq!(
            w.checkpoints.syncs.load(Ordering::Relaxed),
            1,
            "one COMMIT for both"
        );
    }

    #[tokio::test]
    async fn a_group_whose_last_writer_fails_is_committed_without_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (w, pool, _) = setup(&dir).await;
        let mut first = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        insert(&mut first, 1).await;
        let (go, wait) = oneshot::channel::<()>();
        let failing = tokio::spawn({
            let w = w.clone();
            async move {
                let mut tx = w.begin().await?;
                insert(&mut tx, 2).await;
                // Holds its part until the first writer waits on the group, then fails
                // with nobody queued behind it.
                let _ = wait.await;
                drop(tx);
                Ok::<_, StoreError>(())
            }
        });
        until_queued(&w, 1).await;
        let committed = tokio::spawn(async move { first.commit().await });
        until_queued(&w, 0).await;
        let _ = go.send(());
        tokio::time::timeout(Duration::from_secs(10), committed)
            .await
            .unwrap_or_else(|_| panic!("the first writer was left waiting for a commit"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        failing
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values(&pool).await, vec![1]);
        // The connection goes on as usual.
        let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        insert(&mut tx, 4).await;
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values(&pool).await, vec![1, 4]);
    }

    #[tokio::test]
    async fn a_writer_cancelled_while_its_commit_runs_leaves_the_connection_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (w, pool, _) = setup(&dir).await;
        // The request goes away while the disk syncs, at different moments of the
        // commit; every write after it must still go through.
        for (v, micros) in (1..=40).zip((0..40).map(|i| i * 25)) {
            let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
            insert(&mut tx, v).await;
            let _ = tokio::time::timeout(Duration::from_micros(micros), tx.commit()).await;
            let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
            insert(&mut tx, 100 + v).await;
            tx.commit()
                .await
                .unwrap_or_else(|e| panic!("the write after a cancelled commit: {e}"));
        }
        let landed = values(&pool).await;
        assert_eq!(
            landed.iter().filter(|v| **v > 100).count(),
            40,
            "every write awaited to its end landed"
        );
        assert_eq!(
            landed.len(),
            80,
            "a commit once begun is carried out: {landed:?}"
        );
    }

    #[tokio::test]
    async fn a_commit_refused_before_it_runs_fails_every_write_in_the_group() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (_, pool, options) = setup(&dir).await;
        let gone = Arc::new(AtomicBool::new(false));
        let check = gone.clone();
        let w = Writers::open(
            &options,
            Arc::new(move || {
                if check.load(Ordering::SeqCst) {
                    Err(StoreError::Degraded(Fault::FileGone))
                } else {
                    Ok(())
                }
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut first = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        insert(&mut first, 1).await;
        let second = tokio::spawn({
            let w = w.clone();
            async move {
                let mut tx = w.begin().await?;
                insert(&mut tx, 2).await;
                tx.commit().await
            }
        });
        until_queued(&w, 1).await;
        // The file goes away while the group is open: neither write is acknowledged.
        gone.store(true, Ordering::SeqCst);
        let r = first.commit().await;
        assert!(
            matches!(r, Err(StoreError::Degraded(Fault::FileGone))),
            "{r:?}"
        );
        let r = second.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(r, Err(StoreError::Degraded(Fault::FileGone))),
            "{r:?}"
        );
        assert_eq!(values(&pool).await, Vec::<i64>::new());
        // Back: the next write starts afresh and lands.
        gone.store(false, Ordering::SeqCst);
        let mut tx = w.begin().await.unwrap_or_else(|e| panic!("{e}"));
        insert(&mut tx, 3).await;
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values(&pool).await, vec![3]);
    }
}
