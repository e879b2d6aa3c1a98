//! keygate's Verifier: answers "who is this request?" from memory, on every request.
//!
//! # Layout
//!
//! - [`verifier`] — the [`Verifier`] (index of token digests, owners and roles) and the
//!   [`Principal`] it yields; [`Refusal`] says why a credential was refused.
//! - [`index`] — the sharded digest map and its hasher.
//! - [`follow`] — keeps the index current by replaying the store's change log.
//! - [`feed`] — the index as updates: resolved from change-log entries, applied to an
//!   index, and carried over HTTP in a compact binary frame (never a secret).
//! - [`view`] — tokens, users and roles in memory for management reads, kept current
//!   with the index (token rows in compact form: `view/tokens.rs`).
//! - [`replay`] — the bounded memory of LMv1 signatures for replay protection.
//! - [`throttle`] — token buckets per client address on failed authentications.
//! - [`usage`] — records last use in memory and writes it to the store in batches.
//! - [`error`] — [`AuthError`].
#![forbid(unsafe_code)]

pub mod error;
pub mod feed;
pub mod follow;
pub mod index;
pub mod replay;
pub mod throttle;
pub mod usage;
pub mod verifier;
pub mod view;

pub use error::AuthError;
pub use verifier::{Lmv1Pending, Principal, Refusal, Verifier};
