//! Forward-auth: reverse proxies ask keygate whether a request may pass, each in its
//! own convention, and keygate answers from its in-memory index as it does for its
//! own API (the same verifier, throttle, usage record and refusal messages).
//!
//! | endpoint | proxy | where the original request is |
//! | --- | --- | --- |
//! | `/forward-auth/nginx` | nginx `auth_request` | `X-Original-Method`, `X-Original-URI` (and `X-Original-Content-Length`) |
//! | `/forward-auth/traefik`, `/forward-auth/caddy` | Traefik ForwardAuth, Caddy `forward_auth` | `X-Forwarded-Method`, `-Uri`, `-Host`, `-Proto` |
//! | `/forward-auth/envoy/{path}` | Envoy `ext_authz` (HTTP) | the request's own method, and the path after the prefix (options in `X-Keygate-Require`/`-Base`) |
//!
//! Allowed: 200 with `X-Keygate-User`, `X-Keygate-User-Id`, `X-Keygate-Token-Id` and
//! `X-Keygate-Token-Type` for the proxy to pass upstream. Refused: 401 with
//! `WWW-Authenticate` and the reason, in the body and in `X-Keygate-Error` (proxies
//! drop bodies); 403 when `?require=` names a privilege the owner lacks; 429 past the
//! failed-authentication throttle; 503 while this node's index may be stale.
//!
//! An LMv1 signature covers the request body. A proxy that forwards the body (Envoy
//! `with_request_body`, Traefik `forwardBody`) sends it as this request's body; one that
//! does not (nginx, Caddy) is told so when the original request had a body, rather than
//! answered "signature mismatch". `?base=/api` names the part of the path the service's
//! clients sign after (LMv1 signs the path relative to a base).

use std::net::IpAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::handler::Handler as _;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use keygate_auth::Principal;
use keygate_core::credentials::{Credential, Lmv1Credential};
use keygate_core::policy::Grants;
use keygate_store::Store;
use keygate_tower::GateError;
use serde::Deserialize;

use crate::auth::{
    client_ip, credential, refuse_query_token, scheme_of, spend_refusal, timed, verify_bearer,
};
use crate::body::MAX_BODY;
use crate::error::ApiError;
use crate::state::AppState;

mod identity;

pub use identity::{IDENTITY_HEADERS, Identities};

/// The header a refusal's reason is repeated in.
pub const ERROR_HEADER: &str = "x-keygate-error";

/// nginx's check (`auth_request`).
pub const NGINX: &str = "/forward-auth/nginx";

/// The forward-auth routes, each handler tagged by `tag` with its own route. nginx's
/// never reads a body: it is answered from the headers and memory alone, so it runs
/// outside the request time limits, as health checks do (the connection loop still
/// bounds the head). The others may read a forwarded body, under the body limit and
/// the request time limits, as the API does.
pub fn routes<S: Store>(tag: &dyn Fn(&str) -> crate::front::Tag) -> Router<AppState<S>> {
    const TRAEFIK: &str = "/forward-auth/traefik";
    const CADDY: &str = "/forward-auth/caddy";
    const ENVOY: &str = "/forward-auth/envoy";
    const ENVOY_PATH: &str = "/forward-auth/envoy/{*path}";
    Router::new()
        .route(NGINX, any(nginx::<S>.layer(tag(NGINX))))
        .route(TRAEFIK, any(forwarded::<S>.layer(tag(TRAEFIK))))
        .route(CADDY, any(forwarded::<S>.layer(tag(CADDY))))
        .route(ENVOY, any(envoy_root::<S>.layer(tag(ENVOY))))
        .route(ENVOY_PATH, any(envoy::<S>.layer(tag(ENVOY_PATH))))
}

/// What the endpoint is asked to check beyond a valid credential.
#[derive(Debug, Default, Deserialize)]
pub struct Options {
    /// A privilege the owner must hold: `dataingestion`, `apitoken`, `useraccess`,
    /// `useraccess-read` or `portal`.
    require: Option<String>,
    /// What the service's LMv1 clients sign the path after (default: nothing).
    base: Option<String>,
}

/// The original request, as the proxy described it.
struct Original<'a> {
    method: &'a str,
    uri: std::borrow::Cow<'a, str>,
    /// The body the proxy forwarded, if it did.
    body: Bytes,
    /// Whether the original request had a body the proxy did not forward.
    unseen_body: bool,
}

// The headers each proxy describes the original request in, named once: a lookup by
// `HeaderName` skips parsing the name on every check.
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ORIGINAL_CONTENT_LENGTH: HeaderName = HeaderName::from_static("x-original-content-length");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_KEYGATE_REQUIRE: HeaderName = HeaderName::from_static("x-keygate-require");
const X_KEYGATE_BASE: HeaderName = HeaderName::from_static("x-keygate-base");

fn header_str<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

