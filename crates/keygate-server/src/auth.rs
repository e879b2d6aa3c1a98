//! Authentication of REST API requests, in one place: the [`Authenticate`] route
//! layer runs in front of every API route, answers failures itself, and leaves
//! the [`Principal`] for the [`Caller`] extractor — so a handler that takes a
//! `Caller` cannot run unauthenticated.
//!
//! The credential itself is checked by the [`keygate_tower::Gate`], the one
//! implementation keygate's API, its forward-auth endpoints and services behind the
//! keygate-tower layer share. What is the server's own is around it: UI sessions and
//! their CSRF rule, the failed-authentication throttle, request slots (an LMv1 body
//! streams into the HMAC while holding an unauthenticated slot, not a main one) and
//! metrics.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, Request};
use axum::http::{header, request::Parts};
use axum::response::{IntoResponse, Response};
use keygate_auth::Principal;
use keygate_core::credentials::{Credential, Lmv1Credential};
use keygate_core::policy::Actor;
use keygate_core::token::BearerToken;
use keygate_store::Store;
use keygate_tower::GateError;

use crate::error::ApiError;
use crate::front::RouteTag;
use crate::metrics::Route;
use crate::session;
use crate::state::AppState;

/// The API's base path; LMv1 signs the path after it.
pub const BASE_PATH: &str = "/santaba/rest";

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who it is and what they may do right now.
    pub principal: Principal,
    /// The client address (see [`client_ip`]).
    pub ip: IpAddr,
    /// Authenticated by an LMv1 signature, which covers the method, body and path but
    /// not the query string: a write must not let the query change what it does.
    pub signed_without_query: bool,
}

impl Caller {
    /// The caller as a policy actor, acting from the client's address.
    pub fn actor(&self) -> Actor {
        self.principal.actor().from_ip(self.ip)
    }
}

/// The client address, left in request extensions by [`Authenticate`].
#[derive(Debug, Clone, Copy)]
struct ClientIp(IpAddr);

/// Left in request extensions by [`Authenticate`] for an LMv1-signed request.
#[derive(Debug, Clone, Copy)]
struct Lmv1Signed;

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ClientIp>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
        let signed_without_query = parts.extensions.get::<Lmv1Signed>().is_some();
        parts
            .extensions
            .remove::<Principal>()
            .map(|principal| Self {
                principal,
                ip,
                signed_without_query,
            })
            .ok_or_else(|| {
                ApiError::Internal(
                    "a route that needs a caller is not behind Authenticate".to_owned(),
                )
            })
    }
}

/// The client address of a request: the TCP peer, or — when the peer is a trusted
/// proxy — the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
/// Untrusted peers cannot spoof an address this way.
pub fn client_ip(parts: &Parts, trusted: &[IpAddr]) -> IpAddr {
    client_ip_of(peer_ip(&parts.extensions), &parts.headers, trusted)
}

/// The TCP peer's address the connection loop left in a request's extensions.
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// [`client_ip`] from the peer address and headers (the gate's rule).
pub use keygate_tower::gate::client_ip as client_ip_of;

/// The layer that authenticates an API handler's requests; see the module
/// documentation. Each API handler is wrapped in its own, which knows the handler's
/// route (for the metrics and the log line), so no per-request route lookup and no
/// extra boxed route is needed. A bearer token is checked from memory before the
/// handler is called, so the handler's own future runs unboxed; a session or an LMv1
/// signature (which needs the body) takes a boxed future.
pub struct Authenticate<S: Store> {
    st: AppState<S>,
    route: Route,
}

impl<S: Store> Authenticate<S> {
    /// Authentication against `st` for the route `template`.
    pub fn new(st: AppState<S>, template: &str) -> Self {
        let route = st.metrics.route(template);
        Self { st, route }
    }
}

impl<S: Store> Clone for Authenticate<S> {
    fn clone(&self) -> Self {
        Self {
            st: self.st.clone(),
            route: self.route.clone(),
        }
    }
}

impl<S: Store, I> tower_layer::Layer<I> for Authenticate<S> {
    type Service = Authenticated<S, I>;
    fn layer(&self, inner: I) -> Self::Service {
        Authenticated {
            auth: self.clone(),
            inner,
        }
    }
}

/// A handler behind [`Authenticate`].
pub struct Authenticated<S: Store, I> {
    auth: Authenticate<S>,
    inner: I,
}

