//! keygate's rules as plain functions: no IO, no async, no database types.
//!
//! # Layout
//!
//! - [`token`] — the bearer token format (generate, parse with precise errors, mask, hash).
//! - [`credentials`] — reading an `Authorization` header (Bearer, LMv1) into a credential.
//! - [`lmv1`] — LMv1 access ids and keys, the request signature, the clock window.
//! - [`clock`] — the time of day ([`clock::Clock`], fixed in tests) and durations.
//! - [`date`] — epoch seconds as UTC calendar time.
//! - [`model`] — users, roles, privileges, tokens and portal settings as plain data.
//! - [`policy`] — who may do what; hands out the capabilities that store writes require.
//! - [`query`] — LogicMonitor list queries (`filter`, `sort`, `fields`, paging).
//! - [`validate`] — bounds on user-supplied values.
//! - [`rules`] — request rules of the token API (a new token's type, system-generated fields).
//! - [`username`] — the normal form, identity and look of usernames.
//! - [`password`] — argon2id password hashing.
//! - [`random`] — secrets from the OS CSPRNG.
//! - [`error`] — the crate's error type.
#![forbid(unsafe_code)]

pub mod clock;
pub mod credentials;
pub mod date;
pub mod error;
pub mod lmv1;
pub mod model;
pub mod password;
pub mod policy;
pub mod query;
pub mod random;
pub mod rules;
pub mod token;
pub mod username;
pub mod validate;

pub use error::{CredentialError, Error, QueryError, TokenFormatError};
