//! Backend-independent pieces shared by the SQLite and PostgreSQL stores: what to
//! create on first start, the owner checks of a new token, and turning stored bytes
//! into typed values. Each backend keeps only its SQL and row decoding.

use keygate_core::model::{RoleId, UserStatus};
use keygate_core::token::TokenDigest;

use crate::error::{Result, StoreError};
use crate::types::{NewUser, PendingToken};

/// The user created on first start, with the administrator role.
pub(crate) fn bootstrap_admin(admin_role: RoleId) -> NewUser {
    NewUser {
        username: "admin".to_owned(),
        email: "admin@localhost".to_owned(),
        first_name: String::new(),
        last_name: String::new(),
        role_ids: vec![admin_role],
        status: UserStatus::Active,
        api_only: false,
        note: "Created on first start".to_owned(),
    }
}

/// A new token's owner must be active and under `maxTokensPerUser`.
pub(crate) fn check_new_token_owner(
    username: String,
    status: &str,
    count: i64,
    max_tokens: i64,
) -> Result<String> {
    if UserStatus::parse(status) != Some(UserStatus::Active) {
        return Err(StoreError::OwnerSuspended(username));
    }
    if count >= max_tokens {
        return Err(StoreError::TokenLimit(max_tokens));
    }
    Ok(username)
}

/// A stored bearer digest (NULL for LMv1 tokens).
pub(crate) fn digest(bytes: Option<Vec<u8>>) -> Result<Option<TokenDigest>> {
    match bytes {
        None => Ok(None),
        Some(b) => <[u8; 32]>::try_from(b.as_slice())
            .map(|a| Some(TokenDigest(a)))
            .map_err(|_| StoreError::Corrupt("token digest is not 32 bytes")),
    }
}

/// A session's pending token from its three stored columns (all set, or none).
pub(crate) fn pending(
    digest_bytes: Option<Vec<u8>>,
    access_id: Option<String>,
    owner: Option<i64>,
) -> Result<Option<PendingToken>> {
    match (digest(digest_bytes)?, access_id, owner) {
        (Some(digest), Some(access_id), Some(owner)) => Ok(Some(PendingToken {
            digest,
            access_id,
            owner,
        })),
        _ => Ok(None),
    }
}
