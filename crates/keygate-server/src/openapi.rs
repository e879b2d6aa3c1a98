//! The OpenAPI 3 document served at `/santaba/rest/openapi.json`.
//!
//! Paths and operations come from the routing table ([`crate::routes::table`]) the
//! router is built from; object schemas come from the property lists below, which
//! tests hold equal to what [`crate::wire`] renders. So the document describes what
//! is served, not what someone remembered to write down.

use keygate_core::validate as v;
use serde_json::{Map, Value, json};

use crate::routes::table::{OPERATIONS, Operation, Shape};
use crate::wire;

/// A property's JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit integer.
    Int,
    /// An integer or null.
    NullableInt,
    /// A string.
    Str,
    /// true or false.
    Bool,
    /// An array of strings.
    Strs,
    /// An array of objects of the named schema.
    Refs(&'static str),
}

/// One property of a response object.
#[derive(Debug, Clone, Copy)]
pub struct Prop {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// What it holds.
    pub doc: &'static str,
}

const fn p(name: &'static str, kind: Kind, doc: &'static str) -> Prop {
    Prop { name, kind, doc }
}

/// `APIToken` as served.
pub const TOKEN: &[Prop] = &[
    p("id", Kind::Int, "Token id"),
    p("adminId", Kind::Int, "Owner's user id"),
    p("adminName", Kind::Str, "Owner's username"),
    p("type", Kind::Str, "bearer or lmv1"),
    p(
        "accessId",
        Kind::Str,
        "Masked bearer token, or the LMv1 access id",
    ),
    p(
        "accessKey",
        Kind::Str,
        "The secret: in the creation response only, empty ever after",
    ),
    p("note", Kind::Str, "Free text, at most 1,024 characters"),
    p("status", Kind::Int, "2 enabled, 1 disabled"),
    p("createdOn", Kind::Int, "Epoch seconds"),
    p("createdBy", Kind::Str, "Username of the creator"),
    p(
        "lastUsedOn",
        Kind::Int,
        "Epoch seconds of the last successful use, 0 for never",
    ),
    p(
        "lastAuthIp",
        Kind::Str,
        "Client address of the last successful use",
    ),
    p("roles", Kind::Strs, "Names of the owner's roles"),
    p(
        "userPermission",
        Kind::Str,
        "What the caller may do to it: read or write",
    ),
];

/// A user (`Admin`) as served.
pub const USER: &[Prop] = &[
    p("id", Kind::Int, "User id"),
    p("username", Kind::Str, "Sign-in name"),
    p("email", Kind::Str, "Email address"),
    p("firstName", Kind::Str, "Given name"),
    p("lastName", Kind::Str, "Family name"),
    p("roles", Kind::Refs("Role"), "The user's roles"),
    p("status", Kind::Str, "active or suspended"),
    p("apionly", Kind::Bool, "May not sign in to the UI"),
    p("note", Kind::Str, "Free text"),
    p("createdBy", Kind::Str, "Username of the creator"),
    p(
        "lastLoginOn",
        Kind::Int,
        "Epoch seconds of the last UI sign-in, 0 for never",
    ),
];

/// A role as served.
pub const ROLE: &[Prop] = &[
    p("id", Kind::Int, "Role id"),
    p("name", Kind::Str, "Unique name"),
    p("description", Kind::Str, "Free text"),
    p(
        "privileges",
        Kind::Refs("Privilege"),
        "What the role grants",
    ),
    p("associatedUserCount", Kind::Int, "How many users hold it"),
];

/// Portal settings as served.
pub const PORTAL: &[Prop] = &[
    p("companyName", Kind::Str, "Display name"),
    p(
        "tracesEnabled",
        Kind::Bool,
        "Traces (APM): bearer tokens are created and accepted only while on",
    ),
    p(
        "maxTokensPerUser",
        Kind::Int,
        "Most tokens one user may hold",
    ),
    p(
        "lmv1ClockSkewSeconds",
        Kind::Int,
        "LMv1 timestamp window, either side of server time",
    ),
    p(
        "lmv1ReplayProtection",
        Kind::Bool,
        "Refuse a repeated LMv1 signature within the window",
    ),
    p(
        "tokenPrefix",
        Kind::Str,
        "Prefix of every bearer token (read-only)",
    ),
];

