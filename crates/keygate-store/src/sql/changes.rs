//! What the Verifier reads: the full snapshot at start-up, then the change log.

use std::collections::HashMap;

use super::dialect::{Row, query, query_as, query_scalar};
use keygate_core::lmv1::AccessKey;
use keygate_core::model::{RoleId, TokenId, TokenStatus, UserId, UserStatus};
use keygate_core::policy::Grants;

use super::dialect::{self, Conn, DbRow};
use super::{portal, roles};
use crate::common::digest;
use crate::error::{Result, StoreError};
use crate::seal::MasterKey;
use crate::types::{Change, Entity, Lmv1Key, Snapshot, TokenKey, UserKey};

/// Reads (`id`, `user_id`, `access_id`, `sealed_key`, `status`) and unseals the key.
fn lmv1_key(row: &DbRow, key: &MasterKey) -> Result<Lmv1Key> {
    let status: i64 = row.try_get(4)?;
    unseal_lmv1(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        status == 2,
        key,
    )
}

/// An LMv1 token's index entry from its columns, its key unsealed.
pub(super) fn unseal_lmv1(
    id: TokenId,
    user_id: UserId,
    access_id: String,
    sealed: Option<Vec<u8>>,
    enabled: bool,
    key: &MasterKey,
) -> Result<Lmv1Key> {
    let sealed = sealed.ok_or(StoreError::Corrupt("LMv1 token without a sealed key"))?;
    let plain = key.open(&sealed, id)?;
    let text = String::from_utf8(plain.to_vec())
        .map_err(|_| StoreError::Corrupt("LMv1 key is not UTF-8"))?;
    Ok(Lmv1Key {
        id,
        user_id,
        access_id,
        key: AccessKey::from_secret(text),
        enabled,
    })
}

/// The change log's newest position (0 when it is empty).
pub(super) async fn position(conn: &mut Conn) -> Result<i64> {
    Ok(query_scalar("SELECT COALESCE(MAX(seq), 0) FROM change_log")
        .fetch_one(&mut *conn)
        .await?)
}

/// Every bearer token's index key, each row decoded as it is read (a million rows
/// never sit in memory as rows).
async fn bearer_keys(conn: &mut Conn) -> Result<Vec<TokenKey>> {
    let mut keys = Vec::new();
    let q = query("SELECT id, user_id, secret_hash, status FROM api_tokens WHERE type = 'bearer'");
    dialect::each_row(conn, q, &mut |row| {
        if let Some(digest) = digest(row.try_get(2)?)? {
            let status: i64 = row.try_get(3)?;
            keys.push(TokenKey {
                id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                digest,
                enabled: status == TokenStatus::Enabled.code(),
            });
        }
        Ok(())
    })
    .await?;
    Ok(keys)
}

pub(super) async fn snapshot(conn: &mut Conn, key: &MasterKey) -> Result<Snapshot> {
    let seq = position(conn).await?;
    let tokens = bearer_keys(conn).await?;
    let mut lmv1 = Vec::new();
    for row in query(
        "SELECT id, user_id, access_id, sealed_key, status FROM api_tokens WHERE type = 'lmv1'",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        lmv1.push(lmv1_key(&row, key)?);
    }
    let mut role_map: HashMap<UserId, Vec<RoleId>> = HashMap::new();
    for row in query("SELECT user_id, role_id FROM user_roles ORDER BY user_id, position")
        .fetch_all(&mut *conn)
        .await?
    {
        role_map
            .entry(row.try_get(0)?)
            .or_default()
            .push(row.try_get(1)?);
    }
    let mut users = Vec::new();
    for row in query("SELECT id, username, status FROM users")
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
    let privileges = roles::privileges(conn, None).await?;
    let all_roles: Vec<RoleId> = query_scalar("SELECT id FROM roles")
        .fetch_all(&mut *conn)
        .await?;
    // Roles without privileges still exist and grant nothing.
    let roles = all_roles
        .into_iter()
        .map(|id| (id, privileges.get(&id).map_or(Grants::NONE, Grants::of_all)))
        .collect();
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

pub(super) async fn since(conn: &mut Conn, seq: i64, limit: i64) -> Result<Vec<Change>> {
    let rows = query("SELECT seq, entity, entity_id, digest, access_id FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2")
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

pub(super) async fn user_key(conn: &mut Conn, id: UserId) -> Result<Option<UserKey>> {
    let Some(row) = query("SELECT username, status FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let status: String = row.try_get(1)?;
    let role_ids: Vec<RoleId> =
        query_scalar("SELECT role_id FROM user_roles WHERE user_id = $1 ORDER BY position")
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

pub(super) async fn role_grants(conn: &mut Conn, id: RoleId) -> Result<Option<Grants>> {
    let exists: Option<i64> = query_scalar("SELECT id FROM roles WHERE id = $1")
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
pub(super) async fn user_grants(conn: &mut Conn, user: UserId) -> Result<Grants> {
    let rows: Vec<(String, String, String)> = query_as(
        "SELECT rp.object_type, rp.object_id, rp.operation FROM user_roles ur \
         JOIN role_privileges rp ON rp.role_id = ur.role_id WHERE ur.user_id = $1",
    )
    .bind(user)
    .fetch_all(&mut *conn)
    .await?;
    Ok(crate::common::grants_of_rows(rows))
}

/// What a set of roles grants together (missing roles grant nothing).
pub(super) async fn roles_grants(conn: &mut Conn, ids: &[RoleId]) -> Result<Grants> {
    let mut g = Grants::NONE;
    for id in ids {
        g = g.union(role_grants(conn, *id).await?.unwrap_or(Grants::NONE));
    }
    Ok(g)
}

/// Fails with [`StoreError::LockOut`] when no active user holds `setting useraccess
/// write` any more: run after a change, inside its transaction.
pub(super) async fn ensure_a_user_admin(conn: &mut Conn) -> Result<()> {
    let n: i64 = query_scalar(crate::common::ACTIVE_USER_ADMINS)
        .fetch_one(&mut *conn)
        .await?;
    if n > 0 {
        Ok(())
    } else {
        Err(StoreError::LockOut)
    }
}

/// The change log's floor: entries at or below it were pruned.
pub(super) async fn floor(conn: &mut Conn) -> Result<i64> {
    Ok(
        query_scalar("SELECT seq FROM change_log_floor WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?,
    )
}
