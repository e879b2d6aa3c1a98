//! LMv1 replay protection: remembers (token, signature) pairs until the request's
//! timestamp leaves the window, after which the window check refuses a replay anyway.
//!
//! Memory is bounded twice. Each token may have at most `per_token` signatures
//! remembered at once: a key holder who signs faster than that is refused (429, until
//! their oldest signature expires) — only them, so one key holder cannot deny everyone
//! else. The whole memory holds at most `capacity`; only when that many are live at once
//! (which takes `capacity / per_token` tokens flooding together) are new LMv1 requests
//! refused for all (fail closed) rather than remembered partially.
//!
//! The memory is per node: see docs/security.md for what that means with several.

use std::collections::HashMap;

use keygate_core::model::TokenId;
use sha2::{Digest, Sha256};

/// Default most remembered signatures in all (about 40 bytes each).
pub const DEFAULT_CAPACITY: usize = 1_000_000;
/// Default most remembered signatures of one token.
pub const DEFAULT_PER_TOKEN: usize = 20_000;

/// What [`ReplayCache::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First time seen: remembered.
    Fresh,
    /// Seen before inside the window.
    Replayed,
    /// This token has `per_token` live signatures: refused until the oldest expires,
    /// in this many milliseconds.
    TokenFull {
        /// Until a place frees up for this token.
        retry_after_millis: i64,
    },
    /// The whole memory is full of live entries.
    Full,
}

#[derive(Debug, Default)]
struct Seen {
    /// Signature digest → when it can be forgotten (epoch ms).
    until: HashMap<[u8; 16], i64>,
}

impl Seen {
    /// Forgets what expired; returns how many went.
    fn sweep(&mut self, now_millis: i64) -> usize {
        let before = self.until.len();
        self.until.retain(|_, until| *until >= now_millis);
        before - self.until.len()
    }
}

/// Signatures seen, by token.
#[derive(Debug)]
pub struct ReplayCache {
    tokens: HashMap<TokenId, Seen>,
    total: usize,
    capacity: usize,
    per_token: usize,
}

impl ReplayCache {
    /// An empty cache holding at most `capacity` entries, at most `per_token` of any
    /// one token.
    pub fn new(capacity: usize, per_token: usize) -> Self {
        Self {
            tokens: HashMap::new(),
            total: 0,
            capacity: capacity.max(1),
            per_token: per_token.clamp(1, capacity.max(1)),
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
        // A digest of the pair, not the signature: fixed size, nothing secret-derived kept.
        let full: [u8; 32] = Sha256::new()
            .chain_update(token.to_be_bytes())
            .chain_update(signature.as_bytes())
            .finalize()
            .into();
        let mut key = [0u8; 16];
        key.copy_from_slice(&full[..16]);
        let seen = self.tokens.entry(token).or_default();
        if let Some(&until) = seen.until.get(&key)
            && until >= now_millis
        {
            return Admission::Replayed;
        }
        if seen.until.len() >= self.per_token {
            self.total -= seen.sweep(now_millis);
            if seen.until.len() >= self.per_token {
                let oldest = seen.until.values().copied().min().unwrap_or(now_millis);
                return Admission::TokenFull {
                    retry_after_millis: oldest.saturating_sub(now_millis).max(1),
                };
            }
        }
        if self.total >= self.capacity {
            self.sweep(now_millis);
            if self.total >= self.capacity {
                return Admission::Full;
            }
        }
        let seen = self.tokens.entry(token).or_default();
        if seen.until.insert(key, expires_millis).is_none() {
            self.total += 1;
        }
        Admission::Fresh
    }

    /// Forgets every expired entry, and tokens with none left.
    fn sweep(&mut self, now_millis: i64) {
        let mut gone = 0;
        self.tokens.retain(|_, s| {
            gone += s.sweep(now_millis);
            !s.until.is_empty()
        });
        self.total -= gone;
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_caught_until_expiry_and_memory_is_bounded() {
        let mut c = ReplayCache::new(3, 3);
        assert_eq!(c.admit(1, "a", 100, 0), Admission::Fresh);
        assert_eq!(c.admit(1, "a", 100, 50), Admission::Replayed);
        assert_eq!(c.admit(2, "a", 100, 50), Admission::Fresh, "another token");
        assert_eq!(c.admit(1, "b", 100, 50), Admission::Fresh);
        assert_eq!(c.admit(3, "c", 100, 50), Admission::Full);
        assert_eq!(c.len(), 3);
        // Once expired, entries make room and the old signature is no longer remembered
        // (the window check refuses it by then).
        assert_eq!(c.admit(1, "c", 300, 101), Admission::Fresh);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn one_flooding_token_is_refused_and_nobody_else() {
        let mut c = ReplayCache::new(100, 10);
        for n in 0..10 {
            assert_eq!(c.admit(1, &format!("s{n}"), 1_000 + n, 0), Admission::Fresh);
        }
        // The flooder is held at its quota, told when a place frees up ...
        assert_eq!(
            c.admit(1, "s10", 2_000, 0),
            Admission::TokenFull {
                retry_after_millis: 1_000
            }
        );
        // ... while every other token is served as before.
        for t in 2..10 {
            assert_eq!(c.admit(t, "x", 2_000, 0), Admission::Fresh);
        }
        // Still a replay is a replay, and expiry gives the flooder room again.
        assert_eq!(c.admit(1, "s3", 2_000, 0), Admission::Replayed);
        assert_eq!(c.admit(1, "s10", 3_000, 1_001), Admission::Fresh);
        assert_eq!(c.len(), 10 + 8);
    }
}
