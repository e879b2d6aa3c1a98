//! Reading JSON request bodies with errors that name the field at fault.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

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
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::BadRequest(
                "the request body must be a JSON object".to_owned(),
            )),
            Err(e) => Err(ApiError::BadRequest(format!(
                "the request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))),
        }
    }

    /// Whether a property is present (even as null).
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    /// A string property, if present.
    pub fn str(&self, field: &'static str) -> Result<Option<&str>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(field, "a string")),
        }
    }

    /// A whole-number property, if present.
    pub fn int(&self, field: &'static str) -> Result<Option<i64>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(field, "a whole number")),
            Some(_) => Err(wrong_type(field, "a whole number")),
        }
    }

    /// A boolean property, if present.
    pub fn bool(&self, field: &'static str) -> Result<Option<bool>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(wrong_type(field, "true or false")),
        }
    }

    /// An array property, if present.
    pub fn array(&self, field: &'static str) -> Result<Option<&Vec<Value>>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(wrong_type(field, "an array")),
        }
    }
}

/// The error for a property of the wrong JSON type.
pub fn wrong_type(field: &str, expected: &str) -> ApiError {
    ApiError::BadRequest(format!("{field} must be {expected}"))
}
