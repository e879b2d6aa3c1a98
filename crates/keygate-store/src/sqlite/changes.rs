//! What the Verifier reads: the full snapshot at start-up, then the change log.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use keygate_core::model::{RoleId, TokenId, UserId, UserStatus};
use keygate_core::policy::Grants;
use keygate_core::token::TokenDigest;
use sqlx::{Row, SqliteConnection};

use super::{portal, roles};
use crate::common::digest;
use crate::error::{Result, StoreError};
use crate::seal::MasterKey;
use crate::types::{Change, Entity, IndexEntry, Lmv1Key, Snapshot, TokenKey, UserKey};
use keygate_core::lmv1::AccessKey;

fn token_key(row: &sqlx::sqlite::SqliteRow) -> Result<Option<TokenKey>> {
    let Some(d) = digest(row.try_get(2)?)? else {
        return Ok(None);
    };
    let status: i64 = row.try_get(3)?;
    Ok(Some(TokenKey {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        digest: d,
        enabled: status == 2,
    }))
}

pub(super) async fn snapshot(conn: &mut SqliteConnection, key: &MasterKey) -> Result<Snapshot> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM change_log")
        .fetch_one(&mut *conn)
        .await?;
    let tokens = bearer_keys(conn).await?;
    let mut lmv1 = Vec::new();
    for row in sqlx::query(
        "SELECT id, user_id, access_id, sealed_key, status FROM api_tokens WHERE type = 'lmv1'",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        lmv1.push(lmv1_key(&row, key)?);
    }
    let mut role_map: HashMap<UserId, Vec<RoleId>> = HashMap::new();
    for row in sqlx::query("SELECT user_id, role_id FROM user_roles ORDER BY user_id, position")
        .fetch_all(&mut *conn)
        .await?
    {
        role_map
            .entry(row.try_get(0)?)
            .or_default()
            .push(row.try_get(1)?);
    }
    let mut users = Vec::new();
    for row in sqlx::query("SELECT id, username, status FROM users")
        .fetch_all(&mut *conn)
        .await?
    {
        let id: UserId = row.try_get(0)?;
        let status: String = row.try_get(2)?;
        users.push(UserKey {
            id,
            username: row.try_get(1)?,
            active: UserStatus::parse(&status) == Some(UserStatus::Active),
            role_ids: role_map.remove(&id).unwrap_or_default(),
        });
    }
    let roles = roles::privileges(conn, None)
        .await?
        .into_iter()
        .map(|(id, ps)| (id, Grants::of_all(&ps)))
        .collect::<Vec<_>>();
    // Roles without privileges still exist and grant nothing.
    let all_roles: Vec<RoleId> = sqlx::query_scalar("SELECT id FROM roles")
        .fetch_all(&mut *conn)
        .await?;
    let mut roles = roles;
    for id in all_roles {
        if !roles.iter().any(|(r, _)| *r == id) {
            roles.push((id, Grants::NONE));
        }
    }
    let portal = portal::get(conn).await?;
    Ok(Snapshot {
        seq,
        tokens,
        lmv1,
        users,
        roles,
        portal,
    })
}

/// Every bearer token's index key.
///
/// SQLite packs about a thousand tokens into each result row (`id,user,status,hex`
/// joined by `;`), because handing rows one by one from SQLite's worker thread costs
/// microseconds per row — most of start-up with a million tokens — while SQLite itself
/// formats them in nanoseconds. The text holds no secret: only SHA-256 digests.
async fn bearer_keys(conn: &mut SqliteConnection) -> Result<Vec<TokenKey>> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE type = 'bearer'")
        .fetch_one(&mut *conn)
        .await?;
    let mut keys = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut chunks = sqlx::query_scalar::<_, String>(
        "SELECT group_concat(id || ',' || user_id || ',' || status || ',' || hex(secret_hash), ';') \
         FROM api_tokens WHERE type = 'bearer' AND secret_hash IS NOT NULL GROUP BY id >> 10",
    )
    .fetch(&mut *conn);
    while let Some(chunk) = chunks.try_next().await? {
        for item in chunk.split(';') {
            keys.push(parse_key(item).ok_or(StoreError::Corrupt("unreadable token index entry"))?);
        }
    }
    Ok(keys)
}

fn parse_key(item: &str) -> Option<TokenKey> {
    let mut parts = item.split(',');
    let id = parts.next()?.parse().ok()?;
    let user_id = parts.next()?.parse().ok()?;
    let status: i64 = parts.next()?.parse().ok()?;
    let hex = parts.next()?.as_bytes();
    if hex.len() != 64 || parts.next().is_some() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let nibble = |c: u8| char::from(c).to_digit(16);
        *byte = u8::try_from(nibble(pair[0])? * 16 + nibble(pair[1])?).ok()?;
    }
    Some(TokenKey {
        id,
        user_id,
        digest: TokenDigest(digest),
        enabled: status == 2,
    })
}

