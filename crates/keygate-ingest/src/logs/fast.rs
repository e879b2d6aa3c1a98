//! The one-pass reading of a logs payload: each line's fields deserialized straight
//! into a [`LogInput`], keys borrowed from the body, without the JSON tree and the
//! per-line maps the field-by-field reading builds (a profile of one collector
//! pushing 100-line requests showed a tenth of the server's CPU in that tree).
//!
//! It takes only what it is sure of: any field of a type it does not expect, a value
//! out of bounds, a key it would have to guess about, and it gives up on the whole
//! payload (`None`), which the caller then reads field by field. So it never takes
//! what the field-by-field reading refuses, and the refusal's words come from one
//! place.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use keygate_store::data::{LogInput, Properties};

use crate::limits::{MAX_ELEMENTS, MAX_MESSAGE, MAX_NAME, MAX_PROPERTIES, MAX_VALUE};

/// The lines of `body`, or `None` when this reading is not sure of all of them.
pub(super) fn parse(body: &[u8], now_ms: i64) -> Option<Vec<LogInput>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let lines = de.deserialize_seq(Lines { now_ms }).ok()?;
    de.end().ok()?;
    Some(lines)
}

/// Gives up: the caller reads the payload field by field.
fn unsure<E: de::Error>() -> E {
    E::custom("not read in one pass")
}

struct Lines {
    now_ms: i64,
}

impl<'de> Visitor<'de> for Lines {
    type Value = Vec<LogInput>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of log lines")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_ELEMENTS));
        while let Some(line) = seq.next_element_seed(Line {
            now_ms: self.now_ms,
        })? {
            if out.len() == MAX_ELEMENTS {
                return Err(unsure());
            }
            out.push(line);
        }
        Ok(out)
    }
}

/// A key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// `_lm.resourceId`: string values only (numbers and booleans, which the
/// field-by-field reading turns into text, are left to it).
struct Ids(Properties);

impl<'de> serde::Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ids;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("resource ids")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ids, A::Error> {
                let mut ids = Properties::new();
                while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
                    let value: String = map.next_value()?;
                    let bad_name = name.trim().is_empty() || name.chars().count() > MAX_NAME;
                    let bad_value = value.chars().count() > MAX_VALUE
                        || value.chars().any(|c| "*<?,;`\\".contains(c));
                    if bad_name || bad_value || ids.len() == MAX_PROPERTIES {
                        return Err(unsure());
                    }
                    if ids.insert(name.into_owned(), value).is_some() {
                        // A repeated id: the last is taken either way, but say nothing.
                        return Err(unsure());
                    }
                }
                if ids.is_empty() {
                    return Err(unsure());
                }
                Ok(Ids(ids))
            }
        }
        d.deserialize_map(V)
    }
}

struct Line {
    now_ms: i64,
}

