//! The OpenAPI 3 document served at `/santaba/rest/openapi.json`.
//!
//! Paths and operations come from the routing table ([`crate::routes::table`]) the
//! router is built from; object schemas are derived (utoipa) from the types in
//! [`crate::wire`] that responses serialize from and request bodies deserialize into.
//! So the document describes what is served, not what someone remembered to write
//! down. It is OpenAPI 3.1 (JSON Schema types: a nullable integer is
//! `["integer", "null"]`).

use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::routes::table::{OPERATIONS, Operation, Shape};
use crate::wire::{data, inputs, objects};

/// Every schema derived from the API's types.
#[derive(OpenApi)]
#[openapi(components(schemas(
    objects::ApiTokenObject,
    objects::ApiTokenSelf,
    objects::Admin,
    objects::RoleObject,
    objects::Privilege,
    objects::PortalObject,
    objects::AccessLogItem,
    objects::ErrorBody,
    objects::Lmv1Verdict,
    data::ResourceObject,
    data::InstanceObject,
    data::DatapointObject,
    data::SeriesObject,
    data::LogObject,
    data::SpanObject,
    inputs::ApiTokenInput,
    inputs::ApiTokenLookup,
    inputs::RoleRef,
    inputs::AdminPatch,
    inputs::RolePatch,
    inputs::PortalPatch,
)))]
struct Derived;

/// The response objects: served whole, but a `fields` projection may leave any
/// property out, so none is marked required.
const RESPONSE_SCHEMAS: &[&str] = &[
    "APIToken",
    "APITokenSelf",
    "Admin",
    "Role",
    "Portal",
    "AccessLogItem",
];

/// The document's `components.schemas`: the derived ones, plus the creation forms
/// (`AdminInput`, `RoleInput`: the change form with what creation needs).
static SCHEMAS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let mut m = match Derived::openapi()
        .components
        .map(|c| serde_json::to_value(c.schemas))
    {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    };
    for name in RESPONSE_SCHEMAS {
        strip_required(m.get_mut(*name));
    }
    let with_required =
        |base: &str, required: &[&str]| json!({"allOf": [schema_ref(base)], "required": required});
    m.insert(
        "AdminInput".to_owned(),
        with_required("AdminPatch", inputs::ADMIN_REQUIRED),
    );
    m.insert(
        "RoleInput".to_owned(),
        with_required("RolePatch", inputs::ROLE_REQUIRED),
    );
    m
});

fn strip_required(schema: Option<&mut Value>) {
    let Some(Value::Object(o)) = schema else {
        return;
    };
    o.remove("required");
    if let Some(Value::Array(parts)) = o.get_mut("allOf") {
        for p in parts {
            strip_required(Some(p));
        }
    }
}

/// A schema of the document by name.
pub fn schema(name: &str) -> Option<&'static Value> {
    SCHEMAS.get(name)
}

/// `s` itself, or the schema it refers to.
pub fn resolve(s: &Value) -> &Value {
    s.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .and_then(schema)
        .unwrap_or(s)
}

