//! keygate's integration tests: one binary (link once), a module per area. Every test
//! starts a real server on an ephemeral port and talks HTTP to it.
//!
//! The API tests run twice: under `sqlite::` against a temporary SQLite file, and
//! under `postgres::` against a fresh PostgreSQL database (when
//! KEYGATE_TEST_DATABASE_URL is set; a loud skip otherwise, and a failure when
//! KEYGATE_REQUIRE_POSTGRES is set). The multi-node tests need PostgreSQL; the
//! browser and log tests do not depend on the backend and run once.
// Test code fails by panicking; the crate-wide bans are for the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The same test files are compiled once per backend (sqlite.rs, postgres.rs) on purpose.
#![allow(clippy::duplicate_mod)]

mod webdriver;

mod postgres;
mod sqlite;

/// Which storage backend a copy of the tests runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh, randomly named PostgreSQL database.
    Postgres,
}
