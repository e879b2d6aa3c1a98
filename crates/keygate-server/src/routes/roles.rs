//! `/setting/roles` and `/setting/roles/{roleId}`.

use axum::extract::State;
use keygate_core::model::Privilege;
use keygate_core::query::{ListQuery, parse_fields};
use keygate_store::{RoleInput, RolePatch, Store};
use serde_json::{Value, json};

use super::{JsonResult, object};
use crate::auth::Caller;
use crate::body::{JsonBody, wrong_type};
use crate::error::ApiError;
use crate::extract::{Body, Ids, Params};
use crate::state::AppState;
use crate::wire;

fn privileges(b: &JsonBody) -> Result<Option<Vec<Privilege>>, ApiError> {
    let Some(items) = b.array("privileges")? else {
        return Ok(None);
    };
    let part = |v: &Value, name: &str| -> Result<String, ApiError> {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                wrong_type(
                    "privileges",
                    "an array of {objectType, objectId, operation} strings",
                )
            })
    };
    items
        .iter()
        .map(|v| {
            Ok(Privilege {
                object_type: part(v, "objectType")?,
                object_id: part(v, "objectId")?,
                operation: part(v, "operation")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub(super) async fn list<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    let q = ListQuery::parse(&params.list(), wire::ROLE_FIELDS, wire::ROLE_PROPS)?;
    let roles = st.manager.roles(&caller.actor()).await?;
    Ok(axum::Json(wire::list(
        roles
            .iter()
            .map(|r| wire::role(&r.role, r.user_count))
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
    let fields = parse_fields(params.get("fields"), wire::ROLE_PROPS)?;
    let r = st.manager.role(&caller.actor(), ids.get(0)?).await?;
    Ok(object(wire::project(
        wire::role(&r.role, r.user_count),
        fields.as_deref(),
    )))
}

pub(super) async fn create<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Body(b): Body,
) -> JsonResult {
    let input = RoleInput {
        name: b
            .str("name")?
            .ok_or_else(|| ApiError::BadRequest("name is required".to_owned()))?
            .to_owned(),
        description: b.str("description")?.unwrap_or_default().to_owned(),
        privileges: privileges(&b)?.unwrap_or_default(),
    };
    let r = st.manager.create_role(&caller.actor(), input).await?;
    Ok(object(wire::role(&r.role, r.user_count)))
}

pub(super) async fn update<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    Body(b): Body,
) -> JsonResult {
    let patch = RolePatch {
        name: b.str("name")?.map(str::to_owned),
        description: b.str("description")?.map(str::to_owned),
        privileges: privileges(&b)?,
    };
    let r = st
        .manager
        .update_role(&caller.actor(), ids.get(0)?, patch)
        .await?;
    Ok(object(wire::role(&r.role, r.user_count)))
}

pub(super) async fn delete<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
) -> JsonResult {
    st.manager.delete_role(&caller.actor(), ids.get(0)?).await?;
    Ok(axum::Json(json!({})))
}
