//! [`KeygateLayer`]: a tower layer that authenticates every request with the
//! [`Gate`] and leaves the [`Principal`] in the request's extensions, for the
//! [`crate::Authenticated`] extractor or any handler that reads extensions.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use keygate_auth::Principal;
use keygate_core::policy::Grants;

use crate::error::GateError;
use crate::gate::{Gate, client_ip};

/// Authenticates requests before the service sees them. Refused requests are
/// answered here, in keygate's error shape (`{"errorMessage", "errorCode",
/// "errorDetail"}`), with `WWW-Authenticate` on 401 and `Retry-After` on 429/503.
#[derive(Clone)]
pub struct KeygateLayer {
    gate: Gate,
    optional: bool,
    require: Option<(Grants, Arc<str>)>,
    trusted: Arc<[IpAddr]>,
}

impl KeygateLayer {
    /// Every request must carry a credential the gate accepts.
    pub fn new(gate: Gate) -> Self {
        Self {
            gate,
            optional: false,
            require: None,
            trusted: Arc::from([]),
        }
    }

    /// Requests without any credential pass, without a [`Principal`] (handlers take
    /// [`crate::MaybeAuthenticated`]); a credential that is sent must still be good.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// The owner must also hold `grants` (403 otherwise, naming `name`).
    #[must_use]
    pub fn require(mut self, grants: Grants, name: &str) -> Self {
        self.require = Some((grants, Arc::from(name)));
        self
    }

    /// Peers whose `X-Forwarded-For` names the client (for usage records and the
    /// LMv1 check); none by default.
    #[must_use]
    pub fn trust_proxies(mut self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        self.trusted = proxies.into_iter().collect();
        self
    }
}

impl<S> tower_layer::Layer<S> for KeygateLayer {
    type Service = KeygateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeygateService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`KeygateLayer`] wraps around another.
#[derive(Clone)]
pub struct KeygateService<S> {
    inner: S,
    layer: KeygateLayer,
}

/// A refusal as a response.
pub fn rejection(e: &GateError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let body = serde_json::json!({
        "errorMessage": e.to_string(),
        "errorCode": status.as_u16(),
        "errorDetail": e.detail(),
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keygate\""),
        );
    }
    if let Some(secs) = e.retry_after()
        && let Ok(v) = HeaderValue::try_from(secs.to_string())
    {
        h.insert(header::RETRY_AFTER, v);
    }
    resp
}

impl<S, B, R> tower_service::Service<Request<B>> for KeygateService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<R>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    R: http_body::Body<Data = Bytes> + Send + 'static,
    R::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
            let ip = client_ip(peer, &parts.headers, &layer.trusted);
            let body = match layer.gate.check(&parts, Body::new(body), ip).await {
                Ok(Some((principal, body))) => {
                    if let Some((g, name)) = &layer.require
                        && !principal.grants.contains(*g)
                    {
                        return Ok(rejection(&GateError::Missing {
                            user: principal.username.to_string(),
                            name: name.to_string(),
                        }));
                    }
                    parts.extensions.insert(principal);
                    body
                }
                Ok(None) if layer.optional => Body::empty(),
                Ok(None) => return Ok(rejection(&GateError::NoCredential)),
                Err(e) => return Ok(rejection(&e)),
            };
            let resp = inner.call(Request::from_parts(parts, body)).await?;
            Ok(resp.map(Body::new))
        })
    }
}

/// The principal the layer left on a request, if any.
pub fn principal_of(ext: &axum::http::Extensions) -> Option<&Principal> {
    ext.get::<Principal>()
}
