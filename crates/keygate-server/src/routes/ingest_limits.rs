//! What bounds ingestion: requests storing at once (a bounded queue in front of them,
//! 503 with `Retry-After` when it is full or a place does not come up in time), and
//! each token's request rate (429 with `Retry-After` past it).
//!
//! A place is taken before a body is read, so the memory ingestion can hold is its
//! places times the largest body (8 MiB as sent, 8 MiB decompressed, and its parse),
//! whatever the number of clients. The rate is per token, so one busy collector cannot
//! starve the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keygate_auth::throttle::{FailureThrottle, ThrottleConfig};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// How ingestion is bounded.
#[derive(Debug, Clone, Copy)]
pub struct IngestConfig {
    /// Requests decoding and storing at once.
    pub max_in_flight: usize,
    /// Requests waiting for one of those places; more are answered 503 at once.
    pub max_waiting: usize,
    /// The longest a request waits for a place before it is answered 503.
    pub max_wait: Duration,
    /// Requests a second one token may make, on average.
    pub per_token_per_second: f64,
    /// Requests one token may make in a burst.
    pub per_token_burst: f64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 4,
            max_waiting: 64,
            max_wait: Duration::from_secs(5),
            per_token_per_second: 20.0,
            per_token_burst: 100.0,
        }
    }
}

/// The bounds, shared by every ingestion request.
#[derive(Debug)]
pub struct IngestLimits {
    places: Arc<Semaphore>,
    /// What requests whose credential cannot be checked before their body is read
    /// (LMv1 signs the body) may hold of the places: half, so that anyone who knows
    /// an access id (it is not a secret) cannot take every place with slow bodies.
    unverified: Arc<Semaphore>,
    waiting: AtomicUsize,
    config: IngestConfig,
    rate: FailureThrottle<i64>,
}

/// A place held while a request is decoded and stored.
#[derive(Debug)]
pub struct Place(#[allow(dead_code)] OwnedSemaphorePermit);

/// One of the places unverified requests may hold, until the request is verified.
#[derive(Debug)]
pub struct Unverified(#[allow(dead_code)] OwnedSemaphorePermit);

impl IngestLimits {
    /// Bounds as configured.
    pub fn new(config: IngestConfig) -> Self {
        Self {
            places: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            unverified: Arc::new(Semaphore::new((config.max_in_flight / 2).max(1))),
            waiting: AtomicUsize::new(0),
            rate: FailureThrottle::new(ThrottleConfig {
                burst: config.per_token_burst,
                refill_per_second: config.per_token_per_second,
                max_clients: 100_000,
            }),
            config,
        }
    }

    /// Requests waiting for a place now (for the metrics).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests holding a place now (for the metrics).
    pub fn in_flight(&self) -> usize {
        self.config
            .max_in_flight
            .max(1)
            .saturating_sub(self.places.available_permits())
    }

    /// Takes a place, waiting in the queue if there is room in it.
    pub async fn enter(&self) -> Result<Place, ApiError> {
        self.take(&self.places).await.map(Place)
    }

    /// Takes one of the places a request not yet verified may hold, then a place
    /// (each waiting in the queue as [`IngestLimits::enter`] does). Drop the first once
    /// the request is verified.
    pub async fn enter_unverified(&self) -> Result<(Place, Unverified), ApiError> {
        let unverified = self.take(&self.unverified).await.map(Unverified)?;
        Ok((self.enter().await?, unverified))
    }

    /// A permit of `sem`, at once or after waiting in the bounded queue.
    async fn take(&self, sem: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Ok(p);
        }
        let full = || ApiError::AtCapacity("ingestion requests in progress");
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.config.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(full());
        }
        let got = tokio::time::timeout(self.config.max_wait, sem.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(p)) => Ok(p),
            _ => Err(full()),
        }
    }

    /// Spends one request from `token`'s rate.
    pub fn spend(&self, token: i64, now_millis: i64) -> Result<(), ApiError> {
        self.rate.take(token, now_millis).map(|_| ()).map_err(|wait| {
            ApiError::TooManyRequests(
                format!(
                    "this token is over its ingestion rate ({} requests a second); retry after {} s",
                    self.config.per_token_per_second, wait.0
                ),
                wait.0,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unverified_requests_hold_at_most_half_the_places() {
        let limits = IngestLimits::new(IngestConfig {
            max_in_flight: 4,
            max_waiting: 8,
            max_wait: Duration::from_millis(50),
            ..IngestConfig::default()
        });
        let a = limits.enter_unverified().await;
        let b = limits.enter_unverified().await;
        assert!(a.is_ok() && b.is_ok());
        // A third waits for one of the two, and is turned away.
        assert!(limits.enter_unverified().await.is_err());
        // Verified requests still find the other half.
        let c = limits.enter().await;
        let d = limits.enter().await;
        assert!(c.is_ok() && d.is_ok());
        assert!(limits.enter().await.is_err());
        // Once verified, a request keeps its place and frees its unverified share.
        if let Ok((_place, unverified)) = a {
            drop(unverified);
            assert!(limits.enter_unverified().await.is_err(), "no place left");
            drop(c);
            assert!(limits.enter_unverified().await.is_ok());
        }
    }

    #[tokio::test]
    async fn past_the_places_and_the_queue_requests_are_turned_away() {
        let limits = IngestLimits::new(IngestConfig {
            max_in_flight: 1,
            max_waiting: 1,
            max_wait: Duration::from_millis(50),
            ..IngestConfig::default()
        });
        let held = limits.enter().await.expect("a place");
        // One may wait; it gives up after the wait.
        assert!(matches!(limits.enter().await, Err(ApiError::AtCapacity(_))));
        drop(held);
        assert!(limits.enter().await.is_ok());
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_place_when_it_frees() {
        let limits = Arc::new(IngestLimits::new(IngestConfig {
            max_in_flight: 1,
            ..IngestConfig::default()
        }));
        let held = limits.enter().await.expect("a place");
        let l = limits.clone();
        let waiter = tokio::spawn(async move { l.enter().await.is_ok() });
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiter.await.unwrap_or(false));
    }

    #[test]
    fn each_token_has_its_own_rate() {
        let limits = IngestLimits::new(IngestConfig {
            per_token_burst: 2.0,
            per_token_per_second: 1.0,
            ..IngestConfig::default()
        });
        assert!(limits.spend(1, 0).is_ok());
        assert!(limits.spend(1, 0).is_ok());
        assert!(matches!(
            limits.spend(1, 0),
            Err(ApiError::TooManyRequests(_, 1))
        ));
        assert!(limits.spend(2, 0).is_ok());
        assert!(limits.spend(1, 1000).is_ok());
    }
}
