//! keygate's HTTP server: the token, user, role and portal endpoints of REST API v3.
//!
//! # Layout
//!
//! - [`serve`] (this file): the entry point; tests call it with a port-0 listener.
//! - [`routes`] — the router and one module per resource (thin handlers).
//! - [`manage`] — the `keygate-manage` crate re-exported: the management path shared
//!   with the admin CLI (policy → store → Verifier catch-up).
//! - [`auth`] — the layer each API handler is wrapped in, which authenticates its
//!   requests (bearer, LMv1, session + CSRF), and the [`auth::Caller`] extractor
//!   handlers take.
//! - [`forward`] — forward-auth endpoints for nginx, Traefik, Caddy and Envoy.
//! - [`front`] — the one service in front of the router: `X-Version`, time limits,
//!   common headers, metrics and the request log line, and what it answers before
//!   routing.
//! - [`extract`] — path ids, query parameters and JSON bodies with API-style errors.
//! - [`body`] — typed access to JSON request bodies, naming the field at fault.
//! - [`wire`] — the JSON shapes of API objects and list responses.
//! - [`error`] — [`ApiError`], the one mapping from errors to HTTP.
//! - [`session`] — web UI sessions: cookie, CSRF token, timeouts.
//! - [`ui`] — the web UI: server-rendered pages and their small script.
//! - [`state`] — shared state and the clock.
//! - [`listen`] — the connection loop and its limits: connections per client, query
//!   repair, the body deadline, request slots.
//! - [`tls`] — HTTPS with reloadable certificates.
//! - [`relay`] — `--forward-otlp`: the outbox of pushed data sent on to an OTLP/HTTP
//!   receiver.
//! - [`wake`] — the socket beside a SQLite database through which the admin CLI has
//!   a running server apply its change at once.
//! - [`metrics`] — the Prometheus counters, with a counts handle per route.
//! - [`openapi`] — the OpenAPI document, built from the routing table.
#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keygate_auth::Verifier;
use keygate_store::Store;
use tokio::net::TcpListener;

pub mod auth;
pub mod body;
pub mod error;
pub mod extract;
pub mod forward;
pub mod front;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod relay;
pub mod routes;
pub mod session;
pub mod state;
pub mod tls;
pub mod ui;
pub mod wake;
pub mod wire;

pub use error::ApiError;
/// The management path lives in its own crate; the server calls it as `manage`.
pub use keygate_manage as manage;
pub use keygate_manage::Manager;