impl<'de> DeserializeSeed<'de> for Line {
    type Value = LogInput;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<LogInput, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Line {
    type Value = LogInput;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a log line")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LogInput, A::Error> {
        let mut message: Option<String> = None;
        let mut ids: Option<Properties> = None;
        let mut at_ms: Option<i64> = None;
        let mut level: Option<String> = None;
        let mut metadata: Option<Map<String, Value>> = None;
        let mut extra: Map<String, Value> = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "msg" => {
                    let m: String = map.next_value()?;
                    if message.is_some() || m.len() > MAX_MESSAGE {
                        return Err(unsure());
                    }
                    message = Some(m);
                }
                "_lm.resourceId" => {
                    let Ids(i) = map.next_value()?;
                    if ids.replace(i).is_some() {
                        return Err(unsure());
                    }
                }
                "timestamp" => {
                    let t: Value = map.next_value()?;
                    if at_ms.is_some() {
                        return Err(unsure());
                    }
                    at_ms = Some(if t.is_null() {
                        self.now_ms
                    } else {
                        super::timestamp(&t).ok_or_else(unsure)?
                    });
                }
                "log_level" => {
                    let l: Option<String> = map.next_value()?;
                    let l = l.unwrap_or_default();
                    if level.is_some() || l.chars().count() > 32 {
                        return Err(unsure());
                    }
                    level = Some(l);
                }
                "metadata" => {
                    let m: Option<Map<String, Value>> = map.next_value()?;
                    if metadata.replace(m.unwrap_or_default()).is_some() {
                        return Err(unsure());
                    }
                }
                other => {
                    let v: Value = map.next_value()?;
                    if extra.insert(other.to_owned(), v).is_some() {
                        return Err(unsure());
                    }
                }
            }
        }
        let (Some(message), Some(ids)) = (message, ids) else {
            return Err(unsure());
        };
        // The line's other fields join its metadata object, and win a name in both.
        let mut metadata = metadata.unwrap_or_default();
        metadata.extend(extra);
        Ok(LogInput {
            ids,
            at_ms: at_ms.unwrap_or(self.now_ms),
            level: level.unwrap_or_default(),
            message,
            metadata: if metadata.is_empty() {
                "{}".to_owned()
            } else {
                Value::Object(metadata).to_string()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A field value of any of the kinds a payload might hold, good and bad.
    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (1_600_000_000.0..1_800_000_000.0f64).prop_map(|n| json!(n)),
            "[a-z<*;\\\\ ]{0,12}".prop_map(Value::String),
            Just(json!("2023-11-14T22:13:20Z")),
            Just(json!({"system.hostname": "web-1"})),
            Just(json!({"a": "b", "c": "x<y"})),
            Just(json!({"n": 5})),
            Just(json!({})),
            Just(json!([1, "two"])),
            Just(json!("x".repeat(MAX_MESSAGE + 1))),
            Just(json!("level-".repeat(6))),
            Just(json!({"": "empty name"})),
        ]
    }

    fn any_line() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("msg".to_owned()),
            Just("_lm.resourceId".to_owned()),
            Just("timestamp".to_owned()),
            Just("log_level".to_owned()),
            Just("metadata".to_owned()),
            Just("app".to_owned()),
            Just("trace_id".to_owned()),
        ];
        prop::collection::vec((key, any_value()), 0..7).prop_map(|kvs| {
            let mut m = Map::new();
            for (k, v) in kvs {
                m.insert(k, v);
            }
            Value::Object(m)
        })
    }

    /// A line the one pass should take.
    fn good_line() -> impl Strategy<Value = Value> {
        (
            "[a-z ]{0,20}",
            "[a-z0-9.-]{1,10}",
            prop::option::of(1_600_000_000_000i64..1_800_000_000_000),
            prop::option::of("[a-z]{0,8}"),
            prop::option::of("[a-z]{0,8}"),
        )
            .prop_map(|(msg, host, at, level, app)| {
                let mut m = json!({"msg": msg, "_lm.resourceId": {"system.hostname": host}});
                if let Some(at) = at {
                    m["timestamp"] = json!(at);
                }
                if let Some(level) = level {
                    m["log_level"] = json!(level);
                }
                if let Some(app) = app {
                    m["app"] = json!(app);
                    m["metadata"] = json!({"app": "overridden", "keep": 1});
                }
                m
            })
    }

    /// A good line with one field set to any value (often one the tree refuses).
    fn bent_line() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("msg"),
            Just("_lm.resourceId"),
            Just("timestamp"),
            Just("log_level"),
            Just("metadata"),
            Just("extra"),
        ];
        (good_line(), key, any_value()).prop_map(|(mut line, key, v)| {
            line[key] = v;
            line
        })
    }

    /// A good line whose resource ids break one rule or another (or none).
    fn bent_ids_line() -> impl Strategy<Value = Value> {
        let ids = prop_oneof![
            Just(json!({"": "empty name"})),
            Just(json!({" ": "blank name"})),
            Just(json!({"a": "x<y"})),
            Just(json!({"a": "x;y"})),
            Just(json!({"a": 5})),
            Just(json!({"a": true})),
            Just(json!({"a": null})),
            Just(json!({})),
            Just(json!({"n".repeat(MAX_NAME + 1): "long name"})),
            Just(json!({"a": "v".repeat(MAX_VALUE + 1)})),
            Just(json!({"a": "fine", "b": "also fine"})),
        ];
        (good_line(), ids).prop_map(|(mut line, ids)| {
            line["_lm.resourceId"] = ids;
            line
        })
    }

    /// A good line whose message is at, or just past, the size bound.
    fn long_msg_line() -> impl Strategy<Value = Value> {
        let msg = prop_oneof![
            Just("x".repeat(MAX_MESSAGE)),
            Just("x".repeat(MAX_MESSAGE + 1)),
            Just("é".repeat(MAX_MESSAGE / 2 + 1)),
        ];
        (good_line(), msg).prop_map(|(mut line, msg)| {
            line["msg"] = json!(msg);
            line
        })
    }

    proptest! {
        #[test]
        fn one_pass_takes_only_what_the_tree_takes_and_the_same(
            lines in prop::collection::vec(
                prop_oneof![any_line(), good_line(), bent_line(), bent_ids_line(), long_msg_line()], 0..6)
        ) {
            let body = Value::Array(lines).to_string();
            let tree = super::super::parse_tree(body.as_bytes(), 7);
            if let Some(fast) = parse(body.as_bytes(), 7) {
                prop_assert_eq!(Ok(fast), tree);
            }
        }

        #[test]
        fn one_pass_takes_the_common_shape(
            lines in prop::collection::vec(good_line(), 0..6)
        ) {
            let body = Value::Array(lines).to_string();
            let fast = parse(body.as_bytes(), 7);
            prop_assert!(fast.is_some(), "{}", body);
            prop_assert_eq!(Ok(fast.unwrap_or_default()), super::super::parse_tree(body.as_bytes(), 7));
        }
    }

    #[test]
    fn escaped_keys_trailing_bytes_and_non_arrays() {
        let escaped = br#"[{"m\u0073g": "hi", "_lm.resourceId": {"a": "b"}}]"#;
        assert_eq!(
            parse(escaped, 1).map(|l| l[0].message.clone()),
            Some("hi".into())
        );
        assert_eq!(parse(b"[] x", 1), None);
        assert_eq!(parse(b"{}", 1), None);
        assert_eq!(
            parse(br#"[{"msg": "a", "_lm.resourceId": {"n": 1}}]"#, 1),
            None
        );
    }
}
