//! The connection loop: HTTP/1.1 over plain TCP (or TLS, see [`crate::tls`]) with
//! bounded request heads, a deadline for receiving them, connections capped per
//! client, and graceful shutdown that lets in-flight requests finish.
//!
//! The limits that apply per request (total time, the body's deadline) are applied by
//! [`crate::front::Front`] from [`RequestLimits`]; request slots are taken where a request's authentication is
//! known ([`slots`]); the limits that apply before a request exists (head size and
//! time, connections per client) are set on the connection here. A connection's
//! close lingers ([`linger`]), so a client still sending a refused body reads its
//! answer instead of a reset.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

mod conns;
pub mod deadline;
pub mod linger;
pub mod repair;
pub mod slots;

/// Bounds on what a client may send, hold and how long it may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers together), in bytes; larger
    /// heads are answered with 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete request head; the connection is closed
    /// after it (a client sending one byte a second cannot hold it open).
    pub header_timeout: Duration,
    /// Time a request body may take, plus one second per [`Limits::body_min_rate`]
    /// bytes announced; answered with 408 (and the connection closed) after it.
    pub body_timeout: Duration,
    /// The slowest body, in bytes a second, that is given more than
    /// [`Limits::body_timeout`].
    pub body_min_rate: u64,
    /// Time a request may take from its head to its response, body included;
    /// answered with 408 after it.
    pub request_timeout: Duration,
    /// Requests served at once by authenticated callers (and requests that finish
    /// without waiting on the client); further ones are answered at once with 503.
    pub max_concurrent: usize,
    /// Requests at once that wait on a client not yet authenticated (an LMv1 body
    /// before its signature is checked, a sign-in form).
    pub max_unauthenticated: usize,
    /// Of those, at most this many from one client address (429 beyond).
    pub max_unauthenticated_per_client: usize,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections open at once from one client address (0: no cap); trusted proxies
    /// are exempt.
    pub max_connections_per_client: usize,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 32 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            body_min_rate: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrent: 512,
            max_unauthenticated: 128,
            max_unauthenticated_per_client: 8,
            max_connections: 10_000,
            max_connections_per_client: 256,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Per-request limits: each request done within `request_timeout` (408 after), and
/// its body within its allowance (408 and the connection closed after).
#[derive(Debug, Clone)]
pub struct RequestLimits {
    pub(crate) timeout: Duration,
    body_timeout: Duration,
    body_min_rate: u64,
}

impl RequestLimits {
    /// From the configured limits.
    pub fn new(l: &Limits) -> Self {
        Self {
            timeout: l.request_timeout,
            body_timeout: l.body_timeout,
            body_min_rate: l.body_min_rate,
        }
    }

    /// The time a request's body may take, when it announces one (a positive
    /// `Content-Length`, or `Transfer-Encoding`).
    pub(crate) fn body_allowance(&self, h: &axum::http::HeaderMap) -> Option<Duration> {
        let declared = keygate_tower::gate::declared_length(h);
        let has_body = declared.is_some_and(|n| n > 0) || h.contains_key(header::TRANSFER_ENCODING);
        has_body.then(|| {
            deadline::allowance(
                self.body_timeout,
                self.body_min_rate,
                declared,
                crate::body::MAX_BODY as u64,
            )
        })
    }
}

/// Turns an accepted TCP stream into the stream HTTP is spoken on (TLS or not).
pub trait Acceptor: Clone + Send + Sync + 'static {
    /// The stream after the handshake.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Performs the handshake, if any.
    fn accept(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

/// Plain TCP.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl Acceptor for Plain {
    type Stream = tokio::net::TcpStream;
    async fn accept(&self, tcp: tokio::net::TcpStream) -> std::io::Result<Self::Stream> {
        Ok(tcp)
    }
}

/// Serves `app` on `listener` until `shutdown`, then stops accepting, lets in-flight
/// requests finish (up to `drain_timeout`) and returns.
pub async fn serve<A, App>(
    listener: TcpListener,
    app: App,
    acceptor: A,
    limits: Limits,
    trusted_proxies: Arc<[IpAddr]>,
    shutdown: impl Future<Output = ()> + Send,
) where
    A: Acceptor,
    App: tower_service::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    App::Future: Send,
{
    let conns = conns::Conns::new(
        limits.max_connections,
        limits.max_connections_per_client,
        trusted_proxies,
    );
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // The head's exact limit; the read buffer's (at least 8 KiB in hyper) only
        // bounds memory, and alone would let a head half as large again through.
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(100);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Over its share, a client's new connection is closed at once: it cannot hold
        // every socket (and file descriptor) the process has.
        let held = match conns.admit(peer.ip()) {
            Ok(h) => h,
            Err(full) => {
                tracing::debug!(%peer, ?full, "connection refused: at the connection limit");
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (app, acceptor, http) = (app.clone(), acceptor.clone(), http.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _held = held;
            let stream =
                match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "handshake timed out");
                        return;
                    }
                };
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let mut app = app.clone();
                    async move {
                        let resp: Result<Response, Infallible> =
                            app.call(req.map(axum::body::Body::new)).await;
                        resp
                    }
                });
            let conn = http.serve_connection(
                TokioIo::new(repair::Repair::new(linger::Linger::new(stream))),
                service,
            );
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing their connections");
    }
}
