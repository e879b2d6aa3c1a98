//! The one service every request passes through before the router, and the route
//! tag routes leave for it.
//!
//! [`Front`] does, once per request and without boxing anything, what used to be four
//! `from_fn` middlewares (each boxed a future and cloned a boxed service per request):
//!
//! - the `X-Version` rule under `/santaba/rest` (a missing header means 3);
//! - the request time limit, armed only when the request first has to wait (a request
//!   answered from memory never touches the timer wheel), and the body deadline for a
//!   request that announces a body ([`crate::listen::deadline`]);
//! - the headers every response gets ([`crate::routes::common_headers`]);
//! - the metrics and the request log line: method, route template (never the raw URI,
//!   which could carry a pasted token), status, latency and the authenticated user.
//!
//! The route comes from the [`RouteTag`] a route leaves on its response: API routes
//! get it from authentication ([`crate::auth::Authenticate`]), which wraps each API
//! handler with its route anyway; the others from [`Tag`]. Each route's metrics
//! handle is made when the router is built, so a response is counted without
//! looking its route up.
//!
//! What needs nothing but the request's head and memory, and is asked many times a
//! second by machines, is answered here before the router ([`Lanes`]: `/healthz`
//! for load balancers, nginx's forward-auth check with a bearer token): it skips
//! routing (about a fifth of a small request's cost) but keeps its count, its log
//! line and the common headers. Those routes stay in the router too, where every
//! other method or credential goes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use tower_service::Service;

use crate::error::ApiError;
use crate::listen::{RequestLimits, deadline};
use crate::metrics::{Metrics, Route};

/// The route a request matched and, once authenticated, who made it: carried on its
/// response to [`Front`] for the metrics and the request log line (one extension,
/// not one per fact).
#[derive(Clone)]
pub(crate) struct RouteTag {
    pub(crate) route: Route,
    pub(crate) principal: Option<i64>,
}

/// The requests [`Front`] answers before routing.
pub trait Lanes: Send + Sync {
    /// The answer to `req`, with its route, if it is one of them and can be answered
    /// at once; `None` sends it on to the router.
    fn answer(&self, req: &Request) -> Option<(Route, Response)>;
}

const X_VERSION: HeaderName = HeaderName::from_static("x-version");

/// Clients send `X-Version: 3`; a missing header means 3, anything else is refused.
fn version_ok(h: &axum::http::HeaderMap) -> bool {
    let mut values = h.get_all(X_VERSION).iter();
    match (values.next(), values.next()) {
        (None, _) => true,
        (Some(v), None) => v.as_bytes().trim_ascii() == b"3",
        (Some(_), Some(_)) => false,
    }
}

