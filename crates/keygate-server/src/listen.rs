//! The connection loop: HTTP/1.1 over plain TCP (or TLS, see [`crate::tls`]) with
//! bounded request heads, a deadline for receiving them, and graceful shutdown that
//! lets in-flight requests finish.
//!
//! The limits that apply per request (concurrency, total time) are middleware in
//! [`limit_requests`]; the ones that apply before a request exists (head size, head
//! time) are set on the HTTP/1 connection here.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service as _;

use crate::error::ApiError;

pub mod repair;

/// Bounds on what a client may send and how long it may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers together), in bytes; larger
    /// heads are answered with 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete request head; the connection is closed
    /// after it (a client sending one byte a second cannot hold it open).
    pub header_timeout: Duration,
    /// Time a request may take from its head to its response, body included;
    /// answered with 408 after it.
    pub request_timeout: Duration,
    /// Requests served at once; further ones are answered at once with 503.
    pub max_concurrent: usize,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 32 * 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_concurrent: 512,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Per-request limits: at most `max_concurrent` in flight (503 beyond, without
/// queueing) and each done within `request_timeout` (408 after).
#[derive(Debug, Clone)]
pub struct RequestLimits {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl RequestLimits {
    /// From the configured limits.
    pub fn new(l: &Limits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(l.max_concurrent.max(1))),
            timeout: l.request_timeout,
        }
    }
}

/// Middleware applying [`RequestLimits`].
pub async fn limit_requests(
    axum::extract::State(limits): axum::extract::State<RequestLimits>,
    req: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = limits.permits.clone().try_acquire_owned() else {
        let mut resp = ApiError::Unavailable(
            "the server is at its limit of concurrent requests; retry shortly".to_owned(),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::RequestTimeout(limits.timeout.as_secs()).into_response(),
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
pub async fn serve<A: Acceptor>(
    listener: TcpListener,
    app: Router,
    acceptor: A,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
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
        let _ = tcp.set_nodelay(true);
        let (app, acceptor, http) = (app.clone(), acceptor.clone(), http.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
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
            let conn = http.serve_connection(TokioIo::new(repair::Repair::new(stream)), service);
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
