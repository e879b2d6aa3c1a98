//! The JSON shapes of REST API v3: typed objects ([`objects`]) and request bodies
//! ([`inputs`]), and list responses.
//!
//! A property is named once, on its type. The OpenAPI schemas are derived from those
//! types, and so are the names `fields` accepts and the fields a list can be filtered
//! and sorted on ([`Props`]): every scalar property. List queries are evaluated on the
//! serialized objects, so a client filters on exactly what it sees.

use std::sync::LazyLock;

use keygate_core::query::{FieldKind, FieldSpec, FieldValue, ListQuery, Record};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

pub mod data;
pub mod inputs;
pub mod objects;

pub use objects::{AccessLogItem, Admin, ApiTokenObject, ApiTokenSelf, PortalObject, RoleObject};

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

/// The properties of an object type, as its schema declares them.
#[derive(Debug)]
pub struct Props {
    /// Every property, for `fields`.
    pub names: Vec<&'static str>,
    /// The scalar ones, which lists filter and sort on.
    pub fields: Vec<FieldSpec>,
}

impl Props {
    /// Read from `T`'s schema in the OpenAPI document's components.
    fn of<T: ToSchema>() -> Self {
        let mut names = Vec::new();
        let mut fields = Vec::new();
        for (name, schema) in crate::openapi::properties(&T::name()) {
            // Leaked once per property at first use: the list query types keep
            // `&'static str` names, and there are a few dozen of them in all.
            let name: &'static str = Box::leak(name.into_boxed_str());
            names.push(name);
            let kind = match crate::openapi::json_type(&schema) {
                Some("integer") => Some(FieldKind::Int),
                Some("string" | "boolean") => Some(FieldKind::Text),
                _ => None,
            };
            if let Some(kind) = kind {
                fields.push(FieldSpec { name, kind });
            }
        }
        Self { names, fields }
    }
}

/// `APIToken`'s properties.
pub static TOKEN: LazyLock<Props> = LazyLock::new(Props::of::<ApiTokenObject>);
/// `APITokenSelf`'s properties.
pub static TOKEN_SELF: LazyLock<Props> = LazyLock::new(Props::of::<ApiTokenSelf>);
/// `Admin`'s properties.
pub static USER: LazyLock<Props> = LazyLock::new(Props::of::<Admin>);
/// `Role`'s properties.
pub static ROLE: LazyLock<Props> = LazyLock::new(Props::of::<RoleObject>);
/// `Portal`'s properties.
pub static PORTAL: LazyLock<Props> = LazyLock::new(Props::of::<PortalObject>);
/// `AccessLogItem`'s properties.
pub static AUDIT: LazyLock<Props> = LazyLock::new(Props::of::<AccessLogItem>);

/// An object as a JSON map (for projection and list queries).
pub fn to_map<T: Serialize>(obj: &T) -> Map<String, Value> {
    match serde_json::to_value(obj) {
        Ok(Value::Object(m)) => m,
        // The API's objects are structs, which always serialize to maps.
        _ => Map::new(),
    }
}

/// A JSON response body, serialized once from what the handler holds (a typed object
/// goes straight to bytes, without a `serde_json::Value` in between).
#[derive(Debug)]
pub struct JsonReply(Vec<u8>);

impl JsonReply {
    /// `v` serialized.
    pub fn of<T: Serialize + ?Sized>(v: &T) -> Self {
        // The API's objects hold strings, numbers, booleans, lists and string-keyed
        // maps: serializing them cannot fail.
        Self(serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()))
    }
}

impl axum::response::IntoResponse for JsonReply {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// An object with only the requested properties (all of them, serialized directly,
/// when no `fields` were asked for).
pub fn projected<T: Serialize>(obj: &T, fields: Option<&[String]>) -> JsonReply {
    match fields {
        None => JsonReply::of(obj),
        Some(_) => JsonReply::of(&project(to_map(obj), fields)),
    }
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
    self::page(total, page.into_iter().map(|r| r.0), q)
}

/// A page already cut (`total` items in the whole list), projected as `q` asks.
pub fn page(total: usize, page: impl Iterator<Item = Map<String, Value>>, q: &ListQuery) -> Value {
    let items: Vec<Value> = page
        .map(|m| Value::Object(project(m, q.fields.as_deref())))
        .collect();
    json!({"total": total, "searchId": null, "items": items})
}

/// The body of a list response whose items are typed objects.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed<'a, T> {
    total: usize,
    search_id: Option<()>,
    items: &'a [T],
}

/// A page already cut, of typed objects: serialized directly unless `q` asks for
/// some properties only.
pub fn typed_page<T: Serialize>(total: usize, items: &[T], q: &ListQuery) -> JsonReply {
    match q.fields {
        None => JsonReply::of(&Listed {
            total,
            search_id: None,
            items,
        }),
        Some(_) => JsonReply::of(&page(total, items.iter().map(to_map), q)),
    }
}
