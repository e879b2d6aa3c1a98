//! LogicMonitor's ingestion APIs under `/rest`: what DataIngestion unlocks.
//!
//! | path | method |
//! | --- | --- |
//! | `/rest/v2/metric/ingest?create=true` | `POST` |
//! | `/rest/resource_property/ingest` | `PATCH` (merge) or `PUT` (replace) |
//! | `/rest/instance_property/ingest` | `PATCH` or `PUT` |
//! | `/rest/log/ingest` | `POST` |
//! | `/rest/api/v1/traces` | `POST` (OTLP/HTTP, protobuf or JSON) |
//!
//! Each request is authenticated by [`crate::auth::ingest`] (bearer or LMv1 over the
//! decoded body), needs its owner to hold DataIngestion (403 otherwise), is parsed and
//! validated by `keygate-ingest` (400 naming the element and field), and is answered
//! 202 only once its data is committed. The answers carry LogicMonitor's ingest
//! shape (`success`, `code`, `message`, `resourceIds`, `timestamp`, integers where
//! its SDK's models expect them) beside keygate's error fields, and an
//! `x-request-id`. `X-Version` does not apply here.
//!
//! With `--forward-otlp`, each request that stores data also queues its OTLP export
//! in the same transaction ([`crate::relay`]); property updates are not forwarded
//! (OTLP has no such message: a resource's properties travel with its metrics).

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Json, Router};
use keygate_core::policy::Grants;
use keygate_ingest::IngestError;
use keygate_ingest::properties::Target;
use keygate_store::Store;
use keygate_store::data::{MakeOutgoing, Outgoing, Properties, Signal};
use serde_json::{Value, json};

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;
use keygate_core::clock::Clock;

/// `POST /rest/v2/metric/ingest`.
pub const METRICS: &str = "/rest/v2/metric/ingest";
/// `PATCH`/`PUT /rest/resource_property/ingest`.
pub const RESOURCE_PROPERTIES: &str = "/rest/resource_property/ingest";
/// `PATCH`/`PUT /rest/instance_property/ingest`.
pub const INSTANCE_PROPERTIES: &str = "/rest/instance_property/ingest";
/// `POST /rest/log/ingest`.
pub const LOGS: &str = "/rest/log/ingest";
/// `POST /rest/api/v1/traces` (OTLP/HTTP).
pub const TRACES: &str = "/rest/api/v1/traces";

/// The media type of the exports keygate makes itself (logs and metrics).
const PROTOBUF: &str = "application/x-protobuf";

/// The ingestion routes, each tagged with its own route for the metrics.
pub fn routes<S: Store>(tag: &dyn Fn(&str) -> crate::front::Tag) -> Router<AppState<S>> {
    Router::new()
        .route(METRICS, post(metrics::<S>.layer(tag(METRICS))))
        .route(
            RESOURCE_PROPERTIES,
            patch(properties::<S>.layer(tag(RESOURCE_PROPERTIES)))
                .put(properties::<S>.layer(tag(RESOURCE_PROPERTIES))),
        )
        .route(
            INSTANCE_PROPERTIES,
            patch(properties::<S>.layer(tag(INSTANCE_PROPERTIES)))
                .put(properties::<S>.layer(tag(INSTANCE_PROPERTIES))),
        )
        .route(LOGS, post(logs::<S>.layer(tag(LOGS))))
        .route(TRACES, post(traces::<S>.layer(tag(TRACES))))
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::TooLarge(n) => Self::PayloadTooLarge(n),
            IngestError::Encoding(_) => Self::UnsupportedEncoding(e.to_string()),
            IngestError::Invalid(m) => Self::BadRequest(m),
            IngestError::Corrupt(_) => Self::BadRequest(e.to_string()),
        }
    }
}

