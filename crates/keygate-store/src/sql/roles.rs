//! Roles and their privileges.

use std::collections::HashMap;

use super::dialect::{Row, query, query_scalar};
use keygate_core::model::{EpochSeconds, Privilege, Role, RoleId};

use super::dialect::Conn;
use super::log_change;
use crate::error::{Result, StoreError};
use crate::types::{Entity, RoleInput, RolePatch, RoleWithCount};

pub(super) async fn list(conn: &mut Conn, only: Option<RoleId>) -> Result<Vec<RoleWithCount>> {
    let rows = query(
        "SELECT r.id, r.name, r.description, (SELECT COUNT(*) FROM user_roles ur WHERE ur.role_id = r.id) \
         FROM roles r WHERE (CAST($1 AS BIGINT) IS NULL OR r.id = $1) ORDER BY r.id",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let mut privs = privileges(conn, only).await?;
    rows.iter()
        .map(|row| {
            let id: RoleId = row.try_get(0)?;
            Ok(RoleWithCount {
                role: Role {
                    id,
                    name: row.try_get(1)?,
                    description: row.try_get(2)?,
                    privileges: privs.remove(&id).unwrap_or_default(),
                },
                user_count: row.try_get(3)?,
            })
        })
        .collect()
}

pub(super) async fn privileges(
    conn: &mut Conn,
    only: Option<RoleId>,
) -> Result<HashMap<RoleId, Vec<Privilege>>> {
    let rows = query(
        "SELECT role_id, object_type, object_id, operation FROM role_privileges \
         WHERE (CAST($1 AS BIGINT) IS NULL OR role_id = $1) ORDER BY role_id, position",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: HashMap<RoleId, Vec<Privilege>> = HashMap::new();
    for row in rows {
        out.entry(row.try_get(0)?).or_default().push(Privilege {
            object_type: row.try_get(1)?,
            object_id: row.try_get(2)?,
            operation: row.try_get(3)?,
        });
    }
    Ok(out)
}

pub(super) async fn get(conn: &mut Conn, id: RoleId) -> Result<RoleWithCount> {
    list(conn, Some(id))
        .await?
        .pop()
        .ok_or_else(|| StoreError::no_role(id))
}

pub(super) async fn by_name(conn: &mut Conn, name: &str) -> Result<RoleWithCount> {
    // lower() on both sides: PostgreSQL's unique index is on lower(name); SQLite's
    // lower() folds ASCII only, exactly as its NOCASE index does, so both find one role.
    let id: Option<RoleId> = query_scalar("SELECT id FROM roles WHERE lower(name) = lower($1)")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    let id = id.ok_or_else(|| StoreError::NotFound(format!("role named \"{name}\"")))?;
    get(conn, id).await
}

fn name_taken(e: impl Into<StoreError>, name: &str) -> StoreError {
    match e.into() {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a role named \"{name}\" already exists"))
        }
        other => other,
    }
}

pub(super) async fn create(
    conn: &mut Conn,
    input: &RoleInput,
    now: EpochSeconds,
) -> Result<RoleId> {
    let id: RoleId =
        query_scalar("INSERT INTO roles (name, description) VALUES ($1, $2) RETURNING id")
            .bind(&input.name)
            .bind(&input.description)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| name_taken(e, &input.name))?;
    set_privileges(conn, id, &input.privileges).await?;
    log_change(conn, Entity::Role, id, now).await?;
    Ok(id)
}

async fn set_privileges(conn: &mut Conn, id: RoleId, privileges: &[Privilege]) -> Result<()> {
    query("DELETE FROM role_privileges WHERE role_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (position, p) in (0_i64..).zip(privileges) {
        query(
            "INSERT INTO role_privileges (role_id, position, object_type, object_id, operation) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(position)
        .bind(&p.object_type)
        .bind(&p.object_id)
        .bind(&p.operation)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn update(
    conn: &mut Conn,
    id: RoleId,
    patch: &RolePatch,
    now: EpochSeconds,
) -> Result<()> {
    let done = query("UPDATE roles SET name = COALESCE($1, name), description = COALESCE($2, description) WHERE id = $3")
        .bind(patch.name.as_deref())
        .bind(patch.description.as_deref())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(|e| name_taken(e, patch.name.as_deref().unwrap_or("")))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::no_role(id));
    }
    if let Some(p) = &patch.privileges {
        set_privileges(conn, id, p).await?;
    }
    log_change(conn, Entity::Role, id, now).await
}

pub(super) async fn delete(conn: &mut Conn, id: RoleId, now: EpochSeconds) -> Result<()> {
    let role = get(conn, id).await?;
    if role.user_count > 0 {
        return Err(StoreError::Conflict(format!(
            "role \"{}\" is assigned to {} user(s); assign them other roles first",
            role.role.name, role.user_count
        )));
    }
    query("DELETE FROM roles WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    log_change(conn, Entity::Role, id, now).await
}

/// Fails with a clear message if any of `ids` is not a role.
pub(super) async fn require_all(conn: &mut Conn, ids: &[RoleId]) -> Result<()> {
    for &id in ids {
        let found: Option<i64> = query_scalar("SELECT id FROM roles WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            return Err(StoreError::Invalid(keygate_core::Error::Invalid {
                field: "roles",
                reason: format!("role {id} does not exist"),
            }));
        }
    }
    Ok(())
}
