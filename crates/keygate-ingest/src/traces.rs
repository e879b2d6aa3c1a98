//! `POST /rest/api/v1/traces`: OTLP/HTTP `ExportTraceServiceRequest`, as protobuf
//! (`application/x-protobuf`) or OTLP/JSON (`application/json`), into spans.
//!
//! Only the messages and fields keygate keeps are declared (prost skips the others,
//! as protobuf allows), from `opentelemetry/proto/trace/v1/trace.proto` and
//! `common/v1/common.proto`; the JSON side follows the OTLP/JSON mapping (lowerCamelCase
//! names, ids as hex, 64-bit integers as strings or numbers, enums as numbers).

use serde_json::{Map, Value, json};

use keygate_store::data::SpanInput;

use crate::{IngestError, Result};

/// Most spans in one request.
pub const MAX_SPANS: usize = 100_000;
/// Most attributes kept on one span or resource.
pub const MAX_ATTRIBUTES: usize = 256;
/// Longest span name, in characters.
pub const MAX_SPAN_NAME: usize = 1024;

/// The request's encoding, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf` (the default of OTLP/HTTP exporters).
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names; `None` for one OTLP does not define.
    pub fn of(content_type: Option<&str>) -> Option<Self> {
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("application/x-protobuf" | "application/protobuf") => Some(Self::Protobuf),
            Some("application/json") => Some(Self::Json),
            _ => None,
        }
    }

    /// The media type of answers in this encoding.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }

    /// A successful export's answer: an empty `ExportTraceServiceResponse`.
    pub fn success(self) -> Vec<u8> {
        match self {
            Self::Protobuf => Vec::new(),
            Self::Json => b"{}".to_vec(),
        }
    }

    /// A refusal as OTLP/HTTP asks: a `google.rpc.Status` with `code` (gRPC's, 3 for
    /// an invalid argument) and `message`, in the request's encoding.
    pub fn status(self, grpc_code: i32, message: &str) -> Vec<u8> {
        match self {
            Self::Protobuf => prost::Message::encode_to_vec(&pb::Status {
                code: grpc_code,
                message: message.to_owned(),
            }),
            Self::Json => json!({"code": grpc_code, "message": message})
                .to_string()
                .into_bytes(),
        }
    }
}

/// The protobuf messages read (the common ones also serve [`crate::otlp`]).
pub(crate) mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(message, optional, tag = "15")]
        pub status: Option<SpanStatus>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SpanStatus {
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(int32, tag = "3")]
        pub code: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<Value>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        String(String),
        #[prost(bool, tag = "2")]
        Bool(bool),
        #[prost(int64, tag = "3")]
        Int(i64),
        #[prost(double, tag = "4")]
        Double(f64),
        #[prost(message, tag = "5")]
        Array(ArrayValue),
        #[prost(message, tag = "6")]
        KvList(KeyValueList),
        #[prost(bytes = "vec", tag = "7")]
        Bytes(Vec<u8>),
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
    /// `google.rpc.Status`, for refusals.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
    }
}

