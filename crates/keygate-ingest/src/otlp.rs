//! What keygate forwards: pushed log lines and metric values as OTLP/HTTP export
//! requests (`ExportLogsServiceRequest`, `ExportMetricsServiceRequest`) in protobuf,
//! for `--forward-otlp`. Traces need no conversion: they arrived as OTLP and are
//! forwarded as they came.
//!
//! The mapping, so that a backend behind keygate can query what LogicMonitor's
//! collectors pushed:
//!
//! - a resource's `resourceIds` (and, for metrics, its `resourceProperties`) become
//!   the OTLP resource's attributes; the ids win where a name is in both;
//! - a log line is a `LogRecord` with its `msg` as the string body, `log_level` as
//!   the severity text (and the severity number it names), and its other fields as
//!   attributes;
//! - a datapoint is a metric named `<dataSource>.<dataPointName>` in a scope named
//!   for keygate, each value a `NumberDataPoint` with the attribute `instance`
//!   (the instance's name); `gauge` is a Gauge, `counter` a monotonic cumulative Sum
//!   and `derive` a non-monotonic cumulative Sum.
//!
//! Field numbers are those of `opentelemetry/proto/{logs,metrics}/v1/*.proto`; only the
//! fields keygate fills are declared.

use serde_json::Value;

use keygate_store::data::{LogInput, MetricElement, Properties};

use crate::traces::pb::{AnyValue, ArrayValue, KeyValue, KeyValueList, Resource, Value as Any};

/// The scope keygate's converted records carry.
pub const SCOPE: &str = "keygate";

mod pb {
    use crate::traces::pb::{KeyValue, Resource};

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub log_records: Vec<LogRecord>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(int32, tag = "2")]
        pub severity_number: i32,
        #[prost(string, tag = "3")]
        pub severity_text: String,
        #[prost(message, optional, tag = "5")]
        pub body: Option<crate::traces::pb::AnyValue>,
        #[prost(message, repeated, tag = "6")]
        pub attributes: Vec<KeyValue>,
        #[prost(fixed64, tag = "11")]
        pub observed_time_unix_nano: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportMetricsServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_metrics: Vec<ResourceMetrics>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceMetrics {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_metrics: Vec<ScopeMetrics>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeMetrics {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub metrics: Vec<Metric>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(oneof = "Data", tags = "5, 7")]
        pub data: Option<Data>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        #[prost(message, tag = "5")]
        Gauge(Gauge),
        #[prost(message, tag = "7")]
        Sum(Sum),
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Gauge {
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sum {
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
        #[prost(int32, tag = "2")]
        pub aggregation_temporality: i32,
        #[prost(bool, tag = "3")]
        pub is_monotonic: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NumberDataPoint {
        #[prost(message, repeated, tag = "7")]
        pub attributes: Vec<KeyValue>,
        #[prost(fixed64, tag = "3")]
        pub time_unix_nano: u64,
        #[prost(double, tag = "4")]
        pub as_double: f64,
    }
}

/// `AGGREGATION_TEMPORALITY_CUMULATIVE`: LogicMonitor's counters and derives carry
/// running totals, not deltas.
const CUMULATIVE: i32 = 2;

fn scope() -> Option<pb::InstrumentationScope> {
    Some(pb::InstrumentationScope {
        name: SCOPE.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Any::String(value.to_owned())),
        }),
    }
}

/// The resource named by `ids`, with `extra` attributes the ids do not name.
fn resource(ids: &Properties, extra: &Properties) -> Option<Resource> {
    let mut attributes: Vec<KeyValue> = ids.iter().map(|(k, v)| string(k, v)).collect();
    attributes.extend(
        extra
            .iter()
            .filter(|(k, _)| !ids.contains_key(*k))
            .map(|(k, v)| string(k, v)),
    );
    Some(Resource { attributes })
}

