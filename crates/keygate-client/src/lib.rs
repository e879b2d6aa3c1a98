//! keygate's client side: what the client commands (`keygate login`, `logout`,
//! `whoami`, `api`) need to keep a token once and reuse it, and nothing that opens a
//! database.
//!
//! # Layout
//!
//! - [`credentials`]: the per-user credentials file (named profiles, mode 0600 under
//!   the XDG config directory, replaced atomically).
//! - [`http`]: the HTTP client: the server's base URL, the stored token in the
//!   `Authorization` header, LogicMonitor's `X-Version: 3`, paths relative to
//!   `/santaba/rest`.
//! - [`error`]: [`ClientError`], with the exit status each failure gives.

pub mod credentials;
pub mod error;
pub mod http;

pub use credentials::{Credentials, Profile};
pub use error::ClientError;
pub use http::{Answer, Client};
