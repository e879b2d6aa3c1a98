//! Web UI sessions, stored by the SHA-256 of their id, and sign-in lookups.

use super::dialect::{Row, query, query_scalar};
use keygate_core::model::{User, UserId};

use super::dialect::Conn;
use super::users;
use crate::error::Result;
use crate::types::{PendingToken, Session};

pub(super) async fn password_hash(
    conn: &mut Conn,
    username: &str,
) -> Result<Option<(User, Option<String>)>> {
    let Some(id) = users::id_by_name(conn, username).await? else {
        return Ok(None);
    };
    let hash: Option<String> = query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Some((users::get(conn, id).await?, hash)))
}

pub(super) async fn session(conn: &mut Conn, id_hash: &[u8; 32]) -> Result<Option<Session>> {
    let row =
        query("SELECT user_id, csrf, created_on, last_seen_on FROM sessions WHERE id_hash = $1")
            .bind(&id_hash[..])
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|r| {
        Ok(Session {
            user_id: r.try_get(0)?,
            csrf: r.try_get(1)?,
            created_on: r.try_get(2)?,
            last_seen_on: r.try_get(3)?,
        })
    })
    .transpose()
}

/// Takes and clears a session's pending token, so it is shown once: the row is locked
/// as it is read (SQLite's write transaction already holds the whole file).
pub(super) async fn take_pending(
    conn: &mut Conn,
    id_hash: &[u8; 32],
) -> Result<Option<PendingToken>> {
    let row = query(concat!(
        "SELECT pending_digest, pending_access_id, pending_owner FROM sessions WHERE id_hash = $1",
        row_lock!()
    ))
    .bind(&id_hash[..])
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let digest: Option<Vec<u8>> = row.try_get(0)?;
    let access_id: Option<String> = row.try_get(1)?;
    let owner: Option<UserId> = row.try_get(2)?;
    query("UPDATE sessions SET pending_digest = NULL, pending_access_id = NULL, pending_owner = NULL WHERE id_hash = $1")
        .bind(&id_hash[..])
        .execute(&mut *conn)
        .await?;
    crate::common::pending(digest, access_id, owner)
}

/// Ends every session of `user` (a new password, a suspension).
pub(super) async fn end_all(conn: &mut Conn, user: UserId) -> Result<()> {
    query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
