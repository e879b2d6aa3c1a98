//! The API tests on PostgreSQL (a fresh database per test), plus several nodes on
//! one database.

/// Which backend this copy of the tests uses.
pub const BACKEND: crate::Backend = crate::Backend::Postgres;

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
#[path = "metrics.rs"]
mod metrics;
#[path = "multinode.rs"]
mod multinode;
#[path = "openapi.rs"]
mod openapi;
#[path = "privileges.rs"]
mod privileges;
#[path = "relay.rs"]
mod relay;
#[path = "remote.rs"]
mod remote;
#[path = "support.rs"]
pub mod support;
#[path = "throttle.rs"]
mod throttle;
#[path = "tokens.rs"]
mod tokens;
#[path = "ui_http.rs"]
mod ui_http;
#[path = "usage.rs"]
mod usage;
#[path = "users_roles.rs"]
mod users_roles;