/// Whether a path is under the REST API's base path (where `X-Version` applies).
fn under_api(path: &str) -> bool {
    path.strip_prefix(crate::auth::BASE_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The service in front of the router; see the module documentation.
#[derive(Clone)]
pub struct Front<S> {
    inner: S,
    lanes: Arc<dyn Lanes>,
    metrics: Arc<Metrics>,
    limits: RequestLimits,
    https: bool,
}

impl<S> Front<S> {
    /// `inner` (the router) behind the per-request rules, `lanes` answered before it.
    pub fn new(
        inner: S,
        lanes: Arc<dyn Lanes>,
        metrics: Arc<Metrics>,
        limits: RequestLimits,
        https: bool,
    ) -> Self {
        Self {
            inner,
            lanes,
            metrics,
            limits,
            https,
        }
    }
}

/// What the request's future needs once the response is there.
struct Finish {
    started: keygate_core::clock::Stopwatch,
    method: Method,
    metrics: Arc<Metrics>,
    https: bool,
    timeout: Duration,
    /// What the request's body said (only a request with a body has one): whether
    /// its deadline fired and whether it was read to its end; and its allowance.
    body: Option<(Arc<deadline::BodyState>, Duration)>,
    /// The route of a request answered here (the router's routes tag their responses).
    route: Option<Route>,
}

impl Finish {
    /// The response on its way out: common headers, metrics, the log line.
    fn finish(&self, mut resp: Response) -> Response {
        crate::routes::common_headers(resp.headers_mut(), self.https);
        let ext = resp.extensions();
        let tag = ext.get::<RouteTag>();
        let route = tag
            .map(|t| &t.route)
            .or(self.route.as_ref())
            .unwrap_or(self.metrics.unmatched());
        let principal = tag.and_then(|t| t.principal);
        let status = resp.status().as_u16();
        self.metrics.http(route, &self.method, status);
        if ext.get::<crate::error::StoreFailure>().is_some() {
            self.metrics.store_error();
        }
        tracing::info!(
            method = %self.method,
            route = %route.template(),
            status,
            micros = self.started.elapsed().as_micros() as u64,
            principal,
            "request"
        );
        resp
    }

    /// The body deadline fired while the request ran: its answer is 408 whatever the
    /// handler made of the failed read.
    fn body_timed_out(&self) -> Option<u64> {
        self.body
            .as_ref()
            .filter(|(b, _)| b.fired.load(Ordering::SeqCst))
            .map(|(_, allowance)| allowance.as_secs())
    }

    /// The request had a body its handler answered without reading to the end (a
    /// refusal): HTTP/1 cannot find the next request after it, so the connection
    /// closes after this answer, and the answer says so. A client that is not told
    /// would send its next request on a connection the server is closing.
    fn body_left_unread(&self) -> bool {
        self.body
            .as_ref()
            .is_some_and(|(b, _)| !b.ended.load(Ordering::SeqCst))
    }
}

/// The answer a future holds ready, given once (a future polled again after it was
/// ready gets a 500, never a panic).
pub(crate) fn take_answer(resp: &mut Option<Response>) -> Response {
    resp.take().unwrap_or_else(|| {
        ApiError::Internal("a response was polled after it was given".to_owned()).into_response()
    })
}

/// The answer to a request whose body did not arrive in time (or that took too long
/// as a whole); the connection is closed, since the client may be mid-body.
fn timed_out(secs: u64) -> Response {
    let mut resp = ApiError::RequestTimeout(secs).into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

impl<S> Service<Request> for Front<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let mut finish = Finish {
            started: keygate_core::clock::Stopwatch::start(),
            method: req.method().clone(),
            metrics: self.metrics.clone(),
            https: self.https,
            timeout: self.limits.timeout,
            body: None,
            route: None,
        };
        if let Some((route, resp)) = self.lanes.answer(&req) {
            finish.route = Some(route);
            return FrontFuture {
                state: State::Answered { resp: Some(resp) },
                finish,
            };
        }
        if under_api(req.uri().path()) && !version_ok(req.headers()) {
            let mut refused =
                ApiError::BadRequest("X-Version must be 3 (keygate serves REST API v3)".to_owned())
                    .into_response();
            if self.limits.body_allowance(req.headers()).is_some() {
                // Its body is never read (see `Finish::body_left_unread`).
                refused
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return FrontFuture {
                state: State::Answered {
                    resp: Some(refused),
                },
                finish,
            };
        }
        let req = match self.limits.body_allowance(req.headers()) {
            Some(allowance) => {
                let state = Arc::new(deadline::BodyState::default());
                finish.body = Some((state.clone(), allowance));
                req.map(|b| axum::body::Body::new(deadline::DeadlineBody::new(b, allowance, state)))
            }
            None => req,
        };
        FrontFuture {
            state: State::Running {
                inner: self.inner.call(req),
                timer: None,
            },
            finish,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Front`]: the router's own, unboxed.
    pub struct FrontFuture<F> {
        #[pin]
        state: State<F>,
        finish: Finish,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running {
            #[pin]
            inner: F,
            // Armed the first time the request has to wait; boxed, so requests
            // answered at once carry no timer in their future.
            timer: Option<Pin<Box<tokio::time::Sleep>>>,
        },
        Answered { resp: Option<Response> },
    }
}

impl<F> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let finish = &*this.finish;
        let resp = match this.state.project() {
            StateProj::Answered { resp } => take_answer(resp),
            StateProj::Running { inner, timer } => match inner.poll(cx) {
                Poll::Ready(Ok(mut resp)) => match finish.body_timed_out() {
                    Some(secs) => timed_out(secs),
                    None => {
                        if finish.body_left_unread() {
                            resp.headers_mut()
                                .insert(header::CONNECTION, HeaderValue::from_static("close"));
                        }
                        resp
                    }
                },
                Poll::Pending => {
                    let timer = timer.get_or_insert_with(|| {
                        let at = finish.started.after(finish.timeout);
                        Box::pin(tokio::time::sleep_until(at.into()))
                    });
                    ready!(timer.as_mut().poll(cx));
                    timed_out(finish.timeout.as_secs())
                }
            },
        };
        Poll::Ready(Ok(finish.finish(resp)))
    }
}

/// A layer that leaves a route on its responses for [`Front`] (authenticated API
/// routes get theirs from authentication instead): a handler's own route, known
/// when the router is built ([`Tag::route`]), or, as a route layer over many routes,
/// the template each request matched ([`Tag::matched`]; the web UI's pages, which
/// are not on the hot path, look theirs up per request).
#[derive(Clone)]
pub enum Tag {
    /// The handler's own route.
    Route(Route),
    /// The template each request matched, looked up in these metrics.
    Matched(Arc<Metrics>),
}

impl Tag {
    /// Tags every response with `template`.
    pub fn route(metrics: &Metrics, template: &str) -> Self {
        Self::Route(metrics.route(template))
    }

    /// Tags each response with the template its request matched.
    pub fn matched(metrics: &Arc<Metrics>) -> Self {
        Self::Matched(metrics.clone())
    }
}

impl<S> tower_layer::Layer<S> for Tag {
    type Service = Tagged<S>;
    fn layer(&self, inner: S) -> Tagged<S> {
        Tagged {
            inner,
            tag: self.clone(),
        }
    }
}

/// The service [`Tag`] makes.
#[derive(Clone)]
pub struct Tagged<S> {
    inner: S,
    tag: Tag,
}

impl<S> Service<Request> for Tagged<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Tagging<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = match &self.tag {
            Tag::Route(r) => Some(r.clone()),
            Tag::Matched(metrics) => req
                .extensions()
                .get::<MatchedPath>()
                .map(|m| metrics.route(m.as_str())),
        };
        let tag = route.map(|route| RouteTag {
            route,
            principal: None,
        });
        Tagging {
            inner: self.inner.call(req),
            tag,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Tagged`].
    pub struct Tagging<F> {
        #[pin]
        inner: F,
        tag: Option<RouteTag>,
    }
}

impl<F> Future for Tagging<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut resp = ready!(this.inner.poll(cx))?;
        if let Some(mut tag) = this.tag.take() {
            // A handler that authenticates on its own (ingestion) names who it was.
            tag.principal = resp
                .extensions()
                .get::<crate::auth::PrincipalId>()
                .map(|p| p.0);
            resp.extensions_mut().insert(tag);
        }
        Poll::Ready(Ok(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_version_applies_under_the_api_base_path_only() {
        assert!(under_api("/santaba/rest"));
        assert!(under_api("/santaba/rest/setting/portal"));
        assert!(!under_api("/santaba/restless"));
        assert!(!under_api("/healthz"));
        assert!(!under_api("/rest/v2/metric/ingest"));
    }

    #[test]
    fn one_x_version_of_3_passes_and_anything_else_does_not() {
        let mut h = axum::http::HeaderMap::new();
        assert!(version_ok(&h), "a missing header means 3");
        h.insert(X_VERSION, HeaderValue::from_static(" 3 "));
        assert!(version_ok(&h));
        h.insert(X_VERSION, HeaderValue::from_static("2"));
        assert!(!version_ok(&h));
        h.insert(X_VERSION, HeaderValue::from_static("3"));
        h.append(X_VERSION, HeaderValue::from_static("3"));
        assert!(!version_ok(&h), "two headers are refused");
    }
}