fn declared_length(h: &HeaderMap, name: &HeaderName) -> u64 {
    header_str(h, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The options in the check's own query string (none: no parsing at all, which is
/// how a proxy asks most of the time).
fn options(uri: &axum::http::Uri) -> Result<Options, ApiError> {
    if uri.query().is_none() {
        return Ok(Options::default());
    }
    Query::<Options>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

async fn nginx<S: Store>(State(st): State<AppState<S>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let opts = match options(&parts.uri) {
        Ok(o) => o,
        Err(e) => return refused(e),
    };
    let ip = client_ip(&parts, &st.trusted_proxies);
    let original = nginx_original(&parts.method, &parts.headers);
    decide(&st, &opts, &parts.headers, ip, original).await
}

/// nginx's check answered before routing ([`crate::front::Lanes`]): the same answer
/// as its route's, when it needs nothing but the headers and memory; `None` for an
/// LMv1 signature, which the route checks.
pub(crate) fn nginx_now<S: Store>(st: &AppState<S>, req: &Request) -> Option<Response> {
    let opts = match options(req.uri()) {
        Ok(o) => o,
        Err(e) => return Some(refused(e)),
    };
    let headers = req.headers();
    let peer = crate::auth::peer_ip(req.extensions());
    let ip = crate::auth::client_ip_of(peer, headers, &st.trusted_proxies);
    let original = nginx_original(req.method(), headers);
    decide_now(st, &opts, headers, ip, &original).ok()
}

/// The original request as nginx describes it (it never sends the body).
fn nginx_original<'a>(method: &'a axum::http::Method, h: &'a HeaderMap) -> Original<'a> {
    Original {
        method: header_str(h, &X_ORIGINAL_METHOD).unwrap_or(method.as_str()),
        uri: header_str(h, &X_ORIGINAL_URI).unwrap_or("/").into(),
        body: Bytes::new(),
        unseen_body: declared_length(h, &X_ORIGINAL_CONTENT_LENGTH) > 0,
    }
}

async fn forwarded<S: Store>(State(st): State<AppState<S>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let opts = match options(&parts.uri) {
        Ok(o) => o,
        Err(e) => return refused(e),
    };
    let h = &parts.headers;
    let method = header_str(h, &X_FORWARDED_METHOD).unwrap_or(parts.method.as_str());
    let uri = header_str(h, &X_FORWARDED_URI).unwrap_or("/");
    // Traefik's forwardBody sends the body along; Caddy never does (and sends GET).
    with_body(&st, &opts, &parts, body, method, uri.into()).await
}

async fn envoy_root<S: Store>(st: State<AppState<S>>, req: Request) -> Response {
    envoy(st, Path(String::new()), req).await
}

async fn envoy<S: Store>(
    State(st): State<AppState<S>>,
    Path(path): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    // Envoy puts its path_prefix before the original path and query, so the query is
    // the client's: the options come from headers Envoy's configuration adds to the
    // check (`headers_to_add`), which a client cannot send through `allowed_headers`.
    let opts = Options {
        require: header_str(&parts.headers, &X_KEYGATE_REQUIRE).map(str::to_owned),
        base: header_str(&parts.headers, &X_KEYGATE_BASE).map(str::to_owned),
    };
    let uri = match parts.uri.query() {
        Some(q) => format!("/{path}?{q}"),
        None => format!("/{path}"),
    };
    with_body(&st, &opts, &parts, body, parts.method.as_str(), uri.into()).await
}

/// Decides a request whose check may carry the original body (Traefik, Envoy).
async fn with_body<S: Store>(
    st: &AppState<S>,
    opts: &Options,
    parts: &axum::http::request::Parts,
    body: Body,
    method: &str,
    uri: std::borrow::Cow<'_, str>,
) -> Response {
    let body = match crate::body::read_limited(&parts.headers, body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return refused(e),
    };
    let original = Original {
        method,
        uri,
        unseen_body: body.is_empty()
            && declared_length(&parts.headers, &header::CONTENT_LENGTH) > 0,
        body,
    };
    let ip = client_ip(parts, &st.trusted_proxies);
    decide(st, opts, &parts.headers, ip, original).await
}

/// The privilege `?require=` names.
fn required_grants(name: &str) -> Result<Grants, ApiError> {
    Ok(match name {
        "dataingestion" => Grants::DATAINGESTION,
        "apitoken" => Grants::APITOKEN_WRITE,
        "useraccess" => Grants::USERACCESS_WRITE,
        "useraccess-read" => Grants::USERACCESS_READ,
        "portal" => Grants::PORTAL_WRITE,
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(ApiError::BadRequest(format!(
                "require={shown} is not a privilege keygate knows: use dataingestion, apitoken, \
                 useraccess, useraccess-read or portal"
            )));
        }
    })
}

/// Decides a check: the answer, at once for everything but an LMv1 signature, which
/// [`decide_now`] leaves to the signature check.
async fn decide<S: Store>(
    st: &AppState<S>,
    opts: &Options,
    headers: &HeaderMap,
    ip: IpAddr,
    original: Original<'_>,
) -> Response {
    let (cred, required) = match decide_now(st, opts, headers, ip, &original) {
        Ok(resp) => return resp,
        Err(pending) => pending,
    };
    let mut outcome = "malformed";
    let checked = if original.unseen_body {
        Err(gate_error(&mut outcome, GateError::UnseenBody))
    } else {
        // Boxed, so that the bearer checks (nearly every one) do not carry and move
        // the signature check's future through the handler's.
        Box::pin(check_lmv1(st, opts, &cred, ip, &original, &mut outcome)).await
    };
    conclude(st, opts, required, headers, ip, checked, outcome)
}

/// Decides a check that needs nothing but the headers and memory (every one but an
/// LMv1 signature, whose credential is handed back for [`decide`] to check, with the
/// privilege `?require=` names).
fn decide_now<S: Store>(
    st: &AppState<S>,
    opts: &Options,
    headers: &HeaderMap,
    ip: IpAddr,
    original: &Original<'_>,
) -> Result<Response, (Lmv1Credential, Option<Grants>)> {
    // A privilege keygate does not know is the asker's mistake, answered before any
    // credential is looked at.
    let required = match opts.require.as_deref().map(required_grants).transpose() {
        Ok(r) => r,
        Err(e) => return Ok(refused(e)),
    };
    let mut outcome = "malformed";
    let query = original.uri.split_once('?').map(|(_, q)| q);
    let checked = match refuse_query_token(query).and_then(|()| credential(headers)) {
        Err(e) => Err(gate_error(&mut outcome, e)),
        Ok(None) => Err(gate_error(&mut outcome, GateError::NoCredential)),
        Ok(Some(Credential::Bearer(token))) => verify_bearer(st, &token, ip, &mut outcome),
        Ok(Some(Credential::Lmv1(cred))) => return Err((cred, required)),
    };
    Ok(conclude(st, opts, required, headers, ip, checked, outcome))
}

/// A refusal by the gate as the API's error, its name noted for the metrics.
fn gate_error(outcome: &mut &'static str, e: GateError) -> ApiError {
    *outcome = e.label();
    ApiError::from(e)
}

/// The answer to a checked credential: allowed (if the owner holds what `?require=`
/// names), or refused — a presented credential spending from the throttle.
fn conclude<S: Store>(
    st: &AppState<S>,
    opts: &Options,
    required: Option<Grants>,
    headers: &HeaderMap,
    ip: IpAddr,
    checked: Result<Principal, ApiError>,
    outcome: &'static str,
) -> Response {
    let scheme = scheme_of(headers);
    match checked {
        Ok(p) => {
            st.metrics.auth(scheme, "success");
            if let Some(g) = required
                && !p.grants.contains(g)
            {
                return refused(
                    GateError::Missing {
                        user: p.username.to_string(),
                        name: opts.require.clone().unwrap_or_default(),
                    }
                    .into(),
                );
            }
            allowed(st, &p)
        }
        Err(e @ (ApiError::Unauthorized(_) | ApiError::UnauthorizedDetail(..)))
            if headers.contains_key(header::AUTHORIZATION) =>
        {
            refused(spend_refusal(st, ip, scheme, outcome, e))
        }
        Err(e) => {
            let outcome = match &e {
                ApiError::Unauthorized(_) => "missing",
                ApiError::Unavailable(_) => "unavailable",
                _ => outcome,
            };
            st.metrics.auth(scheme, outcome);
            refused(e)
        }
    }
}

/// Checks an LMv1 signature over the original method, path (after `?base=`) and the
/// body the proxy forwarded.
async fn check_lmv1<S: Store>(
    st: &AppState<S>,
    opts: &Options,
    cred: &Lmv1Credential,
    ip: IpAddr,
    original: &Original<'_>,
    outcome: &mut &'static str,
) -> Result<Principal, ApiError> {
    let path = original
        .uri
        .split_once('?')
        .map_or(&*original.uri, |(p, _)| p);
    let mut check = st
        .gate
        .lmv1_begin(cred, original.method)
        .map_err(|e| gate_error(outcome, e))?;
    check.update(&original.body);
    let base = opts.base.as_deref().unwrap_or_default();
    let signed = path.strip_prefix(base).unwrap_or(path);
    timed(st, st.gate.lmv1_finish(check, signed, &original.body, ip))
        .await
        .map_err(|e| gate_error(outcome, e))
}

fn allowed<S: Store>(st: &AppState<S>, p: &Principal) -> Response {
    let mut resp = StatusCode::OK.into_response();
    *resp.headers_mut() = st.identities.headers(p);
    resp
}

/// A refusal in the API's shape, with its reason also in [`ERROR_HEADER`] and, for
/// 401, a `WWW-Authenticate` challenge.
fn refused(e: ApiError) -> Response {
    let message = e.message();
    let unauthorized = matches!(
        e,
        ApiError::Unauthorized(_) | ApiError::UnauthorizedDetail(..)
    );
    let mut resp = e.into_response();
    let h = resp.headers_mut();
    let visible: String = message
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::try_from(visible.as_str()) {
        h.insert(HeaderName::from_static(ERROR_HEADER), v);
    }
    if unauthorized {
        let challenge = format!(
            "Bearer realm=\"keygate\", error=\"invalid_token\", error_description=\"{}\"",
            visible.replace(['"', '\\'], "'")
        );
        if let Ok(v) = HeaderValue::try_from(challenge) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
    }
    resp
}
