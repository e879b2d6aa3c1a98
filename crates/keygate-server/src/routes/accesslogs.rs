//! `/setting/accesslogs[/{id}]`: the audit log, read-only.

use axum::extract::State;
use keygate_core::query::{ListQuery, Op, parse_fields};
use keygate_store::{AuditRange, Store};

use super::JsonResult;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Ids, Params};
use crate::manage::AUDIT_SCAN_LIMIT;
use crate::state::AppState;
use crate::wire::JsonReply;
use crate::wire::{self, AccessLogItem};

/// The time window a query's `happenedOn` terms imply, so the store reads only that.
/// The terms are still applied to every entry afterwards; this only narrows the read.
fn window(q: &ListQuery) -> AuditRange {
    let mut range = AuditRange {
        from: None,
        to: None,
        limit: AUDIT_SCAN_LIMIT,
        id: None,
    };
    for t in q.terms.iter().filter(|t| t.field == "happenedOn") {
        let Ok(v) = t.value.parse::<i64>() else {
            continue;
        };
        let (from, to) = match t.op {
            Op::Eq => (Some(v), Some(v)),
            Op::Ge => (Some(v), None),
            Op::Gt => (v.checked_add(1), None),
            Op::Le => (None, Some(v)),
            Op::Lt => (None, v.checked_sub(1)),
            Op::Ne | Op::Contains | Op::NotContains => (None, None),
        };
        if let Some(f) = from {
            range.from = Some(range.from.map_or(f, |x| x.max(f)));
        }
        if let Some(t) = to {
            range.to = Some(range.to.map_or(t, |x| x.min(t)));
        }
    }
    range
}

pub(super) async fn list<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    let mut raw = params.list();
    // Newest first unless asked otherwise: that is what an audit log is read for.
    raw.sort.get_or_insert_with(|| "-id".to_owned());
    let q = ListQuery::parse(&raw, &wire::AUDIT.fields, &wire::AUDIT.names)?;
    let entries = st.manager.audit_log(&caller.actor(), window(&q)).await?;
    Ok(JsonReply::of(&wire::list(
        entries
            .iter()
            .map(|e| wire::to_map(&AccessLogItem::from(e)))
            .collect(),
        &q,
    )))
}

pub(super) async fn get<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    params: Params,
) -> JsonResult {
    let id = ids.get(0)?;
    let fields = parse_fields(params.get("fields"), &wire::AUDIT.names)?;
    let entries = st
        .manager
        .audit_log(
            &caller.actor(),
            AuditRange {
                from: None,
                to: None,
                limit: 1,
                id: Some(id),
            },
        )
        .await?;
    let e = entries
        .iter()
        .find(|e| e.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("access log entry {id} not found")))?;
    Ok(wire::projected(&AccessLogItem::from(e), fields.as_deref()))
}
