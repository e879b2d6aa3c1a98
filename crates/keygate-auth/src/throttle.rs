//! Failed-authentication throttling: a token bucket per client address.
//!
//! Every failed authentication (bad, unknown or disabled token, bad LMv1 signature,
//! wrong password) spends a token from the client's bucket; buckets refill at a fixed
//! rate up to a burst. A client with an empty bucket gets 429 for every request that
//! fails authentication, while requests that authenticate are still served: a valid
//! token cannot be guessed, and checking one is cheap. Sign-in reserves a token before
//! any password hashing, so a flood of guesses costs no argon2 work beyond the burst.
//!
//! IPv6 clients are grouped by /64 (one client usually holds a whole /64). Memory is
//! bounded: at capacity the fullest (least suspicious) buckets are dropped first.
//!
//! The same buckets, keyed by user instead of address, limit how many refused changes
//! one principal can have recorded in the audit log. Each bucket counts what it
//! turned away, so the audit log can say "N more" in one entry
//! ([`FailureThrottle::take`], [`FailureThrottle::drain_suppressed`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

/// Throttle settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    /// Failures allowed in a burst.
    pub burst: f64,
    /// Failures forgiven per second.
    pub refill_per_second: f64,
    /// Most clients tracked at once.
    pub max_clients: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            burst: 20.0,
            refill_per_second: 1.0 / 6.0,
            max_clients: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_millis: i64,
    /// Attempts turned away since the last one let through (or drained).
    suppressed: u64,
}

/// What a bucket is kept for: a client address, or a user.
pub trait ThrottleKey: Copy + Eq + Hash + std::fmt::Debug {
    /// The key the bucket is kept under (an IPv6 address's /64, say).
    fn group(self) -> Self;
}

impl ThrottleKey for IpAddr {
    fn group(self) -> Self {
        client_key(self)
    }
}

impl ThrottleKey for i64 {
    fn group(self) -> Self {
        self
    }
}

/// The buckets.
#[derive(Debug)]
pub struct FailureThrottle<K = IpAddr> {
    config: ThrottleConfig,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// Why a request is throttled: seconds until one more failure is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// The address a client is counted under (IPv6 by /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

impl<K: ThrottleKey> FailureThrottle<K> {
    /// Empty buckets with `config`.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, b: Bucket, now_millis: i64) -> Bucket {
        let secs = (now_millis.saturating_sub(b.at_millis)).max(0) as f64 / 1000.0;
        Bucket {
            tokens: (b.tokens + secs * self.config.refill_per_second).min(self.config.burst),
            at_millis: now_millis,
            suppressed: b.suppressed,
        }
    }

    fn retry_after(&self, tokens: f64) -> RetryAfter {
        let missing = (1.0 - tokens).max(0.0);
        let secs = if self.config.refill_per_second > 0.0 {
            (missing / self.config.refill_per_second).ceil()
        } else {
            3600.0
        };
        RetryAfter(secs.clamp(1.0, 3600.0) as u64)
    }

    /// Spends one token for `key` if it has one: `Ok` with how many attempts were
    /// turned away since the last one let through (for an "N more" audit entry).
    /// `Err` means the key is over the limit; the attempt is counted as turned away.
    pub fn take(&self, key: K, now_millis: i64) -> Result<u64, RetryAfter> {
        let key = key.group();
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !map.contains_key(&key) && map.len() >= self.config.max_clients {
            self.make_room(&mut map, now_millis);
        }
        let b = map.get(&key).copied().unwrap_or(Bucket {
            tokens: self.config.burst,
            at_millis: now_millis,
            suppressed: 0,
        });
        let b = self.refilled(b, now_millis);
        if b.tokens < 1.0 {
            map.insert(
                key,
                Bucket {
                    suppressed: b.suppressed.saturating_add(1),
                    ..b
                },
            );
            return Err(self.retry_after(b.tokens));
        }
        map.insert(
            key,
            Bucket {
                tokens: b.tokens - 1.0,
                suppressed: 0,
                ..b
            },
        );
        Ok(b.suppressed)
    }

    /// Takes every key's count of turned-away attempts (resetting them), for the
    /// periodic "N more" audit entries.
    pub fn drain_suppressed(&self) -> Vec<(K, u64)> {
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter_mut()
            .filter(|(_, b)| b.suppressed > 0)
            .map(|(k, b)| (*k, std::mem::take(&mut b.suppressed)))
            .collect()
    }

    /// Gives back a token taken for an attempt that turned out not to be a failure.
    pub fn refund(&self, key: K) {
        let key = key.group();
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = map.get_mut(&key) {
            b.tokens = (b.tokens + 1.0).min(self.config.burst);
        }
    }

    /// Whether `key` is over the limit right now (spends nothing).
    pub fn blocked(&self, key: K, now_millis: i64) -> Option<RetryAfter> {
        let map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = self.refilled(*map.get(&key.group())?, now_millis);
        (b.tokens < 1.0).then(|| self.retry_after(b.tokens))
    }

    /// Drops buckets that have refilled (they behave exactly like absent ones); if that
    /// is not enough, the fullest half.
    fn make_room(&self, map: &mut HashMap<K, Bucket>, now_millis: i64) {
        // A refilled bucket behaves like an absent one. (Its count of turned-away
        // attempts goes with it: reporting them is best effort, and refusals are
        // drained every minute, well before a bucket refills.)
        map.retain(|_, b| self.refilled(*b, now_millis).tokens < self.config.burst);
        if map.len() >= self.config.max_clients {
            let mut levels: Vec<f64> = map
                .values()
                .map(|b| self.refilled(*b, now_millis).tokens)
                .collect();
            levels.sort_by(f64::total_cmp);
            let cut = levels[levels.len() / 2];
            map.retain(|_, b| self.refilled(*b, now_millis).tokens < cut);
        }
    }

    /// Number of clients tracked.
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(burst: f64, refill: f64, max: usize) -> FailureThrottle<IpAddr> {
        FailureThrottle::new(ThrottleConfig {
            burst,
            refill_per_second: refill,
            max_clients: max,
        })
    }

    #[test]
    fn burst_then_refill() {
        let th = t(3.0, 1.0, 10);
        let ip: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..3 {
            assert_eq!(th.take(ip, 0), Ok(0));
        }
        assert_eq!(th.take(ip, 0), Err(RetryAfter(1)));
        assert_eq!(th.take(ip, 0), Err(RetryAfter(1)));
        assert_eq!(th.blocked(ip, 500), Some(RetryAfter(1)));
        assert_eq!(
            th.take(ip, 1000),
            Ok(2),
            "one token back after a second, and the two turned away are reported"
        );
        let other: IpAddr = "10.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(th.take(other, 1000), Ok(0), "other clients unaffected");
        th.refund(ip);
        assert_eq!(th.take(ip, 1000), Ok(0));
    }

    #[test]
    fn ipv6_counts_per_64_and_memory_is_bounded() {
        let th = t(1.0, 0.0, 4);
        let a: IpAddr = "2001:db8:1:2::1"
            .parse()
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let b: IpAddr = "2001:db8:1:2::ffff"
            .parse()
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(th.take(a, 0), Ok(0));
        assert!(th.take(b, 0).is_err(), "same /64, same bucket");
        assert_eq!(th.drain_suppressed(), vec![(a.group(), 1)]);
        assert!(th.drain_suppressed().is_empty(), "drained once");
        for i in 0..20u8 {
            let _ = th.take(IpAddr::from([10, 1, 0, i]), 0);
            assert!(th.tracked() <= 4);
        }
    }
}
