//! The forwarding outbox: OTLP exports queued beside the data they carry, claimed
//! with a lease, deleted once delivered.
//!
//! A claim moves `due_ms` past the lease in the statement that picks the entries; the
//! outer `due_ms <= $2` is checked again against a row another node's claim just
//! changed (PostgreSQL re-reads a locked row before updating it), so two nodes never
//! hold one entry at once. On SQLite the write transaction holds the whole file.

use super::dialect::{Conn, Row, query};

use crate::data::{OutboxState, Outgoing, Queued, Signal};
use crate::error::{Result, StoreError};

/// Queues an export inside the caller's transaction.
pub(super) async fn put(conn: &mut Conn, out: &Outgoing) -> Result<()> {
    query("INSERT INTO data_outbox (signal, content_type, body, queued_ms, due_ms, attempts) VALUES ($1, $2, $3, $4, $4, 0)")
        .bind(out.signal.as_str())
        .bind(&out.content_type)
        .bind(&out.body[..])
        .bind(out.queued_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Claims up to `limit` entries due at `now_ms`, oldest first, until `now_ms + lease_ms`.
pub(super) async fn claim(
    conn: &mut Conn,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Queued>> {
    let rows = query("UPDATE data_outbox SET due_ms = $1 WHERE due_ms <= $2 AND id IN (SELECT id FROM data_outbox WHERE due_ms <= $2 ORDER BY id LIMIT $3) RETURNING id, signal, content_type, body, queued_ms, attempts")
        .bind(now_ms.saturating_add(lease_ms))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let signal: String = r.try_get(1)?;
        out.push(Queued {
            id: r.try_get(0)?,
            outgoing: Outgoing {
                signal: Signal::parse(&signal)
                    .ok_or(StoreError::Corrupt("an outbox entry of no known signal"))?,
                content_type: r.try_get(2)?,
                body: r.try_get(3)?,
                queued_ms: r.try_get(4)?,
            },
            attempts: r.try_get(5)?,
        });
    }
    // RETURNING gives no order.
    out.sort_by_key(|q| q.id);
    Ok(out)
}

/// Deletes delivered entries.
pub(super) async fn done(conn: &mut Conn, ids: &[i64]) -> Result<()> {
    for &id in ids {
        query("DELETE FROM data_outbox WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Makes entries due at `due_ms`, counting a failure for `failed`.
pub(super) async fn retry(
    conn: &mut Conn,
    ids: &[i64],
    failed: Option<i64>,
    due_ms: i64,
) -> Result<()> {
    for &id in ids {
        query("UPDATE data_outbox SET due_ms = $1, attempts = attempts + $2 WHERE id = $3")
            .bind(due_ms)
            .bind(i64::from(failed == Some(id)))
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Makes every entry due at `now_ms` (claims and backoffs end).
pub(super) async fn release(conn: &mut Conn, now_ms: i64) -> Result<()> {
    query("UPDATE data_outbox SET due_ms = $1 WHERE due_ms > $1")
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// How many entries wait, and when the oldest was queued.
pub(super) async fn state(conn: &mut Conn) -> Result<OutboxState> {
    let row = query("SELECT COUNT(*), MIN(queued_ms) FROM data_outbox")
        .fetch_one(&mut *conn)
        .await?;
    Ok(OutboxState {
        entries: row.try_get(0)?,
        oldest_ms: row.try_get(1)?,
    })
}

/// Deletes entries queued before `before_ms` (past the data's retention).
pub(super) async fn prune(conn: &mut Conn, before_ms: i64) -> Result<u64> {
    Ok(query("DELETE FROM data_outbox WHERE queued_ms < $1")
        .bind(before_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}