/// The OTLP/JSON shapes read.
mod js {
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Request {
        pub resource_spans: Vec<ResourceSpans>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    pub struct ResourceSpans {
        pub resource: Resource,
        pub scope_spans: Vec<ScopeSpans>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Resource {
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    pub struct ScopeSpans {
        pub spans: Vec<Span>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Span {
        pub trace_id: String,
        pub span_id: String,
        pub parent_span_id: String,
        pub name: String,
        pub kind: Value,
        pub start_time_unix_nano: Value,
        pub end_time_unix_nano: Value,
        pub attributes: Vec<KeyValue>,
        pub status: Option<Status>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Status {
        pub message: String,
        pub code: Value,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct KeyValue {
        pub key: String,
        pub value: Value,
    }
}

/// Parses an export request in `encoding` into spans; each resource's `service.name`
/// names its spans' service.
pub fn parse(body: &[u8], encoding: Encoding) -> Result<Vec<SpanInput>> {
    let mut out = Vec::new();
    match encoding {
        Encoding::Protobuf => {
            let req: pb::ExportTraceServiceRequest = prost::Message::decode(body).map_err(|e| {
                IngestError::Invalid(format!(
                    "the body is not an OTLP ExportTraceServiceRequest: {e}"
                ))
            })?;
            for rs in req.resource_spans {
                let resource = attributes_pb(rs.resource.map(|r| r.attributes).unwrap_or_default());
                let service = service_of(&resource);
                let resource_text = Value::Object(resource).to_string();
                for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                    let at = format!("span {}:", out.len());
                    let (status, message) = s
                        .status
                        .map_or((0, String::new()), |st| (st.code, st.message));
                    out.push(span(
                        &at,
                        Ids {
                            trace: hex(&s.trace_id),
                            span: hex(&s.span_id),
                            parent: hex(&s.parent_span_id),
                        },
                        &service,
                        s.name,
                        i64::from(s.kind),
                        (
                            i64::try_from(s.start_time_unix_nano).ok(),
                            i64::try_from(s.end_time_unix_nano).ok(),
                        ),
                        (i64::from(status), message),
                        Value::Object(attributes_pb(s.attributes)).to_string(),
                        resource_text.clone(),
                    )?);
                    if out.len() > MAX_SPANS {
                        return Err(too_many());
                    }
                }
            }
        }
        Encoding::Json => {
            let req: js::Request = serde_json::from_slice(body).map_err(|e| {
                IngestError::Invalid(format!(
                    "the body is not OTLP/JSON ExportTraceServiceRequest: {e}"
                ))
            })?;
            for rs in req.resource_spans {
                let resource = attributes_js(rs.resource.attributes);
                let service = service_of(&resource);
                let resource_text = Value::Object(resource).to_string();
                for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                    let at = format!("span {}:", out.len());
                    let (status, message) = s.status.map_or((0, String::new()), |st| {
                        (int(&st.code).unwrap_or(-1), st.message)
                    });
                    out.push(span(
                        &at,
                        Ids {
                            trace: s.trace_id.to_ascii_lowercase(),
                            span: s.span_id.to_ascii_lowercase(),
                            parent: s.parent_span_id.to_ascii_lowercase(),
                        },
                        &service,
                        s.name,
                        int(&s.kind).unwrap_or(-1),
                        (time(&s.start_time_unix_nano), time(&s.end_time_unix_nano)),
                        (status, message),
                        Value::Object(attributes_js(s.attributes)).to_string(),
                        resource_text.clone(),
                    )?);
                    if out.len() > MAX_SPANS {
                        return Err(too_many());
                    }
                }
            }
        }
    }
    Ok(out)
}

fn too_many() -> IngestError {
    IngestError::Invalid(format!(
        "the request has more than {MAX_SPANS} spans; send them in several requests"
    ))
}

struct Ids {
    trace: String,
    span: String,
    parent: String,
}

#[allow(clippy::too_many_arguments)]
fn span(
    at: &str,
    ids: Ids,
    service: &str,
    name: String,
    kind: i64,
    (start, end): (Option<i64>, Option<i64>),
    (status, status_message): (i64, String),
    attributes: String,
    resource: String,
) -> Result<SpanInput> {
    let is_hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
    };
    if !is_hex(&ids.trace, 32) {
        return Err(IngestError::Invalid(format!(
            "{at} traceId must be 16 bytes, not all zero"
        )));
    }
    if !is_hex(&ids.span, 16) {
        return Err(IngestError::Invalid(format!(
            "{at} spanId must be 8 bytes, not all zero"
        )));
    }
    if !(ids.parent.is_empty() || is_hex(&ids.parent, 16)) {
        return Err(IngestError::Invalid(format!(
            "{at} parentSpanId must be empty or 8 bytes"
        )));
    }
    if name.chars().count() > MAX_SPAN_NAME {
        return Err(IngestError::Invalid(format!(
            "{at} name is longer than {MAX_SPAN_NAME} characters"
        )));
    }
    let (Some(start_ns), Some(end_ns)) = (start, end) else {
        return Err(IngestError::Invalid(format!(
            "{at} startTimeUnixNano and endTimeUnixNano must be whole nanoseconds"
        )));
    };
    if end_ns < start_ns {
        return Err(IngestError::Invalid(format!(
            "{at} endTimeUnixNano is before startTimeUnixNano"
        )));
    }
    let kind = match kind {
        0 => "unspecified",
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => return Err(IngestError::Invalid(format!("{at} kind must be 0 to 5"))),
    };
    let status = match status {
        0 => "unset",
        1 => "ok",
        2 => "error",
        _ => {
            return Err(IngestError::Invalid(format!(
                "{at} status.code must be 0, 1 or 2"
            )));
        }
    };
    Ok(SpanInput {
        trace_id: ids.trace,
        span_id: ids.span,
        parent_span_id: ids.parent,
        service: service.to_owned(),
        name,
        kind: kind.to_owned(),
        start_ns,
        end_ns,
        status: status.to_owned(),
        status_message,
        attributes,
        resource,
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A span's time: required, unlike the fields whose absence means 0.
fn time(v: &Value) -> Option<i64> {
    if v.is_null() { None } else { int(v) }
}

/// A JSON integer, or one written as a string (OTLP/JSON's 64-bit integers); absent
/// is 0, as protobuf's defaults are.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Null => Some(0),
        _ => None,
    }
}

fn service_of(resource: &Map<String, Value>) -> String {
    resource
        .get("service.name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(256)
        .collect()
}

fn attributes_pb(kvs: Vec<pb::KeyValue>) -> Map<String, Value> {
    kvs.into_iter()
        .take(MAX_ATTRIBUTES)
        .map(|kv| (kv.key, kv.value.map_or(Value::Null, any_pb)))
        .collect()
}

fn any_pb(v: pb::AnyValue) -> Value {
    match v.value {
        None => Value::Null,
        Some(pb::Value::String(s)) => Value::String(s),
        Some(pb::Value::Bool(b)) => Value::Bool(b),
        Some(pb::Value::Int(i)) => json!(i),
        Some(pb::Value::Double(d)) => json!(d),
        Some(pb::Value::Array(a)) => Value::Array(a.values.into_iter().map(any_pb).collect()),
        Some(pb::Value::KvList(l)) => Value::Object(attributes_pb(l.values)),
        Some(pb::Value::Bytes(b)) => Value::String(hex(&b)),
    }
}

fn attributes_js(kvs: Vec<js::KeyValue>) -> Map<String, Value> {
    kvs.into_iter()
        .take(MAX_ATTRIBUTES)
        .map(|kv| (kv.key, any_js(kv.value)))
        .collect()
}

/// An OTLP/JSON `AnyValue` (`{"stringValue": ...}` and the like) as plain JSON.
fn any_js(v: Value) -> Value {
    let Value::Object(mut m) = v else {
        return Value::Null;
    };
    if let Some(s) = m.remove("stringValue") {
        return s;
    }
    if let Some(b) = m.remove("boolValue") {
        return b;
    }
    if let Some(i) = m.remove("intValue") {
        return int(&i).map_or(i, |n| json!(n));
    }
    if let Some(d) = m.remove("doubleValue") {
        return d;
    }
    if let Some(Value::Object(mut a)) = m.remove("arrayValue") {
        return match a.remove("values") {
            Some(Value::Array(vs)) => Value::Array(vs.into_iter().map(any_js).collect()),
            _ => Value::Array(Vec::new()),
        };
    }
    if let Some(Value::Object(mut l)) = m.remove("kvlistValue") {
        let kvs: Vec<js::KeyValue> = match l.remove("values") {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => Vec::new(),
        };
        return Value::Object(attributes_js(kvs));
    }
    m.remove("bytesValue").unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::ExportTraceServiceRequest {
        let kv = |k: &str, v: pb::Value| pb::KeyValue {
            key: k.to_owned(),
            value: Some(pb::AnyValue { value: Some(v) }),
        };
        pb::ExportTraceServiceRequest {
            resource_spans: vec![pb::ResourceSpans {
                resource: Some(pb::Resource {
                    attributes: vec![kv("service.name", pb::Value::String("checkout".into()))],
                }),
                scope_spans: vec![pb::ScopeSpans {
                    spans: vec![pb::Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        parent_span_id: vec![],
                        name: "GET /cart".into(),
                        kind: 2,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_250_000_000,
                        attributes: vec![kv("http.status_code", pb::Value::Int(200))],
                        status: Some(pb::SpanStatus {
                            message: String::new(),
                            code: 1,
                        }),
                    }],
                }],
            }],
        }
    }

    #[test]
    fn protobuf_and_json_give_the_same_span() {
        let bytes = prost::Message::encode_to_vec(&request());
        let from_pb = parse(&bytes, Encoding::Protobuf).unwrap_or_else(|e| panic!("{e}"));
        let text = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
            "scopeSpans": [{"scope": {"name": "x"}, "spans": [{
                "traceId": "ABABABABABABABABABABABABABABABAB", "spanId": "0101010101010101",
                "name": "GET /cart", "kind": 2,
                "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1_700_000_000_250_000_000_i64,
                "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}],
                "status": {"code": 1}
            }]}]
        }]});
        let from_json =
            parse(text.to_string().as_bytes(), Encoding::Json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_pb, from_json);
        let s = &from_pb[0];
        assert_eq!(s.trace_id, "ab".repeat(16));
        assert_eq!(
            (s.service.as_str(), s.kind.as_str(), s.status.as_str()),
            ("checkout", "server", "ok")
        );
        assert_eq!(s.attributes, r#"{"http.status_code":200}"#);
    }

    #[test]
    fn bad_ids_times_and_bytes_are_refused() {
        let mut r = request();
        r.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0; 16];
        let e = parse(&prost::Message::encode_to_vec(&r), Encoding::Protobuf);
        assert!(e.is_err_and(|e| e.to_string().contains("traceId")));
        let mut r = request();
        r.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano = 1;
        assert!(parse(&prost::Message::encode_to_vec(&r), Encoding::Protobuf).is_err());
        assert!(parse(b"\xff\xff\xff", Encoding::Protobuf).is_err());
        assert!(parse(b"{\"resourceSpans\": 5}", Encoding::Json).is_err());
        let no_times = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "ab".repeat(16), "spanId": "01".repeat(8), "name": "x"}]}]}]});
        let e = parse(no_times.to_string().as_bytes(), Encoding::Json);
        assert!(e.is_err_and(|e| e.to_string().contains("startTimeUnixNano")));
        assert_eq!(parse(b"", Encoding::Protobuf), Ok(vec![]));
    }

    #[test]
    fn refusals_in_each_encoding() {
        let pb_status: pb::Status =
            prost::Message::decode(&Encoding::Protobuf.status(3, "bad")[..]).unwrap_or_default();
        assert_eq!((pb_status.code, pb_status.message.as_str()), (3, "bad"));
        assert_eq!(
            Encoding::Json.status(3, "bad"),
            br#"{"code":3,"message":"bad"}"#.to_vec()
        );
        assert_eq!(
            Encoding::of(Some("application/x-protobuf")),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::of(Some("application/json; charset=utf-8")),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::of(Some("text/plain")), None);
    }
}
