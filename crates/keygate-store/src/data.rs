//! Ingested data: what the ingest path (`/rest/...`) stores and the read-back API
//! returns. The ingest crate turns LogicMonitor's payloads into these, already
//! validated; the store only writes and reads them.

use std::collections::BTreeMap;

use keygate_core::model::{EpochSeconds, UserId};

/// Property names to values, sorted (as they are stored and shown).
pub type Properties = BTreeMap<String, String>;

/// The text a resource is keyed by: its `resourceIds` as JSON with sorted keys, so
/// the same ids in any order name the same resource.
pub fn resource_key(ids: &Properties) -> String {
    // A map of strings always serializes; the empty object is what none would give.
    serde_json::to_string(ids).unwrap_or_else(|_| "{}".to_owned())
}

/// A resource as a metrics payload describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceInput {
    /// `resourceIds`: what identifies it (`system.hostname` and the like).
    pub ids: Properties,
    /// `resourceName` (empty when not sent).
    pub name: String,
    /// `resourceDescription` (empty when not sent).
    pub description: String,
    /// `resourceProperties`, merged into what is stored.
    pub properties: Properties,
}

/// One element of a metrics payload: a resource, a datasource and its instances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricElement {
    /// The resource the values are for.
    pub resource: ResourceInput,
    /// `dataSource`.
    pub datasource: String,
    /// `dataSourceDisplayName` (empty when not sent).
    pub datasource_display: String,
    /// `dataSourceGroup` (empty when not sent).
    pub datasource_group: String,
    /// `instances`.
    pub instances: Vec<InstanceInput>,
}

/// An instance of a datasource on a resource, with its datapoints' values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceInput {
    /// `instanceName`.
    pub name: String,
    /// `instanceDisplayName` (empty when not sent).
    pub display_name: String,
    /// `instanceProperties`, merged into what is stored.
    pub properties: Properties,
    /// `dataPoints`.
    pub datapoints: Vec<DatapointInput>,
}

/// One datapoint and its values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatapointInput {
    /// `dataPointName`.
    pub name: String,
    /// `counter`, `derive` or `gauge`.
    pub kind: String,
    /// `none`, `avg`, `sum`, `min`, `max` or `percentile`.
    pub aggregation: String,
    /// `percentileValue`, with the `percentile` aggregation.
    pub percentile: Option<i64>,
    /// (epoch milliseconds, value) pairs.
    pub values: Vec<(i64, f64)>,
}

/// A property update of a resource or of one of its instances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PropertyUpdate {
    /// The resource's `resourceIds`.
    pub ids: Properties,
    /// `(dataSource, instanceName)` for an instance's properties; `None` for the
    /// resource's.
    pub instance: Option<(String, String)>,
    /// The properties sent.
    pub properties: Properties,
    /// `PUT`: the properties sent replace all; `PATCH`: they are merged in.
    pub replace: bool,
}

/// One log line as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogInput {
    /// `_lm.resourceId`: the resource it is about.
    pub ids: Properties,
    /// When it happened, in epoch milliseconds.
    pub at_ms: i64,
    /// `log_level` (empty when not sent).
    pub level: String,
    /// `msg`.
    pub message: String,
    /// The other fields sent, as a JSON object.
    pub metadata: String,
}

/// A stored resource, with its instances and their datapoints.
#[derive(Debug, Clone, PartialEq)]
pub struct DataResource {
    /// keygate's id for it.
    pub id: i64,
    /// `resourceIds`.
    pub ids: Properties,
    /// `resourceName`.
    pub name: String,
    /// `resourceDescription`.
    pub description: String,
    /// Its properties.
    pub properties: Properties,
    /// The user whose token created it.
    pub created_by: UserId,
    /// When it was created.
    pub created_on: EpochSeconds,
    /// When data or properties last arrived for it.
    pub updated_on: EpochSeconds,
    /// Its datasource instances (empty in lists).
    pub instances: Vec<DataInstance>,
}

/// A stored datasource instance.
#[derive(Debug, Clone, PartialEq)]
pub struct DataInstance {
    /// keygate's id for it.
    pub id: i64,
    /// `dataSource`.
    pub datasource: String,
    /// `dataSourceDisplayName`.
    pub datasource_display: String,
    /// `dataSourceGroup`.
    pub datasource_group: String,
    /// `instanceName`.
    pub name: String,
    /// `instanceDisplayName`.
    pub display_name: String,
    /// Its properties.
    pub properties: Properties,
    /// Its datapoints.
    pub datapoints: Vec<DataDatapoint>,
}

