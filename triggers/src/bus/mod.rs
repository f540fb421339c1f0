//! The job bus: publishers put check jobs on it, consumers take them off with an ack
//! handle. Two implementations behind the same traits: Kafka (many processes) and an
//! in-process bounded queue (one process, `bus.kind = "embedded"`).
//!
//! Delivery is at least once. A consumer's position only moves past a job once the caller
//! acks it, so a crash before the ack redelivers the job; a handle dropped without ack
//! leaves the job unacknowledged (Kafka: redelivered after a restart or rebalance).

pub mod ack;
pub mod embedded;
pub mod kafka;

use async_trait::async_trait;
use model::job::Job;

pub use ack::AckHandle;

use crate::error::{Result, TriggerError};

/// Puts jobs on the bus. `publish` returns once every job is durably accepted (Kafka:
/// acknowledged by the broker; embedded: in the queue), so callers can commit their own
/// source position afterwards.
#[async_trait]
pub trait JobPublisher: Send + Sync {
    async fn publish(&self, jobs: &[Job]) -> Result<()>;
}

/// Counts published jobs by trigger and stage (every publisher calls this once the
/// jobs are accepted).
pub(crate) fn count_published(jobs: &[Job]) {
    let mut counts: std::collections::BTreeMap<(&'static str, u32), u64> = Default::default();
    for j in jobs {
        *counts.entry((j.trigger.as_str(), j.stage)).or_default() += 1;
    }
    for ((trigger, stage), n) in counts {
        metrics::counter!(crate::metrics::JOBS_PUBLISHED, "trigger" => trigger, "stage" => stage.to_string())
            .increment(n);
    }
}

/// One job taken off the bus, with the handle that acknowledges it.
#[derive(Debug)]
pub struct Delivery {
    pub job: Job,
    pub ack: AckHandle,
}

/// Takes jobs off the bus, one step at a time. `next` returns `Ok(None)` when the bus is
/// closed for good (embedded queue with every publisher gone, consumer shut down).
///
/// `next` is cancel-safe: a call dropped before it returned loses nothing (a record
/// being dead-lettered is kept and finished by the next call), so it may sit in a
/// `select!`.
#[async_trait]
pub trait JobConsumer: Send {
    async fn next(&mut self) -> Result<Option<Delivery>>;

    /// Where the caller sends a delivery it cannot simply acknowledge.
    fn reroute(&self) -> std::sync::Arc<dyn Reroute>;

    /// When the consumer last polled its source (epoch ms), for health checks; `None`
    /// for a source that cannot stall (the embedded queue).
    fn heartbeat(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicI64>> {
        None
    }
}

/// The two ways a consumed job leaves other than done. Each acknowledges the delivery
/// only once the message that replaces it was accepted; on failure the delivery comes
/// back unacknowledged with the error, so the caller can retry or leave it.
#[async_trait]
pub trait Reroute: Send + Sync {
    /// Puts `later` (a later check of the same goods) on the job bus, then acks
    /// `delivery`: a deferred or halted check is not forgotten.
    async fn recheck(&self, delivery: Delivery, later: Job) -> std::result::Result<(), (Delivery, TriggerError)>;

    /// Sends the delivery's job to the dead letters with `reason`, then acks it.
    async fn dead_letter(&self, delivery: Delivery, reason: &str) -> std::result::Result<(), (Delivery, TriggerError)>;
}