/// Authenticates, decodes and checks DataIngestion; the request's caller and body.
async fn admit<S: Store>(st: &AppState<S>, req: Request) -> Result<auth::Ingest, ApiError> {
    let (parts, body) = req.into_parts();
    let encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let decode = |raw: &[u8]| {
        keygate_ingest::decode::decode(
            raw,
            encoding.as_deref(),
            keygate_ingest::limits::MAX_DECODED,
        )
        .map_err(ApiError::from)
    };
    let admitted = auth::ingest(st, &parts, body, keygate_ingest::limits::MAX_BODY, decode).await?;
    if !admitted
        .caller
        .principal
        .grants
        .contains(Grants::DATAINGESTION)
    {
        return Err(ApiError::Forbidden(format!(
            "the token's owner \"{}\" lacks the DataIngestion privilege (dataingestion * write); \
             give one of the owner's roles that privilege",
            admitted.caller.principal.username
        )));
    }
    Ok(admitted)
}

/// `POST /rest/v2/metric/ingest`.
async fn metrics<S: Store>(State(st): State<AppState<S>>, req: Request) -> Response {
    let mut who = None;
    let resp = metrics_of(&st, req, &mut who).await;
    by(resp, who)
}

async fn metrics_of<S: Store>(st: &AppState<S>, req: Request, who: &mut Option<i64>) -> Response {
    // Read before the request is handed over, judged after it is authenticated: an
    // unauthenticated client learns nothing but that it must authenticate.
    let create = keygate_ingest::metrics::create_flag(req.uri().query());
    let admitted = match admit(st, req).await {
        Ok(a) => {
            *who = Some(a.caller.principal.user_id);
            a
        }
        Err(e) => return refused(&st.clock, e),
    };
    let create = match create {
        Ok(c) => c,
        Err(e) => return refused(&st.clock, e.into()),
    };
    let elements = match keygate_ingest::metrics::parse(&admitted.body, create) {
        Ok(e) => e,
        Err(e) => return refused(&st.clock, e.into()),
    };
    if elements.is_empty() {
        // The Python SDK posts an empty batch every interval: nothing to store.
        return accepted(StatusCode::ACCEPTED, &Properties::new(), Vec::new(), st);
    }
    let queued_ms = st.clock.now_millis();
    let export = |kept: &[bool]| {
        keygate_ingest::otlp::metrics(&elements, kept).map(|body| Outgoing {
            signal: Signal::Metrics,
            content_type: PROTOBUF.to_owned(),
            body,
            queued_ms,
        })
    };
    let stored = st
        .manager
        .store()
        .ingest_metrics(
            admitted.caller.principal.user_id,
            &elements,
            create,
            st.clock.now(),
            st.relay.as_ref().map(|_| &export as &MakeOutgoing<'_>),
        )
        .await;
    wake_relay(st);
    let values = |e: &keygate_store::data::MetricElement| -> u64 {
        e.instances
            .iter()
            .flat_map(|i| &i.datapoints)
            .map(|d| d.values.len() as u64)
            .sum()
    };
    let stored = match stored {
        Ok(s) => s,
        Err(e) => {
            st.metrics
                .ingested("value", "failed", elements.iter().map(values).sum());
            return refused(&st.clock, e.into());
        }
    };
    for (e, id) in elements.iter().zip(&stored) {
        let outcome = if id.is_some() { "stored" } else { "refused" };
        st.metrics.ingested("value", outcome, values(e));
    }
    let mut errors = Vec::new();
    let mut first = None;
    for (i, (e, id)) in elements.iter().zip(&stored).enumerate() {
        match id {
            Some(_) => {
                first.get_or_insert(&e.resource.ids);
            }
            None => errors.push(json!({
                "index": i,
                "resourceIds": e.resource.ids,
                "message": format!(
                    "element {i}: no resource has these resourceIds; send create=true to create it"
                ),
            })),
        }
    }
    match first {
        Some(ids) if errors.is_empty() => accepted(StatusCode::ACCEPTED, ids, errors, st),
        Some(ids) => accepted(StatusCode::MULTI_STATUS, ids, errors, st),
        None => refused_with(
            &st.clock,
            ApiError::NotFound(
                "no resource has the resourceIds sent; send create=true to create them".to_owned(),
            ),
            errors,
        ),
    }
}

/// `PATCH`/`PUT /rest/resource_property/ingest` and `/rest/instance_property/ingest`.
async fn properties<S: Store>(State(st): State<AppState<S>>, req: Request) -> Response {
    let mut who = None;
    let resp = properties_of(&st, req, &mut who).await;
    by(resp, who)
}

async fn properties_of<S: Store>(
    st: &AppState<S>,
    req: Request,
    who: &mut Option<i64>,
) -> Response {
    let target = if req.uri().path() == INSTANCE_PROPERTIES {
        Target::Instance
    } else {
        Target::Resource
    };
    let replace = req.method() == Method::PUT;
    let admitted = match admit(st, req).await {
        Ok(a) => {
            *who = Some(a.caller.principal.user_id);
            a
        }
        Err(e) => return refused(&st.clock, e),
    };
    let update = match keygate_ingest::properties::parse(&admitted.body, target, replace) {
        Ok(u) => u,
        Err(e) => return refused(&st.clock, e.into()),
    };
    let n = update.properties.len() as u64;
    match st
        .manager
        .store()
        .update_properties(&update, st.clock.now())
        .await
    {
        Ok(Some(_)) => {
            st.metrics.ingested("property", "stored", n);
            accepted(StatusCode::ACCEPTED, &update.ids, Vec::new(), st)
        }
        Ok(None) => {
            st.metrics.ingested("property", "refused", n);
            refused(
                &st.clock,
                ApiError::NotFound(
                    "no resource has these resourceIds; push metrics with create=true to create it"
                        .to_owned(),
                ),
            )
        }
        Err(e) => {
            st.metrics.ingested("property", "failed", n);
            refused(&st.clock, e.into())
        }
    }
}

/// `POST /rest/log/ingest`.
async fn logs<S: Store>(State(st): State<AppState<S>>, req: Request) -> Response {
    let mut who = None;
    let resp = logs_of(&st, req, &mut who).await;
    by(resp, who)
}

async fn logs_of<S: Store>(st: &AppState<S>, req: Request, who: &mut Option<i64>) -> Response {
    let admitted = match admit(st, req).await {
        Ok(a) => {
            *who = Some(a.caller.principal.user_id);
            a
        }
        Err(e) => return refused(&st.clock, e),
    };
    let lines = match keygate_ingest::logs::parse(&admitted.body, st.clock.now_millis()) {
        Ok(l) => l,
        Err(e) => return refused(&st.clock, e.into()),
    };
    if lines.is_empty() {
        return accepted(StatusCode::ACCEPTED, &Properties::new(), Vec::new(), st);
    }
    let export = st.relay.as_ref().map(|_| {
        let now = st.clock.now_millis();
        Outgoing {
            signal: Signal::Logs,
            content_type: PROTOBUF.to_owned(),
            body: keygate_ingest::otlp::logs(&lines, now),
            queued_ms: now,
        }
    });
    let stored = st
        .manager
        .store()
        .ingest_logs(admitted.caller.principal.user_id, &lines, export.as_ref())
        .await;
    wake_relay(st);
    match stored {
        Ok(()) => {
            st.metrics.ingested("log", "stored", lines.len() as u64);
            accepted(StatusCode::ACCEPTED, &lines[0].ids, Vec::new(), st)
        }
        Err(e) => {
            st.metrics.ingested("log", "failed", lines.len() as u64);
            refused(&st.clock, e.into())
        }
    }
}

/// `POST /rest/api/v1/traces`: an OTLP/HTTP trace export, protobuf or JSON. Success
/// is 200 with an empty `ExportTraceServiceResponse` in the request's encoding;
/// refusals carry a `google.rpc.Status` in it, with `Retry-After` where the status
/// invites a retry (429, 503), which OTLP exporters honour.
async fn traces<S: Store>(State(st): State<AppState<S>>, req: Request) -> Response {
    let mut who = None;
    let resp = traces_of(&st, req, &mut who).await;
    by(resp, who)
}

async fn traces_of<S: Store>(st: &AppState<S>, req: Request, who: &mut Option<i64>) -> Response {
    use keygate_ingest::traces::Encoding;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(encoding) = Encoding::of(content_type) else {
        return refused(
            &st.clock,
            ApiError::UnsupportedEncoding(
                "send OTLP as Content-Type: application/x-protobuf or application/json".to_owned(),
            ),
        );
    };
    let admitted = match admit(st, req).await {
        Ok(a) => {
            *who = Some(a.caller.principal.user_id);
            a
        }
        Err(e) => return otlp_refusal(e, encoding),
    };
    let spans = match keygate_ingest::traces::parse(&admitted.body, encoding) {
        Ok(s) => s,
        Err(e) => return otlp_refusal(e.into(), encoding),
    };
    if !spans.is_empty() {
        // Traces arrived as OTLP: they go on as they came, in their own encoding.
        let export = st.relay.as_ref().map(|_| Outgoing {
            signal: Signal::Traces,
            content_type: encoding.media_type().to_owned(),
            body: admitted.body.to_vec(),
            queued_ms: st.clock.now_millis(),
        });
        let stored = st
            .manager
            .store()
            .ingest_spans(admitted.caller.principal.user_id, &spans, export.as_ref())
            .await;
        wake_relay(st);
        if let Err(e) = stored {
            st.metrics.ingested("span", "failed", spans.len() as u64);
            return otlp_refusal(e.into(), encoding);
        }
        st.metrics.ingested("span", "stored", spans.len() as u64);
    }
    let id = request_id();
    let resp = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.media_type()),
        )],
        encoding.success(),
    )
        .into_response();
    with_request_id(resp, &id)
}