/// A schema's JSON type, leaving out `null` (`["integer", "null"]` is an integer).
pub fn json_type(s: &Value) -> Option<&str> {
    match resolve(s).get("type")? {
        Value::String(t) => Some(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

/// The properties of the named object schema, through `allOf` and references.
pub fn properties(name: &str) -> Vec<(String, Value)> {
    fn collect(s: &Value, out: &mut Vec<(String, Value)>) {
        let s = resolve(s);
        if let Some(Value::Array(parts)) = s.get("allOf") {
            for p in parts {
                collect(p, out);
            }
        }
        if let Some(Value::Object(props)) = s.get("properties") {
            out.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let mut out = Vec::new();
    if let Some(s) = schema(name) {
        collect(s, &mut out);
    }
    out
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
        Shape::Data { params, .. } => {
            for p in params {
                let (name, schema, doc) = p.describe();
                out.push(query(name, schema, doc));
            }
        }
        Shape::Write(..) | Shape::Delete => {}
        Shape::IndexFrame => {
            out.push(query(
                "after",
                json!({"type": "integer", "format": "int64", "minimum": 0}),
                "The position the follower's index is at (from the last frame); without it, a snapshot of the whole index",
            ));
            out.push(query(
                "waitMillis",
                json!({"type": "integer", "minimum": 0, "maximum": 20_000}),
                "How long to wait for a change when there is none after the position yet (a long poll; default 0)",
            ));
        }
        Shape::SignedBody(_) => {
            for (name, doc) in [
                (
                    "X-Keygate-Authorization",
                    "The checked request's Authorization header (LMv1 accessId:signature:epochMillis)",
                ),
                ("X-Keygate-Method", "The checked request's method"),
                (
                    "X-Keygate-Path",
                    "The path it signed: after the service's base, without the query string",
                ),
            ] {
                out.push(json!({"name": name, "in": "header", "required": true,
                                "schema": {"type": "string", "maxLength": 4096}, "description": doc}));
            }
            out.push(json!({"name": "X-Keygate-Client-Ip", "in": "header", "required": false,
                            "schema": {"type": "string", "maxLength": 64},
                            "description": "The checked request's client address (for its usage record and the failed-authentication throttle)"}));
        }
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
        Shape::List(item)
        | Shape::Data {
            returns: item,
            page: true,
            ..
        } => json!({
            "type": "object",
            "properties": {
                "total": {"type": "integer"},
                "searchId": {"type": ["string", "null"]},
                "items": {"type": "array", "items": schema_ref(item)},
            }
        }),
        Shape::One(s)
        | Shape::Write(_, s)
        | Shape::SignedBody(s)
        | Shape::Data {
            returns: s,
            page: false,
            ..
        } => schema_ref(s),
        Shape::Delete => json!({"type": "object"}),
        Shape::IndexFrame => json!({"type": "string", "format": "binary"}),
    };
    let media = match o.shape {
        Shape::IndexFrame => keygate_auth::feed::MEDIA_TYPE,
        _ => "application/json",
    };
    let mut ok = json!({
        "description": "Success",
        "content": {media: {"schema": ok_schema}},
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
    if let (Shape::SignedBody(_), Value::Object(m)) = (o.shape, &mut op) {
        m.insert(
            "requestBody".to_owned(),
            json!({"required": false, "description": "The body the LMv1 signature covers, byte for byte",
                   "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}),
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
        "openapi": "3.1.0",
        "info": {
            "title": "keygate REST API v3 (API tokens, users, roles, audit log, portal)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The token part of LogicMonitor's REST API v3 as keygate serves it. Send X-Version: 3 (or nothing). Lists take LogicMonitor's filter, sort, fields, size and offset.",
        },
        "servers": [{"url": crate::auth::BASE_PATH}],
        "security": [{"bearerAuth": []}, {"lmv1": []}],
        "paths": paths,
        "components": {
            "schemas": &*SCHEMAS,
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn every_reference_names_a_schema_of_the_document() {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        out.push(r.clone());
                    }
                    o.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&document(), &mut all);
        assert!(all.len() > 20, "{all:?}");
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or(&r);
            assert!(schema(name).is_some(), "{r} names no schema");
        }
    }

    #[test]
    fn response_objects_may_be_projected_and_inputs_say_what_creation_needs() {
        for name in RESPONSE_SCHEMAS {
            let s = schema(name).unwrap();
            assert!(s.get("required").is_none(), "{name}: {s}");
        }
        assert_eq!(
            schema("AdminInput").unwrap()["required"],
            json!(inputs::ADMIN_REQUIRED)
        );
        assert_eq!(
            schema("APITokenInput").unwrap()["properties"]["note"]["maxLength"],
            json!(keygate_core::validate::MAX_NOTE)
        );
        // Read-only token properties are not offered as inputs.
        assert!(
            schema("APITokenInput").unwrap()["properties"]
                .get("accessKey")
                .is_none()
        );
    }
}
