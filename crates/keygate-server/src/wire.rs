//! The JSON shapes of REST API v3 objects, and list responses.
//!
//! Every documented property is always present. List queries (filter, sort, fields)
//! are evaluated on these JSON objects, so a client filters on exactly what it sees.

use keygate_core::model::{ApiToken, Portal, Role, User};
use keygate_core::policy::Access;
use keygate_core::query::{FieldKind, FieldSpec, FieldValue, ListQuery, Record};
use keygate_core::token;
use keygate_store::{AuditEntry, RoleWithCount};
use serde_json::{Map, Value, json};

/// A JSON object that list queries can evaluate.
pub struct JsonRecord(pub Map<String, Value>);

impl Record for JsonRecord {
    fn value(&self, field: &str) -> Option<FieldValue<'_>> {
        match self.0.get(field)? {
            Value::Number(n) => n.as_i64().map(FieldValue::Int),
            Value::String(s) => Some(FieldValue::Text(s)),
            Value::Bool(true) => Some(FieldValue::Text("true")),
            Value::Bool(false) => Some(FieldValue::Text("false")),
            _ => None,
        }
    }
}

fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

const fn int(name: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        kind: FieldKind::Int,
    }
}
const fn text(name: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        kind: FieldKind::Text,
    }
}

/// Filterable and sortable fields of `APIToken`.
pub const TOKEN_FIELDS: &[FieldSpec] = &[
    int("id"),
    int("adminId"),
    text("adminName"),
    text("type"),
    text("note"),
    int("status"),
    int("createdOn"),
    text("createdBy"),
    int("lastUsedOn"),
    text("accessId"),
];
/// Properties of `APIToken`.
pub const TOKEN_PROPS: &[&str] = &[
    "id",
    "adminId",
    "adminName",
    "type",
    "accessId",
    "accessKey",
    "note",
    "status",
    "createdOn",
    "createdBy",
    "lastUsedOn",
    "lastAuthIp",
    "roles",
    "userPermission",
];

/// Properties of `APITokenSelf`: those of `APIToken`, and `privileges`.
pub static TOKEN_SELF_PROPS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| TOKEN_PROPS.iter().copied().chain(["privileges"]).collect());

/// Filterable and sortable fields of users.
pub const USER_FIELDS: &[FieldSpec] = &[
    int("id"),
    text("username"),
    text("email"),
    text("firstName"),
    text("lastName"),
    text("status"),
    text("apionly"),
    text("note"),
    text("createdBy"),
    int("lastLoginOn"),
];
/// Properties of users.
pub const USER_PROPS: &[&str] = &[
    "id",
    "username",
    "email",
    "firstName",
    "lastName",
    "roles",
    "status",
    "apionly",
    "note",
    "createdBy",
    "lastLoginOn",
];

/// Filterable and sortable fields of roles.
pub const ROLE_FIELDS: &[FieldSpec] = &[
    int("id"),
    text("name"),
    text("description"),
    int("associatedUserCount"),
];
/// Properties of roles.
pub const ROLE_PROPS: &[&str] = &[
    "id",
    "name",
    "description",
    "privileges",
    "associatedUserCount",
];
/// Properties of portal settings.
pub const PORTAL_PROPS: &[&str] = &[
    "companyName",
    "tracesEnabled",
    "maxTokensPerUser",
    "lmv1ClockSkewSeconds",
    "lmv1ReplayProtection",
    "tokenPrefix",
];

/// An `APIToken`. `secret` is the full token, given only in the creation response.
pub fn token(
    t: &ApiToken,
    owner: &str,
    roles: &[String],
    access: Access,
    secret: Option<&str>,
) -> Map<String, Value> {
    into_map(json!({
        "id": t.id,
        "adminId": t.user_id,
        "adminName": owner,
        "type": t.token_type.as_str(),
        "accessId": t.access_id,
        "accessKey": secret.unwrap_or(""),
        "note": t.note,
        "status": t.status.code(),
        "createdOn": t.created_on,
        "createdBy": t.created_by,
        "lastUsedOn": t.last_used_on,
        "lastAuthIp": t.last_auth_ip,
        "roles": roles,
        "userPermission": access.as_str(),
    }))
}

/// A role as `/setting/roles` returns it.
pub fn role(r: &Role, user_count: i64) -> Map<String, Value> {
    let privileges: Vec<Value> = r
        .privileges
        .iter()
        .map(|p| json!({"objectType": p.object_type, "objectId": p.object_id, "operation": p.operation}))
        .collect();
    into_map(json!({
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "privileges": privileges,
        "associatedUserCount": user_count,
    }))
}

