//! The audit log: appended inside the transaction of the change it records.

use keygate_core::model::EpochSeconds;
use sqlx::{Row, SqliteConnection};

use crate::error::{Result, StoreError};
use crate::types::{AuditAction, AuditEntry, AuditRange, AuditRecord};

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
    rows.iter()
        .map(|row| {
            let action: String = row.try_get(5)?;
            Ok(AuditEntry {
                id: row.try_get(0)?,
                record: AuditRecord {
                    at: row.try_get(1)?,
                    user_id: row.try_get(2)?,
                    username: row.try_get(3)?,
                    ip: row.try_get(4)?,
                    action: AuditAction::parse(&action)
                        .ok_or(StoreError::Corrupt("unknown audit action"))?,
                    target_type: row.try_get(6)?,
                    target_id: row.try_get(7)?,
                    target: row.try_get(8)?,
                    success: row.try_get(9)?,
                    detail: row.try_get(10)?,
                },
            })
        })
        .collect()
}
