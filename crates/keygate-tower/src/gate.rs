//! The [`Gate`]: a request's credential → [`Principal`]. keygate's own API, its
//! forward-auth endpoints and the [`crate::KeygateLayer`] all authenticate through it.
//!
//! Bearer tokens are checked from the headers and memory alone. An LMv1 signature
//! covers the body, so the access id and the timestamp window are checked first
//! ([`Gate::lmv1_begin`]), the body is fed in as it arrives, and the signature is
//! checked last ([`Gate::lmv1_finish`]). In remote mode LMv1 keys never leave keygate:
//! the finished request is sent to keygate to check.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header, request::Parts};
use http_body_util::BodyExt as _;
use keygate_auth::{Lmv1Pending, Principal, Verifier};
use keygate_core::clock::Clock;
use keygate_core::credentials::{Credential, Lmv1Credential, parse_authorization};
use keygate_core::token::BearerToken;

use crate::error::GateError;
use crate::remote::Remote;

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

/// The largest body an LMv1 signature may cover, unless set otherwise: 64 KiB, what
/// keygate's LMv1 check endpoint accepts (its request body limit).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

fn token_in_query(query: Option<&str>) -> bool {
    let Some(q) = query else { return false };
    q.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = name.to_ascii_lowercase();
        TOKEN_PARAMS.contains(&name.as_str()) || BearerToken::parse(value).is_ok()
    })
}

/// Refuses a token in a query string (URLs end up in logs).
pub fn refuse_query_token(query: Option<&str>) -> Result<(), GateError> {
    if token_in_query(query) {
        return Err(GateError::QueryToken);
    }
    Ok(())
}

/// The credential in the one `Authorization` header, if there is one.
pub fn credential(headers: &HeaderMap) -> Result<Option<Credential>, GateError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(GateError::TwoHeaders);
    }
    parse_authorization(value.as_bytes())
        .map(Some)
        .map_err(|e| GateError::Malformed(e.to_string()))
}

/// The body length a request announces in `Content-Length`, if it announces one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The credential scheme a request uses, for metrics (a fixed set of names).
pub fn scheme_of(headers: &HeaderMap) -> &'static str {
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

/// The client address of a request: the TCP peer, or — when the peer is a trusted
/// proxy — the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
/// Untrusted peers cannot spoof an address this way.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
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

/// Authenticates requests from an index: keygate's own (in-process, fed from a
/// `Store`) or one that follows a keygate server ([`Gate::remote`]). Cloning shares it.
#[derive(Clone)]
pub struct Gate {
    verifier: Verifier,
    remote: Option<Arc<Remote>>,
    clock: Clock,
    base: Arc<str>,
    max_body: usize,
}

/// An LMv1 check in progress: feed it the body with [`Lmv1Check::update`], then
/// call [`Gate::lmv1_finish`].
#[derive(Debug)]
pub struct Lmv1Check<'a> {
    cred: &'a Lmv1Credential,
    method: String,
    /// The HMAC being computed here; `None` when keygate checks the signature.
    local: Option<Lmv1Pending<'a>>,
}

impl Lmv1Check<'_> {
    /// Feeds the next piece of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(p) = &mut self.local {
            p.update(chunk);
        }
    }
}

