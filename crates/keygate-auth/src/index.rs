//! The token index: SHA-256 digest → token entry, split into shards so that writers
//! (disable, delete) block only a sliver of readers, and readers never contend on
//! one lock word.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::RwLock;

use keygate_core::model::{TokenId, UserId};
use keygate_core::token::TokenDigest;

/// Number of shards (a power of two).
const SHARDS: usize = 64;

/// What the index keeps per bearer token (24 bytes plus the 32-byte key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEntry {
    /// Token id, for usage records and the principal.
    pub id: TokenId,
    /// Owner.
    pub user_id: UserId,
    /// Whether it authenticates.
    pub enabled: bool,
}

/// Hashes a key by taking its first eight bytes.
///
/// For keys the server generated at random: SHA-256 digests of bearer tokens and LMv1
/// access ids (20 random base62 characters). They are already uniformly distributed,
/// and a client cannot insert keys (only look them up), so there is nothing to flood.
/// SipHash would only add cost to every request.
#[derive(Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(head) = bytes.first_chunk::<8>() {
            self.0 = self.0.rotate_left(7) ^ u64::from_le_bytes(*head);
        }
    }

    fn write_usize(&mut self, _length_prefix: usize) {}
}

/// Builds [`DigestHasher`]s.
#[derive(Default, Clone, Copy)]
pub struct DigestState;

impl BuildHasher for DigestState {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// Hashes server-assigned integer ids (user, role, token ids) by one multiplication.
///
/// Ids are chosen by the store, never by a client, so there is nothing to flood.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, n: i64) {
        // Fibonacci hashing: spreads consecutive ids over the high bits hashbrown uses.
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by server-assigned ids.
pub type IdMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

type Shard = HashMap<TokenDigest, TokenEntry, DigestState>;

/// The sharded map.
pub struct TokenIndex {
    shards: Box<[RwLock<Shard>]>,
}

impl Default for TokenIndex {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
        }
    }
}

impl TokenIndex {
    fn shard(&self, d: &TokenDigest) -> &RwLock<Shard> {
        // The last byte picks the shard; the hasher uses the first eight.
        &self.shards[usize::from(d.0[31]) % SHARDS]
    }

    /// Looks a digest up. The read lock is held only for the copy.
    pub fn get(&self, d: &TokenDigest) -> Option<TokenEntry> {
        let shard = self
            .shard(d)
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.get(d).copied()
    }

    /// Inserts or replaces an entry.
    pub fn insert(&self, d: TokenDigest, e: TokenEntry) {
        let mut shard = self
            .shard(&d)
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.insert(d, e);
    }

    /// Removes an entry.
    pub fn remove(&self, d: &TokenDigest) {
        let mut shard = self
            .shard(d)
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.remove(d);
    }

    /// Replaces everything (start-up, full reconciliation).
    pub fn replace_all(&self, entries: impl IntoIterator<Item = (TokenDigest, TokenEntry)>) {
        let mut fresh: Vec<Shard> = (0..SHARDS).map(|_| Shard::default()).collect();
        for (d, e) in entries {
            fresh[usize::from(d.0[31]) % SHARDS].insert(d, e);
        }
        for (slot, new) in self.shards.iter().zip(fresh) {
            *slot
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = new;
        }
    }

    /// Calls `f` with every entry, one shard's read lock at a time.
    pub fn for_each(&self, mut f: impl FnMut(&TokenDigest, &TokenEntry)) {
        for s in &self.shards {
            let shard = s.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (d, e) in shard.iter() {
                f(d, e);
            }
        }
    }

    /// Number of tokens indexed.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
