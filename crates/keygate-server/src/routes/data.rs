//! `/keygate/data/...`: ingested data read back (a keygate extension). A caller with
//! useraccess read sees everything; one with DataIngestion alone sees what its own
//! tokens pushed; others get 403.

use axum::extract::State;
use keygate_core::model::UserId;
use keygate_core::policy::Grants;
use keygate_store::Store;
use keygate_store::data::{LogQuery, SpanQuery, TimeRange};
use serde_json::json;

use super::JsonResult;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Ids, Params};
use crate::state::AppState;
use crate::wire::JsonReply;
use crate::wire::data::{LogObject, ResourceObject, SeriesObject, SpanObject};

fn scope(caller: &Caller) -> Result<Option<UserId>, ApiError> {
    owner_scope(&caller.principal)
}

/// Whose data `p` may read: `None` for all of it (useraccess read), their own
/// (DataIngestion), or 403. The API and the UI's Data area both ask this.
pub(crate) fn owner_scope(p: &keygate_auth::Principal) -> Result<Option<UserId>, ApiError> {
    let g = p.grants;
    if g.contains(Grants::USERACCESS_READ) {
        Ok(None)
    } else if g.contains(Grants::DATAINGESTION) {
        Ok(Some(p.user_id))
    } else {
        Err(ApiError::Forbidden(
            "reading pushed data needs useraccess read, or DataIngestion for one's own".to_owned(),
        ))
    }
}

/// An integer parameter within `lo..=hi`, or `default` when absent.
fn int(p: &Params, name: &str, lo: i64, hi: i64, default: i64) -> Result<i64, ApiError> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{name} must be a whole number from {lo} to {hi}"))
            }),
    }
}

fn range(p: &Params, max: i64, default: i64) -> Result<TimeRange, ApiError> {
    let from_ms = int(p, "from", i64::MIN, i64::MAX, i64::MIN)?;
    let to_ms = int(p, "to", i64::MIN, i64::MAX, i64::MAX)?;
    if from_ms > to_ms {
        return Err(ApiError::BadRequest("from must not be after to".to_owned()));
    }
    Ok(TimeRange {
        from_ms,
        to_ms,
        limit: int(p, "size", 1, max, default)?,
    })
}

/// `GET /keygate/data/resources`.
pub(super) async fn resources<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    let owner = scope(&caller)?;
    let size = int(&params, "size", 1, 1000, 50)?;
    let offset = int(&params, "offset", 0, i64::MAX, 0)?;
    let (items, total) = st
        .manager
        .store()
        .data_resources(owner, size, offset)
        .await?;
    let items: Vec<ResourceObject> = items.iter().map(ResourceObject::from).collect();
    Ok(JsonReply::of(
        &json!({"total": total, "searchId": null, "items": items}),
    ))
}

/// `GET /keygate/data/resources/{resourceId}`.
pub(super) async fn resource<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
) -> JsonResult {
    let owner = scope(&caller)?;
    let r = st.manager.store().data_resource(owner, ids.get(0)?).await?;
    Ok(JsonReply::of(&ResourceObject::from(&r)))
}

/// `GET /keygate/data/datapoints/{dataPointId}/values`.
pub(super) async fn series<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    params: Params,
) -> JsonResult {
    let owner = scope(&caller)?;
    let id = ids.get(0)?;
    let values = st
        .manager
        .store()
        .data_series(owner, id, range(&params, 10_000, 1000)?)
        .await?;
    Ok(JsonReply::of(&SeriesObject {
        data_point_id: id,
        values,
    }))
}

/// `GET /keygate/data/logs`.
pub(super) async fn logs<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    let owner = scope(&caller)?;
    let text = params
        .get("q")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if text.as_ref().is_some_and(|t| t.chars().count() > 256) {
        return Err(ApiError::BadRequest(
            "q must be at most 256 characters".to_owned(),
        ));
    }
    let resource = match params.get("resourceId") {
        None => None,
        Some(_) => Some(int(&params, "resourceId", 1, i64::MAX, 1)?),
    };
    let q = LogQuery {
        text,
        resource,
        range: range(&params, 1000, 50)?,
        owner,
    };
    let lines = st.manager.store().data_logs(&q).await?;
    let items: Vec<LogObject> = lines.iter().map(LogObject::from).collect();
    Ok(JsonReply::of(
        &json!({"total": items.len(), "searchId": null, "items": items}),
    ))
}

/// `GET /keygate/data/spans`.
pub(super) async fn spans<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    let owner = scope(&caller)?;
    let trace_id = match params.get("traceId") {
        None => None,
        Some(t) if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(t.to_ascii_lowercase())
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "traceId must be 32 hex digits".to_owned(),
            ));
        }
    };
    let service = params.get("service").map(str::to_owned);
    if service.as_ref().is_some_and(|s| s.chars().count() > 256) {
        return Err(ApiError::BadRequest(
            "service must be at most 256 characters".to_owned(),
        ));
    }
    let q = SpanQuery {
        trace_id,
        service,
        range: range(&params, 1000, 50)?,
        owner,
    };
    let spans = st.manager.store().data_spans(&q).await?;
    let items: Vec<SpanObject> = spans.iter().map(SpanObject::from).collect();
    Ok(JsonReply::of(
        &json!({"total": items.len(), "searchId": null, "items": items}),
    ))
}
