//! The objects REST API v3 answers with, each typed once: serialized for responses
//! and described in the OpenAPI document by the schema derived from the same type.
//! Every property is always present (a `fields` projection may leave some out).

use keygate_core::model::{ApiToken, Portal, Role, User};
use keygate_core::policy::Access;
use keygate_core::token;
use keygate_store::{AuditEntry, RoleWithCount};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An API token as served.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = APIToken)]
pub struct ApiTokenObject {
    /// Token id
    pub id: i64,
    /// Owner's user id
    pub admin_id: i64,
    /// Owner's username
    pub admin_name: String,
    /// bearer or lmv1
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Masked bearer token, or the LMv1 access id
    pub access_id: String,
    /// The secret: in the creation response only, empty ever after
    pub access_key: String,
    /// Free text, at most 1,024 characters
    pub note: String,
    /// 2 enabled, 1 disabled
    pub status: i64,
    /// Epoch seconds
    pub created_on: i64,
    /// Username of the creator
    pub created_by: String,
    /// Epoch seconds of the last successful use, 0 for never
    pub last_used_on: i64,
    /// Client address of the last successful use
    pub last_auth_ip: String,
    /// Names of the owner's roles
    pub roles: Vec<String>,
    /// What the caller may do to it: read or write
    pub user_permission: &'static str,
}

impl ApiTokenObject {
    /// A token as served. `secret` is the full token, given only when it is created.
    pub fn new(
        t: &ApiToken,
        owner: &str,
        roles: &[String],
        access: Access,
        secret: Option<&str>,
    ) -> Self {
        Self {
            id: t.id,
            admin_id: t.user_id,
            admin_name: owner.to_owned(),
            kind: t.token_type.as_str(),
            access_id: t.access_id.clone(),
            access_key: secret.unwrap_or_default().to_owned(),
            note: t.note.clone(),
            status: t.status.code(),
            created_on: t.created_on,
            created_by: t.created_by.clone(),
            last_used_on: t.last_used_on,
            last_auth_ip: t.last_auth_ip.clone(),
            roles: roles.to_vec(),
            user_permission: access.as_str(),
        }
    }
}

/// The token making the call, with its owner's privileges as of this request.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = APITokenSelf)]
pub struct ApiTokenSelf {
    /// The token.
    #[serde(flatten)]
    pub token: ApiTokenObject,
    /// The owner's privileges as of this request (setting apitoken write, dataingestion * write, ...)
    pub privileges: Vec<&'static str>,
}

/// What a role grants: one privilege. Read from role bodies and served in roles.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Privilege {
    /// setting, dataingestion, ...
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub object_type: String,
    /// What within the type, or *
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub object_id: String,
    /// read or write
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub operation: String,
}

impl From<&keygate_core::model::Privilege> for Privilege {
    fn from(p: &keygate_core::model::Privilege) -> Self {
        Self {
            object_type: p.object_type.clone(),
            object_id: p.object_id.clone(),
            operation: p.operation.clone(),
        }
    }
}

impl From<Privilege> for keygate_core::model::Privilege {
    fn from(p: Privilege) -> Self {
        Self {
            object_type: p.object_type,
            object_id: p.object_id,
            operation: p.operation,
        }
    }
}

/// A role as served.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Role)]
pub struct RoleObject {
    /// Role id
    pub id: i64,
    /// Unique name
    pub name: String,
    /// Free text
    pub description: String,
    /// What the role grants
    pub privileges: Vec<Privilege>,
    /// How many users hold it
    pub associated_user_count: i64,
}

impl RoleObject {
    /// A role and how many users hold it.
    pub fn new(r: &Role, user_count: i64) -> Self {
        Self {
            id: r.id,
            name: r.name.clone(),
            description: r.description.clone(),
            privileges: r.privileges.iter().map(Privilege::from).collect(),
            associated_user_count: user_count,
        }
    }
}

/// A user ("admin" in the API) as served.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Admin {
    /// User id
    pub id: i64,
    /// Sign-in name
    pub username: String,
    /// Email address
    pub email: String,
    /// Given name
    pub first_name: String,
    /// Family name
    pub last_name: String,
    /// The user's roles
    pub roles: Vec<RoleObject>,
    /// active or suspended
    pub status: &'static str,
    /// May not sign in to the UI
    #[serde(rename = "apionly")]
    pub api_only: bool,
    /// Free text
    pub note: String,
    /// Username of the creator
    pub created_by: String,
    /// Epoch seconds of the last UI sign-in, 0 for never
    pub last_login_on: i64,
}

