//! `--forward-otlp`: relays what was pushed to an OTLP/HTTP receiver (an OpenTelemetry
//! Collector, Jaeger, Tempo), so keygate can be the per-user-token gateway in front
//! of an existing telemetry backend.
//!
//! Each ingestion request that stores data also queues its OTLP export in the store's
//! outbox, in the same transaction ([`keygate_store::data::Outgoing`]): what was
//! acknowledged is what will be forwarded, across restarts and crashes. This task
//! claims entries oldest first (with a lease, so several nodes on one PostgreSQL
//! database share the work), sends each gzipped to `<endpoint>/v1/{traces,logs,metrics}`
//! and deletes it once the receiver answers 2xx. Delivery is at least once, as OTLP
//! allows: an entry sent whose deletion a crash prevented is sent again.
//!
//! What the receiver answers decides what happens to an entry:
//!
//! | answer | entry |
//! | --- | --- |
//! | 2xx | delivered, deleted |
//! | 429, 502, 503, 504, no answer, a timeout | kept; retried after a backoff (1 s doubling to `max_backoff`, with jitter) or the `Retry-After` it gave |
//! | 401, 403, 404, 405, 407 | kept and retried the same way: the endpoint or its credentials are wrong, and an operator can fix that without losing data |
//! | any other (400, 413, 500, ...) | dropped (OTLP forbids retrying it), counted and logged |
//!
//! While the receiver fails, nothing after the failed entry is sent: the outbox waits
//! whole, in order. Entries past the data retention are pruned with the data.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use keygate_store::Store;
use keygate_store::data::{Queued, Signal};
use reqwest::header::HeaderMap;
/// The header types [`RelayConfig::headers`] holds.
pub use reqwest::header::{HeaderName, HeaderValue};
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;
use crate::state::Clock;
use keygate_core::clock::Stopwatch;

/// How long a claim keeps other nodes off an entry (at least twice the send timeout).
/// A send is begun only while the rest of the lease covers its whole timeout, so an
/// entry is never sent by a node whose claim may have lapsed; after a crash, its
/// claims end within this.
const LEASE: Duration = Duration::from_secs(20);
/// How many entries one claim takes.
const BATCH: i64 = 32;
/// How often an idle relay looks for entries other nodes queued (its own wake it).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// The first retry's delay.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How long a woken relay lets exports gather before it claims them.
const GATHER: Duration = Duration::from_millis(50);
/// The most bytes of exports merged into one send.
const MERGE_BYTES: usize = 4 * 1024 * 1024;
/// The content type of exports that can be merged.
const PROTOBUF: &str = "application/x-protobuf";

/// Where and how to forward.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The receiver's base URL (`http://collector:4318`); `/v1/traces`, `/v1/logs`
    /// and `/v1/metrics` are appended, as OTLP exporters do with
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    /// Headers sent with every export (a receiver's own credentials).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A certificate authority to trust beside the system's, PEM.
    pub ca_cert: Option<Vec<u8>>,
    /// How long one send may take.
    pub timeout: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
    /// This node is the only one sending from its outbox (SQLite: one server a
    /// file): at start, what a killed process had claimed is made due at once.
    pub sole_sender: bool,
}

impl RelayConfig {
    /// Forwarding to `endpoint` with the defaults: a 10 s timeout (OTLP exporters'
    /// default) and retries at most a minute apart.
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            headers: Vec::new(),
            ca_cert: None,
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            sole_sender: false,
        }
    }
}

/// Why forwarding could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The endpoint is not an `http://` or `https://` URL.
    #[error("--forward-otlp must be an http:// or https:// URL, not \"{0}\"")]
    Endpoint(String),
    /// The HTTP client could not be built (a bad certificate authority).
    #[error("could not set up forwarding: {0}")]
    Client(String),
}

/// Checks that `endpoint` is an `http://` or `https://` URL.
pub fn check_endpoint(endpoint: &str) -> Result<(), RelayError> {
    let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
    if !scheme_ok || reqwest::Url::parse(endpoint).is_err() {
        return Err(RelayError::Endpoint(endpoint.to_owned()));
    }
    Ok(())
}