impl Gate {
    /// A gate on an index kept in this process (keygate's own: loaded from a `Store`
    /// and kept current by its change log).
    pub fn local(verifier: Verifier, clock: Clock) -> Self {
        Self {
            verifier,
            remote: None,
            clock,
            base: Arc::from(""),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    pub(crate) fn of_remote(remote: Arc<Remote>, clock: Clock) -> Self {
        Self {
            verifier: remote.verifier().clone(),
            remote: Some(remote),
            clock,
            base: Arc::from(""),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// The path prefix LMv1 clients sign after (`/santaba/rest` for keygate's API);
    /// empty by default: the whole path is signed.
    #[must_use]
    pub fn with_base(mut self, base: &str) -> Self {
        self.base = Arc::from(base.trim_end_matches('/'));
        self
    }

    /// The largest body an LMv1 signature may cover (413 beyond it).
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The base path.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The largest LMv1 body.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// The index this gate answers from.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The clock it reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// What keeps the index: "node" in keygate, "service" for one following keygate.
    fn holder(&self) -> &'static str {
        if self.remote.is_some() {
            "service"
        } else {
            "node"
        }
    }

    fn refused(&self, r: keygate_auth::Refusal, scheme: &str) -> GateError {
        GateError::refused(r, scheme, self.holder(), &self.base)
    }

    /// The path an LMv1 client signed: `path` after the base (or all of it when it is
    /// not under the base).
    pub fn signed_path<'p>(&self, path: &'p str) -> &'p str {
        path.strip_prefix(&*self.base).unwrap_or(path)
    }

    /// Checks a well-formed bearer token (memory only); records its use.
    pub fn bearer(&self, token: &BearerToken, ip: IpAddr) -> Result<Principal, GateError> {
        self.verifier
            .verify_bearer(token, ip, self.clock.now())
            .map_err(|r| self.refused(r, "bearer"))
    }

    /// Starts an LMv1 check before any of the body is read: the access id and the
    /// timestamp window here, or — in remote mode, where the keys are not — only the
    /// index's freshness.
    pub fn lmv1_begin<'a>(
        &self,
        cred: &'a Lmv1Credential,
        method: &str,
    ) -> Result<Lmv1Check<'a>, GateError> {
        let now = self.clock.now_millis();
        let local = if self.remote.is_some() {
            if let Some(age) = self.verifier.staleness(now) {
                return Err(self.refused(
                    keygate_auth::Refusal::Stale {
                        seconds: age / 1000,
                    },
                    "LMv1",
                ));
            }
            None
        } else {
            Some(
                self.verifier
                    .lmv1_begin(cred, method, now)
                    .map_err(|r| self.refused(r, "LMv1"))?,
            )
        };
        Ok(Lmv1Check {
            cred,
            method: method.to_owned(),
            local,
        })
    }

    /// Finishes an LMv1 check with the signed path ([`Gate::signed_path`], without the
    /// query string) and the whole body it covers (which a local check has already
    /// been fed; a remote one sends it to keygate).
    pub async fn lmv1_finish(
        &self,
        check: Lmv1Check<'_>,
        path: &str,
        body: &[u8],
        ip: IpAddr,
    ) -> Result<Principal, GateError> {
        match (check.local, &self.remote) {
            (Some(pending), _) => self
                .verifier
                .lmv1_finish(pending, path, ip, self.clock.now_millis())
                .map_err(|r| self.refused(r, "LMv1")),
            // Boxed: the HTTP exchange's future is kilobytes, and every caller's own
            // future (the API's authentication, forward-auth) would otherwise be that
            // large and be moved that far on every request, bearer ones included.
            (None, Some(remote)) => {
                Box::pin(remote.check_lmv1(check.cred, &check.method, path, body, ip)).await
            }
            (None, None) => Err(GateError::Remote(
                "an LMv1 check was begun on another gate".to_owned(),
            )),
        }
    }

    /// Reads the body an LMv1 signature covers into `check`, refusing it with 413 as
    /// soon as it passes the limit (or at once, if its declared length does).
    pub async fn read_signed_body(
        &self,
        check: &mut Lmv1Check<'_>,
        mut body: Body,
        declared: Option<u64>,
    ) -> Result<Bytes, GateError> {
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(GateError::TooLarge(self.max_body));
        }
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| GateError::BodyUnreadable)?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > self.max_body {
                    return Err(GateError::TooLarge(self.max_body));
                }
                check.update(&data);
                buf.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(buf))
    }

    /// Authenticates a whole request: no token in the query, one `Authorization`
    /// header, then the bearer token or the LMv1 signature over the method, the path
    /// after the base and the body. Returns the principal and the body (read, for
    /// LMv1) for the service; `Ok(None)` when there is no credential at all.
    pub async fn check(
        &self,
        parts: &Parts,
        body: Body,
        ip: IpAddr,
    ) -> Result<Option<(Principal, Body)>, GateError> {
        refuse_query_token(parts.uri.query())?;
        let Some(credential) = credential(&parts.headers)? else {
            return Ok(None);
        };
        match credential {
            Credential::Bearer(token) => Ok(Some((self.bearer(&token, ip)?, body))),
            Credential::Lmv1(cred) => {
                let declared = declared_length(&parts.headers);
                let mut check = self.lmv1_begin(&cred, parts.method.as_str())?;
                let bytes = self.read_signed_body(&mut check, body, declared).await?;
                // The path as the client sent it (still percent-encoded), even when a
                // router nested this service under a prefix.
                let full = parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map_or_else(|| parts.uri.path(), |u| u.0.path());
                let p = self
                    .lmv1_finish(check, self.signed_path(full), &bytes, ip)
                    .await?;
                Ok(Some((p, Body::from(bytes))))
            }
        }
    }
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
