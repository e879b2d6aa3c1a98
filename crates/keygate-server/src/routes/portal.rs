//! `/setting/portal` (a keygate extension).

use axum::extract::State;
use keygate_core::query::parse_fields;
use keygate_core::token;
use keygate_store::{PortalPatch, Store};

use super::{JsonResult, json_of};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Params};
use crate::state::AppState;
use crate::wire::{self, PortalObject, inputs};

pub(super) async fn get<S: Store>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    params: Params,
) -> JsonResult {
    let fields = parse_fields(params.get("fields"), &wire::PORTAL.names)?;
    let p = st.manager.portal().await?;
    Ok(wire::projected(&PortalObject::from(&p), fields.as_deref()))
}

pub(super) async fn update<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Body(b): Body,
) -> JsonResult {
    let b: inputs::PortalPatch = b.decode()?;
    if b.token_prefix.is_some_and(|p| p != token::PREFIX) {
        return Err(ApiError::BadRequest("tokenPrefix is read-only".to_owned()));
    }
    let patch = PortalPatch {
        company_name: b.company_name,
        traces_enabled: b.traces_enabled,
        max_tokens_per_user: b.max_tokens_per_user,
        lmv1_clock_skew_seconds: b.lmv1_clock_skew_seconds,
        lmv1_replay_protection: b.lmv1_replay_protection,
    };
    let p = st.manager.update_portal(&caller.actor(), patch).await?;
    Ok(json_of(&PortalObject::from(&p)))
}
