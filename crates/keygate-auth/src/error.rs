//! The auth crate's error type.

/// Why a Verifier operation (not a verification) failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] keygate_store::StoreError),
    /// A load was overtaken by the store (the change log pruned past it); it is run
    /// again.
    #[error("{0}")]
    Overtaken(&'static str),
}
