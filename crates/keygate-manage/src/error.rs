//! [`ManageError`]: why a management operation did not happen. The server maps it
//! to HTTP in its one place (`keygate_server::error`), the admin CLI prints it.

use keygate_core::policy::Denied;
use keygate_store::StoreError;

/// Why a management operation did not happen. Messages are for the caller and never
/// hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The store refused or failed (its own error says which).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value is not acceptable, or a core operation failed.
    #[error(transparent)]
    Core(#[from] keygate_core::Error),
    /// The request is wrong; the text says how.
    #[error("{0}")]
    Invalid(String),
    /// No such thing, or not visible to the caller (the same words either way).
    #[error("{0}")]
    NotFound(String),
    /// Authenticated, but not allowed; the text names what is missing.
    #[error("{0}")]
    Forbidden(String),
    /// Too many refused changes from this user; retry after the seconds.
    #[error("{0}")]
    TooManyRefusals(String, u64),
    /// Committed, but this node could not yet apply it; retrying is safe.
    #[error("{0}")]
    NotApplied(String),
    /// A fault inside keygate (the detail is for the log).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ManageError {
    /// The message for the caller.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// A policy refusal: hidden things are missing (`hidden` gives the words),
    /// others are forbidden with the policy's reason.
    pub fn from_denied(d: Denied, hidden: impl FnOnce() -> String) -> Self {
        match d {
            Denied::Hidden => Self::NotFound(hidden()),
            refused @ (Denied::Forbidden(_) | Denied::Escalation { .. }) => {
                Self::Forbidden(refused.to_string())
            }
        }
    }
}
