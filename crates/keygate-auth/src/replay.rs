//! LMv1 replay protection: remembers (token, signature) pairs until the request's
//! timestamp leaves the window, after which the window check refuses a replay anyway.
//! Memory is bounded: when full of live entries, new LMv1 requests are refused (fail
//! closed) rather than remembered partially.

use std::collections::HashMap;

use keygate_core::model::TokenId;
use sha2::{Digest, Sha256};

/// Default most remembered signatures (about 40 bytes each).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// What [`ReplayCache::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First time seen: remembered.
    Fresh,
    /// Seen before inside the window.
    Replayed,
    /// Full of live entries.
    Full,
}

/// Signatures seen, with the time (epoch ms) after which each can be forgotten.
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashMap<[u8; 16], i64>,
    capacity: usize,
}

impl ReplayCache {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            capacity,
        }
    }

    /// Records `signature` for `token`, valid until `expires_millis`.
    pub fn admit(
        &mut self,
        token: TokenId,
        signature: &str,
        expires_millis: i64,
        now_millis: i64,
    ) -> Admission {
        // A digest of the pair, not the signature: fixed size, and nothing secret-derived kept.
        let mut h = Sha256::new();
        h.update(token.to_be_bytes());
        h.update(signature.as_bytes());
        let full: [u8; 32] = h.finalize().into();
        let mut key = [0u8; 16];
        key.copy_from_slice(&full[..16]);
        if let Some(&until) = self.seen.get(&key)
            && until >= now_millis
        {
            return Admission::Replayed;
        }
        if self.seen.len() >= self.capacity {
            self.seen.retain(|_, &mut until| until >= now_millis);
            if self.seen.len() >= self.capacity {
                return Admission::Full;
            }
        }
        self.seen.insert(key, expires_millis);
        Admission::Fresh
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_caught_until_expiry_and_memory_is_bounded() {
        let mut c = ReplayCache::new(3);
        assert_eq!(c.admit(1, "a", 100, 0), Admission::Fresh);
        assert_eq!(c.admit(1, "a", 100, 50), Admission::Replayed);
        assert_eq!(c.admit(2, "a", 100, 50), Admission::Fresh, "another token");
        assert_eq!(c.admit(1, "b", 100, 50), Admission::Fresh);
        assert_eq!(c.admit(1, "c", 100, 50), Admission::Full);
        assert_eq!(c.len(), 3);
        // Once expired, entries make room and the old signature is no longer remembered
        // (the window check refuses it by then).
        assert_eq!(c.admit(1, "c", 300, 101), Admission::Fresh);
        assert_eq!(c.len(), 1);
    }
}
