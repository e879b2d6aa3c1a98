//! Authentication of REST API requests, in one place: the [`authenticate`]
//! middleware runs in front of every API route, answers failures itself, and leaves
//! the [`Principal`] for the [`Caller`] extractor — so a handler that takes a
//! `Caller` cannot run unauthenticated.
//!
//! Bearer tokens are checked from the headers alone. An LMv1 signature covers the
//! body, so for LMv1 the body is fed into the HMAC as it arrives, and refused with 413
//! as soon as it passes the limit; the access id and the timestamp window are checked
//! before any of it is read.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, Request, State};
use axum::http::{header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use keygate_auth::{Principal, Refusal};
use keygate_core::credentials::{Credential, Lmv1Credential, parse_authorization};
use keygate_core::policy::Actor;
use keygate_core::token::BearerToken;
use keygate_store::Store;
use serde_json::json;

use crate::body::MAX_BODY;
use crate::error::ApiError;
use crate::session;
use crate::state::AppState;

/// The API's base path; LMv1 signs the path after it.
pub const BASE_PATH: &str = "/santaba/rest";

/// Query parameter names that clients use to pass tokens in URLs.
const TOKEN_PARAMS: &[&str] = &[
    "access_token",
    "token",
    "bearer",
    "bearer_token",
    "api_key",
    "apikey",
    "api_token",
    "auth",
    "authorization",
];

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

/// The client address, left in request extensions by [`authenticate`].
#[derive(Debug, Clone, Copy)]
struct ClientIp(IpAddr);

/// Left in request extensions by [`authenticate`] for an LMv1-signed request.
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
                    "a route that needs a caller is not behind authenticate".to_owned(),
                )
            })
    }
}

/// The client address of a request: the TCP peer, or — when the peer is a trusted
/// proxy — the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
/// Untrusted peers cannot spoof an address this way.
pub fn client_ip(parts: &Parts, trusted: &[IpAddr]) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    client_ip_of(peer, &parts.headers, trusted)
}

/// [`client_ip`] from the peer address and headers.
pub fn client_ip_of(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|h| !trusted.contains(h))
        .unwrap_or(peer)
}

fn token_in_query(query: Option<&str>) -> bool {
    let Some(q) = query else { return false };
    q.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = name.to_ascii_lowercase();
        TOKEN_PARAMS.contains(&name.as_str()) || BearerToken::parse(value).is_ok()
    })
}

/// The 401 (or other) error for a refused credential.
fn refusal(r: Refusal, scheme: &str) -> ApiError {
    let msg = match r {
        Refusal::Unknown => format!("the {scheme} token is not known: it was never issued or has been deleted"),
        Refusal::Disabled => format!("the {scheme} token is disabled; its owner or an administrator can enable it again"),
        Refusal::OwnerSuspended => "the owner of this token is suspended, so its tokens are refused".to_owned(),
        Refusal::TracesOff => "bearer tokens are not accepted while the portal's Traces (APM) feature is off; an administrator can turn it on (tracesEnabled)".to_owned(),
        Refusal::UnknownAccessId => "the LMv1 access id is not known: it was never issued or has been deleted".to_owned(),
        Refusal::SignatureMismatch => "the LMv1 signature does not match the request: sign VERB + epochMillis + body + path (the path after /santaba/rest, without the query string) with the access key".to_owned(),
        Refusal::OutsideWindow { server_millis, looks_like_seconds } => {
            let hint = if looks_like_seconds { "; it looks like epoch seconds, but LMv1 needs epoch milliseconds" } else { "; check the client's clock" };
            return ApiError::UnauthorizedDetail(
                format!("the LMv1 timestamp is outside the allowed window around the server time (errorDetail.serverTime, epoch milliseconds){hint}"),
                json!({"serverTime": server_millis}),
            );
        }
        Refusal::Replayed => "replayed request: this LMv1 signature was already used inside the time window; sign every request anew".to_owned(),
        Refusal::ReplayQuota { retry_after_seconds } => {
            return ApiError::TooManyRequests(
                format!(
                    "this LMv1 token has signed the most requests replay protection remembers for one token \
                     inside the time window; retry after {retry_after_seconds} s"
                ),
                retry_after_seconds,
            );
        }
        Refusal::ReplayMemoryFull => {
            return ApiError::Unavailable("replay protection is at capacity; retry shortly".to_owned());
        }
        Refusal::Stale { seconds } => {
            return ApiError::Unavailable(format!(
                "this node has not been able to confirm its credential index is current for {seconds} s \
                 (the database is unreachable), so it refuses rather than risk accepting a revoked token; \
                 try another node"
            ));
        }
    };
    ApiError::Unauthorized(msg)
}

