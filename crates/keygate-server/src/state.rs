//! Shared server state and the clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use keygate_auth::Verifier;
use keygate_core::model::EpochSeconds;
use keygate_store::Store;

use crate::manage::Manager;

/// The source of "now". Handlers and the Verifier take time from here, never from
/// the system clock directly, so tests can put a request exactly on a window edge.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that stands still until moved (tests).
    Fixed(Arc<AtomicI64>),
}

impl Clock {
    /// A fixed clock at `millis` since the Unix epoch.
    pub fn fixed(millis: i64) -> Self {
        Self::Fixed(Arc::new(AtomicI64::new(millis)))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> i64 {
        match self {
            Self::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Self::Fixed(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> EpochSeconds {
        self.now_millis().div_euclid(1000)
    }
}

/// What every handler can reach. Cloning is cheap.
#[derive(Clone)]
pub struct AppState<S: Store> {
    /// Business operations (policy + store + index update).
    pub manager: Arc<Manager<S>>,
    /// The in-memory credential index.
    pub verifier: Verifier,
    /// Time.
    pub clock: Clock,
    /// Web UI session settings.
    pub sessions: crate::session::SessionConfig,
    /// Token buckets on failed authentications, per client.
    pub throttle: Arc<keygate_auth::throttle::FailureThrottle>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Request slots: the main pool and the unauthenticated one.
    pub slots: Arc<crate::listen::slots::Slots>,
}
