//! Store errors, which know whether trying again can help.

use common::{Classify, ErrorClass};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The store did not answer (refused, timed out, connection lost): retryable, and
    /// reported as `unreachable`.
    #[error("{store} is unreachable: {reason}")]
    Unreachable { store: String, reason: String },
    /// The store answered with an error (bad table, protocol error): not retryable.
    #[error("{store} answered with an error: {reason}")]
    Failed { store: String, reason: String },
}

impl StoreError {
    pub fn unreachable(store: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        StoreError::Unreachable { store: store.into(), reason: reason.to_string() }
    }

    pub fn failed(store: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        StoreError::Failed { store: store.into(), reason: reason.to_string() }
    }

    /// A MySQL error, classified by the shared classifier: an outage is `Unreachable`.
    pub fn mysql(e: sqlx::Error) -> Self {
        Self::classified("mysql", &e, e.to_string())
    }

    /// Any client error, `Unreachable` when the classifier says trying again can help.
    pub fn classified(store: &str, e: &impl Classify, reason: impl std::fmt::Display) -> Self {
        match e.class() {
            ErrorClass::Transient => StoreError::unreachable(store, reason),
            ErrorClass::Permanent => StoreError::failed(store, reason),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unreachable { .. })
    }

    pub fn store(&self) -> &str {
        match self {
            StoreError::Unreachable { store, .. } | StoreError::Failed { store, .. } => store,
        }
    }
}