/// A stored datapoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DataDatapoint {
    /// keygate's id for it (the time series' id).
    pub id: i64,
    /// `dataPointName`.
    pub name: String,
    /// `counter`, `derive` or `gauge`.
    pub kind: String,
    /// The aggregation it was sent with.
    pub aggregation: String,
    /// `percentileValue`.
    pub percentile: Option<i64>,
}

/// A time range and bound for reading a series or logs.
#[derive(Debug, Clone, Copy)]
pub struct TimeRange {
    /// From (inclusive), epoch milliseconds.
    pub from_ms: i64,
    /// To (inclusive), epoch milliseconds.
    pub to_ms: i64,
    /// Most rows returned.
    pub limit: i64,
}

/// Which logs to read.
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// Only those whose message contains this text (case-insensitive for ASCII).
    pub text: Option<String>,
    /// Only those of this resource.
    pub resource: Option<i64>,
    /// When, and how many (newest first).
    pub range: TimeRange,
    /// Only those sent with this user's tokens.
    pub owner: Option<UserId>,
}

/// A stored log line.
#[derive(Debug, Clone, PartialEq)]
pub struct DataLog {
    /// keygate's id for it.
    pub id: i64,
    /// The resource it matched when it arrived, if any.
    pub resource_id: Option<i64>,
    /// The `_lm.resourceId` it was sent with.
    pub ids: Properties,
    /// When it happened, epoch milliseconds.
    pub at_ms: i64,
    /// `log_level`.
    pub level: String,
    /// `msg`.
    pub message: String,
    /// The other fields sent, as a JSON object.
    pub metadata: String,
}

/// One span as stored (from an OTLP `ExportTraceServiceRequest`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanInput {
    /// The trace's id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The span's id, 16 lowercase hex digits.
    pub span_id: String,
    /// Its parent's id, or empty for a root span.
    pub parent_span_id: String,
    /// `service.name` of the span's resource (empty when it has none).
    pub service: String,
    /// The span's name.
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    /// Start, epoch nanoseconds.
    pub start_ns: i64,
    /// End, epoch nanoseconds.
    pub end_ns: i64,
    /// `unset`, `ok` or `error`.
    pub status: String,
    /// The status message.
    pub status_message: String,
    /// The span's attributes, as a JSON object.
    pub attributes: String,
    /// The resource's attributes, as a JSON object.
    pub resource: String,
}

/// Which spans to read.
#[derive(Debug, Clone)]
pub struct SpanQuery {
    /// Only this trace's (then oldest first; otherwise newest first).
    pub trace_id: Option<String>,
    /// Only this service's.
    pub service: Option<String>,
    /// Start time range in epoch milliseconds, and how many.
    pub range: TimeRange,
    /// Only those sent with this user's tokens.
    pub owner: Option<UserId>,
}

/// A stored span.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSpan {
    /// What was sent.
    pub span: SpanInput,
    /// Who sent it.
    pub sent_by: UserId,
}

/// What kind of OTLP export an outbox entry is: which `/v1/...` path it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `ExportTraceServiceRequest`, to `/v1/traces`.
    Traces,
    /// `ExportLogsServiceRequest`, to `/v1/logs`.
    Logs,
    /// `ExportMetricsServiceRequest`, to `/v1/metrics`.
    Metrics,
}

impl Signal {
    /// Its name, as stored and as the metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Logs => "logs",
            Self::Metrics => "metrics",
        }
    }

    /// The signal a stored name names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "traces" => Some(Self::Traces),
            "logs" => Some(Self::Logs),
            "metrics" => Some(Self::Metrics),
            _ => None,
        }
    }
}

/// An OTLP export to forward, queued in the transaction that stores its data so that
/// what was acknowledged is also what will be forwarded.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Which export it is.
    pub signal: Signal,
    /// `application/x-protobuf` or `application/json`.
    pub content_type: String,
    /// The export request, uncompressed.
    pub body: Vec<u8>,
    /// When keygate accepted it, epoch milliseconds: the outbox's lag is measured
    /// from it, and retention ends it.
    pub queued_ms: i64,
}

/// Makes the export of a metrics payload from which of its elements were stored.
pub type MakeOutgoing<'a> = dyn Fn(&[bool]) -> Option<Outgoing> + Sync + 'a;

/// An outbox entry claimed for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// Its id (ascending in the order queued).
    pub id: i64,
    /// What to send.
    pub outgoing: Outgoing,
    /// How many sends of it have failed.
    pub attempts: i64,
}

/// How far forwarding is behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxState {
    /// Entries waiting.
    pub entries: i64,
    /// When the oldest was queued, epoch milliseconds.
    pub oldest_ms: Option<i64>,
}