/// Server settings beyond the listener and the store.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How often to read the change log for changes made elsewhere (admin CLI, other nodes).
    pub poll_interval: Duration,
    /// How often to write token usage (`lastUsedOn`, `lastAuthIp`) to the store.
    pub usage_flush_interval: Duration,
    /// The source of time (the system clock outside tests).
    pub clock: state::Clock,
    /// Web UI sessions.
    pub sessions: session::SessionConfig,
    /// A node that cannot confirm its index is current for longer than this refuses
    /// credentials with 503 instead of trusting a stale index.
    pub max_staleness: Duration,
    /// Failed-authentication throttling.
    pub throttle: keygate_auth::throttle::ThrottleConfig,
    /// How many refused changes each principal may have recorded in the audit log (a
    /// burst, then a rate); beyond it they are answered 429 and counted in one entry.
    pub refusal_throttle: keygate_auth::throttle::ThrottleConfig,
    /// Reverse proxies whose `X-Forwarded-For` names the client (none by default: the
    /// TCP peer is the client, so no one can spoof an address).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long audit-log entries are kept (pruned in the background).
    pub audit_retention: Duration,
    /// How long pushed metric values and log lines are kept (pruned in the background).
    pub data_retention: Duration,
    /// What bounds ingestion (places, queue, per-token rate).
    pub ingest: routes::ingest_limits::IngestConfig,
    /// Request size, time and concurrency limits.
    pub limits: listen::Limits,
    /// LMv1 replay memory: most signatures remembered in all, and of one token.
    pub replay_limits: (usize, usize),
    /// Where to serve `/metrics` instead of the main listener (`None`: on it).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serve HTTPS with these certificates (`None`: plain HTTP). Keep a clone of the
    /// `Arc` to [`tls::Certificates::reload`] them while serving.
    pub tls: Option<Arc<tls::Certificates>>,
    /// The wake-up socket to serve ([`wake::socket_path`] of the SQLite file; `None`
    /// on PostgreSQL, whose NOTIFY does this job).
    pub wake_socket: Option<std::path::PathBuf>,
    /// Forward what is pushed to this OTLP/HTTP receiver (`None`: keep it only here).
    pub forward: Option<relay::RelayConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            usage_flush_interval: Duration::from_secs(2),
            clock: state::Clock::System,
            sessions: session::SessionConfig::default(),
            max_staleness: Duration::from_secs(30),
            throttle: keygate_auth::throttle::ThrottleConfig::default(),
            refusal_throttle: keygate_auth::throttle::ThrottleConfig::default(),
            trusted_proxies: Vec::new(),
            audit_retention: Duration::from_secs(90 * 86_400),
            data_retention: Duration::from_secs(7 * 86_400),
            ingest: routes::ingest_limits::IngestConfig::default(),
            limits: listen::Limits::default(),
            replay_limits: (
                keygate_auth::replay::DEFAULT_CAPACITY,
                keygate_auth::replay::DEFAULT_PER_TOKEN,
            ),
            metrics_addr: None,
            tls: None,
            wake_socket: None,
            forward: None,
        }
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Building the index from the store failed.
    #[error("could not load the credential index: {0}")]
    Load(#[from] keygate_auth::AuthError),
    /// The listener failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS configuration is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// Forwarding cannot be set up.
    #[error(transparent)]
    Relay(#[from] relay::RelayError),
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight
/// requests and writes pending usage records before returning.
pub async fn serve<S: Store>(
    listener: TcpListener,
    store: S,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // Before anything starts: a bad certificate must stop start-up, not a handshake.
    let acceptor = config.tls.as_ref().map(tls::TlsAcceptor::new).transpose()?;
    let relay = config
        .forward
        .as_ref()
        .map(|_| Arc::new(relay::Relay::default()));
    let metrics = Arc::new(metrics::Metrics::default());
    let forwarder = match (&config.forward, &relay) {
        (Some(c), Some(r)) => Some(relay::Forwarder::new(
            store.clone(),
            c.clone(),
            r.clone(),
            metrics.clone(),
            config.clock.clone(),
        )?),
        _ => None,
    };
    let verifier = Verifier::load(&store).await?;
    verifier.set_max_staleness(config.max_staleness);
    verifier.set_replay_limits(config.replay_limits.0, config.replay_limits.1);
    verifier.confirm(config.clock.now_millis());
    let trusted: Arc<[std::net::IpAddr]> = config.trusted_proxies.clone().into();
    let (draining_tx, draining) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = draining_tx.send(true);
    };
    let state = state::AppState::new(state::Shared {
        manager: Arc::new(
            Manager::new(store.clone(), Some(verifier.clone()))
                .with_clock(config.clock.clone())
                .with_refusal_limit(config.refusal_throttle),
        ),
        verifier: verifier.clone(),
        gate: keygate_tower::Gate::local(verifier.clone(), config.clock.clone())
            .with_base(auth::BASE_PATH)
            .with_max_body(body::MAX_BODY),
        clock: config.clock.clone(),
        sessions: config.sessions.clone(),
        throttle: Arc::new(keygate_auth::throttle::FailureThrottle::new(
            config.throttle,
        )),
        trusted_proxies: trusted.clone(),
        metrics,
        slots: Arc::new(listen::slots::Slots::new(&config.limits)),
        max_index_wait: config
            .limits
            .request_timeout
            .saturating_sub(std::time::Duration::from_secs(5))
            .min(std::time::Duration::from_secs(20)),
        identities: forward::Identities::default(),
        draining,
        ingest: Arc::new(routes::ingest_limits::IngestLimits::new(config.ingest)),
        relay,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (wake, lost) = (verifier.clone(), verifier.clone());
    let change_listener = store.watch_changes(
        Arc::new(move || wake.wake()),
        Arc::new(move || lost.request_reconcile()),
        stop_tx.subscribe(),
    );
    let clock = config.clock.clone();
    let background = tokio::spawn(verifier.run_background(
        store,
        config.poll_interval,
        config.usage_flush_interval,
        Arc::new(move || clock.now_millis()),
        stop_rx,
    ));
    let pruner = tokio::spawn(housekeeping(
        state.clone(),
        (config.audit_retention, config.data_retention),
        stop_tx.subscribe(),
    ));
    let summaries = tokio::spawn(audit_summaries(state.clone(), stop_tx.subscribe()));
    let relay_task = forwarder.map(|f| tokio::spawn(f.run(stop_tx.subscribe())));
    let wake_server = config
        .wake_socket
        .as_ref()
        .and_then(|path| Some((wake::bind(path)?, path.clone())))
        .map(|(l, path)| {
            tokio::spawn(wake::serve(
                l,
                path,
                state.verifier.clone(),
                state.manager.store().clone(),
                config.clock.clone(),
                stop_tx.subscribe(),
            ))
        });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "keygate listening");
    }
    let metrics_server = match config.metrics_addr {
        Some(addr) => {
            let l = TcpListener::bind(addr).await?;
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, "metrics listening");
            }
            let mut stop = stop_tx.subscribe();
            let app = routes::metrics_router(state.clone());
            Some(tokio::spawn(listen::serve(
                l,
                app,
                listen::Plain,
                config.limits,
                trusted.clone(),
                async move {
                    let _ = stop.changed().await;
                },
            )))
        }
        None => None,
    };
    let app = routes::router(
        state,
        listen::RequestLimits::new(&config.limits),
        config.metrics_addr.is_none(),
        config.tls.is_some(),
    );
    match &acceptor {
        Some(tls) => {
            listen::serve(listener, app, tls.clone(), config.limits, trusted, shutdown).await;
        }
        None => {
            listen::serve(
                listener,
                app,
                listen::Plain,
                config.limits,
                trusted,
                shutdown,
            )
            .await
        }
    }
    let _ = stop_tx.send(true);
    for task in [
        Some(background),
        Some(pruner),
        Some(summaries),
        relay_task,
        change_listener,
        metrics_server,
        wake_server,
    ]
    .into_iter()
    .flatten()
    {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "background task failed");
        }
    }
    Ok(())
}

