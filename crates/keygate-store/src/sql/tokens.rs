//! API tokens: creation with its owner checks, note/status changes, deletion, usage.

use super::dialect::{Row, query, query_as, query_scalar};
use keygate_core::model::{ApiToken, EpochSeconds, TokenId, TokenStatus, TokenType, UserId};
use keygate_core::policy::{self, TokenWrite};

use super::dialect::{Conn, DbRow};
use super::{TokenRef, log_token_change};
use crate::common::digest;
use crate::error::{Result, StoreError};
use crate::seal::MasterKey;
use crate::types::{
    IndexEntry, Logged, NewBearerToken, NewLmv1Token, TokenKey, TokenPatch, TokenState, Usage,
};

/// The token columns [`from_row`] reads, in its order (a literal, so SQL stays static).
macro_rules! token_columns {
    () => {
        "id, user_id, type, access_id, note, status, created_on, created_by, last_used_on, last_auth_ip"
    };
}

fn from_row(row: &DbRow) -> Result<ApiToken> {
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

pub(super) async fn list(conn: &mut Conn, owner: Option<UserId>) -> Result<Vec<ApiToken>> {
    let rows = query(concat!(
        "SELECT ",
        token_columns!(),
        " FROM api_tokens WHERE (CAST($1 AS BIGINT) IS NULL OR user_id = $1) ORDER BY id"
    ))
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The bearer token whose secret has this SHA-256 digest, if any. One indexed read
/// whether or not it exists.
pub(super) async fn by_hash(conn: &mut Conn, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
    let row = query(concat!(
        "SELECT ",
        token_columns!(),
        " FROM api_tokens WHERE secret_hash = $1"
    ))
    .bind(hash.as_slice())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// One token's row and index entry in one read (the columns of [`from_row`], then the
/// sealed LMv1 key and the bearer digest).
pub(super) async fn state(
    conn: &mut Conn,
    id: TokenId,
    key: &MasterKey,
) -> Result<Option<TokenState>> {
    let Some(row) = query(concat!(
        "SELECT ",
        token_columns!(),
        ", sealed_key, secret_hash FROM api_tokens WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let token = from_row(&row)?;
    let enabled = token.status == TokenStatus::Enabled;
    let entry = match token.token_type {
        TokenType::Lmv1 => super::changes::unseal_lmv1(
            token.id,
            token.user_id,
            token.access_id.clone(),
            row.try_get(10)?,
            enabled,
            key,
        )
        .map(|k| Some(IndexEntry::Lmv1(k))),
        TokenType::Bearer => digest(row.try_get(11)?).map(|d| {
            d.map(|digest| {
                IndexEntry::Bearer(TokenKey {
                    id: token.id,
                    user_id: token.user_id,
                    digest,
                    enabled,
                })
            })
        }),
    };
    Ok(Some(TokenState { token, entry }))
}

/// Every token, one at a time as the rows are read; the caller's transaction makes
/// the read consistent.
pub(super) async fn each(conn: &mut Conn, each: &mut (dyn FnMut(ApiToken) + Send)) -> Result<()> {
    let q = query(concat!("SELECT ", token_columns!(), " FROM api_tokens"));
    super::dialect::each_row(conn, q, &mut |row| {
        each(from_row(row)?);
        Ok(())
    })
    .await
}

/// Last use at or after `since`, for every token that has one.
pub(super) async fn used_since(conn: &mut Conn, since: EpochSeconds) -> Result<Vec<Usage>> {
    // `> 0` as the index's own condition reads, so the planner may use it.
    let rows = query(
        "SELECT id, last_used_on, last_auth_ip FROM api_tokens \
         WHERE last_used_on >= $1 AND last_used_on > 0",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Usage {
                token_id: r.try_get(0)?,
                at: r.try_get(1)?,
                ip: r.try_get(2)?,
            })
        })
        .collect()
}

pub(super) async fn get(conn: &mut Conn, id: TokenId) -> Result<ApiToken> {
    let row = query(concat!(
        "SELECT ",
        token_columns!(),
        " FROM api_tokens WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::no_token(id))?;
    from_row(&row)
}

/// What a new token's checks need to know of its owner.
struct OwnerState {
    username: String,
    traces_enabled: bool,
    /// What the owner's roles grant now: what the token would act with.
    grants: keygate_core::policy::Grants,
}

/// Checks that `owner` exists, is active and is under `maxTokensPerUser`, and reads what
/// it holds. Runs under the write lock, so no other node can create a token between
/// the count and the insert, and no role change can slip in between.
async fn owner_for_new_token(conn: &mut Conn, owner: UserId) -> Result<OwnerState> {
    // Owner, portal, the owner's token count and the privileges of its roles (one row
    // each, the owner's columns repeated) in one round trip: every statement here runs
    // inside the write lock, so fewer of them means more creates per second. The count
    // is a derived table, computed once (a correlated subquery would count again for
    // every privilege row).
    let rows = query(
        "SELECT u.username, u.status, p.traces_enabled, p.max_tokens_per_user, c.n, \
         rp.object_type, rp.object_id, rp.operation \
         FROM users u JOIN portal p ON p.id = 1 \
         JOIN (SELECT COUNT(*) AS n FROM api_tokens WHERE user_id = $1) c ON 1 = 1 \
         LEFT JOIN user_roles ur ON ur.user_id = u.id \
         LEFT JOIN role_privileges rp ON rp.role_id = ur.role_id \
         WHERE u.id = $1",
    )
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    let row = rows.first().ok_or_else(|| StoreError::no_user(owner))?;
    let username: String = row.try_get(0)?;
    let status: String = row.try_get(1)?;
    let max_tokens: i64 = row.try_get(3)?;
    let count: i64 = row.try_get(4)?;
    let traces_enabled = row.try_get(2)?;
    let username = crate::common::check_new_token_owner(username, &status, count, max_tokens)?;
    let mut privileges = Vec::with_capacity(rows.len());
    for r in &rows {
        let (t, i, o): (Option<String>, Option<String>, Option<String>) =
            (r.try_get(5)?, r.try_get(6)?, r.try_get(7)?);
        if let (Some(t), Some(i), Some(o)) = (t, i, o) {
            privileges.push((t, i, o));
        }
    }
    Ok(OwnerState {
        username,
        traces_enabled,
        grants: crate::common::grants_of_rows(privileges),
    })
}

pub(super) async fn create_bearer(
    conn: &mut Conn,
    cap: &TokenWrite,
    new: &NewBearerToken,
    now: EpochSeconds,
) -> Result<Logged<ApiToken>> {
    let owner = cap.owner();
    let state = owner_for_new_token(conn, owner).await?;
    cap.may_mint(state.grants).map_err(StoreError::Denied)?;
    policy::bearer_owner(state.grants, state.traces_enabled)
        .map_err(|r| StoreError::BearerRefused(r, state.username))?;
    let row = query(concat!(
        "INSERT INTO api_tokens (user_id, type, access_id, secret_hash, note, status, created_on, created_by) \
         VALUES ($1, 'bearer', $2, $3, $4, $5, $6, $7) RETURNING ",
        token_columns!()
    ))
    .bind(owner)
    .bind(&new.access_id)
    .bind(&new.digest.0[..])
    .bind(&new.note)
    .bind(new.status.code())
    .bind(now)
    .bind(&new.created_by)
    .fetch_one(&mut *conn)
    .await?;
    let token = from_row(&row)?;
    let r = TokenRef {
        digest: Some(new.digest.0.to_vec()),
        access_id: None,
    };
    let seq = log_token_change(conn, token.id, &r, now).await?;
    Ok(Logged { value: token, seq })
}

/// Fails unless `key` is the master key the store currently holds keys under: a
/// process that kept running across a rotation must not seal with the old key.
pub(super) async fn ensure_current_key(conn: &mut Conn, key: &MasterKey) -> Result<()> {
    let stored: Option<Vec<u8>> =
        query_scalar("SELECT value FROM meta WHERE name = 'master_key_check'")
            .fetch_optional(&mut *conn)
            .await?;
    match stored {
        Some(v) if key.matches(&v) => Ok(()),
        _ => Err(StoreError::MasterKey(
            "the master key was rotated since this process started; restart it with the new key"
                .to_owned(),
        )),
    }
}

pub(super) async fn create_lmv1(
    conn: &mut Conn,
    cap: &TokenWrite,
    new: &NewLmv1Token,
    key: &MasterKey,
    now: EpochSeconds,
) -> Result<ApiToken> {
    let owner = cap.owner();
    ensure_current_key(conn, key).await?;
    let state = owner_for_new_token(conn, owner).await?;
    cap.may_mint(state.grants).map_err(StoreError::Denied)?;
    let row = query(concat!(
        "INSERT INTO api_tokens (user_id, type, access_id, note, status, created_on, created_by) \
         VALUES ($1, 'lmv1', $2, $3, $4, $5, $6) RETURNING ",
        token_columns!()
    ))
    .bind(owner)
    .bind(&new.access_id)
    .bind(&new.note)
    .bind(new.status.code())
    .bind(now)
    .bind(&new.created_by)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match StoreError::from(e) {
        // 62^20 ids make this practically impossible; say what it was if it happens.
        StoreError::Conflict(_) => StoreError::Conflict("access id collision; retry".to_owned()),
        other => other,
    })?;
    let token = from_row(&row)?;
    // Sealed after the insert so the row's id can be bound into the ciphertext.
    let sealed = key.seal(new.key.expose_secret().as_bytes(), token.id)?;
    query("UPDATE api_tokens SET sealed_key = $1 WHERE id = $2")
        .bind(sealed)
        .bind(token.id)
        .execute(&mut *conn)
        .await?;
    let r = TokenRef {
        digest: None,
        access_id: Some(new.access_id.clone()),
    };
    log_token_change(conn, token.id, &r, now).await?;
    Ok(token)
}

/// How `id` is indexed, if it belongs to `owner`; `NotFound` otherwise, whether the
/// token is missing or someone else's (the two must be indistinguishable).
async fn owned(conn: &mut Conn, owner: UserId, id: TokenId) -> Result<TokenRef> {
    let row =
        query("SELECT type, secret_hash, access_id FROM api_tokens WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::no_token(id))?;
    TokenRef::from_row(&row, 0)
}

pub(super) async fn update(
    conn: &mut Conn,
    owner: UserId,
    id: TokenId,
    patch: &TokenPatch,
    now: EpochSeconds,
) -> Result<()> {
    let r = owned(conn, owner, id).await?;
    query("UPDATE api_tokens SET note = COALESCE($1, note), status = COALESCE($2, status) WHERE id = $3")
        .bind(patch.note.as_deref())
        .bind(patch.status.map(TokenStatus::code))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    log_token_change(conn, id, &r, now).await?;
    Ok(())
}

pub(super) async fn delete(
    conn: &mut Conn,
    owner: UserId,
    id: TokenId,
    now: EpochSeconds,
) -> Result<()> {
    let r = owned(conn, owner, id).await?;
    query("DELETE FROM api_tokens WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    log_token_change(conn, id, &r, now).await?;
    Ok(())
}

pub(super) async fn record_usage(conn: &mut Conn, batch: &[Usage]) -> Result<()> {
    for u in batch {
        // A deleted token matches no row; an older record never overwrites a newer one.
        query("UPDATE api_tokens SET last_used_on = $1, last_auth_ip = $2 WHERE id = $3 AND last_used_on <= $1")
            .bind(u.at)
            .bind(&u.ip)
            .bind(u.token_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// How many tokens there are of each type and status.
pub(super) async fn counts(conn: &mut Conn) -> Result<Vec<crate::types::TokenCount>> {
    let rows: Vec<(String, i64, i64)> = query_as(
        "SELECT type, CAST(status AS BIGINT), COUNT(*) FROM api_tokens GROUP BY type, status",
    )
    .fetch_all(&mut *conn)
    .await?;
    crate::common::token_counts(rows)
}
