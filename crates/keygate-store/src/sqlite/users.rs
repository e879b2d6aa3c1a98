//! Users ("admins" in the API) and their role assignments.

use std::collections::HashMap;

use keygate_core::model::{EpochSeconds, RoleId, User, UserId, UserStatus};
use sqlx::{Row, SqliteConnection};

use super::{TokenRef, log_change, log_token_change, roles};
use crate::error::{Result, StoreError};
use crate::types::{Entity, NewUser, UserPatch};

/// The user columns read by [`from_row`], followed by a static tail (sqlx takes only
/// static SQL text, which keeps user input out of it).
macro_rules! select_users {
    ($tail:literal) => {
        concat!(
            "SELECT id, username, email, first_name, last_name, status, api_only, note, created_by, created_on, last_login_on FROM users ",
            $tail
        )
    };
}

async fn role_ids(
    conn: &mut SqliteConnection,
    only: Option<UserId>,
) -> Result<HashMap<UserId, Vec<RoleId>>> {
    let rows = sqlx::query(
        "SELECT user_id, role_id FROM user_roles WHERE (?1 IS NULL OR user_id = ?1) ORDER BY user_id, position",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: HashMap<UserId, Vec<RoleId>> = HashMap::new();
    for row in rows {
        out.entry(row.try_get(0)?)
            .or_default()
            .push(row.try_get(1)?);
    }
    Ok(out)
}

fn from_row(
    row: &sqlx::sqlite::SqliteRow,
    roles: &mut HashMap<UserId, Vec<RoleId>>,
) -> Result<User> {
    let id: UserId = row.try_get(0)?;
    let status: String = row.try_get(5)?;
    Ok(User {
        id,
        username: row.try_get(1)?,
        email: row.try_get(2)?,
        first_name: row.try_get(3)?,
        last_name: row.try_get(4)?,
        status: UserStatus::parse(&status).ok_or(StoreError::Corrupt("unknown user status"))?,
        api_only: row.try_get(6)?,
        note: row.try_get(7)?,
        created_by: row.try_get(8)?,
        created_on: row.try_get(9)?,
        last_login_on: row.try_get(10)?,
        role_ids: roles.remove(&id).unwrap_or_default(),
    })
}

pub(super) async fn list(conn: &mut SqliteConnection) -> Result<Vec<User>> {
    let rows = sqlx::query(select_users!("ORDER BY id"))
        .fetch_all(&mut *conn)
        .await?;
    let mut roles = role_ids(conn, None).await?;
    rows.iter().map(|r| from_row(r, &mut roles)).collect()
}

pub(super) async fn get(conn: &mut SqliteConnection, id: UserId) -> Result<User> {
    let row = sqlx::query(select_users!("WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
    let mut roles = role_ids(conn, Some(id)).await?;
    from_row(&row, &mut roles)
}

/// The user a sign-in or CLI name means: the one with exactly that name, else the
/// one with its identity ([`keygate_core::username::key`]).
pub(super) async fn id_by_name(
    conn: &mut SqliteConnection,
    username: &str,
) -> Result<Option<UserId>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM users WHERE username_key = ?1 OR username = ?2 \
         ORDER BY CASE WHEN username = ?2 THEN 0 ELSE 1 END LIMIT 1",
    )
    .bind(keygate_core::username::key(username))
    .bind(username)
    .fetch_optional(&mut *conn)
    .await?)
}

pub(super) async fn by_username(conn: &mut SqliteConnection, username: &str) -> Result<User> {
    let id = id_by_name(conn, username).await?;
    let id = id.ok_or_else(|| StoreError::NotFound(format!("user \"{username}\"")))?;
    get(conn, id).await
}

/// Refuses a name (for a new user, or `id` renamed) that looks like another user's:
/// the same UTS #39 skeleton under a different identity.
async fn check_look(conn: &mut SqliteConnection, id: Option<UserId>, name: &str) -> Result<()> {
    let other: Option<String> = sqlx::query_scalar(
        "SELECT username FROM users WHERE username_skeleton = ?1 AND username_key <> ?2 \
         AND (?3 IS NULL OR id <> ?3) LIMIT 1",
    )
    .bind(keygate_core::username::skeleton(name))
    .bind(keygate_core::username::key(name))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match other {
        Some(other) => Err(StoreError::Conflict(format!(
            "the username \"{name}\" looks too much like that of the existing user \"{other}\"; choose another"
        ))),
        None => Ok(()),
    }
}

