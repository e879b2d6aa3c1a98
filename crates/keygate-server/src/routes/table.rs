//! Every REST operation keygate serves, in one table. The router is built from this
//! table and so is the OpenAPI document ([`crate::openapi`]): an operation cannot be
//! served without being described, or described without being served.

use axum::handler::Handler as _;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use keygate_store::Store;

use super::{accesslogs, data, index, portal, roles, tokens, users};
use crate::auth::{Authenticate, BASE_PATH};
use crate::state::AppState;

/// Names every operation; [`handler`] matches on it exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpId {
    /// GET /setting/admins
    ListUsers,
    /// POST /setting/admins
    CreateUser,
    /// GET /setting/admins/{adminId}
    GetUser,
    /// PUT /setting/admins/{adminId}
    PutUser,
    /// PATCH /setting/admins/{adminId}
    PatchUser,
    /// DELETE /setting/admins/{adminId}
    DeleteUser,
    /// GET /setting/admins/apitokens
    ListAllTokens,
    /// GET /setting/admins/{adminId}/apitokens
    ListTokens,
    /// POST /setting/admins/{adminId}/apitokens
    CreateToken,
    /// GET /setting/admins/{adminId}/apitokens/{apitokenId}
    GetToken,
    /// PUT /setting/admins/{adminId}/apitokens/{apitokenId}
    PutToken,
    /// PATCH /setting/admins/{adminId}/apitokens/{apitokenId}
    PatchToken,
    /// DELETE /setting/admins/{adminId}/apitokens/{apitokenId}
    DeleteToken,
    /// GET /apitokens/self
    OwnToken,
    /// POST /apitokens/lookup
    LookUpToken,
    /// GET /setting/roles
    ListRoles,
    /// POST /setting/roles
    CreateRole,
    /// GET /setting/roles/{roleId}
    GetRole,
    /// PUT /setting/roles/{roleId}
    PutRole,
    /// PATCH /setting/roles/{roleId}
    PatchRole,
    /// DELETE /setting/roles/{roleId}
    DeleteRole,
    /// GET /setting/accesslogs
    ListAccessLogs,
    /// GET /setting/accesslogs/{id}
    GetAccessLog,
    /// GET /setting/portal
    GetPortal,
    /// PUT /setting/portal
    PutPortal,
    /// PATCH /setting/portal
    PatchPortal,
    /// GET /keygate/index
    FollowIndex,
    /// POST /keygate/lmv1/check
    CheckLmv1,
    /// GET /keygate/data/resources
    ListDataResources,
    /// GET /keygate/data/resources/{resourceId}
    GetDataResource,
    /// GET /keygate/data/datapoints/{dataPointId}/values
    GetDataSeries,
    /// GET /keygate/data/logs
    ListDataLogs,
    /// GET /keygate/data/spans
    ListDataSpans,
}