/// Epoch milliseconds as OTLP's nanoseconds (0, "unknown", for times before 1970).
fn nanos(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

/// Plain JSON as an OTLP `AnyValue`.
fn any(v: &Value) -> AnyValue {
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(Any::Bool(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Any::Int(i),
            None => Any::Double(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Some(Any::String(s.clone())),
        Value::Array(a) => Some(Any::Array(ArrayValue {
            values: a.iter().map(any).collect(),
        })),
        Value::Object(m) => Some(Any::KvList(KeyValueList {
            values: m
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(any(v)),
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// OTLP's severity number for a `log_level` (0, unspecified, for one it does not
/// know).
fn severity(level: &str) -> i32 {
    match level.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" | "information" | "notice" => 9,
        "warn" | "warning" => 13,
        "error" | "err" => 17,
        "fatal" | "critical" | "crit" | "alert" | "emergency" => 21,
        _ => 0,
    }
}

/// Log lines as an `ExportLogsServiceRequest`: one resource for each run of lines
/// with the same `_lm.resourceId`. `received_ms` is when keygate took them.
pub fn logs(lines: &[LogInput], received_ms: i64) -> Vec<u8> {
    let mut out: Vec<pb::ResourceLogs> = Vec::new();
    let mut last: Option<&Properties> = None;
    for l in lines {
        if last != Some(&l.ids) {
            out.push(pb::ResourceLogs {
                resource: resource(&l.ids, &Properties::new()),
                scope_logs: vec![pb::ScopeLogs {
                    scope: scope(),
                    log_records: Vec::new(),
                }],
            });
            last = Some(&l.ids);
        }
        let attributes = match serde_json::from_str::<Value>(&l.metadata) {
            Ok(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(any(v)),
                })
                .collect(),
            _ => Vec::new(),
        };
        let record = pb::LogRecord {
            time_unix_nano: nanos(l.at_ms),
            severity_number: severity(&l.level),
            severity_text: l.level.clone(),
            body: Some(AnyValue {
                value: Some(Any::String(l.message.clone())),
            }),
            attributes,
            observed_time_unix_nano: nanos(received_ms),
        };
        if let Some(scope_logs) = out.last_mut().and_then(|r| r.scope_logs.first_mut()) {
            scope_logs.log_records.push(record);
        }
    }
    prost::Message::encode_to_vec(&pb::ExportLogsServiceRequest { resource_logs: out })
}

/// The metric elements `kept` says were stored, as an `ExportMetricsServiceRequest`;
/// `None` when none was.
pub fn metrics(elements: &[MetricElement], kept: &[bool]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (e, _) in elements.iter().zip(kept).filter(|(_, k)| **k) {
        let mut metrics = Vec::new();
        for i in &e.instances {
            let instance = [string("instance", &i.name)];
            for dp in &i.datapoints {
                let data_points = dp
                    .values
                    .iter()
                    .map(|&(at, v)| pb::NumberDataPoint {
                        attributes: instance.to_vec(),
                        time_unix_nano: nanos(at),
                        as_double: v,
                    })
                    .collect();
                let data = match dp.kind.as_str() {
                    "counter" | "derive" => pb::Data::Sum(pb::Sum {
                        data_points,
                        aggregation_temporality: CUMULATIVE,
                        is_monotonic: dp.kind == "counter",
                    }),
                    _ => pb::Data::Gauge(pb::Gauge { data_points }),
                };
                metrics.push(pb::Metric {
                    name: format!("{}.{}", e.datasource, dp.name),
                    data: Some(data),
                });
            }
        }
        out.push(pb::ResourceMetrics {
            resource: resource(&e.resource.ids, &e.resource.properties),
            scope_metrics: vec![pb::ScopeMetrics {
                scope: scope(),
                metrics,
            }],
        });
    }
    if out.is_empty() {
        return None;
    }
    Some(prost::Message::encode_to_vec(
        &pb::ExportMetricsServiceRequest {
            resource_metrics: out,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_store::data::{DatapointInput, InstanceInput, ResourceInput};

    fn ids(host: &str) -> Properties {
        [("system.hostname".to_owned(), host.to_owned())].into()
    }

    #[test]
    fn log_lines_keep_their_resource_body_level_time_and_fields() {
        let line = |host: &str, msg: &str| LogInput {
            ids: ids(host),
            at_ms: 1_700_000_000_123,
            level: "WARN".to_owned(),
            message: msg.to_owned(),
            metadata: r#"{"app":"cart","pid":42,"ok":true}"#.to_owned(),
        };
        let bytes = logs(&[line("a", "one"), line("a", "two"), line("b", "three")], 5);
        let req: pb::ExportLogsServiceRequest =
            prost::Message::decode(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            req.resource_logs.len(),
            2,
            "one resource for each run of ids"
        );
        let first = &req.resource_logs[0];
        assert_eq!(
            first.resource.as_ref().map(|r| r.attributes.clone()),
            Some(vec![string("system.hostname", "a")])
        );
        let records = &first.scope_logs[0].log_records;
        assert_eq!(records.len(), 2);
        let r = &records[1];
        assert_eq!(r.time_unix_nano, 1_700_000_000_123_000_000);
        assert_eq!(r.observed_time_unix_nano, 5_000_000);
        assert_eq!((r.severity_number, r.severity_text.as_str()), (13, "WARN"));
        assert_eq!(
            r.body.as_ref().and_then(|b| b.value.clone()),
            Some(Any::String("two".into()))
        );
        let pid = r.attributes.iter().find(|kv| kv.key == "pid");
        assert_eq!(
            pid.and_then(|kv| kv.value.clone()).and_then(|v| v.value),
            Some(Any::Int(42))
        );
        assert_eq!(r.attributes.len(), 3);
    }

    #[test]
    fn requests_end_to_end_are_one_request_holding_both() {
        let line = |host: &str| LogInput {
            ids: ids(host),
            message: host.to_owned(),
            metadata: "{}".to_owned(),
            ..LogInput::default()
        };
        let mut both = logs(&[line("a")], 0);
        both.extend(logs(&[line("b")], 0));
        let req: pb::ExportLogsServiceRequest =
            prost::Message::decode(&both[..]).unwrap_or_else(|e| panic!("{e}"));
        let hosts: Vec<_> = req
            .resource_logs
            .iter()
            .map(|r| r.resource.as_ref().map(|r| r.attributes.clone()))
            .collect();
        assert_eq!(
            hosts,
            [
                Some(vec![string("system.hostname", "a")]),
                Some(vec![string("system.hostname", "b")])
            ]
        );
    }

    #[test]
    fn metrics_map_kinds_and_skip_what_was_not_stored() {
        let element = |host: &str| MetricElement {
            resource: ResourceInput {
                ids: ids(host),
                properties: [
                    ("system.hostname".to_owned(), "ignored".to_owned()),
                    ("env".to_owned(), "prod".to_owned()),
                ]
                .into(),
                ..ResourceInput::default()
            },
            datasource: "CPU".to_owned(),
            instances: vec![InstanceInput {
                name: "cpu0".to_owned(),
                datapoints: ["gauge", "counter", "derive"]
                    .iter()
                    .map(|k| DatapointInput {
                        name: format!("{k}_dp"),
                        kind: (*k).to_owned(),
                        values: vec![(1_700_000_000_000, 1.5), (1_700_000_060_000, 2.5)],
                        ..DatapointInput::default()
                    })
                    .collect(),
                ..InstanceInput::default()
            }],
            ..MetricElement::default()
        };
        assert_eq!(metrics(&[element("a")], &[false]), None);
        let bytes = metrics(&[element("a"), element("b")], &[false, true]).unwrap_or_default();
        let req: pb::ExportMetricsServiceRequest =
            prost::Message::decode(&bytes[..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.resource_metrics.len(), 1);
        let rm = &req.resource_metrics[0];
        assert_eq!(
            rm.resource.as_ref().map(|r| r.attributes.clone()),
            Some(vec![string("system.hostname", "b"), string("env", "prod")]),
            "the ids win over a property of the same name"
        );
        let ms = &rm.scope_metrics[0].metrics;
        assert_eq!(
            ms.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["CPU.gauge_dp", "CPU.counter_dp", "CPU.derive_dp"]
        );
        let Some(pb::Data::Gauge(g)) = &ms[0].data else {
            panic!("gauge")
        };
        assert_eq!(g.data_points.len(), 2);
        assert_eq!(g.data_points[1].time_unix_nano, 1_700_000_060_000_000_000);
        assert_eq!(g.data_points[1].as_double, 2.5);
        assert_eq!(
            g.data_points[1].attributes,
            vec![string("instance", "cpu0")]
        );
        let Some(pb::Data::Sum(c)) = &ms[1].data else {
            panic!("counter")
        };
        assert!(c.is_monotonic && c.aggregation_temporality == CUMULATIVE);
        let Some(pb::Data::Sum(d)) = &ms[2].data else {
            panic!("derive")
        };
        assert!(!d.is_monotonic && d.aggregation_temporality == CUMULATIVE);
    }
}
