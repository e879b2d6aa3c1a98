//! Users ("admins" in the API) and their role assignments.

use std::collections::HashMap;

use super::dialect::{Row, query, query_scalar};
use keygate_core::model::{EpochSeconds, RoleId, User, UserId, UserStatus};

use super::dialect::{Conn, DbRow};
use super::{TokenRef, log_change, log_token_change, roles};
use crate::error::{Result, StoreError};
use crate::types::{Entity, NewUser, UserPatch};

macro_rules! select_users {
    ($tail:literal) => {
        concat!(
            "SELECT id, username, email, first_name, last_name, status, api_only, note, created_by, created_on, last_login_on FROM users ",
            $tail
        )
    };
}

async fn role_ids(conn: &mut Conn, only: Option<UserId>) -> Result<HashMap<UserId, Vec<RoleId>>> {
    let rows = query(
        "SELECT user_id, role_id FROM user_roles WHERE (CAST($1 AS BIGINT) IS NULL OR user_id = $1) ORDER BY user_id, position",
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

fn from_row(row: &DbRow, roles: &mut HashMap<UserId, Vec<RoleId>>) -> Result<User> {
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

pub(super) async fn list(conn: &mut Conn) -> Result<Vec<User>> {
    let rows = query(select_users!("ORDER BY id"))
        .fetch_all(&mut *conn)
        .await?;
    let mut roles = role_ids(conn, None).await?;
    rows.iter().map(|r| from_row(r, &mut roles)).collect()
}

pub(super) async fn get(conn: &mut Conn, id: UserId) -> Result<User> {
    let row = query(select_users!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::no_user(id))?;
    let mut roles = role_ids(conn, Some(id)).await?;
    from_row(&row, &mut roles)
}

/// The user a sign-in or CLI name means: the one with exactly that name, else the
/// one with its identity ([`keygate_core::username::key`]).
pub(super) async fn id_by_name(conn: &mut Conn, username: &str) -> Result<Option<UserId>> {
    Ok(query_scalar(
        "SELECT id FROM users WHERE username_key = $1 OR username = $2 \
         ORDER BY CASE WHEN username = $2 THEN 0 ELSE 1 END LIMIT 1",
    )
    .bind(keygate_core::username::key(username))
    .bind(username)
    .fetch_optional(&mut *conn)
    .await?)
}

pub(super) async fn by_username(conn: &mut Conn, username: &str) -> Result<User> {
    let id = id_by_name(conn, username).await?;
    let id = id.ok_or_else(|| StoreError::NotFound(format!("user \"{username}\"")))?;
    get(conn, id).await
}

/// Refuses a name (for a new user, or `id` renamed) that looks like another user's:
/// the same UTS #39 skeleton under a different identity.
async fn check_look(conn: &mut Conn, id: Option<UserId>, name: &str) -> Result<()> {
    let other: Option<String> = query_scalar(
        "SELECT username FROM users WHERE username_skeleton = $1 AND username_key <> $2 \
         AND (CAST($3 AS BIGINT) IS NULL OR id <> $3) LIMIT 1",
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

fn name_taken(e: impl Into<StoreError>, username: &str) -> StoreError {
    match e.into() {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a user named \"{username}\" already exists"))
        }
        other => other,
    }
}

async fn set_roles(conn: &mut Conn, id: UserId, role_ids: &[RoleId]) -> Result<()> {
    roles::require_all(conn, role_ids).await?;
    query("DELETE FROM user_roles WHERE user_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (position, role) in (0_i64..).zip(role_ids) {
        query("INSERT INTO user_roles (user_id, role_id, position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(role)
            .bind(position)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub(super) async fn create(
    conn: &mut Conn,
    u: &NewUser,
    password_hash: Option<&str>,
    created_by: &str,
    now: EpochSeconds,
) -> Result<UserId> {
    check_look(conn, None, &u.username).await?;
    let id: UserId = query_scalar(
        "INSERT INTO users (username, email, first_name, last_name, status, api_only, note, password_hash, created_by, created_on, \
         username_key, username_skeleton) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
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
    conn: &mut Conn,
    id: UserId,
    p: &UserPatch,
    now: EpochSeconds,
) -> Result<()> {
    if let Some(name) = &p.username {
        check_look(conn, Some(id), name).await?;
    }
    let done = query(
        "UPDATE users SET username = COALESCE($1, username), email = COALESCE($2, email), \
         first_name = COALESCE($3, first_name), last_name = COALESCE($4, last_name), status = COALESCE($5, status), \
         api_only = COALESCE($6, api_only), note = COALESCE($7, note), password_hash = COALESCE($8, password_hash), \
         username_key = COALESCE($10, username_key), username_skeleton = COALESCE($11, username_skeleton) \
         WHERE id = $9",
    )
    .bind(p.username.as_deref())
    .bind(p.email.as_deref())
    .bind(p.first_name.as_deref())
    .bind(p.last_name.as_deref())
    .bind(p.status.map(UserStatus::as_str))
    .bind(p.api_only)
    .bind(p.note.as_deref())
    .bind(p.password_hash.as_deref())
    .bind(id)
    .bind(p.username.as_deref().map(keygate_core::username::key))
    .bind(p.username.as_deref().map(keygate_core::username::skeleton))
    .execute(&mut *conn)
    .await
    .map_err(|e| name_taken(e, p.username.as_deref().unwrap_or("")))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::no_user(id));
    }
    if let Some(r) = &p.role_ids {
        set_roles(conn, id, r).await?;
    }
    log_change(conn, Entity::User, id, now).await
}

pub(super) async fn delete(conn: &mut Conn, id: UserId, now: EpochSeconds) -> Result<()> {
    // Each token gets its own change entry (with its digest) so every index drops it.
    let tokens =
        query("SELECT id, type, secret_hash, access_id FROM api_tokens WHERE user_id = $1")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    let done = query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::no_user(id));
    }
    for t in tokens {
        log_token_change(conn, t.try_get(0)?, &TokenRef::from_row(&t, 1)?, now).await?;
    }
    log_change(conn, Entity::User, id, now).await
}