/// What an operation takes and returns, for its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A list query (`filter`, `sort`, `fields`, `size`, `offset`) returning a page of
    /// the named schema.
    List(&'static str),
    /// `fields` only, returning one object.
    One(&'static str),
    /// A JSON body (the first schema) returning one object (the second).
    Write(&'static str, &'static str),
    /// No body, returning `{}`.
    Delete,
    /// `after` and `waitMillis`, returning a binary token-index frame.
    IndexFrame,
    /// The body an LMv1 signature covers (raw), with the request it signed in
    /// `X-Keygate-*` headers, returning the named verdict schema.
    SignedBody(&'static str),
    /// A read of ingested data: the query parameters named, returning a page of the
    /// schema (`page`) or one object.
    Data {
        /// The schema returned (or of each item).
        returns: &'static str,
        /// A page (`total`, `items`) rather than one object.
        page: bool,
        /// The query parameters it takes.
        params: &'static [DataParam],
    },
}

/// A query parameter of the ingested-data reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataParam {
    /// `size`: items on a page (1–1,000, default 50) or values in a series (1–10,000,
    /// default 1,000).
    Size,
    /// `offset`: items to skip.
    Offset,
    /// `from`: epoch milliseconds, inclusive.
    From,
    /// `to`: epoch milliseconds, inclusive.
    To,
    /// `q`: text the log message contains.
    Text,
    /// `resourceId`: only this resource's.
    Resource,
    /// `traceId`: only this trace's spans.
    Trace,
    /// `service`: only this service's spans.
    Service,
}

impl DataParam {
    /// Name, schema and description, for the OpenAPI document.
    pub fn describe(self) -> (&'static str, serde_json::Value, &'static str) {
        use serde_json::json;
        match self {
            Self::Size => (
                "size",
                json!({"type": "integer", "minimum": 1, "maximum": 10_000}),
                "How many (pages: at most 1,000, default 50; a series: at most 10,000, default 1,000)",
            ),
            Self::Offset => (
                "offset",
                json!({"type": "integer", "minimum": 0}),
                "Items to skip",
            ),
            Self::From => (
                "from",
                json!({"type": "integer", "format": "int64"}),
                "From this time (epoch milliseconds, inclusive; default: the start)",
            ),
            Self::To => (
                "to",
                json!({"type": "integer", "format": "int64"}),
                "To this time (epoch milliseconds, inclusive; default: the end)",
            ),
            Self::Text => (
                "q",
                json!({"type": "string", "maxLength": 256}),
                "Only lines whose message contains this text (case-insensitive)",
            ),
            Self::Resource => (
                "resourceId",
                json!({"type": "integer", "format": "int64", "minimum": 1}),
                "Only this resource's lines",
            ),
            Self::Trace => (
                "traceId",
                json!({"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}),
                "Only this trace's spans (then oldest first)",
            ),
            Self::Service => (
                "service",
                json!({"type": "string", "maxLength": 256}),
                "Only this service's spans (service.name)",
            ),
        }
    }
}

/// One operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// Which one.
    pub id: OpId,
    /// HTTP method, lower case (as OpenAPI spells it).
    pub method: &'static str,
    /// Path under `/santaba/rest`, with `{param}` segments.
    pub path: &'static str,
    /// OpenAPI `operationId`.
    pub operation_id: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// OpenAPI tag.
    pub tag: &'static str,
    /// Takes `?type=bearer|lmv1`.
    pub type_param: bool,
    /// Input and output.
    pub shape: Shape,
}

const fn op(
    id: OpId,
    method: &'static str,
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    tag: &'static str,
    shape: Shape,
) -> Operation {
    Operation {
        id,
        method,
        path,
        operation_id,
        summary,
        tag,
        type_param: false,
        shape,
    }
}

const fn typed(mut o: Operation) -> Operation {
    o.type_param = true;
    o
}

const ADMINS: &str = "/setting/admins";
const ADMIN: &str = "/setting/admins/{adminId}";
const ALL_TOKENS: &str = "/setting/admins/apitokens";
const TOKENS: &str = "/setting/admins/{adminId}/apitokens";
const TOKEN: &str = "/setting/admins/{adminId}/apitokens/{apitokenId}";
const OWN_TOKEN: &str = "/apitokens/self";
const LOOKUP: &str = "/apitokens/lookup";
const ROLES: &str = "/setting/roles";
const ROLE: &str = "/setting/roles/{roleId}";
const LOGS: &str = "/setting/accesslogs";
const LOG: &str = "/setting/accesslogs/{id}";
const PORTAL: &str = "/setting/portal";
const INDEX: &str = "/keygate/index";
const LMV1_CHECK: &str = "/keygate/lmv1/check";
const DATA_RESOURCES: &str = "/keygate/data/resources";
const DATA_RESOURCE: &str = "/keygate/data/resources/{resourceId}";
const DATA_SERIES: &str = "/keygate/data/datapoints/{dataPointId}/values";
const DATA_LOGS: &str = "/keygate/data/logs";
const DATA_SPANS: &str = "/keygate/data/spans";

/// The REST API, in the order the document lists it.
pub const OPERATIONS: &[Operation] = &[
    op(
        OpId::ListUsers,
        "get",
        ADMINS,
        "getAdminList",
        "List users",
        "Users",
        Shape::List("Admin"),
    ),
    op(
        OpId::CreateUser,
        "post",
        ADMINS,
        "addAdmin",
        "Create a user",
        "Users",
        Shape::Write("AdminInput", "Admin"),
    ),
    op(
        OpId::GetUser,
        "get",
        ADMIN,
        "getAdminById",
        "Get a user",
        "Users",
        Shape::One("Admin"),
    ),
    op(
        OpId::PutUser,
        "put",
        ADMIN,
        "updateAdminById",
        "Change a user (only the properties sent)",
        "Users",
        Shape::Write("AdminPatch", "Admin"),
    ),
    op(
        OpId::PatchUser,
        "patch",
        ADMIN,
        "patchAdminById",
        "Change a user",
        "Users",
        Shape::Write("AdminPatch", "Admin"),
    ),
    op(
        OpId::DeleteUser,
        "delete",
        ADMIN,
        "deleteAdminById",
        "Delete a user and every token it owns",
        "Users",
        Shape::Delete,
    ),
    typed(op(
        OpId::ListAllTokens,
        "get",
        ALL_TOKENS,
        "getApiTokenList",
        "List the API tokens of every user the caller may see",
        "API tokens",
        Shape::List("APIToken"),
    )),
    typed(op(
        OpId::ListTokens,
        "get",
        TOKENS,
        "getApiTokenListByAdminId",
        "List a user's API tokens",
        "API tokens",
        Shape::List("APIToken"),
    )),
    typed(op(
        OpId::CreateToken,
        "post",
        TOKENS,
        "addApiTokenByAdminId",
        "Create an API token (type=bearer for a bearer token); the secret is in this response only",
        "API tokens",
        Shape::Write("APITokenInput", "APIToken"),
    )),
    op(
        OpId::GetToken,
        "get",
        TOKEN,
        "getApiTokenByAdminId",
        "Get an API token (masked)",
        "API tokens",
        Shape::One("APIToken"),
    ),
    op(
        OpId::PutToken,
        "put",
        TOKEN,
        "updateApiTokenByAdminId",
        "Change an API token's note or status",
        "API tokens",
        Shape::Write("APITokenInput", "APIToken"),
    ),
    op(
        OpId::PatchToken,
        "patch",
        TOKEN,
        "patchApiTokenByAdminId",
        "Change an API token's note or status",
        "API tokens",
        Shape::Write("APITokenInput", "APIToken"),
    ),
    op(
        OpId::DeleteToken,
        "delete",
        TOKEN,
        "deleteApiTokenById",
        "Delete an API token for good",
        "API tokens",
        Shape::Delete,
    ),
    op(
        OpId::OwnToken,
        "get",
        OWN_TOKEN,
        "getOwnApiToken",
        "The API token making this call (masked), with its owner's privileges as of now",
        "API tokens",
        Shape::One("APITokenSelf"),
    ),
    op(
        OpId::LookUpToken,
        "post",
        LOOKUP,
        "lookUpApiToken",
        "Find the bearer token with a given value (sent in the body, never a URL); audited, found or not",
        "API tokens",
        Shape::Write("APITokenLookup", "APIToken"),
    ),
    op(
        OpId::ListRoles,
        "get",
        ROLES,
        "getRoleList",
        "List roles",
        "Roles",
        Shape::List("Role"),
    ),
    op(
        OpId::CreateRole,
        "post",
        ROLES,
        "addRole",
        "Create a role",
        "Roles",
        Shape::Write("RoleInput", "Role"),
    ),
    op(
        OpId::GetRole,
        "get",
        ROLE,
        "getRoleById",
        "Get a role",
        "Roles",
        Shape::One("Role"),
    ),
    op(
        OpId::PutRole,
        "put",
        ROLE,
        "updateRoleById",
        "Change a role (only the properties sent)",
        "Roles",
        Shape::Write("RolePatch", "Role"),
    ),
    op(
        OpId::PatchRole,
        "patch",
        ROLE,
        "patchRoleById",
        "Change a role",
        "Roles",
        Shape::Write("RolePatch", "Role"),
    ),
    op(
        OpId::DeleteRole,
        "delete",
        ROLE,
        "deleteRoleById",
        "Delete a role no user holds",
        "Roles",
        Shape::Delete,
    ),
    op(
        OpId::ListAccessLogs,
        "get",
        LOGS,
        "getAuditLogList",
        "List audit-log entries (newest first unless sorted)",
        "Audit log",
        Shape::List("AccessLogItem"),
    ),
    op(
        OpId::GetAccessLog,
        "get",
        LOG,
        "getAuditLogById",
        "Get one audit-log entry",
        "Audit log",
        Shape::One("AccessLogItem"),
    ),
    op(
        OpId::GetPortal,
        "get",
        PORTAL,
        "getPortal",
        "Get portal settings",
        "Portal",
        Shape::One("Portal"),
    ),
    op(
        OpId::PutPortal,
        "put",
        PORTAL,
        "updatePortal",
        "Change portal settings (only the properties sent)",
        "Portal",
        Shape::Write("PortalPatch", "Portal"),
    ),
    op(
        OpId::PatchPortal,
        "patch",
        PORTAL,
        "patchPortal",
        "Change portal settings",
        "Portal",
        Shape::Write("PortalPatch", "Portal"),
    ),
    op(
        OpId::FollowIndex,
        "get",
        INDEX,
        "followTokenIndex",
        "The token index for a service that verifies keygate tokens itself: a snapshot, or the changes after a position (long poll); digests only, never a secret",
        "Token index",
        Shape::IndexFrame,
    ),
    op(
        OpId::CheckLmv1,
        "post",
        LMV1_CHECK,
        "checkLmv1Signature",
        "Check an LMv1-signed request a service received (LMv1 keys never leave keygate)",
        "Token index",
        Shape::SignedBody("Lmv1Verdict"),
    ),
    op(
        OpId::ListDataResources,
        "get",
        DATA_RESOURCES,
        "listDataResources",
        "Resources data was pushed for (a keygate extension), newest first; all of them with useraccess read, else those the caller's tokens created",
        "Data",
        Shape::Data {
            returns: "DataResource",
            page: true,
            params: &[DataParam::Size, DataParam::Offset],
        },
    ),
    op(
        OpId::GetDataResource,
        "get",
        DATA_RESOURCE,
        "getDataResource",
        "A resource with its properties, datasource instances and datapoints (a keygate extension)",
        "Data",
        Shape::Data {
            returns: "DataResource",
            page: false,
            params: &[],
        },
    ),
    op(
        OpId::GetDataSeries,
        "get",
        DATA_SERIES,
        "getDataSeries",
        "A datapoint's values over a time range, oldest first (a keygate extension)",
        "Data",
        Shape::Data {
            returns: "DataSeries",
            page: false,
            params: &[DataParam::From, DataParam::To, DataParam::Size],
        },
    ),
    op(
        OpId::ListDataLogs,
        "get",
        DATA_LOGS,
        "listDataLogs",
        "Log lines pushed, newest first, searched by text, resource and time (a keygate extension)",
        "Data",
        Shape::Data {
            returns: "DataLog",
            page: true,
            params: &[
                DataParam::Text,
                DataParam::Resource,
                DataParam::From,
                DataParam::To,
                DataParam::Size,
            ],
        },
    ),
    op(
        OpId::ListDataSpans,
        "get",
        DATA_SPANS,
        "listDataSpans",
        "Spans pushed over OTLP, newest first, or one trace's oldest first (a keygate extension)",
        "Data",
        Shape::Data {
            returns: "DataSpan",
            page: true,
            params: &[
                DataParam::Trace,
                DataParam::Service,
                DataParam::From,
                DataParam::To,
                DataParam::Size,
            ],
        },
    ),
];

/// The handler of one operation, behind `auth` (which knows the operation's route).
pub fn handler<S: Store>(id: OpId, auth: Authenticate<S>) -> MethodRouter<AppState<S>> {
    // Each handler gets its own layer (`Handler::layer`): the layer runs inside the
    // one boxed route axum makes per handler, instead of boxing every route again.
    match id {
        OpId::ListUsers => get(users::list::<S>.layer(auth)),
        OpId::CreateUser => post(users::create::<S>.layer(auth)),
        OpId::GetUser => get(users::get::<S>.layer(auth)),
        OpId::PutUser => put(users::update::<S>.layer(auth)),
        OpId::PatchUser => patch(users::update::<S>.layer(auth)),
        OpId::DeleteUser => delete(users::delete::<S>.layer(auth)),
        OpId::ListAllTokens => get(tokens::list_all::<S>.layer(auth)),
        OpId::ListTokens => get(tokens::list::<S>.layer(auth)),
        OpId::CreateToken => post(tokens::create::<S>.layer(auth)),
        OpId::GetToken => get(tokens::get::<S>.layer(auth)),
        OpId::PutToken => put(tokens::update::<S>.layer(auth)),
        OpId::PatchToken => patch(tokens::update::<S>.layer(auth)),
        OpId::DeleteToken => delete(tokens::delete::<S>.layer(auth)),
        OpId::OwnToken => get(tokens::own::<S>.layer(auth)),
        OpId::LookUpToken => post(tokens::lookup::<S>.layer(auth)),
        OpId::ListRoles => get(roles::list::<S>.layer(auth)),
        OpId::CreateRole => post(roles::create::<S>.layer(auth)),
        OpId::GetRole => get(roles::get::<S>.layer(auth)),
        OpId::PutRole => put(roles::update::<S>.layer(auth)),
        OpId::PatchRole => patch(roles::update::<S>.layer(auth)),
        OpId::DeleteRole => delete(roles::delete::<S>.layer(auth)),
        OpId::ListAccessLogs => get(accesslogs::list::<S>.layer(auth)),
        OpId::GetAccessLog => get(accesslogs::get::<S>.layer(auth)),
        OpId::GetPortal => get(portal::get::<S>.layer(auth)),
        OpId::PutPortal => put(portal::update::<S>.layer(auth)),
        OpId::PatchPortal => patch(portal::update::<S>.layer(auth)),
        OpId::FollowIndex => get(index::follow::<S>.layer(auth)),
        OpId::CheckLmv1 => post(index::check_lmv1::<S>.layer(auth)),
        OpId::ListDataResources => get(data::resources::<S>.layer(auth)),
        OpId::GetDataResource => get(data::resource::<S>.layer(auth)),
        OpId::GetDataSeries => get(data::series::<S>.layer(auth)),
        OpId::ListDataLogs => get(data::logs::<S>.layer(auth)),
        OpId::ListDataSpans => get(data::spans::<S>.layer(auth)),
    }
}

/// An operation's route template: its path under the API's base path.
pub fn route_of(o: &Operation) -> String {
    format!("{BASE_PATH}{}", o.path)
}

/// The API routes, built from [`OPERATIONS`], at their whole paths (not nested under
/// the base path, which would rewrite every request's URI on its way in), each
/// handler behind [`Authenticate`].
pub fn api_routes<S: Store>(st: &AppState<S>) -> axum::Router<AppState<S>> {
    let mut paths: Vec<&'static str> = Vec::new();
    for o in OPERATIONS {
        if !paths.contains(&o.path) {
            paths.push(o.path);
        }
    }
    paths.into_iter().fold(axum::Router::new(), |router, path| {
        let (route, methods) = OPERATIONS.iter().filter(|o| o.path == path).fold(
            (String::new(), MethodRouter::new()),
            |(_, m), o| {
                let route = route_of(o);
                let auth = Authenticate::new(st.clone(), &route);
                (route, m.merge(handler::<S>(o.id, auth)))
            },
        );
        router.route(&route, methods)
    })
}
