//! Acknowledgement handles. Kafka handles mark one offset done in the partition's
//! [`OffsetTracker`](crate::bus::kafka::offsets::OffsetTracker); embedded handles release
//! the in-flight slot the job held.

use std::sync::Arc;

use crate::bus::kafka::offsets::SharedTracker;

#[derive(Debug)]
pub struct AckHandle {
    inner: AckInner,
}

#[derive(Debug)]
enum AckInner {
    Kafka { tracker: Arc<SharedTracker>, topic: Arc<str>, partition: i32, offset: i64, generation: u64 },
    Embedded(Option<tokio::sync::OwnedSemaphorePermit>),
    Noop,
}

impl AckHandle {
    pub(crate) fn kafka(
        tracker: Arc<SharedTracker>,
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        generation: u64,
    ) -> AckHandle {
        AckHandle { inner: AckInner::Kafka { tracker, topic, partition, offset, generation } }
    }

    pub(crate) fn embedded(permit: tokio::sync::OwnedSemaphorePermit) -> AckHandle {
        AckHandle { inner: AckInner::Embedded(Some(permit)) }
    }

    /// The in-flight slot of an embedded delivery, moved to the job that replaces it.
    pub(crate) fn take_permit(self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match self.inner {
            AckInner::Embedded(permit) => permit,
            _ => None,
        }
    }

    /// A handle with nothing behind it (jobs built in memory, tests).
    pub fn noop() -> AckHandle {
        AckHandle { inner: AckInner::Noop }
    }

    /// The work for this message is done: its offset may be committed once every earlier
    /// offset of the partition is done too.
    pub fn ack(self) {
        match self.inner {
            AckInner::Kafka { tracker, topic, partition, offset, generation } => {
                tracker.ack(&topic, partition, offset, generation)
            }
            AckInner::Embedded(permit) => drop(permit),
            AckInner::Noop => {}
        }
    }

    /// `(topic, partition, offset)` of a Kafka delivery, for logs and dead letters.
    pub fn position(&self) -> Option<(&str, i32, i64)> {
        match &self.inner {
            AckInner::Kafka { topic, partition, offset, .. } => Some((topic, *partition, *offset)),
            _ => None,
        }
    }
}
