//! Shared server state and the clock.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use keygate_auth::Verifier;
use keygate_core::model::EpochSeconds;
use keygate_store::Store;

use crate::manage::Manager;

/// The source of "now". Handlers and the Verifier take time from here, never from
/// the system clock directly, so tests can reason about it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock;

impl Clock {
    /// Seconds since the Unix epoch.
    pub fn now(&self) -> EpochSeconds {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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
}
