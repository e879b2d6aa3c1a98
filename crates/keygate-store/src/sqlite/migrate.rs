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
    (
        7,
        include_str!("../../migrations/sqlite/0007_username_key.sql"),
    ),
    (8, include_str!("../../migrations/both/verifier_role.sql")),
    (9, include_str!("../../migrations/both/usage_index.sql")),
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
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    super::sql::setup::fill_username_keys(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{MasterKey, SqliteStore, Store};

    #[tokio::test]
    async fn users_made_before_the_username_key_get_one_and_colliding_old_names_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let path = path.to_str().unwrap();
        let key = MasterKey::generate().unwrap();
        let store = SqliteStore::open(path, key.clone()).await.unwrap();
        assert!(store.bootstrap("hash", 1).await.unwrap());
        // Two names SQLite's NOCASE let coexist, as rows from before migration 7.
        for name in ["Ärger", "ärger"] {
            sqlx::query(
                "INSERT INTO users (username, email, first_name, last_name, status, api_only, note, created_by, created_on) \
                 VALUES (?, 'e@x', '', '', 'active', 0, '', 'test', 1)",
            )
            .bind(name)
            .execute(store.pool())
            .await
            .unwrap();
        }
        sqlx::query("DROP INDEX users_username_key")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE users SET username_key = NULL, username_skeleton = NULL")
            .execute(store.pool())
            .await
            .unwrap();
        drop(store);
        let store = SqliteStore::open(path, key).await.unwrap();
        let keys: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT username, username_key FROM users ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(keys[0], ("admin".to_owned(), Some("admin".to_owned())));
        assert_eq!(keys[1].1.as_deref(), Some("ärger"));
        assert!(
            keys[2]
                .1
                .as_deref()
                .is_some_and(|k| k.starts_with("ärger#"))
        );
        // Each still found by its exact name; the identity finds the first.
        assert_eq!(
            store.user_by_username("ärger").await.unwrap().username,
            "ärger"
        );
        assert_eq!(
            store.user_by_username("Ärger").await.unwrap().username,
            "Ärger"
        );
        assert_eq!(
            store.user_by_username("ÄRGER").await.unwrap().username,
            "Ärger"
        );
    }

    #[tokio::test]
    async fn a_store_from_before_the_verifier_role_gets_it_once_and_the_administrator_its_privilege()
     {
        use keygate_core::policy::Grants;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let path = path.to_str().unwrap();
        let key = MasterKey::generate().unwrap();
        let store = SqliteStore::open(path, key.clone()).await.unwrap();
        assert!(store.bootstrap("hash", 1).await.unwrap());
        let grants = |store: &SqliteStore| {
            let pool = store.pool().clone();
            async move {
                let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                    "SELECT r.name, p.object_type, p.object_id, p.operation FROM roles r \
                     JOIN role_privileges p ON p.role_id = r.id ORDER BY r.id, p.position",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                rows
            }
        };
        let fresh = grants(&store).await;
        // As a store made before migration 8: no verifier role, an administrator
        // without the privilege.
        sqlx::query("DELETE FROM roles WHERE name = 'verifier'")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("DELETE FROM role_privileges WHERE object_id = 'tokenindex'")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("DELETE FROM schema_migrations WHERE version = 8")
            .execute(store.pool())
            .await
            .unwrap();
        drop(store);
        let store = SqliteStore::open(path, key.clone()).await.unwrap();
        let migrated = grants(&store).await;
        assert_eq!(
            migrated, fresh,
            "the migration makes what the bootstrap makes"
        );
        let verifier: Vec<_> = migrated.iter().filter(|r| r.0 == "verifier").collect();
        assert_eq!(verifier.len(), 1);
        let admin: Vec<_> = migrated
            .iter()
            .filter(|r| r.0 == "administrator")
            .map(|r| keygate_core::model::Privilege::new(&r.1, &r.2, &r.3))
            .collect();
        assert_eq!(Grants::of_all(&admin), Grants::ALL);
        // Run again (as a second start would): nothing doubles.
        sqlx::query("DELETE FROM schema_migrations WHERE version = 8")
            .execute(store.pool())
            .await
            .unwrap();
        drop(store);
        let store = SqliteStore::open(path, key).await.unwrap();
        assert_eq!(grants(&store).await, fresh);
    }
}