/// What the ingestion routes and `/metrics` share with the relay task.
#[derive(Debug)]
pub struct Relay {
    wake: Notify,
    /// Entries waiting, or -1 until the task has first measured.
    entries: AtomicI64,
    /// When the oldest waiting entry was queued (epoch ms), or -1 when none waits.
    oldest_ms: AtomicI64,
}

impl Default for Relay {
    fn default() -> Self {
        Self {
            wake: Notify::new(),
            entries: AtomicI64::new(-1),
            oldest_ms: AtomicI64::new(-1),
        }
    }
}

impl Relay {
    /// Tells the task an entry was queued (it otherwise looks once a second).
    pub fn queued(&self) {
        self.wake.notify_one();
    }

    /// Entries waiting, and the seconds the oldest has waited at `now_ms`; `None`
    /// until the task has first measured (a gauge of 0 then would be a guess).
    pub fn backlog(&self, now_ms: i64) -> Option<(i64, f64)> {
        let entries = self.entries.load(Ordering::Relaxed);
        if entries < 0 {
            return None;
        }
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        let lag = if oldest < 0 {
            0.0
        } else {
            now_ms.saturating_sub(oldest).max(0) as f64 / 1000.0
        };
        Some((entries, lag))
    }
}

/// How one send ended.
enum Sent {
    Delivered,
    /// Keep it and retry, after at least this long if the receiver said so.
    Retry(Option<Duration>, String),
    /// OTLP forbids retrying it.
    Dropped(String),
}