pub(super) async fn since(
    conn: &mut SqliteConnection,
    seq: i64,
    limit: i64,
) -> Result<Vec<Change>> {
    let rows = sqlx::query(
        "SELECT seq, entity, entity_id, digest, access_id FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let entity: String = row.try_get(1)?;
            Ok(Change {
                seq: row.try_get(0)?,
                entity: Entity::parse(&entity)
                    .ok_or(StoreError::Corrupt("unknown change-log entity"))?,
                id: row.try_get(2)?,
                digest: digest(row.try_get(3)?)?,
                access_id: row.try_get(4)?,
            })
        })
        .collect()
}

/// Reads (`id`, `user_id`, `access_id`, `sealed_key`, `status`) and unseals the key.
fn lmv1_key(row: &sqlx::sqlite::SqliteRow, key: &MasterKey) -> Result<Lmv1Key> {
    let id: TokenId = row.try_get(0)?;
    let sealed: Option<Vec<u8>> = row.try_get(3)?;
    let sealed = sealed.ok_or(StoreError::Corrupt("LMv1 token without a sealed key"))?;
    let plain = key.open(&sealed, id)?;
    let text = String::from_utf8(plain.to_vec())
        .map_err(|_| StoreError::Corrupt("LMv1 key is not UTF-8"))?;
    let status: i64 = row.try_get(4)?;
    Ok(Lmv1Key {
        id,
        user_id: row.try_get(1)?,
        access_id: row.try_get(2)?,
        key: AccessKey::from_secret(text),
        enabled: status == 2,
    })
}

pub(super) async fn index_entry(
    conn: &mut SqliteConnection,
    id: TokenId,
    key: &MasterKey,
) -> Result<Option<IndexEntry>> {
    let Some(row) = sqlx::query("SELECT type FROM api_tokens WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let kind: String = row.try_get(0)?;
    if kind == "lmv1" {
        let row = sqlx::query(
            "SELECT id, user_id, access_id, sealed_key, status FROM api_tokens WHERE id = ?",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        return Ok(Some(IndexEntry::Lmv1(lmv1_key(&row, key)?)));
    }
    let row = sqlx::query("SELECT id, user_id, secret_hash, status FROM api_tokens WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(token_key(&row)?.map(IndexEntry::Bearer))
}

pub(super) async fn user_key(conn: &mut SqliteConnection, id: UserId) -> Result<Option<UserKey>> {
    let Some(row) = sqlx::query("SELECT username, status FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let status: String = row.try_get(1)?;
    let role_ids: Vec<RoleId> =
        sqlx::query_scalar("SELECT role_id FROM user_roles WHERE user_id = ? ORDER BY position")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(Some(UserKey {
        id,
        username: row.try_get(0)?,
        active: UserStatus::parse(&status) == Some(UserStatus::Active),
        role_ids,
    }))
}

pub(super) async fn role_grants(conn: &mut SqliteConnection, id: RoleId) -> Result<Option<Grants>> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM roles WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let privs = roles::privileges(conn, Some(id)).await?;
    Ok(Some(Grants::of_all(privs.values().flatten())))
}

/// What `user`'s roles grant together now (nothing for a missing user).
pub(super) async fn user_grants(conn: &mut SqliteConnection, user: UserId) -> Result<Grants> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT rp.object_type, rp.object_id, rp.operation FROM user_roles ur \
         JOIN role_privileges rp ON rp.role_id = ur.role_id WHERE ur.user_id = ?",
    )
    .bind(user)
    .fetch_all(&mut *conn)
    .await?;
    Ok(crate::common::grants_of_rows(rows))
}

/// What a set of roles grants together (missing roles grant nothing).
pub(super) async fn roles_grants(conn: &mut SqliteConnection, ids: &[RoleId]) -> Result<Grants> {
    let mut g = Grants::NONE;
    for id in ids {
        g = g.union(role_grants(conn, *id).await?.unwrap_or(Grants::NONE));
    }
    Ok(g)
}

/// Fails with [`StoreError::LockOut`] when no active user holds `setting useraccess
/// write` any more: run after a change, inside its transaction.
pub(super) async fn ensure_a_user_admin(conn: &mut SqliteConnection) -> Result<()> {
    let n: i64 = sqlx::query_scalar(crate::common::ACTIVE_USER_ADMINS)
        .fetch_one(&mut *conn)
        .await?;
    if n > 0 {
        Ok(())
    } else {
        Err(StoreError::LockOut)
    }
}
