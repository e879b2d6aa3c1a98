//! Start-up steps both backends take after their migrations.

use super::dialect::Conn;
use super::dialect::{query, query_as, query_scalar};
use crate::error::Result;
use crate::seal::MasterKey;

/// Checks `key` against the store's check value, recording it on a new store.
/// `false`: the store was set up with another key (the caller says which to use).
pub(crate) async fn master_key_matches(conn: &mut Conn, key: &MasterKey) -> Result<bool> {
    let stored: Option<Vec<u8>> =
        query_scalar("SELECT value FROM meta WHERE name = 'master_key_check'")
            .fetch_optional(&mut *conn)
            .await?;
    match stored {
        Some(v) => Ok(key.matches(&v)),
        None => {
            query("INSERT INTO meta (name, value) VALUES ('master_key_check', $1)")
                .bind(key.check_value())
                .execute(&mut *conn)
                .await?;
            Ok(true)
        }
    }
}

/// Fills in the identity and look of users that have none yet (those made before
/// SQLite's migration 7 or PostgreSQL's 5), then makes sure the indexes exist. Two old names with one identity
/// (`Ärger` and `ärger` could coexist) keep working by exact name; the later one's
/// key gets a suffix no valid name has, and a warning asks for a rename.
pub(crate) async fn fill_username_keys(conn: &mut Conn) -> Result<()> {
    let rows: Vec<(i64, String)> =
        query_as("SELECT id, username FROM users WHERE username_key IS NULL ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
    for (id, name) in rows {
        let mut key = keygate_core::username::key(&name);
        let taken: Option<i64> = query_scalar("SELECT id FROM users WHERE username_key = $1")
            .bind(&key)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(other) = taken {
            tracing::warn!(
                user = id,
                other,
                "two users have the same username but for case or form; rename one (the later signs in by its exact name only)"
            );
            key = format!("{key}#{id}");
        }
        query("UPDATE users SET username_key = $1, username_skeleton = $2 WHERE id = $3")
            .bind(&key)
            .bind(keygate_core::username::skeleton(&name))
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    query("CREATE UNIQUE INDEX IF NOT EXISTS users_username_key ON users(username_key)")
        .execute(&mut *conn)
        .await?;
    query("CREATE INDEX IF NOT EXISTS users_username_skeleton ON users(username_skeleton)")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
