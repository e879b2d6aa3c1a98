//! The audit log: appended inside the transaction of the change it records.

use super::dialect::Conn;
use keygate_core::model::EpochSeconds;

use crate::error::Result;
use crate::types::{AuditEntry, AuditRange, AuditRecord};

pub(super) async fn append(conn: &mut Conn, r: &AuditRecord) -> Result<()> {
    // Every entry passes through here, so every text is bounded and escaped here.
    let clean = crate::common::audit::clean;
    let via = r.via.as_ref();
    sqlx::query(
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
    let rows = sqlx::query(
        concat!("SELECT ", crate::common::audit_columns!(), " FROM audit_log WHERE at >= $1 AND at <= $2 AND (CAST($3 AS BIGINT) IS NULL OR id = $3) ORDER BY id DESC LIMIT $4"),
    )
    .bind(range.from.unwrap_or(EpochSeconds::MIN))
    .bind(range.to.unwrap_or(EpochSeconds::MAX))
    .bind(range.id)
    .bind(range.limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(crate::common::audit_entry).collect()
}