/// An access-log (audit) entry as served.
pub const ACCESS_LOG: &[Prop] = &[
    p("id", Kind::Int, "Entry id, increasing with time"),
    p("happenedOn", Kind::Int, "Epoch seconds"),
    p(
        "happenedOnLocal",
        Kind::Str,
        "The same time, readable (UTC)",
    ),
    p(
        "username",
        Kind::Str,
        "Who acted (keygate-cli for the admin CLI)",
    ),
    p("userId", Kind::NullableInt, "Their user id, if any"),
    p("ip", Kind::Str, "Client address, empty for the admin CLI"),
    p(
        "action",
        Kind::Str,
        "What was done, such as apitoken.disable",
    ),
    p("targetType", Kind::Str, "apitoken, user, role or portal"),
    p(
        "targetId",
        Kind::NullableInt,
        "The target's id, if it has one",
    ),
    p("target", Kind::Str, "The target's name or masked token"),
    p("outcome", Kind::Str, "success or failure"),
    p(
        "detail",
        Kind::Str,
        "What changed (names of properties, never secrets)",
    ),
    p("description", Kind::Str, "The whole entry in words"),
    p(
        "tokenId",
        Kind::NullableInt,
        "The API token the change was made with (null: a UI session, the admin CLI, a sign-in)",
    ),
    p(
        "token",
        Kind::Str,
        "That token's masked value or LMv1 access id",
    ),
    p(
        "tokenCreatedBy",
        Kind::Str,
        "Who created that token, when it was someone other than its owner (empty otherwise)",
    ),
];

fn kind_schema(k: Kind) -> Value {
    match k {
        Kind::Int => json!({"type": "integer", "format": "int64"}),
        Kind::NullableInt => json!({"type": "integer", "format": "int64", "nullable": true}),
        Kind::Str => json!({"type": "string"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Strs => json!({"type": "array", "items": {"type": "string"}}),
        Kind::Refs(r) => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{r}")}})
        }
    }
}

/// An object schema from a property list. No property is required: `fields` may
/// leave any of them out.
fn object(props: &[Prop]) -> Value {
    let mut m = Map::new();
    for pr in props {
        let mut s = kind_schema(pr.kind);
        if let Value::Object(o) = &mut s {
            o.insert("description".to_owned(), json!(pr.doc));
        }
        m.insert(pr.name.to_owned(), s);
    }
    json!({"type": "object", "properties": m})
}

fn schemas() -> Value {
    let str_max = |n: u64| json!({"type": "string", "maxLength": n});
    json!({
        "APIToken": object(TOKEN),
        "APITokenSelf": {
            "allOf": [
                schema_ref("APIToken"),
                {
                    "type": "object",
                    "required": ["privileges"],
                    "properties": {
                        "privileges": {"type": "array", "items": {"type": "string"}, "description": "The owner's privileges as of this request (setting apitoken write, dataingestion * write, ...)"},
                    }
                }
            ]
        },
        "APITokenLookup": {
            "type": "object",
            "required": ["token"],
            "description": "The bearer token to find (or an Authorization header value holding one)",
            "properties": {"token": {"type": "string", "maxLength": 1024}},
        },
        "Admin": object(USER),
        "Role": object(ROLE),
        "Portal": object(PORTAL),
        "AccessLogItem": object(ACCESS_LOG),
        "Privilege": {
            "type": "object",
            "required": ["objectType", "objectId", "operation"],
            "properties": {
                "objectType": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[!-~]+$", "description": "setting, dataingestion, ..."},
                "objectId": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[!-~]+$", "description": "What within the type, or *"},
                "operation": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[!-~]+$", "description": "read or write"},
            }
        },
        "RoleRef": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "integer", "format": "int64"}}
        },
        "APITokenInput": {
            "type": "object",
            "description": "Only note and status can be set; accessId, accessKey and adminId are system generated. type may be given when creating (as ?type= may; the two must agree), and with an LMv1 signature, which does not cover the query string, a bearer token's type must be given here; afterwards it cannot change.",
            "properties": {
                "note": str_max(v::MAX_NOTE as u64),
                "status": {"type": "integer", "enum": [1, 2]},
                "type": {"type": "string", "enum": ["bearer", "lmv1"]},
            }
        },
        "AdminInput": {
            "type": "object",
            "required": ["username", "email", "roles"],
            "properties": admin_input_props(),
        },
        "AdminPatch": {
            "type": "object",
            "properties": admin_input_props(),
        },
        "RoleInput": {
            "type": "object",
            "required": ["name"],
            "properties": role_input_props(),
        },
        "RolePatch": {
            "type": "object",
            "properties": role_input_props(),
        },
        "PortalPatch": {
            "type": "object",
            "properties": {
                "companyName": {"type": "string", "minLength": 1, "maxLength": v::MAX_NAME},
                "tracesEnabled": {"type": "boolean"},
                "maxTokensPerUser": {"type": "integer", "minimum": 1, "maximum": v::MAX_TOKENS_PER_USER_LIMIT},
                "lmv1ClockSkewSeconds": {"type": "integer", "minimum": 1, "maximum": 86400},
                "lmv1ReplayProtection": {"type": "boolean"},
            }
        },
        "Error": {
            "type": "object",
            "required": ["errorMessage", "errorCode"],
            "properties": {
                "errorMessage": {"type": "string"},
                "errorCode": {"type": "integer"},
                "errorDetail": {"type": "object", "nullable": true},
            }
        },
    })
}

