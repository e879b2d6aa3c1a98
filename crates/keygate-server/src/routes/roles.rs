//! `/setting/roles` and `/setting/roles/{roleId}`.

use axum::extract::State;
use keygate_core::model::Privilege;
use keygate_core::query::{ListQuery, parse_fields};
use keygate_store::{RoleInput, RolePatch, Store};
use serde_json::json;

use super::{JsonResult, json_of};
use crate::auth::Caller;
use crate::extract::{Body, Ids, Params};
use crate::state::AppState;
use crate::wire::JsonReply;
use crate::wire::{self, RoleObject, inputs};

fn privileges(sent: Option<Vec<wire::objects::Privilege>>) -> Option<Vec<Privilege>> {
    sent.map(|ps| ps.into_iter().map(Privilege::from).collect())
}

pub(super) async fn list<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    let q = ListQuery::parse(&params.list(), &wire::ROLE.fields, &wire::ROLE.names)?;
    let roles = st.manager.roles(&caller.actor()).await?;
    Ok(JsonReply::of(&wire::list(
        roles
            .iter()
            .map(|r| wire::to_map(&RoleObject::new(&r.role, r.user_count)))
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
    let fields = parse_fields(params.get("fields"), &wire::ROLE.names)?;
    let r = st.manager.role(&caller.actor(), ids.get(0)?).await?;
    Ok(wire::projected(
        &RoleObject::new(&r.role, r.user_count),
        fields.as_deref(),
    ))
}

pub(super) async fn create<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Body(b): Body,
) -> JsonResult {
    b.require(inputs::ROLE_REQUIRED)?;
    let b: inputs::RolePatch = b.decode()?;
    let input = RoleInput {
        name: b.name.unwrap_or_default(),
        description: b.description.unwrap_or_default(),
        privileges: privileges(b.privileges).unwrap_or_default(),
    };
    let r = st.manager.create_role(&caller.actor(), input).await?;
    Ok(json_of(&RoleObject::new(&r.role, r.user_count)))
}

pub(super) async fn update<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    Body(b): Body,
) -> JsonResult {
    let b: inputs::RolePatch = b.decode()?;
    let patch = RolePatch {
        name: b.name,
        description: b.description,
        privileges: privileges(b.privileges),
    };
    let r = st
        .manager
        .update_role(&caller.actor(), ids.get(0)?, patch)
        .await?;
    Ok(json_of(&RoleObject::new(&r.role, r.user_count)))
}

pub(super) async fn delete<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
) -> JsonResult {
    st.manager.delete_role(&caller.actor(), ids.get(0)?).await?;
    Ok(JsonReply::of(&json!({})))
}