/// A user, with full role objects.
pub fn user(u: &User, roles: &[RoleWithCount]) -> Map<String, Value> {
    let role_objs: Vec<Value> = u
        .role_ids
        .iter()
        .filter_map(|id| roles.iter().find(|r| r.role.id == *id))
        .map(|r| Value::Object(role(&r.role, r.user_count)))
        .collect();
    into_map(json!({
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "firstName": u.first_name,
        "lastName": u.last_name,
        "roles": role_objs,
        "status": u.status.as_str(),
        "apionly": u.api_only,
        "note": u.note,
        "createdBy": u.created_by,
        "lastLoginOn": u.last_login_on,
    }))
}

/// Portal settings.
pub fn portal(p: &Portal) -> Map<String, Value> {
    into_map(json!({
        "companyName": p.company_name,
        "tracesEnabled": p.traces_enabled,
        "maxTokensPerUser": p.max_tokens_per_user,
        "lmv1ClockSkewSeconds": p.lmv1_clock_skew_seconds,
        "lmv1ReplayProtection": p.lmv1_replay_protection,
        "tokenPrefix": token::PREFIX,
    }))
}

/// Filterable and sortable fields of an access-log entry.
pub const AUDIT_FIELDS: &[FieldSpec] = &[
    int("id"),
    int("happenedOn"),
    text("username"),
    int("userId"),
    text("ip"),
    text("action"),
    text("targetType"),
    int("targetId"),
    text("target"),
    text("outcome"),
    text("detail"),
    text("description"),
    int("tokenId"),
    text("token"),
    text("tokenCreatedBy"),
];
/// Properties of an access-log entry.
pub const AUDIT_PROPS: &[&str] = &[
    "id",
    "happenedOn",
    "happenedOnLocal",
    "username",
    "userId",
    "ip",
    "action",
    "targetType",
    "targetId",
    "target",
    "outcome",
    "detail",
    "description",
    "tokenId",
    "token",
    "tokenCreatedBy",
];

/// One access-log (audit) entry: LogicMonitor's `AccessLogItem` properties plus the
/// structured parts keygate records.
pub fn audit_entry(e: &AuditEntry) -> Map<String, Value> {
    let r = &e.record;
    let outcome = if r.success { "success" } else { "failure" };
    let mut description = format!("{} {}", r.action.as_str(), r.target_type);
    if !r.target.is_empty() {
        description.push_str(&format!(" \"{}\"", r.target));
    }
    if let Some(id) = r.target_id {
        description.push_str(&format!(" (id {id})"));
    }
    description.push_str(&format!(": {outcome}"));
    if !r.detail.is_empty() {
        description.push_str(&format!("; {}", r.detail));
    }
    if let Some(v) = &r.via {
        description.push_str(&format!("; with token {} ({})", v.token_id, v.token));
        if !v.created_by.is_empty() {
            description.push_str(&format!(", created by {}", v.created_by));
        }
    }
    into_map(json!({
        "id": e.id,
        "happenedOn": r.at,
        "happenedOnLocal": keygate_core::date::utc(r.at),
        "username": r.username,
        "userId": r.user_id,
        "ip": r.ip.as_deref().unwrap_or(""),
        "action": r.action.as_str(),
        "targetType": r.target_type,
        "targetId": r.target_id,
        "target": r.target,
        "outcome": outcome,
        "detail": r.detail,
        "description": description,
        "tokenId": r.via.as_ref().map(|v| v.token_id),
        "token": r.via.as_ref().map_or("", |v| v.token.as_str()),
        "tokenCreatedBy": r.via.as_ref().map_or("", |v| v.created_by.as_str()),
    }))
}

/// Keeps only the requested properties.
pub fn project(mut obj: Map<String, Value>, fields: Option<&[String]>) -> Map<String, Value> {
    if let Some(fields) = fields {
        obj.retain(|k, _| fields.iter().any(|f| f == k));
    }
    obj
}

/// Filters, sorts, pages and projects a list into `{"total", "searchId", "items"}`.
pub fn list(items: Vec<Map<String, Value>>, q: &ListQuery) -> Value {
    let (total, page) = q.apply(items.into_iter().map(JsonRecord).collect());
    let items: Vec<Value> = page
        .into_iter()
        .map(|r| Value::Object(project(r.0, q.fields.as_deref())))
        .collect();
    json!({"total": total, "searchId": null, "items": items})
}
