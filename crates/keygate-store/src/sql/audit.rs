//! The audit log: appended inside the transaction of the change it records.

use super::dialect::{Conn, DbRow, Row, query};
use keygate_core::model::EpochSeconds;

use crate::error::{Result, StoreError};
use crate::types::{AuditAction, AuditEntry, AuditRange, AuditRecord};

/// The audit-log columns [`entry`] decodes, in its order (a literal, so SQL stays
/// static).
macro_rules! audit_columns {
    () => {
        "id, at, user_id, username, ip, action, target_type, target_id, target, success, detail, \
         via_token_id, via_token, via_token_created_by"
    };
}

/// Decodes an audit-log row ([`audit_columns`]).
fn entry(row: &DbRow) -> Result<AuditEntry> {
    let action: String = row.try_get(5)?;
    let via: Option<i64> = row.try_get(11)?;
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
            via: via
                .map(|token_id| -> Result<_> {
                    Ok(keygate_core::policy::Via {
                        token_id,
                        token: row.try_get(12)?,
                        created_by: row.try_get(13)?,
                    })
                })
                .transpose()?,
        },
    })
}

pub(super) async fn append(conn: &mut Conn, r: &AuditRecord) -> Result<()> {
    // Every entry passes through here, so every text is bounded and escaped here.
    let clean = crate::common::audit::clean;
    let via = r.via.as_ref();
    query(
        "INSERT INTO audit_log (at, user_id, username, ip, action, target_type, target_id, target, success, detail, \
         via_token_id, via_token, via_token_created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(r.at)
    .bind(r.user_id)
    .bind(clean(&r.username))
    .bind(r.ip.as_deref().map(clean))
    .bind(r.action.as_str())
    .bind(clean(&r.target_type))
    .bind(r.target_id)
    .bind(clean(&r.target))
    .bind(r.success)
    .bind(clean(&r.detail))
    .bind(via.map(|v| v.token_id))
    .bind(via.map_or(String::new(), |v| clean(&v.token)))
    .bind(via.map_or(String::new(), |v| clean(&v.created_by)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn list(conn: &mut Conn, range: &AuditRange) -> Result<Vec<AuditEntry>> {
    let rows = query(
        concat!("SELECT ", audit_columns!(), " FROM audit_log WHERE at >= $1 AND at <= $2 AND (CAST($3 AS BIGINT) IS NULL OR id = $3) ORDER BY id DESC LIMIT $4"),
    )
    .bind(range.from.unwrap_or(EpochSeconds::MIN))
    .bind(range.to.unwrap_or(EpochSeconds::MAX))
    .bind(range.id)
    .bind(range.limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(entry).collect()
}
