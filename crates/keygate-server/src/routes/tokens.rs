//! `/setting/admins/{adminId}/apitokens[/{apitokenId}]` and `/setting/admins/apitokens`.

use axum::extract::State;
use keygate_core::model::{TokenStatus, TokenType};
use keygate_core::query::{ListQuery, parse_fields};
use keygate_core::rules;
use keygate_core::token::BearerToken;
use keygate_store::{Store, TokenPatch};
use serde_json::json;

use super::{JsonResult, json_of};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Ids, Params};
use crate::manage::{Page, TokenInput, TokenView};
use crate::state::AppState;
use crate::wire::JsonReply;
use crate::wire::inputs::{ApiTokenInput, ApiTokenLookup};
use crate::wire::{self, ApiTokenObject, ApiTokenSelf};

fn render(v: &TokenView, secret: Option<&str>) -> ApiTokenObject {
    ApiTokenObject::new(&v.token, &v.owner_name, &v.roles, v.access, secret)
}

fn parse_type(t: &str) -> Result<TokenType, ApiError> {
    TokenType::parse(t)
        .ok_or_else(|| ApiError::BadRequest("type must be bearer or lmv1".to_owned()))
}

fn type_param(p: &Params) -> Result<Option<TokenType>, ApiError> {
    p.get("type").map(parse_type).transpose()
}

/// The type of a token to create (see [`rules::new_token_type`]).
fn new_token_type(
    caller: &Caller,
    params: &Params,
    b: &ApiTokenInput,
) -> Result<TokenType, ApiError> {
    let in_body = b.kind.as_deref().map(parse_type).transpose()?;
    Ok(rules::new_token_type(
        in_body,
        type_param(params)?,
        caller.signed_without_query,
    )?)
}

fn status_field(b: &ApiTokenInput) -> Result<Option<TokenStatus>, ApiError> {
    b.status
        .map(|c| {
            TokenStatus::from_code(c).ok_or_else(|| {
                ApiError::BadRequest("status must be 2 (enabled) or 1 (disabled)".to_owned())
            })
        })
        .transpose()
}

/// Refuses changes to what the system generates (see
/// [`rules::system_fields_unchanged`]).
fn check_immutable(
    b: &ApiTokenInput,
    current: Option<&TokenView>,
    admin_id: i64,
    kind: TokenType,
) -> Result<(), ApiError> {
    let sent = rules::SentSystemFields {
        access_key: b.access_key.as_deref(),
        access_id: b.access_id.as_deref(),
        admin_id: b.admin_id,
        kind: b.kind.as_deref(),
    };
    let current = current.map(|c| c.token.access_id.as_str());
    Ok(rules::system_fields_unchanged(
        &sent, current, admin_id, kind,
    )?)
}

pub(super) async fn create<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    params: Params,
    Body(b): Body,
) -> JsonResult {
    let admin = ids.get(0)?;
    let b: ApiTokenInput = b.decode()?;
    let kind = new_token_type(&caller, &params, &b)?;
    check_immutable(&b, None, admin, kind)?;
    let input = TokenInput {
        status: status_field(&b)?.unwrap_or(TokenStatus::Enabled),
        note: b.note.unwrap_or_default(),
    };
    let actor = caller.actor();
    match kind {
        TokenType::Bearer => {
            let (view, secret) = st.manager.create_bearer_token(&actor, admin, input).await?;
            Ok(json_of(&render(&view, Some(secret.expose_secret()))))
        }
        TokenType::Lmv1 => {
            let (view, key) = st.manager.create_lmv1_token(&actor, admin, input).await?;
            Ok(json_of(&render(&view, Some(key.expose_secret()))))
        }
    }
}

pub(super) async fn get<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    params: Params,
) -> JsonResult {
    let fields = parse_fields(params.get("fields"), &wire::TOKEN.names)?;
    let view = st
        .manager
        .token(&caller.actor(), ids.get(0)?, ids.get(1)?)
        .await?;
    Ok(wire::projected(&render(&view, None), fields.as_deref()))
}

async fn list_tokens<S: Store>(
    st: &AppState<S>,
    caller: &Caller,
    owner: Option<i64>,
    params: &Params,
) -> JsonResult {
    let q = ListQuery::parse(&params.list(), &wire::TOKEN.fields, &wire::TOKEN.names)?;
    let kind = type_param(params)?;
    if q.terms.is_empty() && q.sort.field == "id" {
        // In id order without a filter: only the page is read and rendered.
        let page = Page {
            kind,
            descending: q.sort.descending,
            offset: q.offset,
            size: q.size,
        };
        let (total, views) = st.manager.token_page(&caller.actor(), owner, &page).await?;
        let items: Vec<ApiTokenObject> = views.iter().map(|v| render(v, None)).collect();
        return Ok(wire::typed_page(total, &items, &q));
    }
    let views = st.manager.tokens(&caller.actor(), owner, kind).await?;
    Ok(JsonReply::of(&wire::list(
        views
            .iter()
            .map(|v| wire::to_map(&render(v, None)))
            .collect(),
        &q,
    )))
}

pub(super) async fn list<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    params: Params,
) -> JsonResult {
    list_tokens(&st, &caller, Some(ids.get(0)?), &params).await
}

pub(super) async fn list_all<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    list_tokens(&st, &caller, None, &params).await
}

pub(super) async fn update<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
    Body(b): Body,
) -> JsonResult {
    let (admin, id) = (ids.get(0)?, ids.get(1)?);
    let actor = caller.actor();
    let b: ApiTokenInput = b.decode()?;
    let current = st.manager.token(&actor, admin, id).await?;
    check_immutable(&b, Some(&current), admin, current.token.token_type)?;
    let patch = TokenPatch {
        status: status_field(&b)?,
        note: b.note,
    };
    let view = st.manager.update_token(&actor, admin, id, patch).await?;
    Ok(json_of(&render(&view, None)))
}

pub(super) async fn delete<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ids: Ids,
) -> JsonResult {
    st.manager
        .delete_token(&caller.actor(), ids.get(0)?, ids.get(1)?)
        .await?;
    Ok(JsonReply::of(&json!({})))
}

/// `GET /apitokens/self`: the token making the call, with its owner's privileges as
/// of this request.
pub(super) async fn own<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    params: Params,
) -> JsonResult {
    let fields = parse_fields(params.get("fields"), &wire::TOKEN_SELF.names)?;
    let view = st.manager.own_token(&caller.actor()).await?;
    let own = ApiTokenSelf {
        token: render(&view, None),
        privileges: caller.principal.grants.list(),
    };
    Ok(wire::projected(&own, fields.as_deref()))
}

/// `POST /apitokens/lookup`: the token with the value in the body (`{"token": ...}`),
/// which never travels in a URL. A pasted `Authorization` header value is accepted.
pub(super) async fn lookup<S: Store>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Body(b): Body,
) -> JsonResult {
    let ApiTokenLookup { token } = b.decode()?;
    let value = token.as_str();
    let value = value
        .strip_prefix("Authorization:")
        .map_or(value, str::trim_start);
    let value = value.strip_prefix("Bearer ").unwrap_or(value);
    let token =
        BearerToken::parse(value).map_err(|e| ApiError::BadRequest(format!("token: {e}")))?;
    let view = st.manager.token_by_value(&caller.actor(), &token).await?;
    Ok(json_of(&render(&view, None)))
}
