//! `/setting/portal` (a keygate extension).

use axum::extract::State;
use keygate_core::query::parse_fields;
use keygate_core::token;
use keygate_store::{PortalPatch, Store};

use super::{JsonResult, object};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Params};
use crate::state::AppState;
use crate::wire;

pub(super) async fn get<S: Store>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    params: Params,
) -> JsonResult {
    let fields = parse_fields(params.get("fields"), wire::PORTAL_PROPS)?;
    let p = st.manager.portal().await?;
    Ok(object(wire::project(wire::portal(&p), fields.as_deref())))
}

pub(super) async fn update<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Body(b): Body,
) -> JsonResult {
    if b.str("tokenPrefix")?.is_some_and(|p| p != token::PREFIX) {
        return Err(ApiError::BadRequest("tokenPrefix is read-only".to_owned()));
    }
    let patch = PortalPatch {
        company_name: b.str("companyName")?.map(str::to_owned),
        traces_enabled: b.bool("tracesEnabled")?,
        max_tokens_per_user: b.int("maxTokensPerUser")?,
        lmv1_clock_skew_seconds: b.int("lmv1ClockSkewSeconds")?,
        lmv1_replay_protection: b.bool("lmv1ReplayProtection")?,
    };
    let p = st.manager.update_portal(&caller.actor(), patch).await?;
    Ok(object(wire::portal(&p)))
}
