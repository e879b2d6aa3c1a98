//! The REST API v3 routes under `/santaba/rest`, plus `/healthz`.
//!
//! Handlers are thin: extractors (authentication, ids, query, body) → one
//! [`crate::manage::Manager`] call → JSON. Errors map to HTTP in [`crate::error`].

use axum::handler::Handler as _;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keygate_store::Store;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::JsonReply;

mod accesslogs;
pub(crate) mod data;
mod index;
pub mod ingest;
pub mod ingest_limits;
mod portal;
mod roles;
pub mod table;
mod tokens;
mod users;

/// A JSON response.
pub(crate) type JsonResult = Result<JsonReply, ApiError>;

/// A typed object as the response, serialized straight to its bytes.
pub(crate) fn json_of<T: serde::Serialize>(obj: &T) -> JsonReply {
    JsonReply::of(obj)
}

/// The whole application: [`crate::front::Front`] around the router.
pub type App = crate::front::Front<Router>;

/// Builds the whole application.
///
/// With `with_metrics`, `/metrics` is served here too; otherwise it is left to a
/// separate listener ([`metrics_router`]).
pub fn router<S: Store>(
    state: AppState<S>,
    limits: crate::listen::RequestLimits,
    with_metrics: bool,
    https: bool,
) -> App {
    // Health (answered by `Front`), readiness, metrics and forward-auth take no request
    // slot, so they never wait behind one; the API and the UI take slots where their
    // callers' authentication is known (see listen::slots). Each of these handlers is
    // tagged with its own route.
    let tag = |template: &str| crate::front::Tag::route(&state.metrics, template);
    let mut open = Router::new()
        .route(HEALTH, get(healthz.layer(tag(HEALTH))))
        .route("/readyz", get(readyz::<S>.layer(tag("/readyz"))))
        .merge(crate::forward::routes::<S>(&tag))
        .merge(ingest::routes::<S>(&tag));
    if with_metrics {
        open = open.route("/metrics", get(metrics_text::<S>.layer(tag("/metrics"))));
    }
    let openapi = format!("{}/openapi.json", crate::auth::BASE_PATH);
    let api = table::api_routes::<S>(&state)
        // The description of the API is public: clients fetch it before they have a token.
        .route(&openapi, get(openapi_json.layer(tag(&openapi))))
        .method_not_allowed_fallback(method_not_allowed);
    let metrics = state.metrics.clone();
    let lanes = std::sync::Arc::new(Lanes {
        health: metrics.route(HEALTH),
        nginx: metrics.route(crate::forward::NGINX),
        st: state.clone(),
    });
    let app = api
        .merge(open)
        .with_state(state.clone())
        .merge(crate::ui::router(state))
        .fallback(not_found);
    // No body limit layer: the API's bodies are read by `extract::Body` and the
    // forward-auth endpoints under `body::MAX_BODY` themselves, and the UI sets its own
    // on its routes.
    crate::front::Front::new(app, lanes, metrics, limits, https)
}

/// Liveness's path.
const HEALTH: &str = "/healthz";

/// What [`crate::front::Front`] answers before routing: `GET /healthz`, and nginx's
/// forward-auth check unless it carries an LMv1 signature.
struct Lanes<S: Store> {
    st: AppState<S>,
    health: crate::metrics::Route,
    nginx: crate::metrics::Route,
}

impl<S: Store> crate::front::Lanes for Lanes<S> {
    fn answer(&self, req: &axum::extract::Request) -> Option<(crate::metrics::Route, Response)> {
        match req.uri().path() {
            HEALTH if matches!(*req.method(), Method::GET | Method::HEAD) => {
                Some((self.health.clone(), health()))
            }
            crate::forward::NGINX => {
                crate::forward::nginx_now(&self.st, req).map(|r| (self.nginx.clone(), r))
            }
            _ => None,
        }
    }
}

/// Liveness: a fixed answer.
fn health() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// The headers every response gets on its way out: no caching unless a route chose
/// otherwise (API responses carry secrets once and owners' data always), no content
/// sniffing, and over HTTPS, HSTS for a year. A route that builds the same headers
/// ahead (forward-auth's kept identity headers) saves their inserts here.
pub(crate) fn common_headers(h: &mut axum::http::HeaderMap, https: bool) {
    use axum::http::{HeaderValue, header};
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// `/metrics` alone, for a separate listen address.
pub fn metrics_router<S: Store>(state: AppState<S>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text::<S>))
        .fallback(not_found)
        .with_state(state)
}

/// The Prometheus text exposition.
async fn metrics_text<S: Store>(
    axum::extract::State(st): axum::extract::State<AppState<S>>,
) -> Response {
    let mut snap = crate::metrics::Snapshot {
        reconciliation_age_seconds: st.verifier.confirmed_age_millis(st.clock.now_millis()) as f64
            / 1000.0,
        indexed_tokens: st.verifier.token_count(),
        read_view_tokens: st.verifier.view().token_rows_held(),
        index_reloads: st.verifier.reloads(),
        ingest_waiting: st.ingest.waiting(),
        ingest_in_flight: st.ingest.in_flight(),
        forwarding: st.relay.is_some(),
        outbox: st
            .relay
            .as_ref()
            .and_then(|r| r.backlog(st.clock.now_millis())),
        ..Default::default()
    };
    match st.manager.store().token_counts().await {
        Ok(counts) => {
            snap.tokens = counts
                .iter()
                .map(|c| {
                    let status = match c.status {
                        keygate_core::model::TokenStatus::Enabled => "enabled",
                        keygate_core::model::TokenStatus::Disabled => "disabled",
                    };
                    (c.token_type.as_str(), status, c.count)
                })
                .collect();
        }
        Err(e) => {
            st.metrics.store_error();
            tracing::warn!(error = %e, "metrics: could not count tokens");
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(&snap),
    )
        .into_response()
}

/// The OpenAPI document, built once.
async fn openapi_json() -> Json<Value> {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(crate::openapi::document).clone())
}

/// Liveness. `Front` answers `GET` and `HEAD` before routing ([`Lanes`]); the route
/// is here for every other method's 405.
async fn healthz() -> Response {
    health()
}

/// Readiness for load balancers: 200 while this node's index is confirmed current and
/// the store takes writes; 503 with the reason when the index is stale (the database
/// is unreachable) or writes fail (full disk, read-only, the file deleted).
async fn readyz<S: Store>(axum::extract::State(st): axum::extract::State<AppState<S>>) -> Response {
    let now = st.clock.now_millis();
    let reason = if let Some(ms) = st.verifier.staleness(now) {
        Some((
            "stale",
            format!(
                "the credential index has not been confirmed current for {} s; the database may be unreachable",
                ms / 1000
            ),
        ))
    } else {
        match st.manager.store().writable().await {
            Ok(()) => None,
            Err(keygate_store::StoreError::Degraded(f)) => Some((
                "read_only",
                format!("the database cannot take changes: {f}"),
            )),
            Err(e) => Some((
                "unavailable",
                format!(
                    "the database cannot be checked: {}",
                    ApiError::from(e).message()
                ),
            )),
        }
    };
    match reason {
        None => Json(json!({"status": "ready"})).into_response(),
        Some((status, reason)) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": status, "reason": reason})),
        )
            .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such API path; see docs/api.md for the paths keygate serves".to_owned())
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
