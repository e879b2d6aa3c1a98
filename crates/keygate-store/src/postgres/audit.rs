//! The audit log: appended inside the transaction of the change it records.

use keygate_core::model::EpochSeconds;
use sqlx::{PgConnection, Row};

use crate::error::{Result, StoreError};
use crate::types::{AuditAction, AuditEntry, AuditRange, AuditRecord};

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
