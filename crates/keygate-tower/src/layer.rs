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
use keygate_core::credentials::Credential;

use crate::gate::{Gate, client_ip, credential, refuse_query_token};

/// Authenticates requests before the service sees them. Refused requests are
/// answered here, in keygate's error shape (`{"errorMessage", "errorCode",
/// "errorDetail"}`), with `WWW-Authenticate` on 401 and `Retry-After` on 429/503.
#[derive(Clone)]
pub struct KeygateLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    gate: Gate,
    optional: bool,
    require: Option<(Grants, Arc<str>)>,
    trusted: Arc<[IpAddr]>,
}

impl KeygateLayer {
    /// Every request must carry a credential the gate accepts.
    pub fn new(gate: Gate) -> Self {
        Self {
            config: Arc::new(Config {
                gate,
                optional: false,
                require: None,
                trusted: Arc::from([]),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut c = Arc::unwrap_or_clone(self.config);
        f(&mut c);
        Self {
            config: Arc::new(c),
        }
    }

    /// Requests without any credential pass, without a [`Principal`] (handlers take
    /// [`crate::MaybeAuthenticated`]); a credential that is sent must still be good.
    #[must_use]
    pub fn optional(self) -> Self {
        self.with(|c| c.optional = true)
    }

    /// The owner must also hold `grants` (403 otherwise, naming `name`).
    #[must_use]
    pub fn require(self, grants: Grants, name: &str) -> Self {
        self.with(|c| c.require = Some((grants, Arc::from(name))))
    }

    /// Peers whose `X-Forwarded-For` names the client (for usage records and the
    /// LMv1 check); none by default.
    #[must_use]
    pub fn trust_proxies(self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        let trusted: Arc<[IpAddr]> = proxies.into_iter().collect();
        self.with(|c| c.trusted = trusted)
    }
}

impl<S> tower_layer::Layer<S> for KeygateLayer {
    type Service = KeygateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeygateService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`KeygateLayer`] wraps around another.
#[derive(Clone)]
pub struct KeygateService<S> {
    inner: S,
    config: Arc<Config>,
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

pin_project_lite::pin_project! {
    /// The response future: the wrapped service's own for a bearer token (checked
    /// before the call, from memory, so nothing is boxed), a ready refusal, or a boxed
    /// one for LMv1, whose body must be read before the signature can be checked.
    pub struct KeygateFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<Body>> },
        Boxed { future: Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>> },
    }
}

impl<F, R> Future for KeygateFuture<F>
where
    F: Future<Output = Result<Response<R>, Infallible>>,
    R: http_body::Body<Data = Bytes> + Send + 'static,
    R::Error: Into<axum::BoxError>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_ok(|r| r.map(Body::new)),
            KindProj::Ready { response } => Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                rejection(&GateError::Remote("polled after completion".to_owned()))
            }))),
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

fn ready<F>(response: Response<Body>) -> KeygateFuture<F> {
    KeygateFuture {
        kind: Kind::Ready {
            response: Some(response),
        },
    }
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
    type Future = KeygateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let c = &*self.config;
        let (mut parts, body) = req.into_parts();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let ip = client_ip(peer, &parts.headers, &c.trusted);
        let credential =
            match refuse_query_token(parts.uri.query()).and_then(|()| credential(&parts.headers)) {
                Ok(cred) => cred,
                Err(e) => return ready(rejection(&e)),
            };
        let principal = match credential {
            None if c.optional => None,
            None => return ready(rejection(&GateError::NoCredential)),
            Some(Credential::Bearer(token)) => match c.gate.bearer(&token, ip) {
                Ok(p) => Some(p),
                Err(e) => return ready(rejection(&e)),
            },
            Some(Credential::Lmv1(_)) => {
                // The signature covers the body: check it in the future, on the clone
                // that was polled ready (tower's rule), with the whole request.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let config = self.config.clone();
                let req = Request::from_parts(parts, Body::new(body));
                return KeygateFuture {
                    kind: Kind::Boxed {
                        future: Box::pin(async move {
                            let (mut parts, body) = req.into_parts();
                            match config.gate.check(&parts, body, ip).await {
                                Ok(Some((p, body))) => match config.admit(p) {
                                    Ok(p) => {
                                        parts.extensions.insert(p);
                                        let resp =
                                            inner.call(Request::from_parts(parts, body)).await?;
                                        Ok(resp.map(Body::new))
                                    }
                                    Err(refused) => Ok(rejection(&refused)),
                                },
                                Ok(None) => Ok(rejection(&GateError::NoCredential)),
                                Err(e) => Ok(rejection(&e)),
                            }
                        }),
                    },
                };
            }
        };
        if let Some(p) = principal {
            match c.admit(p) {
                Ok(p) => {
                    parts.extensions.insert(p);
                }
                Err(refused) => return ready(rejection(&refused)),
            }
        }
        KeygateFuture {
            kind: Kind::Inner {
                future: self.inner.call(Request::from_parts(parts, Body::new(body))),
            },
        }
    }
}

impl Config {
    /// The privilege the layer requires, if any.
    fn admit(&self, p: Principal) -> Result<Principal, GateError> {
        match &self.require {
            Some((g, name)) if !p.grants.contains(*g) => Err(GateError::Missing {
                user: p.username.to_string(),
                name: name.to_string(),
            }),
            _ => Ok(p),
        }
    }
}

/// The principal the layer left on a request, if any.
pub fn principal_of(ext: &axum::http::Extensions) -> Option<&Principal> {
    ext.get::<Principal>()
}
