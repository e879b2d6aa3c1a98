//! What SQLite does its own way, for the shared queries in `sql/`.

use futures_util::TryStreamExt;
use keygate_core::token::TokenDigest;

use crate::error::{Result, StoreError};
use crate::types::TokenKey;

/// The connection the shared queries run on.
pub(crate) type Conn = sqlx::SqliteConnection;
/// A result row.
pub(crate) type DbRow = sqlx::sqlite::SqliteRow;
/// The store the shared `Store` implementation is for.
pub(crate) type BackendStore = super::SqliteStore;

/// Nothing to announce: SQLite's followers poll the file (and a server on the same
/// file is woken over its socket by the admin CLI).
#[allow(clippy::unused_async)]
pub(crate) async fn announce(_conn: &mut Conn) -> Result<()> {
    Ok(())
}

/// Every bearer token's index key.
///
/// SQLite packs about a thousand tokens into each result row (`id,user,status,hex`
/// joined by `;`), because handing rows one by one from SQLite's worker thread costs
/// microseconds per row — most of start-up with a million tokens — while SQLite itself
/// formats them in nanoseconds. The text holds no secret: only SHA-256 digests.
pub(crate) async fn bearer_keys(conn: &mut Conn) -> Result<Vec<TokenKey>> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE type = 'bearer'")
        .fetch_one(&mut *conn)
        .await?;
    let mut keys = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut chunks = sqlx::query_scalar::<_, String>(
        "SELECT group_concat(id || ',' || user_id || ',' || status || ',' || hex(secret_hash), ';') \
         FROM api_tokens WHERE type = 'bearer' AND secret_hash IS NOT NULL GROUP BY id >> 10",
    )
    .fetch(&mut *conn);
    while let Some(chunk) = chunks.try_next().await? {
        for item in chunk.split(';') {
            keys.push(parse_key(item).ok_or(StoreError::Corrupt("unreadable token index entry"))?);
        }
    }
    Ok(keys)
}

fn parse_key(item: &str) -> Option<TokenKey> {
    let mut parts = item.split(',');
    let id = parts.next()?.parse().ok()?;
    let user_id = parts.next()?.parse().ok()?;
    let status: i64 = parts.next()?.parse().ok()?;
    let hex = parts.next()?.as_bytes();
    if hex.len() != 64 || parts.next().is_some() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let nibble = |c: u8| char::from(c).to_digit(16);
        *byte = u8::try_from(nibble(pair[0])? * 16 + nibble(pair[1])?).ok()?;
    }
    Some(TokenKey {
        id,
        user_id,
        digest: TokenDigest(digest),
        enabled: status == 2,
    })
}
