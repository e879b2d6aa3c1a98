//! What SQLite does its own way, for the shared queries in `sql/`.

use futures_util::TryStreamExt;
use keygate_core::model::{ApiToken, TokenStatus, TokenType};
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

/// Every token, packed as [`bearer_keys`] packs index keys (text columns hex-encoded,
/// so a note may hold any character): `each` gets them one at a time. Returns `true`:
/// SQLite has this way of reading them (see the PostgreSQL dialect).
pub(crate) async fn each_token_packed(
    conn: &mut Conn,
    each: &mut (dyn FnMut(ApiToken) + Send),
) -> Result<bool> {
    let mut chunks = sqlx::query_scalar::<_, String>(
        "SELECT group_concat(id || ',' || user_id || ',' || type || ',' || status || ',' || \
         created_on || ',' || last_used_on || ',' || hex(access_id) || ',' || hex(note) || ',' || \
         hex(created_by) || ',' || hex(last_auth_ip), ';') FROM api_tokens GROUP BY id >> 10",
    )
    .fetch(&mut *conn);
    while let Some(chunk) = chunks.try_next().await? {
        for item in chunk.split(';') {
            each(parse_token(item).ok_or(StoreError::Corrupt("unreadable token row"))?);
        }
    }
    Ok(true)
}

fn parse_token(item: &str) -> Option<ApiToken> {
    let mut parts = item.split(',');
    let mut next = || parts.next();
    let id = next()?.parse().ok()?;
    let user_id = next()?.parse().ok()?;
    let token_type = TokenType::parse(next()?)?;
    let status = TokenStatus::from_code(next()?.parse().ok()?)?;
    let created_on = next()?.parse().ok()?;
    let last_used_on = next()?.parse().ok()?;
    let mut text = || String::from_utf8(unhex(next()?.as_bytes())?).ok();
    let token = ApiToken {
        id,
        user_id,
        token_type,
        access_id: text()?,
        note: text()?,
        status,
        created_on,
        created_by: text()?,
        last_used_on,
        last_auth_ip: text()?,
    };
    next().is_none().then_some(token)
}

/// Bytes from upper- or lower-case hex, each `None` where the text is not hex.
fn hex_bytes(hex: &[u8]) -> impl Iterator<Item = Option<u8>> + '_ {
    let nibble = |c: u8| char::from(c).to_digit(16);
    hex.chunks(2).map(move |pair| match pair {
        [hi, lo] => u8::try_from(nibble(*hi)? * 16 + nibble(*lo)?).ok(),
        _ => None,
    })
}

/// Bytes from hex.
fn unhex(hex: &[u8]) -> Option<Vec<u8>> {
    hex_bytes(hex).collect()
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
    for (byte, b) in digest.iter_mut().zip(hex_bytes(hex)) {
        *byte = b?;
    }
    Some(TokenKey {
        id,
        user_id,
        digest: TokenDigest(digest),
        enabled: status == 2,
    })
}