impl Admin {
    /// A user, with full role objects (`roles` holds at least the user's).
    pub fn new(u: &User, roles: &[RoleWithCount]) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            roles: u
                .role_ids
                .iter()
                .filter_map(|id| roles.iter().find(|r| r.role.id == *id))
                .map(|r| RoleObject::new(&r.role, r.user_count))
                .collect(),
            status: u.status.as_str(),
            api_only: u.api_only,
            note: u.note.clone(),
            created_by: u.created_by.clone(),
            last_login_on: u.last_login_on,
        }
    }
}

/// Portal settings as served.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Portal)]
pub struct PortalObject {
    /// Display name
    pub company_name: String,
    /// Traces (APM): bearer tokens are created and accepted only while on
    pub traces_enabled: bool,
    /// Most tokens one user may hold
    pub max_tokens_per_user: i64,
    /// LMv1 timestamp window, either side of server time
    #[serde(rename = "lmv1ClockSkewSeconds")]
    pub lmv1_clock_skew_seconds: i64,
    /// Refuse a repeated LMv1 signature within the window
    #[serde(rename = "lmv1ReplayProtection")]
    pub lmv1_replay_protection: bool,
    /// Prefix of every bearer token (read-only)
    pub token_prefix: &'static str,
}

impl From<&Portal> for PortalObject {
    fn from(p: &Portal) -> Self {
        Self {
            company_name: p.company_name.clone(),
            traces_enabled: p.traces_enabled,
            max_tokens_per_user: p.max_tokens_per_user,
            lmv1_clock_skew_seconds: p.lmv1_clock_skew_seconds,
            lmv1_replay_protection: p.lmv1_replay_protection,
            token_prefix: token::PREFIX,
        }
    }
}

/// One access-log (audit) entry: LogicMonitor's `AccessLogItem` properties plus the
/// structured parts keygate records.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogItem {
    /// Entry id, increasing with time
    pub id: i64,
    /// Epoch seconds
    pub happened_on: i64,
    /// The same time, readable (UTC)
    pub happened_on_local: String,
    /// Who acted (keygate-cli for the admin CLI)
    pub username: String,
    /// Their user id, if any
    pub user_id: Option<i64>,
    /// Client address, empty for the admin CLI
    pub ip: String,
    /// What was done, such as apitoken.disable
    pub action: &'static str,
    /// apitoken, user, role or portal
    pub target_type: String,
    /// The target's id, if it has one
    pub target_id: Option<i64>,
    /// The target's name or masked token
    pub target: String,
    /// success or failure
    pub outcome: &'static str,
    /// What changed (names of properties, never secrets)
    pub detail: String,
    /// The whole entry in words
    pub description: String,
    /// The API token the change was made with (null: a UI session, the admin CLI, a sign-in)
    pub token_id: Option<i64>,
    /// That token's masked value or LMv1 access id
    pub token: String,
    /// Who created that token, when it was someone other than its owner (empty otherwise)
    pub token_created_by: String,
}

impl From<&AuditEntry> for AccessLogItem {
    fn from(e: &AuditEntry) -> Self {
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
        Self {
            id: e.id,
            happened_on: r.at,
            happened_on_local: keygate_core::date::utc(r.at),
            username: r.username.clone(),
            user_id: r.user_id,
            ip: r.ip.clone().unwrap_or_default(),
            action: r.action.as_str(),
            target_type: r.target_type.clone(),
            target_id: r.target_id,
            target: r.target.clone(),
            outcome,
            detail: r.detail.clone(),
            description,
            token_id: r.via.as_ref().map(|v| v.token_id),
            token: r.via.as_ref().map(|v| v.token.clone()).unwrap_or_default(),
            token_created_by: r
                .via
                .as_ref()
                .map(|v| v.created_by.clone())
                .unwrap_or_default(),
        }
    }
}

/// The LogicMonitor error shape every refusal has.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong, in words
    pub error_message: String,
    /// The HTTP status
    pub error_code: u16,
    /// More about an authentication failure (which check failed), or null
    #[schema(value_type = Option<Object>)]
    pub error_detail: serde_json::Value,
}

/// keygate's verdict on an LMv1 request a service asked it to check (a keygate
/// extension). The call itself succeeded; `allowed` says whether the request may pass.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lmv1Verdict {
    /// Whether the signature matches and the token and its owner may authenticate
    pub allowed: bool,
    /// The owner's user id (allowed only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// The owner's username (allowed only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The token's id (allowed only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<i64>,
    /// lmv1 (allowed only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// The owner's privileges as of now, as roles spell them (allowed only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Vec<&'static str>>,
    /// The status keygate would answer the request with (refused only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    /// Why it was refused, as keygate's API words it (refused only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// More about the refusal (the server time for a clock error), or null
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error_detail: Option<serde_json::Value>,
    /// Seconds to wait before retrying (throttled refusals only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}
