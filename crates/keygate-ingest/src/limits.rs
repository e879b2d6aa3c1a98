//! The bounds on ingestion payloads. LogicMonitor documents 8 MB a request for logs
//! and metrics and 32 KB a log message; the others keep one request's work bounded.

/// Largest request body, compressed or not, in bytes.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Largest body once decompressed, in bytes.
pub const MAX_DECODED: usize = 8 * 1024 * 1024;
/// Most elements (resources, log lines) in one request.
pub const MAX_ELEMENTS: usize = 10_000;
/// Most instances in one metrics element (the SDK sends at most 100).
pub const MAX_INSTANCES: usize = 100;
/// Most values in one request, over all its datapoints.
pub const MAX_VALUES: usize = 100_000;
/// Largest log message, in bytes.
pub const MAX_MESSAGE: usize = 32 * 1024;
/// Most properties (or resource ids) on one object.
pub const MAX_PROPERTIES: usize = 256;
/// Longest name (resource, instance, property), in characters.
pub const MAX_NAME: usize = 255;
/// Longest datasource name, in characters.
pub const MAX_DATASOURCE: usize = 64;
/// Longest datapoint name, in characters.
pub const MAX_DATAPOINT: usize = 128;
/// Longest property value or description, in characters.
pub const MAX_VALUE: usize = 4096;
