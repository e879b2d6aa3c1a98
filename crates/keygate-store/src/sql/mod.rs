//! Every query keygate makes, written once and compiled into each backend.
//!
//! Each backend includes this folder as its own `sql` module (`#[path = "../sql/mod.rs"]`),
//! so the same text is built against each backend's connection: sqlx's
//! `PgConnection`, and on SQLite rusqlite's `Connection` through `sqlite/db.rs`, which
//! offers the part of sqlx's query API used here (`query`, `query_scalar`, `query_as`,
//! `bind`, `fetch_*`, `execute`, `Row::try_get`) and binds `$N` by number as PostgreSQL
//! does. The texts keep to what both dialects read alike (`CAST(.. AS BIGINT)`,
//! `ON CONFLICT`, `RETURNING`, `CASE`). What really differs is the backend's `dialect`
//! module, which this code reaches as `super::dialect`, and the `row_lock!()` macro the
//! backend defines before including this module:
//!
//! - `Conn`, `DbRow`, `Row`, `query`, `query_scalar`, `query_as`, `BackendStore`: the
//!   connection, row, query and store types;
//! - `announce`: PostgreSQL's `NOTIFY` after a change-log entry (nothing on SQLite, whose
//!   followers poll the file or are woken over a socket);
//! - `each_row`: a read of every token, a row at a time;
//! - `long_read`: how such a read runs (on SQLite, off the runtime's threads);
//! - `row_lock!()`: `FOR UPDATE` on PostgreSQL, nothing on SQLite, whose write
//!   transaction already holds the whole file.
//!
//! The store methods (`store.rs`) reach the backend's transactions through four
//! inherent methods each backend has: `write` (the write lock), `unlocked` (a write no
//! follower reads), `read` (a pooled connection) and `snapshot_tx` (one consistent view),
//! plus `check_file` for `writable` and `watch` for `watch_changes`.
//!
//! # Layout
//!
//! - `audit`, `changes`, `data`, `outbox`, `portal`, `roles`, `sessions`, `tokens`, `users`:
//!   the queries, a module per table family.
//! - `store`: the [`crate::Store`] implementation that strings them into transactions.
//! - `setup`: the start-up steps after the migrations (master key check, username keys).
//! - this file: the change-log entries every mutation appends.

use self::dialect::{Row, query, query_scalar};
use keygate_core::model::EpochSeconds;

use self::dialect::{Conn, DbRow};
use super::dialect;
use crate::error::Result;
use crate::types::Entity;

mod audit;
mod changes;
mod data;
mod outbox;
mod portal;
mod roles;
mod sessions;
pub(super) mod setup;
mod store;
mod tokens;
mod users;

/// Appends one change-log entry for a user, role or the portal, inside the caller's
/// transaction, and announces it.
pub(crate) async fn log_change(
    conn: &mut Conn,
    entity: Entity,
    id: i64,
    now: EpochSeconds,
) -> Result<()> {
    query("INSERT INTO change_log (entity, entity_id, changed_on) VALUES ($1, $2, $3)")
        .bind(entity.as_str())
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    dialect::announce(conn).await
}

/// What identifies a token in the indexes, for its change-log entry.
pub(crate) struct TokenRef {
    /// Bearer: the SHA-256 digest.
    pub(crate) digest: Option<Vec<u8>>,
    /// LMv1: the access id.
    pub(crate) access_id: Option<String>,
}

impl TokenRef {
    /// Reads it from a row of (`type`, `secret_hash`, `access_id`) starting at `first`.
    pub(crate) fn from_row(row: &DbRow, first: usize) -> Result<Self> {
        let kind: String = row.try_get(first)?;
        Ok(if kind == "lmv1" {
            Self {
                digest: None,
                access_id: Some(row.try_get(first + 2)?),
            }
        } else {
            Self {
                digest: row.try_get(first + 1)?,
                access_id: None,
            }
        })
    }
}

/// Appends one change-log entry for a token inside the caller's transaction, and
/// announces it.
pub(crate) async fn log_token_change(
    conn: &mut Conn,
    id: i64,
    token: &TokenRef,
    now: EpochSeconds,
) -> Result<i64> {
    let seq: i64 = query_scalar("INSERT INTO change_log (entity, entity_id, digest, access_id, changed_on) VALUES ('token', $1, $2, $3, $4) RETURNING seq")
        .bind(id)
        .bind(token.digest.as_deref())
        .bind(token.access_id.as_deref())
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    dialect::announce(conn).await?;
    Ok(seq)
}
