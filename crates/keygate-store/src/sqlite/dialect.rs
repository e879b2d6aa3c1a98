//! What SQLite does its own way, for the shared queries in `sql/`.

pub(crate) use super::db::{Conn, DbRow, Row, query, query_as, query_scalar};
use crate::error::Result;

/// The store the shared `Store` implementation is for.
pub(crate) type BackendStore = super::SqliteStore;

/// Nothing to announce: SQLite's followers poll the file (and a server on the same
/// file is woken over its socket by the admin CLI).
#[allow(clippy::unused_async)]
pub(crate) async fn announce(_conn: &mut Conn) -> Result<()> {
    Ok(())
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
