//! keygate's integration tests: one binary (link once), a module per area. Every test
//! starts a real server on an ephemeral port over a temporary SQLite file and talks
//! HTTP to it.
// Test code fails by panicking; the crate-wide bans are for the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod bodies;
mod cli;
mod lists;
mod lmv1;
mod logs;
mod support;
mod tokens;
mod ui;
mod ui_http;
mod usage;
mod users_roles;
mod webdriver;
