//! The request bodies REST API v3 reads, each typed once: deserialized by
//! [`crate::body::JsonBody::decode`] (which first checks each property's JSON type
//! against the schema derived from the same type, to name the field at fault) and
//! described in the OpenAPI document by that schema. Unknown properties are ignored:
//! SDKs send read-only properties back. A `null` is the same as leaving it out.
//!
//! Bounds that `keygate_core::validate` enforces are put into the schemas from the
//! same constants (the `schema_with` functions at the end), never copied as numbers.

use keygate_core::validate as v;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, Type};
use utoipa::openapi::{Array, Ref};

use super::objects::Privilege;

/// What a token creation or change may carry.
///
/// Only note and status can be set; accessId, accessKey and adminId are system
/// generated (sent back unchanged they are accepted). type may be given when creating
/// (as ?type= may; the two must agree), and with an LMv1 signature, which does not
/// cover the query string, a bearer token's type must be given here; afterwards it
/// cannot change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = APITokenInput)]
pub struct ApiTokenInput {
    /// Free text
    #[schema(schema_with = note)]
    pub note: Option<String>,
    /// 2 enabled, 1 disabled
    #[schema(schema_with = token_status)]
    pub status: Option<i64>,
    /// bearer or lmv1
    #[serde(rename = "type")]
    #[schema(schema_with = token_type)]
    pub kind: Option<String>,
    /// System generated: accepted only unchanged.
    #[schema(ignore)]
    pub access_id: Option<String>,
    /// System generated: accepted only empty.
    #[schema(ignore)]
    pub access_key: Option<String>,
    /// System generated: accepted only unchanged (the web UI names the owner here).
    #[schema(ignore)]
    pub admin_id: Option<i64>,
}

/// The bearer token to find (or an Authorization header value holding one).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = APITokenLookup)]
pub struct ApiTokenLookup {
    /// The token's value, which never travels in a URL
    #[schema(max_length = 1024)]
    pub token: String,
}

/// A role named by its id in a user body (SDKs send whole role objects: the rest is
/// ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleRef {
    /// Role id
    pub id: i64,
}

/// A user's properties as a creation or change sends them. Creation needs
/// [`ADMIN_REQUIRED`] (the document calls that form `AdminInput`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminPatch {
    /// Letters and digits of one script and . _ - @ +; stored in NFKC; unique whatever the case
    #[schema(schema_with = username)]
    pub username: Option<String>,
    /// Email address
    #[schema(schema_with = email)]
    pub email: Option<String>,
    /// Given name
    #[schema(schema_with = person_name)]
    pub first_name: Option<String>,
    /// Family name
    #[schema(schema_with = person_name)]
    pub last_name: Option<String>,
    /// The user's roles
    #[schema(schema_with = role_refs)]
    pub roles: Option<Vec<RoleRef>>,
    /// active or suspended
    #[schema(schema_with = user_status)]
    pub status: Option<String>,
    /// May not sign in to the UI
    #[serde(rename = "apionly")]
    pub api_only: Option<bool>,
    /// Free text
    #[schema(schema_with = note)]
    pub note: Option<String>,
    /// A new password (never returned)
    #[schema(schema_with = password)]
    pub password: Option<String>,
}

/// What creating a user needs.
pub const ADMIN_REQUIRED: &[&str] = &["username", "email", "roles"];

/// A role's properties as a creation or change sends them. Creation needs
/// [`ROLE_REQUIRED`] (the document calls that form `RoleInput`).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RolePatch {
    /// Unique name
    #[schema(schema_with = role_name)]
    pub name: Option<String>,
    /// Free text
    #[schema(schema_with = role_description)]
    pub description: Option<String>,
    /// What the role grants
    #[schema(schema_with = privileges)]
    pub privileges: Option<Vec<Privilege>>,
}

/// What creating a role needs.
pub const ROLE_REQUIRED: &[&str] = &["name"];

/// A change to portal settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalPatch {
    /// Display name
    #[schema(schema_with = company_name)]
    pub company_name: Option<String>,
    /// Traces (APM): bearer tokens are created and accepted only while on
    pub traces_enabled: Option<bool>,
    /// Most tokens one user may hold
    #[schema(schema_with = max_tokens)]
    pub max_tokens_per_user: Option<i64>,
    /// LMv1 timestamp window, either side of server time
    #[serde(rename = "lmv1ClockSkewSeconds")]
    #[schema(minimum = 1, maximum = 86400)]
    pub lmv1_clock_skew_seconds: Option<i64>,
    /// Refuse a repeated LMv1 signature within the window
    #[serde(rename = "lmv1ReplayProtection")]
    pub lmv1_replay_protection: Option<bool>,
    /// Read-only: accepted only unchanged.
    #[schema(ignore)]
    pub token_prefix: Option<String>,
}

fn text(min: usize, max: usize, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
        .description(Some(description))
}

fn note() -> Object {
    text(0, v::MAX_NOTE, "Free text").build()
}

fn token_status() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .enum_values(Some([1, 2]))
        .description(Some("2 enabled, 1 disabled"))
        .build()
}

fn token_type() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["bearer", "lmv1"]))
        .description(Some("bearer or lmv1"))
        .build()
}

fn username() -> Object {
    // Exact for ASCII; beyond it, letters of one script (NFKC, UTS #39), which a
    // regular expression without Unicode classes cannot say.
    text(
        1,
        v::MAX_USERNAME,
        "Letters and digits of one script and . _ - @ +; stored in NFKC; unique whatever the case",
    )
    .pattern(Some("^[A-Za-z0-9._@+\\u00c0-\\uffff-]+$"))
    .build()
}

fn email() -> Object {
    text(0, v::MAX_EMAIL, "Email address")
        .pattern(Some("^[^@\\s]+@[^@\\s]+$"))
        .build()
}

fn person_name() -> Object {
    text(0, v::MAX_NAME, "A name").build()
}

fn role_refs() -> Array {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("RoleRef"))
        .min_items(Some(1))
        .max_items(Some(v::MAX_ROLES))
        .description(Some("The user's roles"))
        .build()
}

fn user_status() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["active", "suspended"]))
        .description(Some("active or suspended"))
        .build()
}

fn password() -> Object {
    text(
        keygate_core::password::MIN_LEN,
        keygate_core::password::MAX_LEN,
        "A new password (never returned)",
    )
    .write_only(true)
    .build()
}

fn role_name() -> Object {
    text(1, v::MAX_NAME, "Unique name").build()
}

fn role_description() -> Object {
    text(0, v::MAX_DESCRIPTION, "Free text").build()
}

fn privileges() -> Array {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("Privilege"))
        .max_items(Some(v::MAX_PRIVILEGES))
        .description(Some("What the role grants"))
        .build()
}

fn company_name() -> Object {
    text(1, v::MAX_NAME, "Display name").build()
}

fn max_tokens() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(v::MAX_TOKENS_PER_USER_LIMIT))
        .description(Some("Most tokens one user may hold"))
        .build()
}
