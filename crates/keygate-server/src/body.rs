//! Reading JSON request bodies with errors that name the field at fault.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;

/// Largest request body the REST API accepts (its objects are small: a note is at
/// most 1,024 characters).
pub const MAX_BODY: usize = 64 * 1024;
/// Largest request body the web UI's forms and calls accept.
pub const UI_MAX_BODY: usize = 16 * 1024;

/// Reads a request body of at most `limit` bytes: 413 past it (refused from
/// `Content-Length` before anything is read, when it is announced), 400 when the body
/// cannot be read (a reset, or its deadline, which the front service turns into 408).
pub async fn read_limited(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = keygate_tower::gate::declared_length(headers);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Err(_) => Err(ApiError::BadRequest(
            "the request body could not be read".to_owned(),
        )),
    }
}

/// A JSON object from a request body. An empty body is an empty object.
#[derive(Debug, Default)]
pub struct JsonBody(pub Map<String, Value>);

impl JsonBody {
    /// Parses a body, checking its media type.
    pub fn parse(headers: &HeaderMap, bytes: &Bytes) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let json_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if json_type != Some(true) {
            return Err(ApiError::UnsupportedMediaType);
        }
        match serde_json::from_slice::<Strict>(bytes) {
            Ok(Strict(Value::Object(map))) => Ok(Self(map)),
            Ok(_) => Err(ApiError::BadRequest(
                "the request body must be a JSON object".to_owned(),
            )),
            Err(e) if e.is_data() => Err(ApiError::BadRequest(format!(
                "the request body is invalid: {e}"
            ))),
            Err(e) => Err(ApiError::BadRequest(format!(
                "the request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))),
        }
    }

    /// The body as the typed request `T`. Each property's JSON type is first checked
    /// against `T`'s schema in the OpenAPI document (so the error names the field and
    /// the type it must have: "note must be a string", "roles[0].id must be a whole
    /// number"); unknown properties are ignored, and `null` counts as left out.
    pub fn decode<T: DeserializeOwned + ToSchema>(self) -> Result<T, ApiError> {
        let body = Value::Object(self.0);
        if let Some(s) = crate::openapi::schema(&T::name()) {
            check(&body, s, "")?;
        }
        // What the schema cannot say (a number out of the type's range, a property
        // the schema leaves out) still names the field.
        serde_path_to_error::deserialize(body).map_err(|e| {
            let path = e.path().to_string();
            ApiError::BadRequest(format!("{path}: {}", e.into_inner()))
        })
    }

    /// Refuses a body without one of `fields` (or with it `null`).
    pub fn require(&self, fields: &[&str]) -> Result<(), ApiError> {
        match fields
            .iter()
            .find(|f| self.0.get(**f).is_none_or(Value::is_null))
        {
            Some(f) => Err(ApiError::BadRequest(format!("{f} is required"))),
            None => Ok(()),
        }
    }
}

/// Checks `v` against schema `s` at `path`: JSON types, nested properties, array
/// items and required properties of nested objects.
fn check(v: &Value, s: &Value, path: &str) -> Result<(), ApiError> {
    let s = crate::openapi::resolve(s);
    if let Some(Value::Array(parts)) = s.get("allOf") {
        for p in parts {
            check(v, p, path)?;
        }
    }
    if v.is_null() {
        return Ok(());
    }
    if let Some(t) = crate::openapi::json_type(s) {
        let (ok, words) = match t {
            "string" => (v.is_string(), "a string"),
            "integer" => (v.is_i64(), "a whole number"),
            "number" => (v.is_number(), "a number"),
            "boolean" => (v.is_boolean(), "true or false"),
            "array" => (v.is_array(), "an array"),
            "object" => (v.is_object(), "an object"),
            _ => (true, ""),
        };
        if !ok {
            return Err(wrong_type(path, words));
        }
    }
    let at = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(obj) = v.as_object() {
        if let Some(Value::Object(props)) = s.get("properties") {
            for (name, ps) in props {
                if let Some(x) = obj.get(name) {
                    check(x, ps, &at(name))?;
                }
            }
        }
        if let Some(Value::Array(required)) = s.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if obj.get(name).is_none_or(Value::is_null) {
                    return Err(ApiError::BadRequest(format!("{} is required", at(name))));
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(x, items, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

/// The error for a property of the wrong JSON type.
pub fn wrong_type(field: &str, expected: &str) -> ApiError {
    ApiError::BadRequest(format!("{field} must be {expected}"))
}

/// Any JSON value, refusing objects that name a key twice: which of two values a
/// client meant is ambiguous, and parsers disagree on it (first wins, last wins).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(serde::de::Error::custom(format!(
                    "the key \"{shown}\" appears more than once"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}
