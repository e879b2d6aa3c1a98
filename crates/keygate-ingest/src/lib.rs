//! keygate's ingestion payloads: what tokens with DataIngestion push through `/rest`
//! (LogicMonitor's Push Metrics, resource and instance property, and log ingestion
//! APIs, and OpenTelemetry traces over OTLP/HTTP), decompressed within bounds, parsed and validated into the store's
//! [`keygate_store::data`] types. A refusal names the element and the field at fault.
//!
//! # Layout
//!
//! - [`decode`] — `Content-Encoding` (gzip, deflate, none) undone with a bound on the
//!   decompressed size, so a zip bomb costs at most that bound.
//! - [`metrics`] — `POST /rest/v2/metric/ingest` bodies.
//! - [`properties`] — `PATCH`/`PUT /rest/resource_property/ingest` and
//!   `/rest/instance_property/ingest` bodies.
//! - [`logs`] — `POST /rest/log/ingest` bodies, with their timestamps in seconds,
//!   milliseconds, microseconds, nanoseconds or ISO 8601.
//! - [`traces`] — `POST /rest/api/v1/traces` bodies: OTLP/HTTP export requests as
//!   protobuf or OTLP/JSON, into spans.
//! - [`otlp`] — pushed log lines and metric values converted to OTLP export requests,
//!   for forwarding to an OpenTelemetry backend.
//! - [`limits`] — the bounds, as LogicMonitor documents them where it does.
//! - [`IngestError`] (this file) — why a payload was refused.
#![forbid(unsafe_code)]

pub mod decode;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod properties;
pub mod traces;
mod walk;

/// Why an ingestion payload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IngestError {
    /// The payload breaks a rule; the message names the element and field (400).
    #[error("{0}")]
    Invalid(String),
    /// The body is larger than the bound once decompressed (413).
    #[error("the request body is larger than {0} bytes once decompressed")]
    TooLarge(usize),
    /// The body's `Content-Encoding` is not one keygate reads (415).
    #[error(
        "Content-Encoding \"{0}\" is not supported: send gzip, deflate or an uncompressed body"
    )]
    Encoding(String),
    /// The body does not decompress (400).
    #[error("the request body is not valid {0} data")]
    Corrupt(&'static str),
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, IngestError>;
