//! `/setting/admins` and `/setting/admins/{adminId}`.

use axum::extract::State;
use keygate_core::model::{RoleId, UserStatus};
use keygate_core::query::{ListQuery, parse_fields};
use keygate_store::{NewUser, Store, UserPatch};
use serde_json::json;

use super::{JsonResult, json_of};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Ids, Params};
use crate::manage::{UserChanges, UserView};
use crate::state::AppState;
use crate::wire::JsonReply;
use crate::wire::{self, Admin, inputs};

fn render(v: &UserView) -> Admin {
    Admin::new(&v.user, &v.roles)
}

fn role_ids(sent: Option<Vec<inputs::RoleRef>>) -> Option<Vec<RoleId>> {
    sent.map(|rs| rs.into_iter().map(|r| r.id).collect())
}

fn status(sent: Option<&str>) -> Result<Option<UserStatus>, ApiError> {
    sent.map(|s| {
        UserStatus::parse(s)
            .ok_or_else(|| ApiError::BadRequest("status must be active or suspended".to_owned()))
    })
    .transpose()
}

pub(super) async fn list<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    let q = ListQuery::parse(&params.list(), &wire::USER.fields, &wire::USER.names)?;
    let (users, roles) = st.manager.users(&caller.actor()).await?;
    Ok(JsonReply::of(&wire::list(
        users
            .iter()
            .map(|u| wire::to_map(&Admin::new(u, &roles)))
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
    let fields = parse_fields(params.get("fields"), &wire::USER.names)?;
    let v = st.manager.user(&caller.actor(), ids.get(0)?).await?;
    Ok(wire::projected(&render(&v), fields.as_deref()))
}

pub(super) async fn create<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Body(b): Body,
) -> JsonResult {
    b.require(inputs::ADMIN_REQUIRED)?;
    let b: inputs::AdminPatch = b.decode()?;
    let new = NewUser {
        status: status(b.status.as_deref())?.unwrap_or(UserStatus::Active),
        username: b.username.unwrap_or_default(),
        email: b.email.unwrap_or_default(),
        first_name: b.first_name.unwrap_or_default(),
        last_name: b.last_name.unwrap_or_default(),
        role_ids: role_ids(b.roles).unwrap_or_default(),
        api_only: b.api_only.unwrap_or(false),
        note: b.note.unwrap_or_default(),
    };
    let password = b.password;
    let v = st
        .manager
        .create_user(&caller.actor(), new, password)
        .await?;
    Ok(json_of(&render(&v)))
}

pub(super) async fn update<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    Body(b): Body,
) -> JsonResult {
    let b: inputs::AdminPatch = b.decode()?;
    let changes = UserChanges {
        patch: UserPatch {
            status: status(b.status.as_deref())?,
            username: b.username,
            email: b.email,
            first_name: b.first_name,
            last_name: b.last_name,
            role_ids: role_ids(b.roles),
            api_only: b.api_only,
            note: b.note,
            password_hash: None,
        },
        password: b.password.filter(|p| !p.is_empty()),
    };
    let v = st
        .manager
        .update_user(&caller.actor(), ids.get(0)?, changes)
        .await?;
    Ok(json_of(&render(&v)))
}

pub(super) async fn delete<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
) -> JsonResult {
    st.manager.delete_user(&caller.actor(), ids.get(0)?).await?;
    Ok(JsonReply::of(&json!({})))
}
