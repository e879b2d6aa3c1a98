//! The one place where errors become HTTP responses in the LogicMonitor error shape:
//! `{"errorMessage": "...", "errorCode": <status>, "errorDetail": null | {...}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keygate_core::policy::Denied;
use keygate_store::StoreError;
use serde_json::Value;

/// Every error a request can end in. The match in [`ApiError::status`] is exhaustive
/// on purpose: a new variant must choose its status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is wrong; the text says how.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no usable credentials; the text says which problem it was.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not.
    #[error("method {0} is not allowed on this path")]
    MethodNotAllowed(String),
    /// 409: conflicts with existing data.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than allowed.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body is not JSON.
    #[error("send the body as JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 415: the body's `Content-Encoding` is not one keygate reads; the text names it.
    #[error("{0}")]
    UnsupportedEncoding(String),
    /// 429: too many failed authentications from this client; retry after the seconds.
    #[error("{0}")]
    TooManyRequests(String, u64),
    /// 408: the request (its body included) took longer than the seconds allowed.
    #[error("the request was not completed within {0} s")]
    RequestTimeout(u64),
    /// 503: the database is unavailable, or the server is at its request limit.
    #[error("{0}")]
    Unavailable(String),
    /// 503: the server is at its limit of what is named; retry in a second.
    #[error("the server is at its limit of {0}; retry shortly")]
    AtCapacity(&'static str),
    /// 503: the database could not be reached.
    #[error("the database is unavailable; try again shortly")]
    StoreUnavailable,
    /// 503: the database cannot take writes (full disk, read-only, I/O error, file
    /// deleted); nothing was changed.
    #[error(
        "the database cannot take changes right now: {0}; nothing was changed, try again later"
    )]
    StoreDegraded(keygate_store::Fault),
    /// 500: the database failed. The detail is logged, never sent.
    #[error("internal error")]
    StoreFailed(String),
    /// 500: a fault inside keygate. The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
    /// 401 with a detail object (for example the server time for LMv1 clock errors).
    #[error("{0}")]
    UnauthorizedDetail(String, Value),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::UnauthorizedDetail(..) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType | Self::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) | Self::StoreFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::StoreUnavailable | Self::StoreDegraded(_) | Self::AtCapacity(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The message a client sees.
    pub fn message(&self) -> String {
        self.to_string()
    }

    pub(crate) fn from_denied(d: Denied, hidden: impl FnOnce() -> String) -> Self {
        match d {
            Denied::Hidden => Self::NotFound(hidden()),
            refused @ (Denied::Forbidden(_) | Denied::Escalation { .. }) => {
                Self::Forbidden(refused.to_string())
            }
        }
    }
}

impl From<keygate_manage::ManageError> for ApiError {
    fn from(e: keygate_manage::ManageError) -> Self {
        use keygate_manage::ManageError as M;
        match e {
            M::Invalid(m) => Self::BadRequest(m),
            M::NotFound(m) => Self::NotFound(m),
            M::Forbidden(m) => Self::Forbidden(m),
            M::Conflict(m) => Self::Conflict(m),
            M::TooManyRefusals(m, secs) => Self::TooManyRequests(m, secs),
            M::NotApplied(m) => Self::Unavailable(m),
            M::StoreUnavailable => Self::StoreUnavailable,
            M::StoreDegraded(f) => Self::StoreDegraded(f),
            M::StoreFailed(m) => Self::StoreFailed(m),
            M::Internal(m) => Self::Internal(m),
        }
    }
}

// Store, core and verifier errors are worded once, in keygate-manage, for the API
// and the admin CLI alike; here they only get their status.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        keygate_manage::ManageError::from(e).into()
    }
}

impl From<keygate_core::Error> for ApiError {
    fn from(e: keygate_core::Error) -> Self {
        keygate_manage::ManageError::from(e).into()
    }
}

impl From<keygate_core::QueryError> for ApiError {
    fn from(e: keygate_core::QueryError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<keygate_auth::AuthError> for ApiError {
    fn from(e: keygate_auth::AuthError) -> Self {
        keygate_manage::ManageError::from(e).into()
    }
}

// The gate words every credential refusal (for keygate's API and every service
// behind the layer alike); here each gets the API's variant for its status.
impl From<keygate_tower::GateError> for ApiError {
    fn from(e: keygate_tower::GateError) -> Self {
        use keygate_tower::GateError as G;
        let message = e.to_string();
        match (e.status(), e) {
            (_, G::TooLarge(n)) => Self::PayloadTooLarge(n),
            (401, e) => match e.detail() {
                Some(d) => Self::UnauthorizedDetail(message, d),
                None => Self::Unauthorized(message),
            },
            (429, e) => Self::TooManyRequests(message, e.retry_after().unwrap_or(1)),
            (400, _) => Self::BadRequest(message),
            (403, _) => Self::Forbidden(message),
            (503, _) => Self::Unavailable(message),
            (_, e) => Self::Internal(format!("unexpected gate refusal: {e}")),
        }
    }
}

/// Marks a response whose request failed because the store did (for metrics).
#[derive(Debug, Clone, Copy)]
pub struct StoreFailure;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with(|_, _| {})
    }
}

impl ApiError {
    /// The response, its JSON body first given to `extend` (with the status) to add
    /// fields of its own: the ingestion APIs add LogicMonitor's ingest fields.
    pub fn into_response_with(
        self,
        extend: impl FnOnce(StatusCode, &mut serde_json::Map<String, Value>),
    ) -> Response {
        let status = self.status();
        if let Self::Internal(detail) | Self::StoreFailed(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let detail = match &self {
            Self::UnauthorizedDetail(_, d) => d.clone(),
            _ => Value::Null,
        };
        let body = crate::wire::objects::ErrorBody {
            error_message: self.message(),
            error_code: status.as_u16(),
            error_detail: detail,
        };
        let mut body = match serde_json::to_value(body) {
            Ok(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        extend(status, &mut body);
        let mut resp = (status, axum::Json(body)).into_response();
        if matches!(
            self,
            Self::StoreFailed(_) | Self::StoreUnavailable | Self::StoreDegraded(_)
        ) {
            resp.extensions_mut().insert(StoreFailure);
        }
        if let Self::TooManyRequests(_, secs) = &self
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        match &self {
            Self::StoreDegraded(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // At capacity, or (for credentials) the index not confirmed current:
            // both may clear within a second.
            Self::AtCapacity(_) | Self::Unavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keygate\""),
            );
        }
        resp
    }
}
