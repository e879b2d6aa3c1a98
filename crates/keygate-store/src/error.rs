//! The store's error type. Database errors are turned into these in one place per
//! driver ([`From<sqlx::Error>`] for PostgreSQL, [`From<rusqlite::Error>`] for
//! SQLite) so callers never match on driver errors.

use keygate_core::policy::BearerRefusal;

/// Every way a store call can fail.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist (or is not visible through the capability).
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness or in-use rule was broken; the text says which.
    #[error("{0}")]
    Conflict(String),
    /// A value is not acceptable; the text names the field.
    #[error(transparent)]
    Invalid(#[from] keygate_core::Error),
    /// The owner cannot hold a bearer token right now.
    #[error("bearer token refused: {0:?}")]
    BearerRefused(BearerRefusal, String),
    /// The policy refused the change, checked inside its transaction against the data
    /// as it is there (nobody grants what they do not hold).
    #[error("{0}")]
    Denied(keygate_core::policy::Denied),
    /// The change would leave no active user who can manage users and roles.
    #[error(
        "this change would leave no active user who can manage users and roles (setting useraccess write); \
         give another active user that privilege first"
    )]
    LockOut,
    /// The owner is suspended and cannot be given tokens.
    #[error("user \"{0}\" is suspended; activate the user before creating tokens")]
    OwnerSuspended(String),
    /// The owner already has the most tokens the portal allows.
    #[error("the user already has {0} tokens, the most the portal allows (maxTokensPerUser)")]
    TokenLimit(i64),
    /// The master key is missing, unreadable, too widely readable, or not the one the
    /// store was set up with; the text says which and how to fix it.
    #[error("{0}")]
    MasterKey(String),
    /// A sealed access key did not open (tampered, or sealed under another master key).
    #[error("the access key of token {0} cannot be unsealed with this master key")]
    Unseal(i64),
    /// The database could not be reached in time.
    #[error("the database is unavailable")]
    Unavailable,
    /// The storage cannot take writes right now (full disk, read-only, I/O error, the
    /// file deleted under the running process); nothing was changed.
    #[error("the database cannot take changes: {0}")]
    Degraded(crate::health::Fault),
    /// Stored data is not what keygate wrote (the text says what, never a value).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(&'static str),
    /// Any other database failure. Logged by the server, never shown to clients.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// Any other SQLite failure. Logged by the server, never shown to clients.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        match e {
            rusqlite::Error::QueryReturnedNoRows => Self::NotFound("record".to_owned()),
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                Self::Conflict("a record with that name already exists".to_owned())
            }
            rusqlite::Error::SqliteFailure(f, m) => {
                match crate::health::sqlite_fault(f.extended_code) {
                    Some(fault) => Self::Degraded(fault),
                    None => Self::Sqlite(rusqlite::Error::SqliteFailure(f, m)),
                }
            }
            other => Self::Sqlite(other),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => Self::NotFound("record".to_owned()),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable
            }
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                Self::Conflict("a record with that name already exists".to_owned())
            }
            sqlx::Error::Database(db) => match crate::health::fault_of(db.as_ref()) {
                Some(f) => Self::Degraded(f),
                None => Self::Database(sqlx::Error::Database(db)),
            },
            other => Self::Database(other),
        }
    }
}

/// Result alias for store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// No user with this id (the one wording, wherever the user is looked up).
    pub fn no_user(id: keygate_core::model::UserId) -> Self {
        Self::NotFound(format!("user {id}"))
    }

    /// No token with this id.
    pub fn no_token(id: keygate_core::model::TokenId) -> Self {
        Self::NotFound(format!("API token {id}"))
    }

    /// No role with this id.
    pub fn no_role(id: keygate_core::model::RoleId) -> Self {
        Self::NotFound(format!("role {id}"))
    }
}
