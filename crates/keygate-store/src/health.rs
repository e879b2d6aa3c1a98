//! Whether the store can take writes, as the writes themselves and a small probe
//! find out.
//!
//! A write that fails because of the storage (a full disk, a read-only file system,
//! an I/O error, a database file deleted under a running process) marks the store
//! [`Fault`]y; the next write that commits clears it. Readiness asks the store's
//! `writable` (which consults [`Health::due`]), and a faulty store is probed with a
//! one-row write at most once a second, so readiness turns back to ready as soon as space is back even when no
//! client writes.

use std::sync::Mutex;
use std::time::Duration;

use keygate_core::clock::Stopwatch;

use crate::error::{Result, StoreError};

/// Why the database cannot take writes right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The disk (or file system) holding the database is full.
    DiskFull,
    /// The database, its file or its file system is read-only.
    ReadOnly,
    /// The storage reported an I/O error.
    Io,
    /// The database file was deleted, moved or replaced after keygate opened it:
    /// anything written now would be lost at the next start.
    FileGone,
}

impl Fault {
    /// What an operator (and a client) reads.
    pub fn describe(self) -> &'static str {
        match self {
            Self::DiskFull => "the disk holding the database is full",
            Self::ReadOnly => "the database is read-only",
            Self::Io => "the storage holding the database reported an I/O error",
            Self::FileGone => {
                "the database file was deleted or replaced while keygate was running; \
                 restore it and restart keygate"
            }
        }
    }

    /// A fixed name for metrics labels and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::DiskFull => "disk_full",
            Self::ReadOnly => "read_only",
            Self::Io => "io_error",
            Self::FileGone => "file_gone",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// How often a faulty store is probed with a write.
const PROBE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    fault: Option<Fault>,
    last_probe: Option<Stopwatch>,
}

/// A store's write health. Shared by the clones of one store.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs a write and notes a storage fault it ends in.
    pub(crate) async fn watch<T>(
        &self,
        write: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let r = write.await;
        if let Err(StoreError::Degraded(f)) = &r {
            self.fault(*f);
        }
        r
    }

    /// A write committed: the store takes writes.
    pub(crate) fn ok(&self) {
        let mut s = self.lock();
        if let Some(f) = s.fault.take() {
            tracing::info!(was = f.label(), "the database takes writes again");
        }
    }

    /// A write failed because of the storage.
    pub(crate) fn fault(&self, f: Fault) {
        let mut s = self.lock();
        if s.fault != Some(f) {
            tracing::error!(fault = f.label(), "the database cannot take writes: {f}");
        }
        s.fault = Some(f);
        // The failed write was the test: the first probe comes a second later.
        s.last_probe = Some(Stopwatch::start());
    }

    /// The fault, if any, and whether a probe is due (at most one a second).
    pub(crate) fn due(&self) -> (Option<Fault>, bool) {
        let mut s = self.lock();
        let Some(f) = s.fault else {
            return (None, false);
        };
        let due = s.last_probe.is_none_or(|t| t.elapsed() >= PROBE_EVERY);
        if due {
            s.last_probe = Some(Stopwatch::start());
        }
        (Some(f), due)
    }
}

/// What the write probe stores: the time, so that every probe really writes a page.
pub(crate) fn probe_value() -> [u8; 8] {
    keygate_core::clock::Clock::System
        .now_millis()
        .to_be_bytes()
}

/// PostgreSQL's pool `before_acquire` check: a connection is handed out only outside a
/// transaction. A failed commit can leave sqlx counting a transaction the server
/// already ended; the rollback it then queues fails, and the connection would refuse
/// every later `BEGIN` ("non-zero transaction depth"), so it is closed instead. (The queued
/// rollback has been carried out by then: the pool pings a connection as it is
/// released.)
pub(crate) fn reusable<C: sqlx::Connection>(conn: &C) -> bool {
    if conn.is_in_transaction() {
        tracing::warn!("closing a database connection that is still inside a transaction");
        return false;
    }
    true
}

/// The storage fault behind a SQLite result code, if it is one (the primary code is
/// the low byte of an extended one).
pub(crate) fn sqlite_fault(code: i32) -> Option<Fault> {
    // SQLITE_READONLY 8, SQLITE_IOERR 10, SQLITE_FULL 13, SQLITE_CANTOPEN 14.
    match code & 0xff {
        8 => Some(Fault::ReadOnly),
        10 => Some(Fault::Io),
        13 => Some(Fault::DiskFull),
        14 => Some(Fault::FileGone),
        _ => None,
    }
}

/// The storage fault behind a PostgreSQL error (its SQLSTATE), if it is one.
pub(crate) fn fault_of(db: &dyn sqlx::error::DatabaseError) -> Option<Fault> {
    let code = db.code()?;
    // PostgreSQL: 53100 disk_full, 25006 read_only_sql_transaction, 58030 io_error.
    match code.as_ref() {
        "53100" => Some(Fault::DiskFull),
        "25006" => Some(Fault::ReadOnly),
        "58030" => Some(Fault::Io),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_holds_until_a_write_commits_and_probes_are_spaced() {
        let h = Health::default();
        assert_eq!(h.due(), (None, false));
        h.fault(Fault::DiskFull);
        assert_eq!(
            h.due(),
            (Some(Fault::DiskFull), false),
            "the failed write was the test"
        );
        h.lock().last_probe = Stopwatch::started_ago(PROBE_EVERY);
        assert_eq!(h.due(), (Some(Fault::DiskFull), true));
        assert_eq!(
            h.due(),
            (Some(Fault::DiskFull), false),
            "one probe a second"
        );
        h.ok();
        assert_eq!(h.due(), (None, false));
    }
}
