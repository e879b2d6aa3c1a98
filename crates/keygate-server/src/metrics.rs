//! Prometheus metrics, kept in process and rendered as text at `/metrics`.
//!
//! Labels come only from fixed sets (schemes, outcomes, route templates, status
//! codes, token types): never a token, a user name or a raw path, so neither secrets
//! nor unbounded label sets can reach a scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::Method;

/// Upper bounds (seconds) of the verify-latency histogram buckets.
const VERIFY_BUCKETS: [f64; 12] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 1e-1,
];

/// Counters keyed by label values. Counting a key already seen takes only the shared
/// lock and one atomic add, so requests on many threads do not queue behind each
/// other; only the first count of a new key takes the exclusive lock.
#[derive(Debug)]
struct Counters<K>(RwLock<BTreeMap<K, AtomicU64>>);

impl<K> Default for Counters<K> {
    fn default() -> Self {
        Self(RwLock::new(BTreeMap::new()))
    }
}

impl<K: Ord + Copy> Counters<K> {
    fn add(&self, key: K) {
        self.add_n(key, 1);
    }

    fn add_n(&self, key: K, n: u64) {
        if let Ok(m) = self.0.read()
            && let Some(c) = m.get(&key)
        {
            c.fetch_add(n, Ordering::Relaxed);
            return;
        }
        if let Ok(mut m) = self.0.write() {
            m.entry(key).or_default().fetch_add(n, Ordering::Relaxed);
        }
    }

    fn each(&self, mut f: impl FnMut(K, u64)) {
        if let Ok(m) = self.0.read() {
            for (k, n) in m.iter() {
                f(*k, n.load(Ordering::Relaxed));
            }
        }
    }
}

/// The method as a label from a fixed set: extension methods would otherwise make
/// a new series per invented name.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// What the request log line says of a response no route tagged.
pub const UNMATCHED: &str = "unmatched";

/// One route template's response counts, by method and status. Routes get theirs
/// when the router is built ([`Metrics::route`]), and a response carries it to the
/// count: a request counts with one atomic add, without looking its route up.
#[derive(Debug)]
pub struct RouteCounts {
    template: Box<str>,
    counts: Counters<(&'static str, u16)>,
}

impl RouteCounts {
    /// The route template (`/santaba/rest/setting/admins/{adminId}`), or
    /// [`UNMATCHED`].
    pub fn template(&self) -> &str {
        &self.template
    }
}

/// A route's counts, shared by the route and the registry that renders them.
pub type Route = Arc<RouteCounts>;

/// Every metric keygate keeps. One per server; cheap to update from any task.
#[derive(Debug)]
pub struct Metrics {
    auth: Counters<(&'static str, &'static str)>,
    /// Items pushed, by kind (`value`, `property`, `log`) and outcome.
    ingested: Counters<(&'static str, &'static str)>,
    /// Exports sent by `--forward-otlp`, by signal and outcome.
    forwarded: Counters<(&'static str, &'static str)>,
    /// Per bucket, not cumulative (one atomic add per check); the last slot counts
    /// checks slower than every bound. Summed when rendered.
    verify_buckets: [AtomicU64; VERIFY_BUCKETS.len() + 1],
    verify_sum_nanos: AtomicU64,
    throttled: AtomicU64,
    store_errors: AtomicU64,
    password_checks: AtomicU64,
    /// Route template → its (method, status) counts. Routes come from the routing
    /// table (or `unmatched`), so the set is bounded.
    routes: RwLock<BTreeMap<Box<str>, Route>>,
    /// Responses no route tagged.
    unmatched: Route,
}

impl Default for Metrics {
    fn default() -> Self {
        let unmatched = Arc::new(RouteCounts {
            template: UNMATCHED.into(),
            counts: Counters::default(),
        });
        Self {
            auth: Counters::default(),
            ingested: Counters::default(),
            forwarded: Counters::default(),
            verify_buckets: Default::default(),
            verify_sum_nanos: AtomicU64::default(),
            throttled: AtomicU64::default(),
            store_errors: AtomicU64::default(),
            password_checks: AtomicU64::default(),
            routes: RwLock::new(BTreeMap::from([(UNMATCHED.into(), unmatched.clone())])),
            unmatched,
        }
    }
}

/// Values read from elsewhere at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Tokens by (type, status).
    pub tokens: Vec<(&'static str, &'static str, i64)>,
    /// Seconds since the credential index was last confirmed current.
    pub reconciliation_age_seconds: f64,
    /// Tokens in this node's index.
    pub indexed_tokens: usize,
    /// Token rows this node holds for management reads (0 until they have loaded).
    pub read_view_tokens: usize,
    /// Full reloads of this node's index since start-up.
    pub index_reloads: u64,
    /// Ingestion requests waiting for a place.
    pub ingest_waiting: usize,
    /// Ingestion requests decoding or storing.
    pub ingest_in_flight: usize,
    /// Whether `--forward-otlp` is on.
    pub forwarding: bool,
    /// With `--forward-otlp`: outbox entries waiting, and the seconds the oldest has
    /// (`None` until first measured after start-up).
    pub outbox: Option<(i64, f64)>,
}

