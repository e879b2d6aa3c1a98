//! The PostgreSQL backend, for several keygate nodes sharing one database.
//!
//! Every mutation runs in one transaction that first takes a transaction-level
//! advisory lock, so writers from all nodes are serialised: change-log sequence
//! numbers are then assigned in commit order (a follower reading `seq > last` never
//! skips a late commit), and a read-then-write such as the `maxTokensPerUser` check
//! cannot be raced from another node. Each mutation also sends `NOTIFY` in the same
//! transaction, delivered on commit, to wake every node's follower.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::{Result, StoreError};
use crate::seal::MasterKey;

/// Locks the rows a read-then-write reads, so a concurrent transaction waits for it.
macro_rules! row_lock {
    () => {
        " FOR UPDATE"
    };
}

mod dialect;
// The shared queries, compiled once more for this backend: that is the point.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

/// The channel every change is announced on.
pub const CHANNEL: &str = "keygate_changes";
/// The advisory lock all writers take (an arbitrary constant: "kgt" in ASCII).
const WRITE_LOCK: i64 = 0x6b_67_74;

/// Every migration, oldest first. Append only; never edit a released one.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (2, include_str!("../../migrations/postgres/0002_audit.sql")),
    (
        3,
        include_str!("../../migrations/postgres/0003_change_log_floor.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_audit_via.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_username_key.sql"),
    ),
    (6, include_str!("../../migrations/both/verifier_role.sql")),
    (7, include_str!("../../migrations/both/usage_index.sql")),
    (
        8,
        include_str!("../../migrations/both/usage_index_used_only.sql"),
    ),
    (9, include_str!("../../migrations/postgres/0009_data.sql")),
    (10, include_str!("../../migrations/both/data_spans.sql")),
    (
        11,
        include_str!("../../migrations/postgres/0011_outbox.sql"),
    ),
];

/// Whether a database URL names PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The PostgreSQL store. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    key: Arc<MasterKey>,
    url: String,
    /// Whether writes are going through.
    health: Arc<crate::health::Health>,
}

impl PgStore {
    /// Connects, applies migrations and checks `key` against the store's check value
    /// (recording it on a new store). `acquire_timeout` bounds how long a request waits
    /// for a connection, so an unreachable database answers 503 quickly.
    pub async fn open(
        url: &str,
        key: MasterKey,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::Database)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            // A connection left inside a transaction is closed, never reused.
            .before_acquire(|conn, _| {
                let ok = crate::health::reusable(conn);
                Box::pin(async move { Ok(ok) })
            })
            .connect_with(options)
            .await?;
        migrate(&pool).await?;
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        if !sql::setup::master_key_matches(&mut tx, &key).await? {
            return Err(StoreError::MasterKey(
                "the master key does not match the one this PostgreSQL database was set up with; \
                 every node must use the same --master-key-file"
                    .to_owned(),
            ));
        }
        tx.commit().await?;
        Ok(Self {
            pool,
            key: Arc::new(key),
            url: url.to_owned(),
            health: Arc::default(),
        })
    }

    /// The underlying pool, for tests that inspect the database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The URL this store was opened with (for the change listener).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A transaction without the write lock, for writes no follower reads (usage,
    /// sessions, sign-ins, audit entries of refused changes).
    async fn unlocked(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// A transaction holding the advisory write lock, for every write followers read.
    async fn write(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// One REPEATABLE READ transaction: every statement of the snapshot sees one view.
    async fn snapshot_tx(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Nothing to check before a write: PostgreSQL's own state is found out by writing.
    #[allow(clippy::unused_self, clippy::unnecessary_wraps)]
    fn check_file(&self) -> Result<()> {
        Ok(())
    }

    /// Follows `NOTIFY` on [`CHANNEL`] until `stop`.
    fn watch(
        &self,
        on_change: Arc<dyn Fn() + Send + Sync>,
        on_lost: Arc<dyn Fn() + Send + Sync>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        Some(tokio::spawn(listen(
            self.url.clone(),
            on_change,
            on_lost,
            stop,
        )))
    }
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    // Nodes starting together: one migrates, the others wait and find it done.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_on BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    for &(version, sql) in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_none() {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_on) VALUES ($1, extract(epoch from now())::bigint)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, "applied database migration");
        }
    }
    sql::setup::fill_username_keys(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Listens for change announcements until `stop`, reconnecting with backoff. After any
/// gap in listening, `on_lost` asks the follower to reconcile everything.
async fn listen(
    url: String,
    on_change: Arc<dyn Fn() + Send + Sync>,
    on_lost: Arc<dyn Fn() + Send + Sync>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut l = sqlx::postgres::PgListener::connect(&url).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            r = connected => match r {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for changes; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        // Connected (again): anything announced while not listening must be caught up.
        on_lost();
        backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                msg = listener.try_recv() => match msg {
                    Ok(Some(_)) => on_change(),
                    // The connection dropped and was re-established: announcements may be lost.
                    Ok(None) => {
                        tracing::warn!("change listener reconnected; reconciling");
                        on_lost();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "change listener failed; reconnecting");
                        on_lost();
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}