fn name_taken(e: sqlx::Error, username: &str) -> StoreError {
    match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a user named \"{username}\" already exists"))
        }
        other => other,
    }
}

async fn set_roles(conn: &mut SqliteConnection, id: UserId, role_ids: &[RoleId]) -> Result<()> {
    roles::require_all(conn, role_ids).await?;
    sqlx::query("DELETE FROM user_roles WHERE user_id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (position, role) in (0_i64..).zip(role_ids) {
        sqlx::query(
            "INSERT OR IGNORE INTO user_roles (user_id, role_id, position) VALUES (?, ?, ?)",
        )
        .bind(id)
        .bind(role)
        .bind(position)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn create(
    conn: &mut SqliteConnection,
    u: &NewUser,
    password_hash: Option<&str>,
    created_by: &str,
    now: EpochSeconds,
) -> Result<UserId> {
    check_look(conn, None, &u.username).await?;
    let id: UserId = sqlx::query_scalar(
        "INSERT INTO users (username, email, first_name, last_name, status, api_only, note, password_hash, created_by, created_on, \
         username_key, username_skeleton) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&u.username)
    .bind(&u.email)
    .bind(&u.first_name)
    .bind(&u.last_name)
    .bind(u.status.as_str())
    .bind(u.api_only)
    .bind(&u.note)
    .bind(password_hash)
    .bind(created_by)
    .bind(now)
    .bind(keygate_core::username::key(&u.username))
    .bind(keygate_core::username::skeleton(&u.username))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| name_taken(e, &u.username))?;
    set_roles(conn, id, &u.role_ids).await?;
    log_change(conn, Entity::User, id, now).await?;
    Ok(id)
}

pub(super) async fn update(
    conn: &mut SqliteConnection,
    id: UserId,
    p: &UserPatch,
    now: EpochSeconds,
) -> Result<()> {
    if let Some(name) = &p.username {
        check_look(conn, Some(id), name).await?;
    }
    let done = sqlx::query(
        "UPDATE users SET username = COALESCE(?, username), email = COALESCE(?, email), \
         first_name = COALESCE(?, first_name), last_name = COALESCE(?, last_name), status = COALESCE(?, status), \
         api_only = COALESCE(?, api_only), note = COALESCE(?, note), password_hash = COALESCE(?, password_hash), \
         username_key = COALESCE(?, username_key), username_skeleton = COALESCE(?, username_skeleton) \
         WHERE id = ?",
    )
    .bind(p.username.as_deref())
    .bind(p.email.as_deref())
    .bind(p.first_name.as_deref())
    .bind(p.last_name.as_deref())
    .bind(p.status.map(UserStatus::as_str))
    .bind(p.api_only)
    .bind(p.note.as_deref())
    .bind(p.password_hash.as_deref())
    .bind(p.username.as_deref().map(keygate_core::username::key))
    .bind(p.username.as_deref().map(keygate_core::username::skeleton))
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(|e| name_taken(e, p.username.as_deref().unwrap_or("")))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("user {id}")));
    }
    if let Some(r) = &p.role_ids {
        set_roles(conn, id, r).await?;
    }
    log_change(conn, Entity::User, id, now).await
}

pub(super) async fn delete(
    conn: &mut SqliteConnection,
    id: UserId,
    now: EpochSeconds,
) -> Result<()> {
    // Each token gets its own change entry (with its digest) so every index drops it.
    let tokens =
        sqlx::query("SELECT id, type, secret_hash, access_id FROM api_tokens WHERE user_id = ?")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    let done = sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("user {id}")));
    }
    for t in tokens {
        log_token_change(conn, t.try_get(0)?, &TokenRef::from_row(&t, 1)?, now).await?;
    }
    log_change(conn, Entity::User, id, now).await
}