/// A refusal as OTLP/HTTP asks: the status keygate gives it (and its headers, such as
/// `Retry-After`), with a `google.rpc.Status` body in the request's encoding.
fn otlp_refusal(e: ApiError, encoding: keygate_ingest::traces::Encoding) -> Response {
    let message = e.message();
    let mut resp = e.into_response();
    let grpc = match resp.status().as_u16() {
        401 => 16,
        403 => 7,
        404 => 5,
        429 => 8,
        500 => 13,
        503 => 14,
        _ => 3,
    };
    *resp.body_mut() = axum::body::Body::from(encoding.status(grpc, &message));
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.media_type()),
    );
    let id = request_id();
    with_request_id(resp, &id)
}

/// Tells the relay an export may have been queued (nothing without `--forward-otlp`).
fn wake_relay<S: Store>(st: &AppState<S>) {
    if let Some(r) = &st.relay {
        r.queued();
    }
}

/// The response, carrying who pushed (when authenticated) for the request log line.
fn by(mut resp: Response, who: Option<i64>) -> Response {
    if let Some(id) = who {
        resp.extensions_mut().insert(crate::auth::PrincipalId(id));
    }
    resp
}

/// A request id for the answer's `x-request-id` and body: unique per process run.
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // The process's start in microseconds tells runs apart; the counter, requests.
    let start = *START.get_or_init(|| u64::try_from(Clock::system_micros()).unwrap_or(0));
    format!("{start:016x}-{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// 202 (or 207 with the refused elements): the data is committed.
fn accepted<S: Store>(
    status: StatusCode,
    ids: &Properties,
    errors: Vec<Value>,
    st: &AppState<S>,
) -> Response {
    let id = request_id();
    let mut body = json!({
        "success": errors.is_empty(),
        "code": status.as_u16(),
        "message": if errors.is_empty() { "Accepted" } else { "Some elements were refused" },
        "resourceIds": ids,
        "timestamp": st.clock.now(),
        "requestId": id,
    });
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    with_request_id((status, Json(body)).into_response(), &id)
}

fn with_request_id(mut resp: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// A refusal in the ingest shape.
fn refused(clock: &Clock, e: ApiError) -> Response {
    refused_with(clock, e, Vec::new())
}

/// A refusal with LogicMonitor's ingest fields (`success`, `code`, `message`,
/// `timestamp`, `requestId`, and `errors` when elements are named) beside keygate's
/// own error fields: the SDKs read the first set, keygate's clients the second.
fn refused_with(clock: &Clock, e: ApiError, errors: Vec<Value>) -> Response {
    let id = request_id();
    let resp = e.into_response_with(|status, body| {
        body.insert("success".to_owned(), Value::Bool(false));
        body.insert("code".to_owned(), json!(status.as_u16()));
        let message = body.get("errorMessage").cloned().unwrap_or(Value::Null);
        body.insert("message".to_owned(), message);
        body.insert("timestamp".to_owned(), json!(clock.now()));
        body.insert("requestId".to_owned(), Value::String(id.clone()));
        if !errors.is_empty() {
            body.insert("errors".to_owned(), Value::Array(errors));
        }
    });
    with_request_id(resp, &id)
}