impl Metrics {
    /// Counts `n` pushed items of `kind` (`value`, `property`, `log`) by `outcome`
    /// (`stored`, `refused`, `failed`).
    pub fn ingested(&self, kind: &'static str, outcome: &'static str, n: u64) {
        if n > 0 {
            self.ingested.add_n((kind, outcome), n);
        }
    }

    /// Counts one export sent by `--forward-otlp` of `signal` (`traces`, `logs`,
    /// `metrics`) by outcome (`delivered`, `retried`, `dropped`).
    pub fn forwarded(&self, signal: &'static str, outcome: &'static str) {
        self.forwarded.add((signal, outcome));
    }

    /// Counts one authentication attempt.
    pub fn auth(&self, scheme: &'static str, outcome: &'static str) {
        self.auth.add((scheme, outcome));
    }

    /// Records how long one credential check in the index took.
    pub fn verify_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = VERIFY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(VERIFY_BUCKETS.len());
        if let Some(c) = self.verify_buckets.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.verify_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts a request refused by the failed-authentication throttle.
    pub fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one argon2id password check (every sign-in that reaches the check,
    /// refused or not, runs exactly one).
    pub fn password_check(&self) {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request that failed because the store did.
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts of a route template, registered on first use (the router asks once
    /// per route when it is built; the UI's routes by the template they matched).
    pub fn route(&self, template: &str) -> Route {
        if let Ok(routes) = self.routes.read()
            && let Some(r) = routes.get(template)
        {
            return r.clone();
        }
        let fresh = || {
            Arc::new(RouteCounts {
                template: template.into(),
                counts: Counters::default(),
            })
        };
        match self.routes.write() {
            Ok(mut routes) => routes.entry(template.into()).or_insert_with(fresh).clone(),
            // A poisoned registry still counts, just not in what is rendered.
            Err(_) => fresh(),
        }
    }

    /// The counts of responses no route tagged.
    pub fn unmatched(&self) -> &Route {
        &self.unmatched
    }

    /// Counts one HTTP response by method, route and status.
    pub fn http(&self, route: &RouteCounts, method: &Method, status: u16) {
        route.counts.add((method_label(method), status));
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP keygate_authentications_total Authentication attempts by scheme and outcome.\n# TYPE keygate_authentications_total counter\n");
        self.auth.each(|(scheme, outcome), n| {
            let _ = writeln!(
                out,
                "keygate_authentications_total{{scheme=\"{scheme}\",outcome=\"{outcome}\"}} {n}"
            );
        });
        out.push_str("# HELP keygate_verify_duration_seconds Time to check one credential against the in-memory index.\n# TYPE keygate_verify_duration_seconds histogram\n");
        let mut count = 0;
        for (bound, slot) in VERIFY_BUCKETS.iter().zip(&self.verify_buckets) {
            count += slot.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "keygate_verify_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        count += self.verify_buckets[VERIFY_BUCKETS.len()].load(Ordering::Relaxed);
        let sum = self.verify_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "keygate_verify_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nkeygate_verify_duration_seconds_sum {sum}\nkeygate_verify_duration_seconds_count {count}"
        );
        out.push_str(
            "# HELP keygate_tokens API tokens by type and status.\n# TYPE keygate_tokens gauge\n",
        );
        for (kind, status, n) in &snap.tokens {
            let _ = writeln!(
                out,
                "keygate_tokens{{type=\"{kind}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP keygate_index_tokens Tokens in this node's credential index.\n# TYPE keygate_index_tokens gauge\nkeygate_index_tokens {}",
            snap.indexed_tokens
        );
        let _ = writeln!(
            out,
            "# HELP keygate_index_reloads_total Full reloads of this node's credential index since start-up (a restored backup, a pruned change log, a lost listener).\n# TYPE keygate_index_reloads_total counter\nkeygate_index_reloads_total {}",
            snap.index_reloads
        );
        let _ = writeln!(
            out,
            "# HELP keygate_read_view_tokens Token rows this node holds in memory for management reads (0 until they have loaded after start-up).\n# TYPE keygate_read_view_tokens gauge\nkeygate_read_view_tokens {}",
            snap.read_view_tokens
        );
        let _ = writeln!(
            out,
            "# HELP keygate_throttled_requests_total Requests refused by the failed-authentication throttle.\n# TYPE keygate_throttled_requests_total counter\nkeygate_throttled_requests_total {}",
            self.throttled.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP keygate_store_errors_total Requests that failed because the database did.\n# TYPE keygate_store_errors_total counter\nkeygate_store_errors_total {}",
            self.store_errors.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP keygate_password_checks_total Argon2id password checks run by sign-ins.\n# TYPE keygate_password_checks_total counter\nkeygate_password_checks_total {}",
            self.password_checks.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP keygate_last_reconciliation_age_seconds Seconds since this node last confirmed its index matches the database.\n# TYPE keygate_last_reconciliation_age_seconds gauge\nkeygate_last_reconciliation_age_seconds {}",
            snap.reconciliation_age_seconds
        );
        out.push_str("# HELP keygate_ingested_items_total Items pushed through the ingestion APIs, by kind (value, property, log) and outcome (stored; refused: for an unknown resource; failed: the database failed). Requests refused whole (400, 401, 413, ...) are in keygate_http_requests_total.\n# TYPE keygate_ingested_items_total counter\n");
        self.ingested.each(|(kind, outcome), n| {
            let _ = writeln!(
                out,
                "keygate_ingested_items_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
            );
        });
        let _ = writeln!(
            out,
            "# HELP keygate_ingest_queue Ingestion requests waiting for a place (waiting) and decoding or storing (in_flight).\n# TYPE keygate_ingest_queue gauge\nkeygate_ingest_queue{{state=\"waiting\"}} {}\nkeygate_ingest_queue{{state=\"in_flight\"}} {}",
            snap.ingest_waiting, snap.ingest_in_flight
        );
        if let Some((entries, lag)) = snap.outbox {
            let _ = writeln!(
                out,
                "# HELP keygate_outbox_entries OTLP exports queued for --forward-otlp and not yet delivered.\n# TYPE keygate_outbox_entries gauge\nkeygate_outbox_entries {entries}\n# HELP keygate_outbox_lag_seconds How long the oldest queued export has waited (0 when none waits).\n# TYPE keygate_outbox_lag_seconds gauge\nkeygate_outbox_lag_seconds {lag}"
            );
        }
        if snap.forwarding {
            out.push_str("# HELP keygate_forwarded_exports_total Sends of queued exports to the --forward-otlp receiver, by signal and outcome (delivered; retried: kept for a later send; dropped: refused for good).\n# TYPE keygate_forwarded_exports_total counter\n");
            self.forwarded.each(|(signal, outcome), n| {
                let _ = writeln!(
                    out,
                    "keygate_forwarded_exports_total{{signal=\"{signal}\",outcome=\"{outcome}\"}} {n}"
                );
            });
        }
        out.push_str("# HELP keygate_http_requests_total HTTP responses by method, route template and status.\n# TYPE keygate_http_requests_total counter\n");
        if let Ok(routes) = self.routes.read() {
            for (route, counts) in routes.iter() {
                let route = escape_label(route);
                counts.counts.each(|(method, status), n| {
                    let _ = writeln!(
                        out,
                        "keygate_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                });
            }
        }
        out
    }
}

/// Escapes a label value (route templates contain only path characters, but the
/// format's rules are kept regardless).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.verify_latency(Duration::from_nanos(800));
        m.verify_latency(Duration::from_micros(30));
        let text = m.render(&Snapshot::default());
        assert!(text.contains("keygate_verify_duration_seconds_bucket{le=\"0.000001\"} 1"));
        assert!(text.contains("keygate_verify_duration_seconds_bucket{le=\"0.00005\"} 2"));
        assert!(text.contains("keygate_verify_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("keygate_verify_duration_seconds_count 2"));
    }

    #[test]
    fn invented_methods_share_one_label() {
        let m = Metrics::default();
        for method in ["FOO1", "FOO2", "GET"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            m.http(m.unmatched(), &method, 405);
        }
        let text = m.render(&Snapshot::default());
        assert!(text.contains("method=\"other\",route=\"unmatched\",status=\"405\"} 2"));
        assert!(text.contains("method=\"GET\",route=\"unmatched\",status=\"405\"} 1"));
        assert!(!text.contains("FOO"));
    }

    #[test]
    fn a_route_asked_for_twice_counts_in_one_series() {
        let m = Metrics::default();
        let (a, b) = (m.route("/x/{id}"), m.route("/x/{id}"));
        m.http(&a, &Method::GET, 200);
        m.http(&b, &Method::GET, 200);
        let text = m.render(&Snapshot::default());
        assert!(
            text.contains(
                "keygate_http_requests_total{method=\"GET\",route=\"/x/{id}\",status=\"200\"} 2"
            ),
            "{text}"
        );
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