impl<S: Store, I: Clone> Clone for Authenticated<S, I> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S, I> tower_service::Service<Request> for Authenticated<S, I>
where
    S: Store,
    I: tower_service::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AuthFuture<I::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let tag = RouteTag {
            route: self.auth.route.clone(),
            principal: None,
        };
        let (mut parts, body) = req.into_parts();
        let st = &self.auth.st;
        let scheme = scheme_of(&parts.headers);
        let ip = client_ip(&parts, &st.trusted_proxies);
        let quick = refuse_query_token(parts.uri.query()).and_then(|()| credential(&parts.headers));
        let state = if let Ok(Some(Credential::Bearer(token))) = quick {
            let mut outcome = "malformed";
            match verify_bearer(st, &token, ip, &mut outcome) {
                Ok(principal) => match admit(st, &mut parts, principal, ip, scheme) {
                    Ok((id, slot)) => AuthState::Running {
                        inner: self.inner.call(Request::from_parts(parts, body)),
                        id,
                        _slot: slot,
                    },
                    Err(refused) => AuthState::Answered {
                        resp: Some(refused.into_response()),
                    },
                },
                Err(e) => AuthState::Answered {
                    resp: Some(refusal(st, &parts, ip, scheme, outcome, e)),
                },
            }
        } else {
            // Sessions, LMv1 and refusals of malformed credentials: the whole check,
            // which may await the store or the body.
            let st = st.clone();
            let mut inner = self.inner.clone();
            AuthState::Later {
                fut: Box::pin(async move {
                    let mut outcome = "malformed";
                    match principal(&st, &parts, ip, body, &mut outcome).await {
                        Ok((principal, body)) => {
                            match admit(&st, &mut parts, principal, ip, scheme) {
                                Ok((id, _slot)) => {
                                    let called = async {
                                        std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                                        inner.call(Request::from_parts(parts, body)).await
                                    };
                                    let Ok(resp) = called.await;
                                    (resp, Some(id))
                                }
                                Err(refused) => (refused.into_response(), None),
                            }
                        }
                        Err(e) => (refusal(&st, &parts, ip, scheme, outcome, e), None),
                    }
                }),
            }
        };
        AuthFuture {
            state,
            tag: Some(tag),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Authenticated`].
    pub struct AuthFuture<F> {
        #[pin]
        state: AuthState<F>,
        tag: Option<RouteTag>,
    }
}

/// The boxed future of a request whose authentication may wait (a session read from
/// the store, an LMv1 body): the response, and who made the request if known.
type Later = Pin<Box<dyn Future<Output = (Response, Option<PrincipalId>)> + Send>>;

pin_project_lite::pin_project! {
    #[project = AuthProj]
    enum AuthState<F> {
        // Authenticated by a bearer token: the route's future, unboxed.
        Running {
            #[pin]
            inner: F,
            id: PrincipalId,
            _slot: crate::listen::slots::Slot,
        },
        Answered { resp: Option<Response> },
        Later { fut: Later },
    }
}

impl<F> Future for AuthFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (mut resp, id) = match this.state.project() {
            AuthProj::Running { inner, id, .. } => (ready!(inner.poll(cx))?, Some(*id)),
            AuthProj::Answered { resp } => (crate::front::take_answer(resp), None),
            AuthProj::Later { fut } => ready!(fut.as_mut().poll(cx)),
        };
        if let Some(mut tag) = this.tag.take() {
            // Who made the request, for the request log line written outside this layer.
            tag.principal = id.map(|p| p.0);
            resp.extensions_mut().insert(tag);
        }
        Poll::Ready(Ok(resp))
    }
}

/// An authenticated request takes a slot from the main pool, which unauthenticated
/// work never holds, and carries its principal to the [`Caller`] extractor.
fn admit<S: Store>(
    st: &AppState<S>,
    parts: &mut Parts,
    principal: Principal,
    ip: IpAddr,
    scheme: &'static str,
) -> Result<(PrincipalId, crate::listen::slots::Slot), ApiError> {
    st.metrics.auth(scheme, "success");
    let slot = st.slots.main()?;
    let id = PrincipalId(principal.user_id);
    parts.extensions.insert(principal);
    parts.extensions.insert(ClientIp(ip));
    if scheme == "lmv1" {
        parts.extensions.insert(Lmv1Signed);
    }
    Ok((id, slot))
}

/// The answer to a request whose authentication failed, counted in the metrics; a
/// presented credential that failed spends from the client's throttle bucket.
fn refusal<S: Store>(
    st: &AppState<S>,
    parts: &Parts,
    ip: IpAddr,
    scheme: &'static str,
    outcome: &'static str,
    e: ApiError,
) -> Response {
    counted_refusal(st, parts, ip, scheme, outcome, e).into_response()
}

/// [`refusal`] before it is rendered: the error the client gets, counted (and spent
/// from the client's bucket) as [`refusal`] does.
fn counted_refusal<S: Store>(
    st: &AppState<S>,
    parts: &Parts,
    ip: IpAddr,
    scheme: &'static str,
    outcome: &'static str,
    e: ApiError,
) -> ApiError {
    match e {
        e @ (ApiError::Unauthorized(_) | ApiError::UnauthorizedDetail(..)) if presented(parts) => {
            spend_refusal(st, ip, scheme, outcome, e)
        }
        e => {
            let outcome = match &e {
                ApiError::Unauthorized(_) => "missing",
                ApiError::Forbidden(_) => "csrf",
                ApiError::Unavailable(_) | ApiError::StoreUnavailable | ApiError::AtCapacity(_) => {
                    "unavailable"
                }
                ApiError::TooManyRequests(..) => "throttled",
                _ => outcome,
            };
            st.metrics.auth(scheme, outcome);
            e
        }
    }
}

/// A presented credential that failed spends from the client's bucket: the refusal
/// itself, or 429 once the bucket is empty. Counted in the metrics either way.
pub(crate) fn spend_refusal<S: Store>(
    st: &AppState<S>,
    ip: IpAddr,
    scheme: &'static str,
    outcome: &'static str,
    refusal: ApiError,
) -> ApiError {
    match st.throttle.take(ip, st.clock.now_millis()) {
        Ok(_) => {
            st.metrics.auth(scheme, outcome);
            refusal
        }
        Err(wait) => {
            st.metrics.auth(scheme, "throttled");
            st.metrics.throttled();
            throttled(wait.0)
        }
    }
}

/// The credential scheme a request uses, for metrics (a fixed set of names).
pub(crate) use keygate_tower::gate::scheme_of;

/// The authenticated user of a request, carried on its response to the request log.
#[derive(Debug, Clone, Copy)]
pub struct PrincipalId(pub i64);

/// Whether the request carried a credential at all (absent ones are not guesses).
fn presented(parts: &Parts) -> bool {
    parts.headers.contains_key(header::AUTHORIZATION) || parts.headers.contains_key(header::COOKIE)
}

/// The answer to a client over its failed-authentication limit.
pub fn throttled(retry_after: u64) -> ApiError {
    ApiError::TooManyRequests(
        format!("too many failed authentications from this address; retry after {retry_after} s"),
        retry_after,
    )
}

async fn principal<S: Store>(
    st: &AppState<S>,
    parts: &Parts,
    ip: IpAddr,
    body: Body,
    outcome: &mut &'static str,
) -> Result<(Principal, Body), ApiError> {
    let gate_error = |outcome: &mut &'static str, e: GateError| {
        *outcome = e.label();
        ApiError::from(e)
    };
    refuse_query_token(parts.uri.query()).map_err(|e| gate_error(outcome, e))?;
    let Some(credential) = credential(&parts.headers).map_err(|e| gate_error(outcome, e))? else {
        // No Authorization header: the web UI's session cookie, if there is one.
        return session_principal(st, parts, outcome)
            .await
            .map(|p| (p, body));
    };
    match credential {
        Credential::Bearer(token) => Ok((verify_bearer(st, &token, ip, outcome)?, body)),
        Credential::Lmv1(cred) => {
            // Boxed: reading the signed body is a large future, and bearer requests
            // (most of them) would otherwise carry it through every layer's future.
            let (p, bytes) = Box::pin(lmv1(st, parts, ip, &cred, body, outcome)).await?;
            Ok((p, Body::from(bytes)))
        }
    }
}

/// The session behind a request's cookie: principal (privileges now), the stored
/// session and its id hash. Ended, expired or unknown sessions are `Unauthorized`.
pub async fn load_session<S: Store>(
    st: &AppState<S>,
    parts: &Parts,
) -> Result<(Principal, keygate_store::Session, [u8; 32]), ApiError> {
    let name = st.sessions.cookie_name();
    let Some(id) = session::cookie(&parts.headers, &name) else {
        return Err(ApiError::Unauthorized(
            "no credentials: send Authorization: Bearer <token> (or an LMv1 signature)".to_owned(),
        ));
    };
    let ended = || ApiError::Unauthorized("the session has ended; sign in again".to_owned());
    let hash = session::hash_id(id);
    let store = st.manager.store();
    let s = store.session(&hash).await?.ok_or_else(ended)?;
    let now = st.clock.now();
    if !st.sessions.live(s.created_on, s.last_seen_on, now) {
        store.delete_session(&hash).await?;
        return Err(ended());
    }
    let p = st
        .verifier
        .session_principal(s.user_id, st.clock.now_millis())
        .map_err(|r| GateError::refused(r, "session", "node", BASE_PATH))?;
    // One write a minute at most keeps the idle timer honest without a write per click.
    if now - s.last_seen_on >= 60 {
        store.touch_session(&hash, now).await?;
    }
    Ok((p, s, hash))
}

/// The principal of a UI session cookie for an API request: a request that changes
/// anything must carry the session's CSRF token in `X-CSRF-Token`.
async fn session_principal<S: Store>(
    st: &AppState<S>,
    parts: &Parts,
    outcome: &mut &'static str,
) -> Result<Principal, ApiError> {
    let (p, s, _) = load_session(st, parts)
        .await
        .inspect_err(|_| *outcome = "session_ended")?;
    let reads_only = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !reads_only {
        let sent = parts
            .headers
            .get(session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !session::same(sent, &s.csrf) {
            return Err(ApiError::Forbidden(
                "missing or wrong CSRF token: changes made with a session must send X-CSRF-Token"
                    .to_owned(),
            ));
        }
    }
    Ok(p)
}

async fn lmv1<S: Store>(
    st: &AppState<S>,
    parts: &Parts,
    ip: IpAddr,
    cred: &Lmv1Credential,
    body: Body,
    outcome: &mut &'static str,
) -> Result<(Principal, Bytes), ApiError> {
    let mut gate_error = |e: GateError| {
        *outcome = e.label();
        ApiError::from(e)
    };
    let declared = keygate_tower::gate::declared_length(&parts.headers);
    if declared.is_some_and(|n| n > st.gate.max_body() as u64) {
        return Err(gate_error(GateError::TooLarge(st.gate.max_body())));
    }
    let mut check = st
        .gate
        .lmv1_begin(cred, parts.method.as_str())
        .map_err(&mut gate_error)?;
    // The body is read before the signature can be checked: while it streams in, the
    // request holds an unauthenticated slot (a few per client), not a main one.
    let _pre_auth = st.slots.pre_auth(ip)?;
    let bytes = st
        .gate
        .read_signed_body(&mut check, body, declared)
        .await
        .map_err(&mut gate_error)?;
    // The path as the client sent it (still percent-encoded), after the base path.
    let full = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path(), |u| u.0.path());
    let p = timed(
        st,
        st.gate
            .lmv1_finish(check, st.gate.signed_path(full), &bytes, ip),
    )
    .await
    .map_err(gate_error)?;
    Ok((p, bytes))
}

/// Refuses a token in a query string (URLs end up in logs).
pub(crate) use keygate_tower::gate::{credential, refuse_query_token};

/// A bearer token checked by the gate (timed for the metrics); a refusal names its
/// reason in `outcome`.
pub(crate) fn verify_bearer<S: Store>(
    st: &AppState<S>,
    token: &BearerToken,
    ip: IpAddr,
    outcome: &mut &'static str,
) -> Result<Principal, ApiError> {
    let started = keygate_core::clock::Stopwatch::start();
    let checked = st.gate.bearer(token, ip);
    st.metrics.verify_latency(started.elapsed());
    checked.map_err(|e| {
        *outcome = e.label();
        e.into()
    })
}

/// Awaits a signature check, timing it for the metrics.
pub(crate) async fn timed<S: Store, T>(
    st: &AppState<S>,
    check: impl std::future::Future<Output = Result<T, GateError>>,
) -> Result<T, GateError> {
    let started = keygate_core::clock::Stopwatch::start();
    let r = check.await;
    st.metrics.verify_latency(started.elapsed());
    r
}

/// The base path of the ingestion APIs (`/rest/v2/metric/ingest` and the like); LMv1
/// clients sign the path after it.
pub const INGEST_BASE: &str = "/rest";

/// An authenticated ingestion request: who sent it, its body decoded, and the request
/// slot it holds while it is stored.
pub(crate) struct Ingest {
    /// The token's owner, with privileges as of this request.
    pub(crate) caller: Caller,
    /// The body after its `Content-Encoding` was undone.
    pub(crate) body: Vec<u8>,
    /// The main-pool slot held until the answer.
    pub(crate) _slot: crate::listen::slots::Slot,
    /// The ingestion place held until the answer.
    pub(crate) _place: crate::routes::ingest_limits::Place,
}

/// Authenticates a request to the ingestion APIs (`/rest/...`) with the same gate as
/// the REST API, counted and throttled the same way. What differs is the body: up to
/// `max_raw` bytes as sent, then `decode` undoes its `Content-Encoding` — and an LMv1
/// signature covers the **decoded** text (LogicMonitor's SDKs sign the JSON, then
/// gzip it) and the path after [`INGEST_BASE`]. Sessions are not accepted: ingestion
/// is for tokens. A bearer token is checked before its body is read; an LMv1 body is
/// read under an unauthenticated slot, like the API's.
pub(crate) async fn ingest<S: Store>(
    st: &AppState<S>,
    parts: &Parts,
    body: Body,
    max_raw: usize,
    decode: impl FnOnce(&[u8]) -> Result<Vec<u8>, ApiError>,
) -> Result<Ingest, ApiError> {
    let scheme = scheme_of(&parts.headers);
    let ip = client_ip(parts, &st.trusted_proxies);
    let mut outcome = "malformed";
    let refuse =
        |outcome: &'static str, e: ApiError| counted_refusal(st, parts, ip, scheme, outcome, e);
    let gate_error = |outcome: &mut &'static str, e: GateError| {
        *outcome = e.label();
        ApiError::from(e)
    };
    let credential =
        match refuse_query_token(parts.uri.query()).and_then(|()| credential(&parts.headers)) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(refuse(
                    outcome,
                    ApiError::Unauthorized(
                        "no credentials: send Authorization: Bearer <token> (or an LMv1 signature)"
                            .to_owned(),
                    ),
                ));
            }
            Err(e) => {
                let e = gate_error(&mut outcome, e);
                return Err(refuse(outcome, e));
            }
        };
    let read = |body| async move {
        let raw = crate::body::read_limited(&parts.headers, body, max_raw).await?;
        decode(&raw)
    };
    // A bearer token is checked before its body is read, and its request takes a main
    // slot at once; an LMv1 body is read under an unauthenticated slot first.
    let (principal, decoded, place, slot, signed) = match credential {
        Credential::Bearer(token) => {
            let p = verify_bearer(st, &token, ip, &mut outcome).map_err(|e| refuse(outcome, e))?;
            let slot = st.slots.main()?;
            if let Some(t) = p.token_id {
                st.ingest.spend(t, st.clock.now_millis())?;
            }
            // The place is taken before the body is read: it bounds what bodies hold.
            let place = st.ingest.enter().await?;
            (p, read(body).await?, place, slot, false)
        }
        Credential::Lmv1(cred) => {
            let mut check = st
                .gate
                .lmv1_begin(&cred, parts.method.as_str())
                .map_err(|e| {
                    let e = gate_error(&mut outcome, e);
                    refuse(outcome, e)
                })?;
            let pre_auth = st.slots.pre_auth(ip)?;
            let (place, unverified) = st.ingest.enter_unverified().await?;
            let decoded = read(body).await?;
            check.update(&decoded);
            let full = parts
                .extensions
                .get::<OriginalUri>()
                .map_or_else(|| parts.uri.path(), |u| u.0.path());
            let path = full.strip_prefix(INGEST_BASE).unwrap_or(full);
            let p = timed(st, st.gate.lmv1_finish(check, path, &decoded, ip))
                .await
                .map_err(|e| {
                    let e = gate_error(&mut outcome, e);
                    refuse(outcome, e)
                })?;
            drop(pre_auth);
            drop(unverified);
            if let Some(t) = p.token_id {
                st.ingest.spend(t, st.clock.now_millis())?;
            }
            (p, decoded, place, st.slots.main()?, true)
        }
    };
    st.metrics.auth(scheme, "success");
    Ok(Ingest {
        caller: Caller {
            principal,
            ip,
            signed_without_query: signed,
        },
        body: decoded,
        _slot: slot,
        _place: place,
    })
}
