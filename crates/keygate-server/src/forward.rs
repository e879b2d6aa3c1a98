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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt as _;
use keygate_auth::Principal;
use keygate_core::credentials::Credential;
use keygate_core::policy::Grants;
use keygate_store::Store;
use keygate_tower::GateError;
use serde::Deserialize;

use crate::auth::{
    client_ip_of, credential, refuse_query_token, scheme_of, spend_refusal, timed, verify_bearer,
};
use crate::body::MAX_BODY;
use crate::error::ApiError;
use crate::state::AppState;

/// The identity headers an allowed request carries upstream. The example proxy
/// configurations strip these from what clients send.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "x-keygate-user",
    "x-keygate-user-id",
    "x-keygate-token-id",
    "x-keygate-token-type",
];
/// The header a refusal's reason is repeated in.
pub const ERROR_HEADER: &str = "x-keygate-error";

/// The forward-auth route that never reads a body (nginx's): answered from the
/// headers and memory alone, so it runs outside the request time limits, as health
/// checks do — the connection loop still bounds the head.
pub fn header_routes<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/forward-auth/nginx", any(nginx::<S>))
}

/// The forward-auth routes that may read a forwarded body: under the body limit and
/// the request time limits, as the API is.
pub fn body_routes<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/forward-auth/traefik", any(forwarded::<S>))
        .route("/forward-auth/caddy", any(forwarded::<S>))
        .route("/forward-auth/envoy", any(envoy_root::<S>))
        .route("/forward-auth/envoy/{*path}", any(envoy::<S>))
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

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(ApiError::PayloadTooLarge(MAX_BODY)),
    }
}

async fn nginx<S: Store>(
    State(st): State<AppState<S>>,
    Query(opts): Query<Options>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let h = &parts.headers;
    let original = Original {
        method: header_str(h, &X_ORIGINAL_METHOD).unwrap_or(parts.method.as_str()),
        uri: header_str(h, &X_ORIGINAL_URI).unwrap_or("/").into(),
        body: Bytes::new(),
        unseen_body: declared_length(h, &X_ORIGINAL_CONTENT_LENGTH) > 0,
    };
    decide(
        &st,
        &opts,
        &parts.headers,
        peer(&parts.extensions),
        original,
    )
    .await
}

async fn forwarded<S: Store>(
    State(st): State<AppState<S>>,
    Query(opts): Query<Options>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
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
    let body = match read_body(body).await {
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
    decide(st, opts, &parts.headers, peer(&parts.extensions), original).await
}

fn peer(ext: &axum::http::Extensions) -> IpAddr {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
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

async fn decide<S: Store>(
    st: &AppState<S>,
    opts: &Options,
    headers: &HeaderMap,
    peer: IpAddr,
    original: Original<'_>,
) -> Response {
    let ip = client_ip_of(peer, headers, &st.trusted_proxies);
    let required = match opts.require.as_deref().map(required_grants).transpose() {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let mut outcome = "malformed";
    let scheme = scheme_of(headers);
    match check(st, opts, headers, ip, &original, &mut outcome).await {
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
            allowed(&p)
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

async fn check<S: Store>(
    st: &AppState<S>,
    opts: &Options,
    headers: &HeaderMap,
    ip: IpAddr,
    original: &Original<'_>,
    outcome: &mut &'static str,
) -> Result<Principal, ApiError> {
    let mut gate_error = |e: GateError| {
        *outcome = e.label();
        ApiError::from(e)
    };
    let (path, query) = original
        .uri
        .split_once('?')
        .map_or((&*original.uri, None), |(p, q)| (p, Some(q)));
    refuse_query_token(query).map_err(&mut gate_error)?;
    let Some(credential) = credential(headers).map_err(&mut gate_error)? else {
        return Err(gate_error(GateError::NoCredential));
    };
    match credential {
        Credential::Bearer(token) => verify_bearer(st, &token, ip, outcome),
        Credential::Lmv1(cred) => {
            if original.unseen_body {
                return Err(gate_error(GateError::UnseenBody));
            }
            let mut check = st
                .gate
                .lmv1_begin(&cred, original.method)
                .map_err(&mut gate_error)?;
            check.update(&original.body);
            let base = opts.base.as_deref().unwrap_or_default();
            let signed = path.strip_prefix(base).unwrap_or(path);
            timed(st, st.gate.lmv1_finish(check, signed, &original.body, ip))
                .await
                .map_err(gate_error)
        }
    }
}

fn allowed(p: &Principal) -> Response {
    // Every allowed check answers these four headers: sized once, ids written
    // straight into header values, no string built for a plain username.
    const NAMES: [HeaderName; 4] = [
        HeaderName::from_static(IDENTITY_HEADERS[0]),
        HeaderName::from_static(IDENTITY_HEADERS[1]),
        HeaderName::from_static(IDENTITY_HEADERS[2]),
        HeaderName::from_static(IDENTITY_HEADERS[3]),
    ];
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    // Room for these and the headers every response gets on its way out.
    h.reserve(NAMES.len() + 4);
    // Usernames are NFKC letters and digits; a header value must be visible ASCII, so
    // anything else travels percent-encoded.
    let plain = |b: u8| b.is_ascii_graphic() && b != b'%';
    let user = if p.username.bytes().all(plain) {
        HeaderValue::from_str(&p.username)
    } else {
        let encoded: String = p
            .username
            .bytes()
            .map(|b| {
                if plain(b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        HeaderValue::try_from(encoded)
    };
    if let Ok(v) = user {
        h.insert(NAMES[0].clone(), v);
    }
    h.insert(NAMES[1].clone(), HeaderValue::from(p.user_id));
    if let Some(t) = p.token_id {
        h.insert(NAMES[2].clone(), HeaderValue::from(t));
    }
    if let Some(t) = p.token_type {
        h.insert(NAMES[3].clone(), HeaderValue::from_static(t.as_str()));
    }
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
