//! Authentication of REST API requests: the [`Caller`] extractor, so a handler that
//! takes one cannot run without an authenticated principal.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{header, request::Parts};
use keygate_auth::{Principal, Refusal};
use keygate_core::credentials::{Credential, parse_authorization};
use keygate_core::policy::Actor;
use keygate_core::token::BearerToken;
use keygate_store::Store;

use crate::error::ApiError;
use crate::state::AppState;

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
}

impl Caller {
    /// The caller as a policy actor.
    pub fn actor(&self) -> Actor {
        self.principal.actor()
    }
}

/// The client address of a request (the TCP peer).
pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

fn token_in_query(query: Option<&str>) -> bool {
    let Some(q) = query else { return false };
    q.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = name.to_ascii_lowercase();
        TOKEN_PARAMS.contains(&name.as_str()) || BearerToken::parse(value).is_ok()
    })
}

fn refusal_message(r: Refusal) -> &'static str {
    match r {
        Refusal::Unknown => {
            "the bearer token is not known: it was never issued or has been deleted"
        }
        Refusal::Disabled => {
            "the bearer token is disabled; its owner or an administrator can enable it again"
        }
        Refusal::OwnerSuspended => {
            "the owner of this token is suspended, so its tokens are refused"
        }
        Refusal::TracesOff => {
            "bearer tokens are not accepted while the portal's Traces (APM) feature is off; an administrator can turn it on (tracesEnabled)"
        }
    }
}

impl<S: Store> FromRequestParts<AppState<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, ApiError> {
        if token_in_query(parts.uri.query()) {
            return Err(ApiError::Unauthorized(
                "tokens in the query string are not accepted (URLs end up in logs); send them in the header: Authorization: Bearer <token>"
                    .to_owned(),
            ));
        }
        let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(ApiError::Unauthorized(
                "no credentials: send Authorization: Bearer <token> (or an LMv1 signature)"
                    .to_owned(),
            ));
        };
        if values.next().is_some() {
            return Err(ApiError::BadRequest(
                "more than one Authorization header; send exactly one".to_owned(),
            ));
        }
        let credential = parse_authorization(value.as_bytes())
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        match credential {
            Credential::Bearer(token) => {
                let now = state.clock.now();
                let principal = state
                    .verifier
                    .verify_bearer(&token, client_ip(parts), now)
                    .map_err(|r| ApiError::Unauthorized(refusal_message(r).to_owned()))?;
                Ok(Self { principal })
            }
            Credential::Lmv1(_) => Err(ApiError::Unauthorized(
                "the LMv1 access id is not known: no LMv1 token with that id exists".to_owned(),
            )),
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
