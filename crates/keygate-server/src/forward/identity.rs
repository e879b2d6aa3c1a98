//! The identity headers of an allowed check (`X-Keygate-User`, `-User-Id`,
//! `-Token-Id`, `-Token-Type`), kept per token.
//!
//! Building them is four header values (three allocations) and four hashed inserts on
//! every check, more than the token check itself costs; a proxy asks about the same
//! few tokens again and again, so a check clones the headers last built for its token.
//! An entry is used only while it still describes the principal: the same owner and
//! the very `Arc` the index holds for the owner's username (a rename makes a new one),
//! so a stale name is never sent. The map is bounded and simply emptied when full.
//!
//! A cloned `HeaderMap` has no room to spare, so the kept one also holds what the
//! response gets on its way out (`Content-Length: 0` and the common headers): those
//! then replace a value in place instead of growing the map on every check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use keygate_auth::Principal;
use keygate_core::model::{TokenId, UserId};

/// The identity headers an allowed request carries upstream. The example proxy
/// configurations strip these from what clients send.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "x-keygate-user",
    "x-keygate-user-id",
    "x-keygate-token-id",
    "x-keygate-token-type",
];

const NAMES: [HeaderName; 4] = [
    HeaderName::from_static(IDENTITY_HEADERS[0]),
    HeaderName::from_static(IDENTITY_HEADERS[1]),
    HeaderName::from_static(IDENTITY_HEADERS[2]),
    HeaderName::from_static(IDENTITY_HEADERS[3]),
];

/// Tokens whose headers are kept at most; past it the map starts again empty.
const CAPACITY: usize = 4096;

struct Entry {
    user_id: UserId,
    username: Arc<str>,
    headers: HeaderMap,
}

/// The identity headers last built for each token (see the module documentation).
#[derive(Default)]
pub struct Identities {
    by_token: Mutex<HashMap<TokenId, Entry>>,
}

impl Identities {
    /// The identity headers for `p`.
    pub fn headers(&self, p: &Principal) -> HeaderMap {
        let Some(token) = p.token_id else {
            return build(p);
        };
        let mut map = self.by_token.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get(&token)
            && e.user_id == p.user_id
            && Arc::ptr_eq(&e.username, &p.username)
        {
            return e.headers.clone();
        }
        let headers = build(p);
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(
            token,
            Entry {
                user_id: p.user_id,
                username: p.username.clone(),
                headers: headers.clone(),
            },
        );
        headers
    }
}

/// Builds the headers: the ids as decimal, the username as it is when it is visible
/// ASCII and percent-encoded otherwise (usernames are NFKC letters and digits, and a
/// header value must be visible ASCII).
fn build(p: &Principal) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(NAMES.len() + 4);
    let plain = |b: u8| b.is_ascii_graphic() && b != b'%';
    let user = if p.username.bytes().all(plain) {
        HeaderValue::from_str(&p.username)
    } else {
        let mut encoded = String::with_capacity(p.username.len() * 3);
        for b in p.username.bytes() {
            if plain(b) {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        HeaderValue::try_from(encoded)
    };
    if let Ok(v) = user {
        h.insert(NAMES[0].clone(), v);
    }
    h.insert(NAMES[1].clone(), HeaderValue::from(p.user_id));
    if let Some(t) = p.token_id {
        h.insert(NAMES[2].clone(), HeaderValue::from(t));
    }
    if let Some(t) = p.token_type {
        h.insert(NAMES[3].clone(), HeaderValue::from_static(t.as_str()));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    crate::routes::common_headers(&mut h, false);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::model::TokenType;
    use keygate_core::policy::Grants;

    fn principal(name: &str, token: Option<TokenId>) -> Principal {
        Principal {
            user_id: 7,
            username: Arc::from(name),
            grants: Grants::NONE,
            token_id: token,
            token_type: token.map(|_| TokenType::Bearer),
        }
    }

    fn user(h: &HeaderMap) -> &str {
        h.get(IDENTITY_HEADERS[0])
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
    }

    #[test]
    fn the_headers_name_the_principal() {
        let ids = Identities::default();
        let h = ids.headers(&principal("alice", Some(12)));
        assert_eq!(user(&h), "alice");
        assert_eq!(
            h.get(IDENTITY_HEADERS[1]).map(|v| v.as_bytes()),
            Some(&b"7"[..])
        );
        assert_eq!(
            h.get(IDENTITY_HEADERS[2]).map(|v| v.as_bytes()),
            Some(&b"12"[..])
        );
        assert_eq!(
            h.get(IDENTITY_HEADERS[3]).map(|v| v.as_bytes()),
            Some(&b"bearer"[..])
        );
        // A session has no token: no token headers.
        let h = ids.headers(&principal("alice", None));
        assert!(h.get(IDENTITY_HEADERS[2]).is_none());
        assert!(h.get(IDENTITY_HEADERS[3]).is_none());
    }

    #[test]
    fn a_renamed_owner_is_never_answered_with_the_old_name() {
        let ids = Identities::default();
        let before = principal("alice", Some(12));
        assert_eq!(user(&ids.headers(&before)), "alice");
        assert_eq!(user(&ids.headers(&before)), "alice");
        let renamed = principal("alicia", Some(12));
        assert_eq!(user(&ids.headers(&renamed)), "alicia");
        // The same name in a new Arc (the owner's record was rebuilt) is rebuilt too,
        // and still right.
        assert_eq!(user(&ids.headers(&principal("alicia", Some(12)))), "alicia");
    }

    #[test]
    fn names_outside_visible_ascii_travel_percent_encoded() {
        let ids = Identities::default();
        let h = ids.headers(&principal("zoë%", Some(1)));
        assert_eq!(user(&h), "zo%C3%AB%25");
    }

    #[test]
    fn the_map_stays_bounded() {
        let ids = Identities::default();
        for t in 0..(CAPACITY as i64 * 2 + 5) {
            ids.headers(&principal("bob", Some(t)));
        }
        let kept = ids
            .by_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        assert!(kept <= CAPACITY, "{kept} entries kept");
    }
}
