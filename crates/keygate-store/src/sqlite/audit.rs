//! The audit log: appended inside the transaction of the change it records.

use keygate_core::model::EpochSeconds;
use sqlx::SqliteConnection;

use crate::error::Result;
use crate::types::{AuditEntry, AuditRange, AuditRecord};

pub(super) async fn append(conn: &mut SqliteConnection, r: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, user_id, username, ip, action, target_type, target_id, target, success, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

pub(super) async fn list(
    conn: &mut SqliteConnection,
    range: &AuditRange,
) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT id, at, user_id, username, ip, action, target_type, target_id, target, success, detail \
         FROM audit_log WHERE at >= ? AND at <= ? AND (? IS NULL OR id = ?) ORDER BY id DESC LIMIT ?",
    )
    .bind(range.from.unwrap_or(EpochSeconds::MIN))
    .bind(range.to.unwrap_or(EpochSeconds::MAX))
    .bind(range.id)
    .bind(range.id)
    .bind(range.limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(crate::common::audit_entry).collect()
}