fn admin_input_props() -> Value {
    json!({
        // Exact for ASCII; beyond it, letters of one script (NFKC, UTS #39), which a
        // regular expression without Unicode classes cannot say.
        "username": {"type": "string", "minLength": 1, "maxLength": v::MAX_USERNAME, "pattern": "^[A-Za-z0-9._@+\\u00c0-\\uffff-]+$",
                     "description": "Letters and digits of one script and . _ - @ +; stored in NFKC; unique whatever the case"},
        "email": {"type": "string", "maxLength": v::MAX_EMAIL, "pattern": "^[^@\\s]+@[^@\\s]+$"},
        "firstName": {"type": "string", "maxLength": v::MAX_NAME},
        "lastName": {"type": "string", "maxLength": v::MAX_NAME},
        "roles": {"type": "array", "minItems": 1, "maxItems": v::MAX_ROLES, "items": {"$ref": "#/components/schemas/RoleRef"}},
        "status": {"type": "string", "enum": ["active", "suspended"]},
        "apionly": {"type": "boolean"},
        "note": {"type": "string", "maxLength": v::MAX_NOTE},
        "password": {"type": "string", "writeOnly": true, "minLength": keygate_core::password::MIN_LEN, "maxLength": keygate_core::password::MAX_LEN},
    })
}

fn role_input_props() -> Value {
    json!({
        "name": {"type": "string", "minLength": 1, "maxLength": v::MAX_NAME},
        "description": {"type": "string", "maxLength": v::MAX_DESCRIPTION},
        "privileges": {"type": "array", "maxItems": v::MAX_PRIVILEGES, "items": {"$ref": "#/components/schemas/Privilege"}},
    })
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query(name: &str, schema: Value, doc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": doc})
}

fn parameters(o: &Operation) -> Vec<Value> {
    let mut out = Vec::new();
    for seg in o.path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            out.push(json!({
                "name": name, "in": "path", "required": true,
                "schema": {"type": "integer", "format": "int64"},
            }));
        }
    }
    let fields = query(
        "fields",
        json!({"type": "string", "maxLength": 1024}),
        "Comma-separated properties to return",
    );
    match o.shape {
        Shape::List(_) => {
            out.push(query(
                "filter",
                json!({"type": "string", "maxLength": keygate_core::query::MAX_FILTER_LEN}),
                "Terms joined by commas: field, operator (: !: ~ !~ > < >: <:) and value",
            ));
            out.push(query(
                "sort",
                json!({"type": "string", "maxLength": 256}),
                "A field, - before it for descending",
            ));
            out.push(fields);
            out.push(query(
                "size",
                json!({"type": "integer", "minimum": 1, "maximum": keygate_core::query::MAX_SIZE}),
                "Page size (default 50)",
            ));
            out.push(query(
                "offset",
                json!({"type": "integer", "minimum": 0}),
                "Items to skip",
            ));
        }
        Shape::One(_) => out.push(fields),
        Shape::Write(..) | Shape::Delete => {}
    }
    if o.type_param {
        out.push(query(
            "type",
            json!({"type": "string", "enum": ["bearer", "lmv1"]}),
            "Token type (creation defaults to lmv1; lists show both unless given)",
        ));
    }
    out
}

