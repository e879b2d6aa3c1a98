//! `POST /rest/log/ingest`: a JSON array of log lines, each with `msg`,
//! `_lm.resourceId`, and optionally `timestamp`, `log_level` and metadata (a
//! `metadata` object and any other fields).

use serde_json::{Map, Value};

use keygate_store::data::LogInput;

use crate::Result;
use crate::limits::{MAX_ELEMENTS, MAX_MESSAGE};
use crate::walk::{self, invalid};

/// The fields a log line's own columns hold; everything else is metadata.
const OWN: &[&str] = &[
    "msg",
    "_lm.resourceId",
    "timestamp",
    "log_level",
    "metadata",
];

/// Parses and validates a logs payload; lines without a timestamp get `now_ms`.
///
/// Most payloads are read in one pass straight into their lines ([`fast`]); a payload
/// that pass does not take whole (anything it is unsure of, and every payload with a
/// fault) is read again field by field, which names the fault. Both give the same
/// lines for what they both take (a property test holds them to it).
pub fn parse(body: &[u8], now_ms: i64) -> Result<Vec<LogInput>> {
    if let Some(lines) = fast::parse(body, now_ms) {
        return Ok(lines);
    }
    parse_tree(body, now_ms)
}

/// The field-by-field reading, through a JSON tree.
fn parse_tree(body: &[u8], now_ms: i64) -> Result<Vec<LogInput>> {
    let items = walk::elements(walk::json(body)?, "log lines", MAX_ELEMENTS)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| line(v, i, now_ms))
        .collect()
}

/// One line. Its strings are moved out of the parsed JSON rather than copied, and the
/// words naming it (`element 3:`) are made only for a refusal: a request holds up to
/// 10,000 lines.
fn line(v: Value, i: usize, now_ms: i64) -> Result<LogInput> {
    let at = || format!("element {i}: ");
    let Value::Object(mut m) = v else {
        return Err(invalid(&format!("element {i}"), "must be a JSON object"));
    };
    let message = match m.remove("msg") {
        Some(Value::String(s)) if s.len() <= MAX_MESSAGE => s,
        Some(Value::String(s)) => {
            return Err(invalid(
                &format!("{}msg", at()),
                format!(
                    "is {} bytes; a log message may have at most {MAX_MESSAGE}",
                    s.len()
                ),
            ));
        }
        None | Some(Value::Null) => return Err(invalid(&format!("{}msg", at()), "is required")),
        Some(_) => return Err(invalid(&format!("{}msg", at()), "must be a string")),
    };
    let ids = walk::resource_ids(&m, "_lm.resourceId", &at())?;
    let at_ms = match m.get("timestamp") {
        None | Some(Value::Null) => now_ms,
        Some(t) => timestamp(t).ok_or_else(|| {
            invalid(
                &format!("{}timestamp", at()),
                "must be epoch seconds, milliseconds, microseconds or nanoseconds, or ISO 8601",
            )
        })?,
    };
    let level = match m.remove("log_level") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() <= 32 => s,
        Some(Value::String(_)) => {
            return Err(invalid(
                &format!("{}log_level", at()),
                "is longer than 32 characters",
            ));
        }
        Some(_) => return Err(invalid(&format!("{}log_level", at()), "must be a string")),
    };
    let mut metadata = match m.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(invalid(
                &format!("{}metadata", at()),
                "must be a JSON object",
            ));
        }
    };
    metadata.extend(m.into_iter().filter(|(k, _)| !OWN.contains(&k.as_str())));
    Ok(LogInput {
        ids,
        at_ms,
        level,
        message,
        metadata: if metadata.is_empty() {
            "{}".to_owned()
        } else {
            Value::Object(metadata).to_string()
        },
    })
}

/// Epoch milliseconds from what LogicMonitor accepts: a number or numeric text in
/// seconds, milliseconds, microseconds or nanoseconds (told apart by size), or ISO
/// 8601 text (UTC when it names no offset).
pub fn timestamp(v: &Value) -> Option<i64> {
    let number = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => return None,
    };
    if let Some(n) = number {
        if !(n.is_finite() && n > 0.0) {
            return None;
        }
        let ms = if n < 1e11 {
            n * 1e3
        } else if n < 1e14 {
            n
        } else if n < 1e17 {
            n / 1e3
        } else {
            n / 1e6
        };
        #[allow(clippy::cast_possible_truncation)]
        return Some(ms.round() as i64);
    }
    let s = v.as_str()?.trim();
    use time::format_description::well_known::Iso8601;
    let t = time::OffsetDateTime::parse(s, &Iso8601::DEFAULT)
        .or_else(|_| time::PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).map(|p| p.assume_utc()))
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

mod fast;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_sdk_shape_is_read() {
        let b = json!([{
            "msg": "disk full", "_lm.resourceId": {"system.hostname": "web-1"},
            "timestamp": 1_700_000_000, "log_level": "error",
            "metadata": {"service": "api"}, "trace_id": "abc"
        }, {"msg": "later", "_lm.resourceId": {"system.hostname": "web-1"}}]);
        let got = parse(b.to_string().as_bytes(), 42).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got[0].at_ms, 1_700_000_000_000);
        assert_eq!(got[0].level, "error");
        assert_eq!(got[0].metadata, r#"{"service":"api","trace_id":"abc"}"#);
        assert_eq!(got[1].at_ms, 42);
    }

    #[test]
    fn timestamps_in_every_unit() {
        let want = Some(1_700_000_000_123);
        assert_eq!(timestamp(&json!(1_700_000_000.123)), want);
        assert_eq!(timestamp(&json!(1_700_000_000_123_i64)), want);
        assert_eq!(timestamp(&json!("1700000000123000")), want);
        assert_eq!(timestamp(&json!(1_700_000_000_123_000_000_i64)), want);
        assert_eq!(timestamp(&json!("2023-11-14T22:13:20.123Z")), want);
        assert_eq!(timestamp(&json!("2023-11-14T23:13:20.123+01:00")), want);
        assert_eq!(timestamp(&json!("2023-11-14T22:13:20.123")), want);
        assert_eq!(timestamp(&json!("yesterday")), None);
        assert_eq!(timestamp(&json!(-5)), None);
    }

    #[test]
    fn oversized_messages_and_missing_ids_name_the_line() {
        let long = "x".repeat(MAX_MESSAGE + 1);
        let b = json!([{"msg": "ok", "_lm.resourceId": {"a": "b"}}, {"msg": long, "_lm.resourceId": {"a": "b"}}]);
        let e = parse(b.to_string().as_bytes(), 0)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("element 1: msg is 32769 bytes; a log message may have at most 32768")
        );
        let b = json!([{"msg": "no resource"}]);
        let e = parse(b.to_string().as_bytes(), 0)
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("element 0: _lm.resourceId is required"));
    }
}
