//! The JSON shapes of ingested data as the read-back API (a keygate extension under
//! `/santaba/rest/keygate/data`) returns it.

use std::collections::BTreeMap;

use keygate_store::data::{DataDatapoint, DataInstance, DataLog, DataResource, DataSpan};
use serde::Serialize;
use utoipa::ToSchema;

/// A resource data was pushed for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DataResource)]
pub struct ResourceObject {
    /// keygate's id for the resource
    pub id: i64,
    /// The resourceIds it is known by
    pub resource_ids: BTreeMap<String, String>,
    /// resourceName
    pub name: String,
    /// resourceDescription
    pub description: String,
    /// Its properties (pushed with metrics or by the property APIs)
    pub properties: BTreeMap<String, String>,
    /// The user whose token created it
    pub created_by: i64,
    /// When it was created (epoch seconds)
    pub created_on: i64,
    /// When data or properties last arrived (epoch seconds; written at most once a minute when nothing changed)
    pub updated_on: i64,
    /// Its datasource instances and their datapoints (empty in lists)
    pub instances: Vec<InstanceObject>,
}

/// A datasource instance on a resource.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DataInstance)]
pub struct InstanceObject {
    /// keygate's id for the instance
    pub id: i64,
    /// dataSource
    pub data_source: String,
    /// dataSourceDisplayName
    pub data_source_display_name: String,
    /// dataSourceGroup
    pub data_source_group: String,
    /// instanceName
    pub instance_name: String,
    /// instanceDisplayName
    pub instance_display_name: String,
    /// Its properties
    pub properties: BTreeMap<String, String>,
    /// Its datapoints
    pub data_points: Vec<DatapointObject>,
}

/// A datapoint: one time series.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DataPoint)]
pub struct DatapointObject {
    /// keygate's id for the datapoint (read its values at /keygate/data/datapoints/{id}/values)
    pub id: i64,
    /// dataPointName
    pub data_point_name: String,
    /// counter, derive or gauge
    pub data_point_type: String,
    /// none, avg, sum, min, max or percentile
    pub data_point_aggregation_type: String,
    /// percentileValue, with the percentile aggregation
    pub percentile_value: Option<i64>,
}

/// A datapoint's values in a time range.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DataSeries)]
pub struct SeriesObject {
    /// The datapoint's id
    pub data_point_id: i64,
    /// [epoch milliseconds, value] pairs, oldest first
    #[schema(value_type = Vec<Vec<f64>>)]
    pub values: Vec<(i64, f64)>,
}

/// A log line.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DataLog)]
pub struct LogObject {
    /// keygate's id for the line
    pub id: i64,
    /// The resource it matched when it arrived, or null
    pub resource_id: Option<i64>,
    /// The _lm.resourceId it was sent with
    pub resource_ids: BTreeMap<String, String>,
    /// When it happened (epoch milliseconds)
    pub timestamp: i64,
    /// log_level
    pub log_level: String,
    /// msg
    pub message: String,
    /// Every other field sent with it
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

impl From<&DataResource> for ResourceObject {
    fn from(r: &DataResource) -> Self {
        Self {
            id: r.id,
            resource_ids: r.ids.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            properties: r.properties.clone(),
            created_by: r.created_by,
            created_on: r.created_on,
            updated_on: r.updated_on,
            instances: r.instances.iter().map(InstanceObject::from).collect(),
        }
    }
}

impl From<&DataInstance> for InstanceObject {
    fn from(i: &DataInstance) -> Self {
        Self {
            id: i.id,
            data_source: i.datasource.clone(),
            data_source_display_name: i.datasource_display.clone(),
            data_source_group: i.datasource_group.clone(),
            instance_name: i.name.clone(),
            instance_display_name: i.display_name.clone(),
            properties: i.properties.clone(),
            data_points: i.datapoints.iter().map(DatapointObject::from).collect(),
        }
    }
}

impl From<&DataDatapoint> for DatapointObject {
    fn from(d: &DataDatapoint) -> Self {
        Self {
            id: d.id,
            data_point_name: d.name.clone(),
            data_point_type: d.kind.clone(),
            data_point_aggregation_type: d.aggregation.clone(),
            percentile_value: d.percentile,
        }
    }
}

impl From<&DataLog> for LogObject {
    fn from(l: &DataLog) -> Self {
        Self {
            id: l.id,
            resource_id: l.resource_id,
            resource_ids: l.ids.clone(),
            timestamp: l.at_ms,
            log_level: l.level.clone(),
            message: l.message.clone(),
            metadata: serde_json::from_str(&l.metadata).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A span pushed over OTLP.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DataSpan)]
pub struct SpanObject {
    /// The trace's id (32 hex digits)
    pub trace_id: String,
    /// The span's id (16 hex digits)
    pub span_id: String,
    /// Its parent's id, or empty for a root span
    pub parent_span_id: String,
    /// service.name of its resource
    pub service: String,
    /// The span's name
    pub name: String,
    /// internal, server, client, producer, consumer or unspecified
    pub kind: String,
    /// Start (epoch nanoseconds)
    pub start_time_unix_nano: i64,
    /// End (epoch nanoseconds)
    pub end_time_unix_nano: i64,
    /// unset, ok or error
    pub status: String,
    /// The status message
    pub status_message: String,
    /// Its attributes
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Its resource's attributes
    #[schema(value_type = Object)]
    pub resource: serde_json::Value,
    /// The user whose token sent it
    pub sent_by: i64,
}

impl From<&DataSpan> for SpanObject {
    fn from(d: &DataSpan) -> Self {
        let s = &d.span;
        let json = |t: &str| serde_json::from_str(t).unwrap_or(serde_json::Value::Null);
        Self {
            trace_id: s.trace_id.clone(),
            span_id: s.span_id.clone(),
            parent_span_id: s.parent_span_id.clone(),
            service: s.service.clone(),
            name: s.name.clone(),
            kind: s.kind.clone(),
            start_time_unix_nano: s.start_ns,
            end_time_unix_nano: s.end_ns,
            status: s.status.clone(),
            status_message: s.status_message.clone(),
            attributes: json(&s.attributes),
            resource: json(&s.resource),
            sent_by: d.sent_by,
        }
    }
}