fn error_responses(m: &mut Map<String, Value>) {
    let err = json!({"content": {"application/json": {"schema": schema_ref("Error")}}});
    for (code, what) in [
        ("400", "The request is wrong; errorMessage says how"),
        (
            "401",
            "No usable credential; errorMessage says which problem it was",
        ),
        ("403", "Authenticated, but not allowed"),
        ("404", "No such object (or not visible to the caller)"),
        ("405", "Method not allowed on this path"),
        ("408", "The request was not completed in time"),
        ("409", "Conflicts with existing data"),
        ("413", "The body is too large"),
        ("415", "The body is not JSON"),
        (
            "429",
            "Too many failed authentications from this address; see Retry-After",
        ),
        (
            "431",
            "The request line and headers together are too large (refused before any handler, without a body)",
        ),
        (
            "503",
            "The database is unavailable or the server is at its limit; retry",
        ),
    ] {
        let mut r = if code == "431" {
            json!({})
        } else {
            err.clone()
        };
        if let Value::Object(o) = &mut r {
            o.insert("description".to_owned(), json!(what));
        }
        m.insert(code.to_owned(), r);
    }
}

/// Links from a creating operation to the ones that address what it created, so
/// stateful clients (and schemathesis) can follow them.
fn links(o: &Operation) -> Option<Value> {
    let by = |op: &str, params: Value| json!({"operationId": op, "parameters": params});
    match o.operation_id {
        "addAdmin" => Some(json!({
            "GetAdmin": by("getAdminById", json!({"adminId": "$response.body#/id"})),
            "DeleteAdmin": by("deleteAdminById", json!({"adminId": "$response.body#/id"})),
        })),
        "addApiTokenByAdminId" => {
            let params =
                json!({"adminId": "$response.body#/adminId", "apitokenId": "$response.body#/id"});
            Some(json!({
                "GetApiToken": by("getApiTokenByAdminId", params.clone()),
                "PatchApiToken": by("patchApiTokenByAdminId", params.clone()),
                "DeleteApiToken": by("deleteApiTokenById", params),
            }))
        }
        "addRole" => Some(json!({
            "GetRole": by("getRoleById", json!({"roleId": "$response.body#/id"})),
            "DeleteRole": by("deleteRoleById", json!({"roleId": "$response.body#/id"})),
        })),
        _ => None,
    }
}

fn operation(o: &Operation) -> Value {
    let ok_schema = match o.shape {
        Shape::List(item) => json!({
            "type": "object",
            "properties": {
                "total": {"type": "integer"},
                "searchId": {"type": "string", "nullable": true},
                "items": {"type": "array", "items": schema_ref(item)},
            }
        }),
        Shape::One(s) | Shape::Write(_, s) => schema_ref(s),
        Shape::Delete => json!({"type": "object"}),
    };
    let mut ok = json!({
        "description": "Success",
        "content": {"application/json": {"schema": ok_schema}},
    });
    if let (Some(l), Value::Object(m)) = (links(o), &mut ok) {
        m.insert("links".to_owned(), l);
    }
    let mut responses = Map::new();
    responses.insert("200".to_owned(), ok);
    error_responses(&mut responses);
    let mut op = json!({
        "operationId": o.operation_id,
        "summary": o.summary,
        "tags": [o.tag],
        "parameters": parameters(o),
        "responses": responses,
    });
    if let (Shape::Write(input, _), Value::Object(m)) = (o.shape, &mut op) {
        m.insert(
            "requestBody".to_owned(),
            json!({"required": false, "content": {"application/json": {"schema": schema_ref(input)}}}),
        );
    }
    op
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in OPERATIONS {
        let entry = paths
            .entry(o.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(o.method.to_owned(), operation(o));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "keygate REST API v3 (API tokens, users, roles, audit log, portal)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The token part of LogicMonitor's REST API v3 as keygate serves it. Send X-Version: 3 (or nothing). Lists take LogicMonitor's filter, sort, fields, size and offset.",
        },
        "servers": [{"url": crate::auth::BASE_PATH}],
        "security": [{"bearerAuth": []}, {"lmv1": []}],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer kgt… (a bearer token; needs the portal's Traces feature on)",
                },
                "lmv1": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "Authorization: LMv1 accessId:signature:epochMillis, where signature = base64(hex(HMAC-SHA256(accessKey, verb + epochMillis + body + path)))",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "keygate_session",
                    "description": "The web UI's session (changes also need X-CSRF-Token)",
                },
            },
        },
    })
}

/// The names a property list declares, in order.
pub fn names(props: &[Prop]) -> Vec<&'static str> {
    props.iter().map(|p| p.name).collect()
}

