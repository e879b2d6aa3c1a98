//! Last-use records: written to memory on every successful authentication, and to the
//! store in one batch every few seconds (and on shutdown). Never one write per request.

use std::net::IpAddr;
use std::sync::Mutex;

use keygate_core::model::{EpochSeconds, TokenId};
use keygate_store::Usage;

use crate::index::IdMap;

const SHARDS: usize = 16;

type Pending = IdMap<TokenId, (EpochSeconds, IpAddr)>;

/// Pending usage, newest per token.
pub struct UsageRecorder {
    shards: Box<[Mutex<Pending>]>,
}

impl Default for UsageRecorder {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Pending::default()))
                .collect(),
        }
    }
}

impl UsageRecorder {
    /// Notes that `token` authenticated at `now` from `ip`.
    pub fn record(&self, token: TokenId, now: EpochSeconds, ip: IpAddr) {
        let slot = &self.shards[(token.unsigned_abs() % SHARDS as u64) as usize];
        let mut pending = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.insert(token, (now, ip));
    }

    /// Takes everything pending.
    pub fn take(&self) -> Vec<Usage> {
        let mut out = Vec::new();
        for slot in self.shards.iter() {
            let drained = std::mem::take(
                &mut *slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            out.extend(drained.into_iter().map(|(token_id, (at, ip))| Usage {
                token_id,
                at,
                ip: ip.to_string(),
            }));
        }
        out
    }

    /// Puts back records that could not be written, unless newer ones arrived meanwhile.
    pub fn restore(&self, batch: Vec<Usage>) {
        for u in batch {
            let Ok(ip) = u.ip.parse::<IpAddr>() else {
                continue;
            };
            let slot = &self.shards[(u.token_id.unsigned_abs() % SHARDS as u64) as usize];
            let mut pending = slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.entry(u.token_id).or_insert((u.at, ip));
        }
    }
}
