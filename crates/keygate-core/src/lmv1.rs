//! LMv1 request signing: access ids and keys, the signature, and the clock window.
//!
//! `signature = base64( lowercase_hex( HMAC-SHA256(accessKey, VERB + epochMillis + BODY + PATH) ) )`
//! where PATH is the request path after `/santaba/rest`, without the query string. The
//! [`Signer`] takes the body in pieces, so a server can hash a body as it arrives.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{Error, random};

/// Length of an access id.
pub const ACCESS_ID_LEN: usize = 20;
/// Length of an access key.
pub const ACCESS_KEY_LEN: usize = 40;
/// A timestamp below this many milliseconds (about March 1973) is almost certainly
/// epoch *seconds*; the refusal says so.
pub const SECONDS_HINT_BELOW: i64 = 100_000_000_000;

type HmacSha256 = Hmac<Sha256>;

/// An LMv1 access key: the HMAC secret. Zeroed when dropped; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey(Zeroizing<String>);

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKey(<redacted>)")
    }
}

impl AccessKey {
    /// Generates a key: 40 base62 characters from the OS CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        Ok(Self(Zeroizing::new(random::base62(ACCESS_KEY_LEN)?)))
    }

    /// Wraps key material read back from storage.
    pub fn from_secret(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The key itself: for the creation response and for sealing, nothing else.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Starts signing a request with this key.
    pub fn signer(&self, verb: &str, epoch_millis: i64) -> Signer {
        Signer::new(self.0.as_bytes(), verb, epoch_millis)
    }
}

/// Generates an access id: 20 base62 characters from the OS CSPRNG.
pub fn generate_access_id() -> Result<String, Error> {
    random::base62(ACCESS_ID_LEN)
}

/// An HMAC in progress over `VERB + epochMillis + BODY + PATH`.
#[derive(Clone)]
pub struct Signer(HmacSha256);

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<keyed>)")
    }
}

impl Signer {
    /// Keys the HMAC and feeds it the verb and timestamp.
    pub fn new(key: &[u8], verb: &str, epoch_millis: i64) -> Self {
        // HMAC takes keys of any length, so this cannot fail; the fallback keeps the
        // signature path free of panics regardless.
        let mut mac = HmacSha256::new_from_slice(key)
            .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
        mac.update(verb.as_bytes());
        let mut digits = [0u8; 20];
        mac.update(decimal(epoch_millis, &mut digits));
        Self(mac)
    }

    /// Feeds a piece of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// Feeds the resource path and returns the signature.
    pub fn finish(mut self, resource_path: &str) -> Signature {
        self.0.update(resource_path.as_bytes());
        Signature(self.0.finalize().into_bytes().into())
    }
}

/// `n` in decimal, written into `buf` (the same text as `n.to_string()`, no allocation).
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A computed signature: the raw HMAC-SHA256. Secret-derived: compare it only with
/// [`Signature::matches`].
pub struct Signature([u8; 32]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(<redacted>)")
    }
}

impl Signature {
    /// Whether `sent` (base64 of lowercase hex) is this signature.
    ///
    /// The sent value is public, so it is decoded normally (anything that is not
    /// base64 of 64 lowercase hex digits is simply a mismatch); the secret-derived MAC
    /// is then compared in constant time, 32 bytes against 32 bytes.
    pub fn matches(&self, sent: &str) -> bool {
        let mut hex = [0u8; 66];
        let Ok(64) =
            base64::engine::general_purpose::STANDARD.decode_slice(sent.as_bytes(), &mut hex)
        else {
            return false;
        };
        let mut mac = [0u8; 32];
        for (byte, pair) in mac.iter_mut().zip(hex.chunks_exact(2)) {
            match (lower_hex(pair[0]), lower_hex(pair[1])) {
                (Some(h), Some(l)) => *byte = (h << 4) | l,
                _ => return false,
            }
        }
        self.0.ct_eq(&mac).into()
    }

    /// The wire form (base64 of lowercase hex), for clients that sign requests.
    pub fn into_string(self) -> String {
        let mut hex = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            hex[2 * i] = HEX[usize::from(b >> 4)];
            hex[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        base64::engine::general_purpose::STANDARD.encode(hex)
    }
}

fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Signs a whole request: what a client does.
pub fn sign(
    key: &AccessKey,
    verb: &str,
    epoch_millis: i64,
    body: &[u8],
    resource_path: &str,
) -> String {
    let mut s = key.signer(verb, epoch_millis);
    s.update(body);
    s.finish(resource_path).into_string()
}

/// Why a timestamp is outside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowError {
    /// Too far in the past or future.
    Outside {
        /// The server's clock, epoch milliseconds.
        server_millis: i64,
        /// Whether the value looks like epoch seconds.
        looks_like_seconds: bool,
    },
}

