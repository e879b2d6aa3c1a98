//! Reading a JSON payload field by field, with errors that say where.

use serde_json::{Map, Value};

use crate::limits::{MAX_PROPERTIES, MAX_VALUE};
use crate::{IngestError, Result};

/// The payload as JSON, or a 400 saying why not.
pub(crate) fn json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| IngestError::Invalid(format!("the request body is not valid JSON: {e}")))
}

/// The payload's elements: it must be a JSON array of at most `max` of them.
pub(crate) fn elements(v: Value, what: &str, max: usize) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) if a.len() <= max => Ok(a),
        Value::Array(a) => Err(IngestError::Invalid(format!(
            "the request has {} elements; at most {max} are taken at once",
            a.len()
        ))),
        _ => Err(IngestError::Invalid(format!(
            "the request body must be a JSON array of {what}"
        ))),
    }
}

/// A 400 naming where: `element 3: instances[0].instanceName must not be empty`.
pub(crate) fn invalid(at: &str, msg: impl std::fmt::Display) -> IngestError {
    IngestError::Invalid(format!("{at} {msg}"))
}

/// `v` as an object, or a 400 naming `at`.
pub(crate) fn object<'v>(v: &'v Value, at: &str) -> Result<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| invalid(at, "must be a JSON object"))
}

/// A string field: `None` when absent or null; a 400 when not a string or longer
/// than `max` characters.
pub(crate) fn text(
    m: &Map<String, Value>,
    key: &str,
    at: &str,
    max: usize,
) -> Result<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(invalid(
            &format!("{at}{key}"),
            format!("is longer than {max} characters"),
        )),
        Some(_) => Err(invalid(&format!("{at}{key}"), "must be a string")),
    }
}

/// A string field that must be present and not blank.
pub(crate) fn required_text(
    m: &Map<String, Value>,
    key: &str,
    at: &str,
    max: usize,
) -> Result<String> {
    match text(m, key, at, max)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(invalid(&format!("{at}{key}"), "must not be empty")),
        None => Err(invalid(&format!("{at}{key}"), "is required")),
    }
}

/// A map of properties: an object whose values are strings (numbers and booleans
/// are taken as their text, as LogicMonitor does), at most [`MAX_PROPERTIES`].
pub(crate) fn properties(
    m: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<keygate_store::data::Properties>> {
    let v = match m.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let here = format!("{at}{key}");
    let o = object(v, &here)?;
    if o.len() > MAX_PROPERTIES {
        return Err(invalid(
            &here,
            format!("has more than {MAX_PROPERTIES} entries"),
        ));
    }
    let mut out = keygate_store::data::Properties::new();
    for (name, value) in o {
        if name.trim().is_empty() || name.chars().count() > crate::limits::MAX_NAME {
            return Err(invalid(
                &here,
                "has an empty name or one longer than 255 characters",
            ));
        }
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(invalid(
                    &format!("{here}[\"{}\"]", name.escape_debug()),
                    "must be a string",
                ));
            }
        };
        if value.chars().count() > MAX_VALUE {
            return Err(invalid(
                &format!("{here}[\"{}\"]", name.escape_debug()),
                format!("is longer than {MAX_VALUE} characters"),
            ));
        }
        out.insert(name.clone(), value);
    }
    Ok(Some(out))
}

/// `resourceIds` (or `_lm.resourceId`): required, not empty, and no value holding
/// a character LogicMonitor refuses in resource ids.
pub(crate) fn resource_ids(
    m: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<keygate_store::data::Properties> {
    let ids =
        properties(m, key, at)?.ok_or_else(|| invalid(&format!("{at}{key}"), "is required"))?;
    if ids.is_empty() {
        return Err(invalid(&format!("{at}{key}"), "must name at least one id"));
    }
    for (name, value) in &ids {
        if let Some(c) = value.chars().find(|c| "*<?,;`\\".contains(*c)) {
            return Err(invalid(
                &format!("{at}{key}[\"{}\"]", name.escape_debug()),
                format!("must not contain {c:?}"),
            ));
        }
    }
    Ok(ids)
}
