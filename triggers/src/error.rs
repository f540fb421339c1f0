//! The crate's error type. Every error knows whether retrying the same step may succeed,
//! so the runtime can back off on a broker or database outage and stop on a bad config.

use common::Classify;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TriggerError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("mysql: {0}")]
    Mysql(#[from] sqlx::Error),
    #[error("job bus closed")]
    BusClosed,
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Dump(#[from] crate::dump::DumpError),
}

impl TriggerError {
    /// True when the same step may succeed later (store or broker outage); false for
    /// errors a retry cannot fix (bad configuration, closed bus, broken dump file).
    pub fn is_retryable(&self) -> bool {
        match self {
            TriggerError::Kafka(e) => e.is_transient(),
            TriggerError::Mysql(e) => e.is_transient(),
            TriggerError::BusClosed | TriggerError::Config(_) | TriggerError::Dump(_) => false,
        }
    }
}

pub type Result<T, E = TriggerError> = std::result::Result<T, E>;
