//! Request extractors with LogicMonitor-style errors: path ids, query parameters and
//! JSON bodies. axum's own rejections are plain text; these answer in the error JSON.

use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::request::Parts;
use keygate_core::query::RawListParams;

use crate::body::{JsonBody, MAX_BODY};
use crate::error::ApiError;

/// The numeric ids of a path, in order (`{adminId}`, `{id}`), each a positive integer.
#[derive(Debug, Clone)]
pub struct Ids(pub Vec<i64>);

impl Ids {
    /// The `n`-th id.
    pub fn get(&self, n: usize) -> Result<i64, ApiError> {
        self.0
            .get(n)
            .copied()
            .ok_or_else(|| ApiError::Internal("route has fewer ids than its handler".to_owned()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::BadRequest("the path is not valid UTF-8".to_owned()))?;
        let mut ids = Vec::new();
        for (name, value) in &raw {
            match value.parse::<i64>() {
                Ok(n) if n > 0 => ids.push(n),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "{name} in the path must be a positive whole number"
                    )));
                }
            }
        }
        Ok(Self(ids))
    }
}

/// Query parameters as name/value pairs.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The list-query parameters.
    pub fn list(&self) -> RawListParams {
        let own = |n: &str| self.get(n).map(str::to_owned);
        RawListParams {
            filter: own("filter"),
            sort: own("sort"),
            fields: own("fields"),
            size: own("size"),
            offset: own("offset"),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|_| ApiError::BadRequest("the query string cannot be decoded".to_owned()))
    }
}

/// A JSON object body (empty body = empty object), at most [`MAX_BODY`] bytes.
#[derive(Debug)]
pub struct Body(pub JsonBody);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = crate::body::read_limited(&parts.headers, body, MAX_BODY).await?;
        JsonBody::parse(&parts.headers, &bytes).map(Self)
    }
}
