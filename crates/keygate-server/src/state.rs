//! Shared server state and the clock.

use std::sync::Arc;

use keygate_auth::Verifier;
use keygate_store::Store;

use crate::manage::Manager;

/// The source of "now" (in `keygate_core::clock`, re-exported where the server's
/// configuration names it). Handlers and the Verifier take time from it, never from
/// the system clock directly, so tests can put a request exactly on a window edge.
pub use keygate_core::clock::Clock;

/// What every handler can reach: one shared [`Shared`]. Every request clones it
/// (axum's `State` extractor does), so it is one reference count, not one per field.
pub struct AppState<S: Store>(Arc<Shared<S>>);

impl<S: Store> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S: Store> std::ops::Deref for AppState<S> {
    type Target = Shared<S>;
    fn deref(&self) -> &Shared<S> {
        &self.0
    }
}

impl<S: Store> AppState<S> {
    /// Shares `shared` between every handler.
    pub fn new(shared: Shared<S>) -> Self {
        Self(Arc::new(shared))
    }
}

/// The state itself.
pub struct Shared<S: Store> {
    /// Business operations (policy + store + index update).
    pub manager: Arc<Manager<S>>,
    /// The in-memory credential index.
    pub verifier: Verifier,
    /// Credential checks on that index (shared with forward-auth and keygate-tower).
    pub gate: keygate_tower::Gate,
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
    /// The longest an index long poll waits (inside the request time limit).
    pub max_index_wait: std::time::Duration,
    /// The identity headers forward-auth last answered for each token.
    pub identities: crate::forward::Identities,
    /// Turns true when the server begins shutting down (long polls answer at once).
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// What bounds ingestion: places, their queue, each token's rate.
    pub ingest: Arc<crate::routes::ingest_limits::IngestLimits>,
    /// With `--forward-otlp`: what ingestion queues exports for.
    pub relay: Option<Arc<crate::relay::Relay>>,
}
