//! API tokens: creation with its owner checks, note/status changes, deletion, usage.

use keygate_core::model::{
    ApiToken, EpochSeconds, TokenId, TokenStatus, TokenType, UserId, UserStatus,
};
use keygate_core::policy::{self, Grants};
use sqlx::{Row, SqliteConnection};

use super::{log_change, portal, roles};
use crate::error::{Result, StoreError};
use crate::types::{Entity, NewBearerToken, TokenPatch, Usage};

macro_rules! select_tokens {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, type, access_id, note, status, created_on, created_by, last_used_on, last_auth_ip FROM api_tokens ",
            $tail
        )
    };
}

fn from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ApiToken> {
    let kind: String = row.try_get(2)?;
    let status: i64 = row.try_get(5)?;
    Ok(ApiToken {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        token_type: TokenType::parse(&kind).ok_or(StoreError::Corrupt("unknown token type"))?,
        access_id: row.try_get(3)?,
        note: row.try_get(4)?,
        status: TokenStatus::from_code(status)
            .ok_or(StoreError::Corrupt("unknown token status"))?,
        created_on: row.try_get(6)?,
        created_by: row.try_get(7)?,
        last_used_on: row.try_get(8)?,
        last_auth_ip: row.try_get(9)?,
    })
}

pub(super) async fn list(
    conn: &mut SqliteConnection,
    owner: Option<UserId>,
) -> Result<Vec<ApiToken>> {
    let rows = sqlx::query(select_tokens!(
        "WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id"
    ))
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

pub(super) async fn get(conn: &mut SqliteConnection, id: TokenId) -> Result<ApiToken> {
    let row = sqlx::query(select_tokens!("WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("API token {id}")))?;
    from_row(&row)
}

pub(super) async fn create_bearer(
    conn: &mut SqliteConnection,
    owner: UserId,
    new: &NewBearerToken,
    now: EpochSeconds,
) -> Result<TokenId> {
    let user = sqlx::query("SELECT username, status FROM users WHERE id = ?")
        .bind(owner)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {owner}")))?;
    let username: String = user.try_get(0)?;
    let status: String = user.try_get(1)?;
    if UserStatus::parse(&status) != Some(UserStatus::Active) {
        return Err(StoreError::OwnerSuspended(username));
    }
    let role_ids: Vec<i64> = sqlx::query_scalar("SELECT role_id FROM user_roles WHERE user_id = ?")
        .bind(owner)
        .fetch_all(&mut *conn)
        .await?;
    let mut grants = Grants::NONE;
    for role in role_ids {
        let privs = roles::privileges(conn, Some(role)).await?;
        grants = privs
            .values()
            .flatten()
            .fold(grants, |g, p| g.union(Grants::of(p)));
    }
    let portal = portal::get(conn).await?;
    policy::bearer_owner(grants, &portal)
        .map_err(|r| StoreError::BearerRefused(r, username.clone()))?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE user_id = ?")
        .bind(owner)
        .fetch_one(&mut *conn)
        .await?;
    if count >= portal.max_tokens_per_user {
        return Err(StoreError::TokenLimit(portal.max_tokens_per_user));
    }
    let id: TokenId = sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, type, access_id, secret_hash, note, status, created_on, created_by) \
         VALUES (?, 'bearer', ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(owner)
    .bind(&new.access_id)
    .bind(&new.digest.0[..])
    .bind(&new.note)
    .bind(new.status.code())
    .bind(now)
    .bind(&new.created_by)
    .fetch_one(&mut *conn)
    .await?;
    log_change(conn, Entity::Token, id, Some(&new.digest.0), now).await?;
    Ok(id)
}

/// The digest of `id` if it belongs to `owner`; `NotFound` otherwise, whether the
/// token is missing or someone else's (the two must be indistinguishable).
async fn owned_digest(
    conn: &mut SqliteConnection,
    owner: UserId,
    id: TokenId,
) -> Result<Option<Vec<u8>>> {
    let row = sqlx::query("SELECT secret_hash FROM api_tokens WHERE id = ? AND user_id = ?")
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("API token {id}")))?;
    Ok(row.try_get(0)?)
}

pub(super) async fn update(
    conn: &mut SqliteConnection,
    owner: UserId,
    id: TokenId,
    patch: &TokenPatch,
    now: EpochSeconds,
) -> Result<()> {
    let digest = owned_digest(conn, owner, id).await?;
    sqlx::query(
        "UPDATE api_tokens SET note = COALESCE(?, note), status = COALESCE(?, status) WHERE id = ?",
    )
    .bind(patch.note.as_deref())
    .bind(patch.status.map(TokenStatus::code))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    log_change(conn, Entity::Token, id, digest.as_deref(), now).await
}

pub(super) async fn delete(
    conn: &mut SqliteConnection,
    owner: UserId,
    id: TokenId,
    now: EpochSeconds,
) -> Result<()> {
    let digest = owned_digest(conn, owner, id).await?;
    sqlx::query("DELETE FROM api_tokens WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    log_change(conn, Entity::Token, id, digest.as_deref(), now).await
}

pub(super) async fn record_usage(conn: &mut SqliteConnection, batch: &[Usage]) -> Result<()> {
    for u in batch {
        // A deleted token simply matches no row; an older record never overwrites a newer one.
        sqlx::query("UPDATE api_tokens SET last_used_on = ?, last_auth_ip = ? WHERE id = ? AND last_used_on <= ?")
            .bind(u.at)
            .bind(&u.ip)
            .bind(u.token_id)
            .bind(u.at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
