//! Schema migrations, applied in order at start-up, each in its own transaction.

use super::db::Conn;
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
    (
        10,
        include_str!("../../migrations/both/usage_index_used_only.sql"),
    ),
    (11, include_str!("../../migrations/sqlite/0011_data.sql")),
    (12, include_str!("../../migrations/both/data_spans.sql")),
    (13, include_str!("../../migrations/sqlite/0013_outbox.sql")),
];

/// Applies every migration not yet applied, then fills in what later code expects of
/// rows from before it (the username keys).
pub(super) fn run(conn: &mut Conn) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_on INTEGER NOT NULL)")?;
    for &(version, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: Option<i64> = rusqlite::OptionalExtension::optional(tx.query_row(
            "SELECT version FROM schema_migrations WHERE version = ?1",
            [version],
            |r| r.get(0),
        ))?;
        if done.is_none() {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_on) VALUES (?1, strftime('%s','now'))",
                [version],
            )?;
            tracing::info!(version, "applied database migration");
        }
        tx.commit()?;
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    super::futures_ready(super::sql::setup::fill_username_keys(conn))?;
    conn.execute_batch("COMMIT")?;
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
        store
            .with_connection(|c| {
                for name in ["Ärger", "ärger"] {
                    c.execute(
                        "INSERT INTO users (username, email, first_name, last_name, status, api_only, note, created_by, created_on) \
                         VALUES (?1, 'e@x', '', '', 'active', 0, '', 'test', 1)",
                        [name],
                    )?;
                }
                c.execute_batch(
                    "DROP INDEX users_username_key; \
                     UPDATE users SET username_key = NULL, username_skeleton = NULL",
                )
            })
            .await
            .unwrap();
        drop(store);
        let store = SqliteStore::open(path, key).await.unwrap();
        let keys: Vec<(String, Option<String>)> = store
            .with_connection(|c| {
                c.prepare("SELECT username, username_key FROM users ORDER BY id")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
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
            let store = store.clone();
            async move {
                let rows: Vec<(String, String, String, String)> = store
                    .with_connection(|c| {
                        c.prepare(
                            "SELECT r.name, p.object_type, p.object_id, p.operation FROM roles r \
                             JOIN role_privileges p ON p.role_id = r.id ORDER BY r.id, p.position",
                        )?
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect()
                    })
                    .await
                    .unwrap();
                rows
            }
        };
        let fresh = grants(&store).await;
        // As a store made before migration 8: no verifier role, an administrator
        // without the privilege.
        store
            .with_connection(|c| {
                c.execute_batch(
                    "DELETE FROM roles WHERE name = 'verifier'; \
                     DELETE FROM role_privileges WHERE object_id = 'tokenindex'; \
                     DELETE FROM schema_migrations WHERE version = 8",
                )
            })
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
        store
            .with_connection(|c| c.execute_batch("DELETE FROM schema_migrations WHERE version = 8"))
            .await
            .unwrap();
        drop(store);
        let store = SqliteStore::open(path, key).await.unwrap();
        assert_eq!(grants(&store).await, fresh);
    }
}
