//! [`ManageError`]: why a management operation did not happen. The server maps it
//! to HTTP in its one place (`keygate_server::error`), the admin CLI prints it.

use keygate_core::policy::{BearerRefusal, Denied};
use keygate_store::{Fault, StoreError};

/// Why a management operation did not happen, worded for the caller (the API and the
/// admin CLI say the same thing). Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The request is wrong; the text says how.
    #[error("{0}")]
    Invalid(String),
    /// No such thing, or not visible to the caller (the same words either way).
    #[error("{0}")]
    NotFound(String),
    /// Authenticated, but not allowed; the text names what is missing.
    #[error("{0}")]
    Forbidden(String),
    /// Conflicts with existing data (a taken name, the last user manager).
    #[error("{0}")]
    Conflict(String),
    /// Too many refused changes from this user; retry after the seconds.
    #[error("{0}")]
    TooManyRefusals(String, u64),
    /// Committed, but this node could not yet apply it, or the store cannot be used
    /// as configured (a wrong master key); the text says which.
    #[error("{0}")]
    NotApplied(String),
    /// The database could not be reached.
    #[error("the database is unavailable; try again shortly")]
    StoreUnavailable,
    /// The database cannot take writes (full disk, read-only, I/O error, file
    /// deleted); nothing was changed.
    #[error(
        "the database cannot take changes right now: {0}; nothing was changed, try again later"
    )]
    StoreDegraded(Fault),
    /// The database failed; the detail is for the log, never the caller.
    #[error("internal error")]
    StoreFailed(String),
    /// A fault inside keygate; the detail is for the log, never the caller.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict(why) => Self::Conflict(why),
            StoreError::Denied(d) => Self::from_denied(d, || "not found".to_owned()),
            e @ StoreError::LockOut => Self::Conflict(e.to_string()),
            StoreError::Invalid(e) => e.into(),
            StoreError::BearerRefused(BearerRefusal::NoDataIngestion, user) => Self::Invalid(format!(
                "user \"{user}\" cannot own a bearer token: none of the user's roles has the DataIngestion privilege (dataingestion * write); give the user a role with it, such as dataingestion"
            )),
            StoreError::BearerRefused(BearerRefusal::TracesOff, _) => Self::Forbidden(
                "bearer tokens cannot be created while the portal's Traces (APM) feature is off; turn it on in portal settings (tracesEnabled)".to_owned(),
            ),
            StoreError::OwnerSuspended(user) => Self::Invalid(format!(
                "user \"{user}\" is suspended; activate the user before creating tokens"
            )),
            StoreError::TokenLimit(max) => Self::Invalid(format!(
                "the user already has {max} API tokens, the most the portal allows (maxTokensPerUser); delete one first"
            )),
            StoreError::Unavailable => Self::StoreUnavailable,
            StoreError::Degraded(f) => Self::StoreDegraded(f),
            StoreError::MasterKey(why) => Self::NotApplied(why),
            StoreError::Unseal(id) => Self::Internal(format!("token {id}: sealed key does not open")),
            StoreError::Corrupt(what) => Self::StoreFailed(format!("corrupt store: {what}")),
            StoreError::Database(e) => Self::StoreFailed(format!("database: {e}")),
            StoreError::Sqlite(e) => Self::StoreFailed(format!("database: {e}")),
        }
    }
}

impl From<keygate_core::Error> for ManageError {
    fn from(e: keygate_core::Error) -> Self {
        match e {
            keygate_core::Error::TokenFormat(_)
            | keygate_core::Error::Credential(_)
            | keygate_core::Error::Query(_)
            | keygate_core::Error::Invalid { .. } => Self::Invalid(e.to_string()),
            keygate_core::Error::Random | keygate_core::Error::PasswordHash => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl From<keygate_auth::AuthError> for ManageError {
    fn from(e: keygate_auth::AuthError) -> Self {
        match e {
            keygate_auth::AuthError::Store(s) => s.into(),
            keygate_auth::AuthError::Overtaken(why) => Self::NotApplied(format!(
                "this node is reloading its index ({why}); retry the request"
            )),
        }
    }
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
