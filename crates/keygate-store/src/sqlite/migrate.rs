//! Schema migrations, applied in order at start-up, each in its own transaction.

use sqlx::SqlitePool;

use crate::error::Result;

/// Every migration, oldest first. Append only; never edit a released one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_initial.sql")),
    (2, include_str!("../../migrations/sqlite/0002_lmv1.sql")),
    (3, include_str!("../../migrations/sqlite/0003_sessions.sql")),
    (4, include_str!("../../migrations/sqlite/0004_audit.sql")),
    (
        5,
        include_str!("../../migrations/sqlite/0005_change_log_floor.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_audit_via.sql"),
    ),
];

pub(super) async fn run(pool: &SqlitePool) -> Result<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_on INTEGER NOT NULL)")
        .execute(pool)
        .await?;
    for &(version, sql) in MIGRATIONS {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_none() {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_on) VALUES (?, strftime('%s','now'))")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, "applied database migration");
        }
        tx.commit().await?;
    }
    Ok(())
}
