//! `/setting/admins` and `/setting/admins/{adminId}`.

use axum::extract::State;
use keygate_core::model::{RoleId, UserStatus};
use keygate_core::query::{ListQuery, parse_fields};
use keygate_store::{NewUser, Store, UserPatch};
use serde_json::{Value, json};

use super::{JsonResult, object};
use crate::auth::Caller;
use crate::body::{JsonBody, wrong_type};
use crate::error::ApiError;
use crate::extract::{Body, Ids, Params};
use crate::manage::{UserChanges, UserView};
use crate::state::AppState;
use crate::wire;

fn render(v: &UserView) -> serde_json::Map<String, Value> {
    wire::user(&v.user, &v.roles)
}

fn role_ids(b: &JsonBody) -> Result<Option<Vec<RoleId>>, ApiError> {
    let Some(items) = b.array("roles")? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|r| {
            r.get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| wrong_type("roles", "an array of objects each with a numeric id"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn status(b: &JsonBody) -> Result<Option<UserStatus>, ApiError> {
    b.str("status")?
        .map(|s| {
            UserStatus::parse(s).ok_or_else(|| {
                ApiError::BadRequest("status must be active or suspended".to_owned())
            })
        })
        .transpose()
}

fn required<'a>(b: &'a JsonBody, field: &'static str) -> Result<&'a str, ApiError> {
    b.str(field)?
        .ok_or_else(|| ApiError::BadRequest(format!("{field} is required")))
}

pub(super) async fn list<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    let q = ListQuery::parse(&params.list(), wire::USER_FIELDS, wire::USER_PROPS)?;
    let (users, roles) = st.manager.users(&caller.actor()).await?;
    Ok(axum::Json(wire::list(
        users.iter().map(|u| wire::user(u, &roles)).collect(),
        &q,
    )))
}

pub(super) async fn get<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    params: Params,
) -> JsonResult {
    let fields = parse_fields(params.get("fields"), wire::USER_PROPS)?;
    let v = st.manager.user(&caller.actor(), ids.get(0)?).await?;
    Ok(object(wire::project(render(&v), fields.as_deref())))
}

pub(super) async fn create<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Body(b): Body,
) -> JsonResult {
    let new = NewUser {
        username: required(&b, "username")?.to_owned(),
        email: required(&b, "email")?.to_owned(),
        first_name: b.str("firstName")?.unwrap_or_default().to_owned(),
        last_name: b.str("lastName")?.unwrap_or_default().to_owned(),
        role_ids: role_ids(&b)?
            .ok_or_else(|| ApiError::BadRequest("roles is required".to_owned()))?,
        status: status(&b)?.unwrap_or(UserStatus::Active),
        api_only: b.bool("apionly")?.unwrap_or(false),
        note: b.str("note")?.unwrap_or_default().to_owned(),
    };
    let password = b.str("password")?.map(str::to_owned);
    let v = st
        .manager
        .create_user(&caller.actor(), new, password)
        .await?;
    Ok(object(render(&v)))
}

pub(super) async fn update<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    Body(b): Body,
) -> JsonResult {
    let changes = UserChanges {
        patch: UserPatch {
            username: b.str("username")?.map(str::to_owned),
            email: b.str("email")?.map(str::to_owned),
            first_name: b.str("firstName")?.map(str::to_owned),
            last_name: b.str("lastName")?.map(str::to_owned),
            role_ids: role_ids(&b)?,
            status: status(&b)?,
            api_only: b.bool("apionly")?,
            note: b.str("note")?.map(str::to_owned),
            password_hash: None,
        },
        password: b
            .str("password")?
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    };
    let v = st
        .manager
        .update_user(&caller.actor(), ids.get(0)?, changes)
        .await?;
    Ok(object(render(&v)))
}

pub(super) async fn delete<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
) -> JsonResult {
    st.manager.delete_user(&caller.actor(), ids.get(0)?).await?;
    Ok(axum::Json(json!({})))
}
