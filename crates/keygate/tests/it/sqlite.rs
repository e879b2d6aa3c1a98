//! The API tests on the embedded default: a temporary SQLite file per server.

/// Which backend this copy of the tests uses.
pub const BACKEND: crate::Backend = crate::Backend::Sqlite;

#[path = "audit.rs"]
mod audit;
#[path = "auth.rs"]
mod auth;
#[path = "bodies.rs"]
mod bodies;
#[path = "changelog.rs"]
mod changelog;
#[path = "cli.rs"]
mod cli;
#[path = "client.rs"]
mod client;
#[path = "crash.rs"]
mod crash;
#[path = "flood.rs"]
mod flood;
#[path = "forward.rs"]
mod forward;
#[path = "hostile.rs"]
mod hostile;
#[path = "ingest.rs"]
mod ingest;
#[path = "introspect.rs"]
mod introspect;
#[path = "lists.rs"]
mod lists;
#[path = "lmv1.rs"]
mod lmv1;
#[path = "logs.rs"]
mod logs;
#[path = "metrics.rs"]
mod metrics;
#[path = "openapi.rs"]
mod openapi;
#[path = "privileges.rs"]
mod privileges;
#[path = "proxies.rs"]
mod proxies;
#[path = "relay.rs"]
mod relay;
#[path = "remote.rs"]
mod remote;
#[path = "storage.rs"]
mod storage;
#[path = "support.rs"]
pub mod support;
#[path = "throttle.rs"]
mod throttle;
#[path = "tls.rs"]
mod tls;
#[path = "tokens.rs"]
mod tokens;
#[path = "ui.rs"]
mod ui;
#[path = "ui_data.rs"]
mod ui_data;
#[path = "ui_http.rs"]
mod ui_http;
#[path = "usage.rs"]
mod usage;
#[path = "users_roles.rs"]
mod users_roles;