/// Checks that `epoch_millis` is within `skew_seconds` of `now_millis` (inclusive).
/// Works on i128, so no input can overflow.
pub fn check_window(
    epoch_millis: i64,
    now_millis: i64,
    skew_seconds: i64,
) -> Result<(), WindowError> {
    let distance = (i128::from(now_millis) - i128::from(epoch_millis)).abs();
    if distance <= i128::from(skew_seconds) * 1000 {
        Ok(())
    } else {
        Err(WindowError::Outside {
            server_millis: now_millis,
            looks_like_seconds: (0..SECONDS_HINT_BELOW).contains(&epoch_millis),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0f";

    /// Vectors made by Python's hmac module: see `testdata/lmv1_vectors.py`.
    #[test]
    fn signatures_match_independent_vectors() {
        let vectors = include_str!("../testdata/lmv1_vectors.txt");
        let key = AccessKey::from_secret(KEY.to_owned());
        let mut n = 0;
        for line in vectors.lines().filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 6, "{line}");
            let ts: i64 = f[2].parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                sign(&key, f[1], ts, f[3].as_bytes(), f[4]),
                f[5],
                "vector {}",
                f[0]
            );
            // Fed in pieces, the same.
            let mut s = key.signer(f[1], ts);
            for chunk in f[3].as_bytes().chunks(3) {
                s.update(chunk);
            }
            assert!(s.finish(f[4]).matches(f[5]), "chunked vector {}", f[0]);
            n += 1;
        }
        assert_eq!(n, 6);
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let key = AccessKey::from_secret(KEY.to_owned());
        let good = sign(&key, "POST", 1, b"{}", "/a");
        assert_ne!(sign(&key, "PUT", 1, b"{}", "/a"), good);
        assert_ne!(sign(&key, "POST", 2, b"{}", "/a"), good);
        assert_ne!(sign(&key, "POST", 1, b"{ }", "/a"), good);
        assert_ne!(sign(&key, "POST", 1, b"{}", "/b"), good);
        let other = AccessKey::from_secret("x".repeat(40));
        assert_ne!(sign(&other, "POST", 1, b"{}", "/a"), good);
    }

    #[test]
    fn matching_needs_base64_of_lowercase_hex() {
        let key = AccessKey::from_secret(KEY.to_owned());
        let good = sign(&key, "GET", 5, b"", "/x");
        let fresh = || {
            let mut s = key.signer("GET", 5);
            s.update(b"");
            s.finish("/x")
        };
        assert!(fresh().matches(&good));
        let hex = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&good)
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        let upper = base64::engine::general_purpose::STANDARD.encode(hex.to_uppercase());
        assert!(
            !fresh().matches(&upper),
            "upper-case hex is not the documented form"
        );
        assert!(!fresh().matches(""));
        assert!(!fresh().matches("c2ln"));
        assert!(!fresh().matches(&good[..good.len() - 4]));
        for n in [0_i64, 7, -7, 1_700_000_000_000, i64::MAX, i64::MIN] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn window_edges() {
        let now = 1_700_000_000_000;
        assert!(check_window(now - 1_800_000, now, 1800).is_ok());
        assert!(check_window(now + 1_800_000, now, 1800).is_ok());
        assert!(check_window(now - 1_800_001, now, 1800).is_err());
        assert!(check_window(now + 1_800_001, now, 1800).is_err());
        assert_eq!(
            check_window(now / 1000, now, 1800),
            Err(WindowError::Outside {
                server_millis: now,
                looks_like_seconds: true
            })
        );
        assert!(check_window(i64::MAX, now, 86_400).is_err());
        assert!(check_window(i64::MIN, now, 86_400).is_err());
        assert!(check_window(i64::MIN, i64::MAX, i64::MAX).is_ok());
    }

    #[test]
    fn generated_ids_and_keys_have_the_documented_shape() {
        let id = generate_access_id().unwrap_or_default();
        assert_eq!(id.len(), 20);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let key = AccessKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.expose_secret().len(), 40);
        assert!(!key.expose_secret().contains(char::is_whitespace));
        assert!(!format!("{key:?}").contains(key.expose_secret()));
    }
}
