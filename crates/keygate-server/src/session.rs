//! Web UI sessions: the cookie, the CSRF token and timeouts.
//!
//! A session id is 256 random bits sent only in an HttpOnly, SameSite=Strict cookie;
//! the store keeps its SHA-256. Every change made with a session must also carry the
//! session's CSRF token in `X-CSRF-Token` (JavaScript reads it from the page, which a
//! cross-site attacker cannot). Sign-in forms use a double-submit cookie instead,
//! since there is no session yet.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use keygate_core::model::EpochSeconds;
use keygate_core::random;
use sha2::{Digest, Sha256};

/// Cookie holding the session id (plain name on http://; see [`SessionConfig::secure`]).
pub const COOKIE: &str = "keygate_session";
/// Cookie holding the sign-in form's CSRF value.
pub const LOGIN_COOKIE: &str = "keygate_signin";
/// Header carrying the CSRF token on changes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// A session unused for this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
    /// Served over TLS: cookies get `Secure` and the `__Host-` prefix.
    pub secure: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            secure: false,
        }
    }
}

impl SessionConfig {
    /// The session cookie's name.
    pub fn cookie_name(&self) -> String {
        if self.secure {
            format!("__Host-{COOKIE}")
        } else {
            COOKIE.to_owned()
        }
    }

    /// A `Set-Cookie` value for `name=value` with the session attributes.
    pub fn set_cookie(&self, name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let age = max_age.map_or(String::new(), |d| format!("; Max-Age={}", d.as_secs()));
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{age}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Path=/"))
    }

    /// Whether a session created at `created` and last seen at `seen` is still live.
    pub fn live(&self, created: EpochSeconds, seen: EpochSeconds, now: EpochSeconds) -> bool {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        now.saturating_sub(seen) <= secs(self.idle)
            && now.saturating_sub(created) <= secs(self.absolute)
    }
}

/// A new random id (43 base62 characters, about 256 bits).
pub fn new_secret() -> Result<String, keygate_core::Error> {
    random::base62(43)
}

/// The stored form of a session id.
pub fn hash_id(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Constant-time equality of two secret-derived strings.
pub fn same(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_timeouts_and_throttle() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; keygate_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, "keygate_session"), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
        let c = SessionConfig::default();
        assert!(c.live(0, 100, 100 + 1800));
        assert!(!c.live(0, 100, 100 + 1801));
        assert!(!c.live(0, 43_000, 43_201));
        let v = c.set_cookie("n", "v", None);
        assert_eq!(
            v.to_str().unwrap_or(""),
            "n=v; Path=/; HttpOnly; SameSite=Strict"
        );
        let tls = SessionConfig {
            secure: true,
            ..SessionConfig::default()
        };
        assert_eq!(tls.cookie_name(), "__Host-keygate_session");
        assert!(
            tls.set_cookie("n", "v", None)
                .to_str()
                .unwrap_or("")
                .contains("; Secure")
        );
    }
}
