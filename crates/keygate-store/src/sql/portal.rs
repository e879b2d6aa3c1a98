//! Portal settings and first-start bootstrap.

use super::dialect::{Row, query, query_scalar};
use keygate_core::model::{EpochSeconds, Portal, builtin_roles};

use super::dialect::Conn;
use super::{log_change, roles, users};
use crate::error::{Result, StoreError};
use crate::types::{Entity, PortalPatch, RoleInput};

pub(super) async fn bootstrap(
    conn: &mut Conn,
    admin_password_hash: &str,
    now: EpochSeconds,
) -> Result<bool> {
    let exists: Option<i32> = query_scalar("SELECT id FROM portal WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Ok(false);
    }
    let p = Portal::default();
    query(
        "INSERT INTO portal (id, company_name, traces_enabled, max_tokens_per_user, lmv1_clock_skew_seconds, \
         lmv1_replay_protection) VALUES (1, $1, $2, $3, $4, $5)",
    )
    .bind(&p.company_name)
    .bind(p.traces_enabled)
    .bind(p.max_tokens_per_user)
    .bind(p.lmv1_clock_skew_seconds)
    .bind(p.lmv1_replay_protection)
    .execute(&mut *conn)
    .await?;
    log_change(conn, Entity::Portal, 1, now).await?;
    let mut admin_role = None;
    for (name, description, privileges) in builtin_roles() {
        let id = roles::create(
            conn,
            &RoleInput {
                name: name.clone(),
                description,
                privileges,
            },
            now,
        )
        .await?;
        if name == "administrator" {
            admin_role = Some(id);
        }
    }
    let admin_role =
        admin_role.ok_or(StoreError::Corrupt("built-in administrator role missing"))?;
    let admin = crate::common::bootstrap_admin(admin_role);
    users::create(conn, &admin, Some(admin_password_hash), "system", now).await?;
    Ok(true)
}

pub(super) async fn get(conn: &mut Conn) -> Result<Portal> {
    let row = query(
        "SELECT company_name, traces_enabled, max_tokens_per_user, lmv1_clock_skew_seconds, lmv1_replay_protection \
         FROM portal WHERE id = 1",
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::Corrupt("portal settings missing; the store was not bootstrapped"))?;
    Ok(Portal {
        company_name: row.try_get(0)?,
        traces_enabled: row.try_get(1)?,
        max_tokens_per_user: row.try_get(2)?,
        lmv1_clock_skew_seconds: row.try_get(3)?,
        lmv1_replay_protection: row.try_get(4)?,
    })
}

pub(super) async fn update(
    conn: &mut Conn,
    patch: &PortalPatch,
    now: EpochSeconds,
) -> Result<Portal> {
    query(
        "UPDATE portal SET company_name = COALESCE($1, company_name), traces_enabled = COALESCE($2, traces_enabled), \
         max_tokens_per_user = COALESCE($3, max_tokens_per_user), \
         lmv1_clock_skew_seconds = COALESCE($4, lmv1_clock_skew_seconds), \
         lmv1_replay_protection = COALESCE($5, lmv1_replay_protection) WHERE id = 1",
    )
    .bind(patch.company_name.as_deref())
    .bind(patch.traces_enabled)
    .bind(patch.max_tokens_per_user)
    .bind(patch.lmv1_clock_skew_seconds)
    .bind(patch.lmv1_replay_protection)
    .execute(&mut *conn)
    .await?;
    log_change(conn, Entity::Portal, 1, now).await?;
    get(conn).await
}