/// Whether a rendered value has the declared kind.
pub fn conforms(kind: Kind, v: &Value) -> bool {
    match kind {
        Kind::Int => v.is_i64(),
        Kind::NullableInt => v.is_i64() || v.is_null(),
        Kind::Str => v.is_string(),
        Kind::Bool => v.is_boolean(),
        Kind::Strs => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Kind::Refs(_) => v.as_array().is_some_and(|a| a.iter().all(Value::is_object)),
    }
}

/// The property lists paired with the names list queries accept, for tests.
pub fn property_lists() -> [(&'static [Prop], &'static [&'static str]); 5] {
    [
        (TOKEN, wire::TOKEN_PROPS),
        (USER, wire::USER_PROPS),
        (ROLE, wire::ROLE_PROPS),
        (PORTAL, wire::PORTAL_PROPS),
        (ACCESS_LOG, wire::AUDIT_PROPS),
    ]
}

#[cfg(test)]
mod tests {
    use keygate_core::model::{
        ApiToken, Portal, Privilege, Role, TokenStatus, TokenType, User, UserStatus,
    };
    use keygate_core::policy::Access;
    use keygate_store::{AuditAction, AuditEntry, AuditRecord, RoleWithCount};

    use super::*;

    fn check(props: &[Prop], rendered: &Map<String, Value>) {
        let keys: Vec<&str> = rendered.keys().map(String::as_str).collect();
        let mut declared = names(props);
        declared.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(
            declared, keys_sorted,
            "declared and rendered properties differ"
        );
        for pr in props {
            assert!(
                conforms(pr.kind, &rendered[pr.name]),
                "{} is {:?} but renders as {}",
                pr.name,
                pr.kind,
                rendered[pr.name]
            );
        }
    }

    #[test]
    fn list_query_properties_match_the_schemas() {
        for (props, list) in property_lists() {
            assert_eq!(names(props), list.to_vec());
        }
    }

    #[test]
    fn rendered_objects_match_their_schemas() {
        let role = Role {
            id: 1,
            name: "r".into(),
            description: String::new(),
            privileges: vec![Privilege {
                object_type: "setting".into(),
                object_id: "*".into(),
                operation: "read".into(),
            }],
        };
        check(ROLE, &wire::role(&role, 2));
        let token = ApiToken {
            id: 1,
            user_id: 2,
            token_type: TokenType::Bearer,
            access_id: "kgt****abcd".into(),
            note: String::new(),
            status: TokenStatus::Enabled,
            created_on: 1,
            created_by: "a".into(),
            last_used_on: 0,
            last_auth_ip: String::new(),
        };
        check(
            TOKEN,
            &wire::token(&token, "u", &["r".to_owned()], Access::Write, Some("s")),
        );
        let user = User {
            id: 2,
            username: "u".into(),
            email: "u@x.io".into(),
            first_name: String::new(),
            last_name: String::new(),
            role_ids: vec![1],
            status: UserStatus::Active,
            api_only: false,
            note: String::new(),
            created_by: "a".into(),
            created_on: 1,
            last_login_on: 0,
        };
        let with_count = RoleWithCount {
            role,
            user_count: 1,
        };
        check(USER, &wire::user(&user, &[with_count]));
        let portal = Portal {
            company_name: "c".into(),
            traces_enabled: true,
            max_tokens_per_user: 5,
            lmv1_clock_skew_seconds: 300,
            lmv1_replay_protection: false,
        };
        check(PORTAL, &wire::portal(&portal));
        for user_id in [None, Some(1)] {
            let entry = AuditEntry {
                id: 1,
                record: AuditRecord {
                    at: 1,
                    user_id,
                    username: "a".into(),
                    ip: None,
                    action: AuditAction::TokenCreate,
                    target_type: "apitoken".into(),
                    target_id: user_id,
                    target: "t".into(),
                    success: true,
                    detail: String::new(),
                    via: user_id.map(|token_id| keygate_core::policy::Via {
                        token_id,
                        token: "kgtAb3d****".into(),
                        created_by: "admin".into(),
                    }),
                },
            };
            check(ACCESS_LOG, &wire::audit_entry(&entry));
        }
    }

    #[test]
    fn every_operation_is_in_the_document_once() {
        let doc = document();
        let mut seen = std::collections::HashSet::new();
        for o in OPERATIONS {
            assert!(seen.insert(o.operation_id), "duplicate {}", o.operation_id);
            assert_eq!(
                doc["paths"][o.path][o.method]["operationId"], o.operation_id,
                "{} {}",
                o.method, o.path
            );
        }
    }
}