/// Authenticates every API request; see the module documentation.
pub async fn authenticate<S: Store>(
    State(st): State<AppState<S>>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let scheme = scheme_of(&parts.headers);
    let ip = client_ip(&parts, &st.trusted_proxies);
    // Set by `principal` to the refusal's name when a credential is refused.
    let mut outcome = "malformed";
    match principal(&st, &parts, ip, body, &mut outcome).await {
        Ok((principal, body)) => {
            st.metrics.auth(scheme, "success");
            // Authenticated: the request now takes a slot from the main pool, which
            // unauthenticated work never holds.
            let _slot = match st.slots.main() {
                Ok(s) => s,
                Err(e) => return e.into_response(),
            };
            let id = PrincipalId(principal.user_id);
            parts.extensions.insert(principal);
            parts.extensions.insert(ClientIp(ip));
            if scheme == "lmv1" {
                parts.extensions.insert(Lmv1Signed);
            }
            let mut resp = next.run(Request::from_parts(parts, body)).await;
            // For the request log line, which is written outside this middleware.
            resp.extensions_mut().insert(id);
            resp
        }
        Err(e @ (ApiError::Unauthorized(_) | ApiError::UnauthorizedDetail(..)))
            if presented(&parts) =>
        {
            spend_refusal(&st, ip, scheme, outcome, e).into_response()
        }
        Err(e) => {
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
            e.into_response()
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
pub(crate) fn scheme_of(headers: &axum::http::HeaderMap) -> &'static str {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return if headers.contains_key(header::COOKIE) {
            "session"
        } else {
            "none"
        };
    };
    let v = v.as_bytes();
    let starts = |p: &[u8]| v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p);
    if starts(b"bearer") {
        "bearer"
    } else if starts(b"lmv1") {
        "lmv1"
    } else {
        "other"
    }
}

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
    refuse_query_token(parts.uri.query())?;
    let Some(credential) = credential(&parts.headers)? else {
        // No Authorization header: the web UI's session cookie, if there is one.
        return session_principal(st, parts, outcome)
            .await
            .map(|p| (p, body));
    };
    match credential {
        Credential::Bearer(token) => Ok((verify_bearer(st, &token, ip, outcome)?, body)),
        Credential::Lmv1(cred) => {
            let (p, bytes) = lmv1(st, parts, ip, &cred, body, outcome).await?;
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
        .map_err(|r| refusal(r, "session"))?;
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
    mut body: Body,
    outcome: &mut &'static str,
) -> Result<(Principal, Bytes), ApiError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY));
    }
    let mut pending = begin_lmv1(st, cred, parts.method.as_str(), outcome)?;
    // The body is read before the signature can be checked: while it streams in, the
    // request holds an unauthenticated slot (a few per client), not a main one.
    let _pre_auth = st.slots.pre_auth(ip)?;
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| ApiError::BadRequest("the request body could not be read".to_owned()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_BODY {
                return Err(ApiError::PayloadTooLarge(MAX_BODY));
            }
            pending.update(&data);
            buf.extend_from_slice(&data);
        }
    }
    // The path as the client sent it (still percent-encoded), after the base path.
    let full = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path(), |u| u.0.path());
    let path = full.strip_prefix(BASE_PATH).unwrap_or(full);
    Ok((
        finish_lmv1(st, pending, path, ip, outcome)?,
        Bytes::from(buf),
    ))
}

/// Refuses a token in a query string (URLs end up in logs).
pub(crate) fn refuse_query_token(query: Option<&str>) -> Result<(), ApiError> {
    if token_in_query(query) {
        return Err(ApiError::Unauthorized(
            "tokens in the query string are not accepted (URLs end up in logs); send them in the header: Authorization: Bearer <token>"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The credential in the one `Authorization` header, if there is one.
pub(crate) fn credential(headers: &axum::http::HeaderMap) -> Result<Option<Credential>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "more than one Authorization header; send exactly one".to_owned(),
        ));
    }
    parse_authorization(value.as_bytes())
        .map(Some)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

/// A bearer token checked against the index (timed for the metrics); a refusal
/// names its reason in `outcome`.
pub(crate) fn verify_bearer<S: Store>(
    st: &AppState<S>,
    token: &BearerToken,
    ip: IpAddr,
    outcome: &mut &'static str,
) -> Result<Principal, ApiError> {
    let started = keygate_core::clock::Stopwatch::start();
    let checked = st.verifier.verify_bearer(token, ip, st.clock.now());
    st.metrics.verify_latency(started.elapsed());
    checked.map_err(|r| {
        *outcome = r.label();
        refusal(r, "bearer")
    })
}

/// Starts an LMv1 check: the access id and the timestamp window, before any body.
pub(crate) fn begin_lmv1<'a, S: Store>(
    st: &AppState<S>,
    cred: &'a Lmv1Credential,
    verb: &str,
    outcome: &mut &'static str,
) -> Result<keygate_auth::Lmv1Pending<'a>, ApiError> {
    st.verifier
        .lmv1_begin(cred, verb, st.clock.now_millis())
        .map_err(|r| {
            *outcome = r.label();
            refusal(r, "LMv1")
        })
}

/// Finishes an LMv1 check over the body fed in and the signed path (timed).
pub(crate) fn finish_lmv1<S: Store>(
    st: &AppState<S>,
    pending: keygate_auth::Lmv1Pending<'_>,
    path: &str,
    ip: IpAddr,
    outcome: &mut &'static str,
) -> Result<Principal, ApiError> {
    let started = keygate_core::clock::Stopwatch::start();
    let checked = st
        .verifier
        .lmv1_finish(pending, path, ip, st.clock.now_millis());
    st.metrics.verify_latency(started.elapsed());
    checked.map_err(|r| {
        *outcome = r.label();
        refusal(r, "LMv1")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_spotted() {
        assert!(token_in_query(Some("access_token=abc")));
        assert!(token_in_query(Some("size=5&TOKEN=abc")));
        assert!(!token_in_query(Some("filter=note:abc&size=5")));
        assert!(!token_in_query(None));
        let t = BearerToken::generate().unwrap_or_else(|e| panic!("{e}"));
        assert!(token_in_query(Some(&format!("x={}", t.expose_secret()))));
    }
}
