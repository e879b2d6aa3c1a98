//! What PostgreSQL does its own way, for the shared queries in `sql/`.

use futures_util::TryStreamExt;
pub(crate) use sqlx::{Row, query, query_as, query_scalar};

use super::CHANNEL;
use crate::error::Result;

/// The connection the shared queries run on.
pub(crate) type Conn = sqlx::PgConnection;
/// A result row.
pub(crate) type DbRow = sqlx::postgres::PgRow;
/// The store the shared `Store` implementation is for.
pub(crate) type BackendStore = super::PgStore;

/// Wakes every node's follower: `NOTIFY` is delivered at commit, and only if the
/// transaction commits.
pub(crate) async fn announce(conn: &mut Conn) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Hands every row of `q` to `each` as it streams in: a million rows never sit in
/// memory at once.
pub(crate) async fn each_row(
    conn: &mut Conn,
    q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    each: &mut (dyn FnMut(&DbRow) -> Result<()> + Send),
) -> Result<()> {
    let mut rows = q.fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        each(&row)?;
    }
    Ok(())
}

/// A read of every token: its rows stream in, so it simply runs.
pub(crate) async fn long_read<T>(read: impl Future<Output = Result<T>>) -> Result<T> {
    read.await
}