/// The relay task's parts.
pub struct Forwarder<S: Store> {
    store: S,
    config: RelayConfig,
    http: reqwest::Client,
    relay: Arc<Relay>,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl<S: Store> Forwarder<S> {
    /// Checks the configuration and builds the HTTP client.
    pub fn new(
        store: S,
        config: RelayConfig,
        relay: Arc<Relay>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Self, RelayError> {
        let scheme_ok =
            config.endpoint.starts_with("http://") || config.endpoint.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(&config.endpoint).is_err() {
            return Err(RelayError::Endpoint(config.endpoint.clone()));
        }
        // reqwest is built without a default crypto provider: ring, as the server uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let mut value = value.clone();
            // Kept out of any debug output of the client.
            value.set_sensitive(true);
            headers.append(name.clone(), value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers);
        if let Some(pem) = &config.ca_cert {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| RelayError::Client(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| RelayError::Client(e.to_string()))?;
        Ok(Self {
            store,
            config,
            http,
            relay,
            metrics,
            clock,
        })
    }

    /// Sends the outbox until `stop` turns true; entries claimed and not yet sent
    /// then are handed back, so a restart sends them at once.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        if self.config.sole_sender
            && let Err(e) = self.store.outbox_release(self.clock.now_millis()).await
        {
            tracing::warn!(error = %e, "forwarding: could not release earlier claims");
        }
        // The lease must outlast a send with room to spare, whatever the timeout.
        let lease = LEASE.max(self.config.timeout.saturating_mul(2));
        loop {
            self.refresh_backlog().await;
            if *stop.borrow() {
                return;
            }
            let now = self.clock.now_millis();
            let claimed = match self
                .store
                .outbox_claim(
                    now,
                    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
                    BATCH,
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "forwarding: could not read the outbox");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = self.relay.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => return,
                }
                // Let what arrives meanwhile join the next claim: a collector's pushes
                // then go on in a few requests, not one each.
                tokio::select! {
                    _ = tokio::time::sleep(GATHER) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
            let mut wait = None;
            // Delivered entries are deleted together at the end of the batch: one
            // commit for the batch instead of one an entry (a crash before it sends
            // them again: at least once).
            let mut done = Vec::with_capacity(claimed.len());
            let lease_ends = Stopwatch::start().after(lease);
            let mut at = 0;
            while at < claimed.len() {
                if Stopwatch::start().after(self.config.timeout) >= lease_ends {
                    // The claim could lapse mid-send: claim the rest anew.
                    self.hand_back(&claimed[at..], None, self.clock.now_millis())
                        .await;
                    break;
                }
                let group = &claimed[at..at + mergeable(&claimed[at..])];
                let sent = tokio::select! {
                    s = self.send(group) => s,
                    _ = stop.changed() => {
                        self.finish(&done).await;
                        self.hand_back(&claimed[at..], None, self.clock.now_millis()).await;
                        return;
                    }
                };
                let Some(first) = group.first() else {
                    break;
                };
                let signal = first.outgoing.signal.as_str();
                match sent {
                    Sent::Delivered => {
                        if failures > 0 {
                            tracing::info!(
                                signal,
                                "forwarding: the receiver accepts exports again"
                            );
                        }
                        failures = 0;
                        for entry in group {
                            self.metrics.forwarded(signal, "delivered");
                            done.push(entry.id);
                        }
                        at += group.len();
                    }
                    Sent::Dropped(_) if group.len() > 1 => {
                        // One of them may be at fault: each goes again on its own.
                        let mut alone = 0;
                        let mut kept = None;
                        for entry in group {
                            let sent = tokio::select! {
                                s = self.send(std::slice::from_ref(entry)) => s,
                                _ = stop.changed() => {
                                    self.finish(&done).await;
                                    self.hand_back(&claimed[at + alone..], None, self.clock.now_millis()).await;
                                    return;
                                }
                            };
                            match sent {
                                Sent::Delivered => {
                                    self.metrics.forwarded(signal, "delivered");
                                    done.push(entry.id);
                                }
                                Sent::Dropped(reason) => {
                                    self.dropped(entry, &reason);
                                    done.push(entry.id);
                                }
                                Sent::Retry(after, reason) => {
                                    kept = Some((after, reason));
                                    break;
                                }
                            }
                            alone += 1;
                        }
                        if let Some((after, reason)) = kept {
                            failures = failures.saturating_add(1);
                            let delay = self.retry_delay(after, failures);
                            tracing::warn!(signal, retry_in_ms = delay.as_millis() as u64, %reason, "forwarding: the receiver did not take an export; it is kept");
                            self.metrics.forwarded(signal, "retried");
                            let rest = &claimed[at + alone..];
                            let due = self
                                .clock
                                .now_millis()
                                .saturating_add(delay.as_millis() as i64);
                            self.hand_back(rest, rest.first().map(|e| e.id), due).await;
                            wait = Some(delay);
                            break;
                        }
                        at += group.len();
                    }
                    Sent::Dropped(reason) => {
                        self.dropped(first, &reason);
                        done.push(first.id);
                        at += 1;
                    }
                    Sent::Retry(after, reason) => {
                        failures = failures.saturating_add(1);
                        let delay = self.retry_delay(after, failures);
                        tracing::warn!(signal, exports = group.len(), attempt = first.attempts + 1, retry_in_ms = delay.as_millis() as u64, %reason, "forwarding: the receiver did not take an export; it is kept");
                        for _ in group {
                            self.metrics.forwarded(signal, "retried");
                        }
                        let due = self
                            .clock
                            .now_millis()
                            .saturating_add(delay.as_millis() as i64);
                        self.hand_back(&claimed[at..], Some(first.id), due).await;
                        wait = Some(delay);
                        break;
                    }
                }
            }
            self.finish(&done).await;
            // After a failure, its backoff; after a batch short of full, a moment
            // for more to gather (steady pushes then go on a batch at a time, not
            // one claim, send and delete each); after a full one, at once.
            let pause = wait.or((claimed.len() < BATCH as usize).then_some(GATHER));
            if let Some(delay) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    fn dropped(&self, entry: &Queued, reason: &str) {
        let signal = entry.outgoing.signal.as_str();
        tracing::error!(signal, queued_ms = entry.outgoing.queued_ms, %reason, "forwarding: the receiver refused an export for good; it is dropped");
        self.metrics.forwarded(signal, "dropped");
    }

    /// Sends `group` (entries of one signal; several only in protobuf) as one export.
    async fn send(&self, group: &[Queued]) -> Sent {
        let Some(first) = group.first() else {
            return Sent::Delivered;
        };
        let path = match first.outgoing.signal {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        };
        // Export requests hold one repeated field: their protobuf encodings, end to
        // end, are the encoding of one request holding all their resources.
        let body = match gzip(group.iter().map(|e| e.outgoing.body.as_slice())) {
            Ok(b) => b,
            Err(e) => return Sent::Retry(None, format!("could not compress: {e}")),
        };
        let answer = self
            .http
            .post(format!("{}{path}", self.config.endpoint))
            .header(reqwest::header::CONTENT_TYPE, &first.outgoing.content_type)
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .await;
        let resp = match answer {
            Ok(r) => r,
            Err(e) => return Sent::Retry(None, describe(e)),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match status {
            200..=299 => Sent::Delivered,
            429 | 502 | 503 | 504 => Sent::Retry(retry_after, format!("HTTP {status}")),
            401 | 403 | 404 | 405 | 407 => Sent::Retry(
                retry_after,
                format!("HTTP {status}: check --forward-otlp and its headers"),
            ),
            _ => Sent::Dropped(format!("HTTP {status}")),
        }
    }

    /// The wait before a retry: the backoff, or longer if the receiver asked.
    fn retry_delay(&self, after: Option<Duration>, failures: u32) -> Duration {
        after
            .unwrap_or_default()
            .max(self.backoff(failures))
            .min(self.max_backoff())
    }

    /// The wait after `failures` failures in a row: doubling from a second, capped,
    /// with up to a fifth taken off at random so that nodes do not retry in step.
    fn backoff(&self, failures: u32) -> Duration {
        let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
        let capped = doubled.min(self.max_backoff());
        let mut r = [0u8; 1];
        let fifths = if getrandom::fill(&mut r).is_ok() {
            f64::from(r[0]) / 255.0 / 5.0
        } else {
            0.0
        };
        capped.mul_f64(1.0 - fifths)
    }

    /// The configured cap, kept above a floor so a zero cannot make a busy loop.
    fn max_backoff(&self) -> Duration {
        self.config.max_backoff.max(Duration::from_millis(50))
    }

    async fn finish(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.store.outbox_done(ids).await {
            // Their lease ends and they are sent again: at least once.
            tracing::warn!(error = %e, "forwarding: could not delete delivered exports");
        }
    }

    async fn hand_back(&self, entries: &[Queued], failed: Option<i64>, due_ms: i64) {
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        if let Err(e) = self.store.outbox_retry(&ids, failed, due_ms).await {
            // Their lease ends on its own.
            tracing::warn!(error = %e, "forwarding: could not reschedule exports");
        }
    }

    async fn refresh_backlog(&self) {
        match self.store.outbox_state().await {
            Ok(s) => {
                self.relay.entries.store(s.entries, Ordering::Relaxed);
                self.relay
                    .oldest_ms
                    .store(s.oldest_ms.unwrap_or(-1), Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "forwarding: could not measure the outbox"),
        }
    }
}

/// How many of `entries`, from the first, go in one send: protobuf exports of the
/// first's signal, up to [`MERGE_BYTES`] in all (always at least the first).
fn mergeable(entries: &[Queued]) -> usize {
    let Some(first) = entries.first() else {
        return 0;
    };
    if first.outgoing.content_type != PROTOBUF {
        return 1;
    }
    let mut bytes = 0;
    let mut n = 0;
    for e in entries {
        let same =
            e.outgoing.signal == first.outgoing.signal && e.outgoing.content_type == PROTOBUF;
        if !same || (n > 0 && bytes + e.outgoing.body.len() > MERGE_BYTES) {
            break;
        }
        bytes += e.outgoing.body.len();
        n += 1;
    }
    n
}

fn gzip<'a>(parts: impl Iterator<Item = &'a [u8]>) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for p in parts {
        enc.write_all(p)?;
    }
    enc.finish()
}

/// A send's failure and its causes, on one line, without the URL (it may carry
/// credentials).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_unknown_until_measured_and_zero_lag_when_empty() {
        let r = Relay::default();
        assert_eq!(r.backlog(10_000), None);
        r.entries.store(0, Ordering::Relaxed);
        assert_eq!(r.backlog(10_000), Some((0, 0.0)));
        r.entries.store(3, Ordering::Relaxed);
        r.oldest_ms.store(4_000, Ordering::Relaxed);
        assert_eq!(r.backlog(10_000), Some((3, 6.0)));
    }
}
