//! What SQLite does its own way, for the shared queries in `sql/`.

pub(crate) use super::db::{Conn, DbRow, Row, query, query_as, query_scalar};
use crate::common::digest;
use crate::error::Result;
use crate::types::TokenKey;

/// The store the shared `Store` implementation is for.
pub(crate) type BackendStore = super::SqliteStore;

/// Nothing to announce: SQLite's followers poll the file (and a server on the same
/// file is woken over its socket by the admin CLI).
#[allow(clippy::unused_async)]
pub(crate) async fn announce(_conn: &mut Conn) -> Result<()> {
    Ok(())
}

/// Every bearer token's index key, each row read straight into its key (a million
/// rows never sit in memory as rows).
#[allow(clippy::unused_async)]
pub(crate) async fn bearer_keys(conn: &mut Conn) -> Result<Vec<TokenKey>> {
    let count: i64 = conn.query_row(
        "SELECT COUNT(*) FROM api_tokens WHERE type = 'bearer'",
        [],
        |r| r.get(0),
    )?;
    let mut keys = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut stmt = conn
        .prepare("SELECT id, user_id, secret_hash, status FROM api_tokens WHERE type = 'bearer'")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let Some(d) = digest(row.get(2)?)? else {
            continue;
        };
        let status: i64 = row.get(3)?;
        keys.push(TokenKey {
            id: row.get(0)?,
            user_id: row.get(1)?,
            digest: d,
            enabled: status == 2,
        });
    }
    Ok(keys)
}

/// Hands every row of `q` to `each` as it is read: a million rows never sit in
/// memory at once.
#[allow(clippy::unused_async)]
pub(crate) async fn each_row(
    conn: &mut Conn,
    q: super::db::Query,
    each: &mut (dyn FnMut(&DbRow) -> Result<()> + Send),
) -> Result<()> {
    q.for_each(conn, each)
}

/// Runs a read of every token (start-up, a full reload: a second or so with a
/// million) off the runtime's threads, so other requests go on meanwhile.
pub(crate) async fn long_read<T>(read: impl Future<Output = Result<T>>) -> Result<T> {
    super::blocking(|| super::futures_ready(read))
}
