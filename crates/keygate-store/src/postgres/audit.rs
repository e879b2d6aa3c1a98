//! The audit log: appended inside the transaction of the change it records.

use keygate_core::model::EpochSeconds;
use sqlx::PgConnection;

use crate::error::Result;
use crate::types::{AuditEntry, AuditRange, AuditRecord};

pub(super) async fn append(conn: &mut PgConnection, r: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, user_id, username, ip, action, target_type, target_id, target, success, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(r.at)
    .bind(r.user_id)
    .bind(&r.username)
    .bind(r.ip.as_deref())
    .bind(r.action.as_str())
    .bind(&r.target_type)
    .bind(r.target_id)
    .bind(&r.target)
    .bind(r.success)
    .bind(&r.detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn list(conn: &mut PgConnection, range: &AuditRange) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT id, at, user_id, username, ip, action, target_type, target_id, target, success, detail \
         FROM audit_log WHERE at >= $1 AND at <= $2 AND ($3::BIGINT IS NULL OR id = $3) ORDER BY id DESC LIMIT $4",
    )
    .bind(range.from.unwrap_or(EpochSeconds::MIN))
    .bind(range.to.unwrap_or(EpochSeconds::MAX))
    .bind(range.id)
    .bind(range.limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(crate::common::audit_entry).collect()
}
