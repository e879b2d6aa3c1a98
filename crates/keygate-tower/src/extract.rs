//! axum extractors for the [`Principal`] the layer leaves on a request.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use keygate_auth::Principal;

use crate::error::GateError;
use crate::layer::rejection;

/// The authenticated caller: who, which token, and the owner's privileges as of this
/// request. Refused with 401 when the request has none (an optional layer let it
/// through without a credential, or no layer is in front of the handler).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Self)
            .ok_or_else(|| rejection(&GateError::NoCredential).into_response())
    }
}

/// The caller, if the request carried a credential (behind an optional layer).
#[derive(Debug, Clone)]
pub struct MaybeAuthenticated(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuthenticated {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Self(parts.extensions.get::<Principal>().cloned()))
    }
}