/// Every minute (and once more at shutdown): one audit entry for each principal
/// whose refused changes were over the rate limit and not recorded one by one since
/// the last entry. (Throttled authentications are counted per address and reported
/// with that address's next recorded sign-in, so an unauthenticated flood from many
/// addresses adds no entries of its own.)
async fn audit_summaries<S: Store>(
    st: state::AppState<S>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        st.manager.record_suppressed().await;
        if stopping {
            break;
        }
    }
}

/// How long change-log entries are kept. Followers read them within milliseconds; a
/// node that falls further behind than this reloads its whole index instead.
const CHANGE_LOG_KEEP_SECONDS: i64 = 3600;

/// Every few minutes (and at start): deletes ended UI sessions (they are refused
/// anyway; this keeps the table small), change-log entries older than an hour and
/// audit entries past their retention, and pushed metric values and log lines past
/// theirs.
async fn housekeeping<S: Store>(
    st: state::AppState<S>,
    (audit_retention, data_retention): (Duration, Duration),
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = st.clock.now();
                let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let idle_before = now.saturating_sub(secs(st.sessions.idle));
                let created_before = now.saturating_sub(secs(st.sessions.absolute));
                match st.manager.store().prune_sessions(idle_before, created_before).await {
                    Ok(n) if n > 0 => tracing::debug!(sessions = n, "pruned ended sessions"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not prune sessions"),
                }
                match st.manager.store().prune_changes(now.saturating_sub(CHANGE_LOG_KEEP_SECONDS)).await {
                    Ok(n) if n > 0 => tracing::debug!(entries = n, "pruned the change log"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not prune the change log"),
                }
                match st.manager.store().prune_audit(now.saturating_sub(secs(audit_retention))).await {
                    Ok(n) if n > 0 => tracing::info!(entries = n, "pruned audit-log entries past retention"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not prune the audit log"),
                }
                let keep_ms = i64::try_from(data_retention.as_millis()).unwrap_or(i64::MAX);
                match st.manager.store().prune_data(st.clock.now_millis().saturating_sub(keep_ms)).await {
                    Ok((rows, exports)) => {
                        if rows > 0 {
                            tracing::info!(rows, "pruned pushed data past retention");
                        }
                        if exports > 0 {
                            tracing::warn!(exports, "dropped exports the --forward-otlp receiver did not take within the data retention");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not prune pushed data"),
                }
            }
            _ = stop.changed() => break,
        }
    }
}
