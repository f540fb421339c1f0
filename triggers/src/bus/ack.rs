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
    Kafka {
        tracker: Arc<SharedTracker>,
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        generation: u64,
    },
    Embedded(Option<tokio::sync::OwnedSemaphorePermit>),
    /// One job of a bundle record: the record is acked when its last job is.
    Part(Arc<BundleAck>),
    Noop,
}

/// The record of a bundle, acked once every one of its jobs was.
#[derive(Debug)]
pub(crate) struct BundleAck {
    left: std::sync::atomic::AtomicUsize,
    record: std::sync::Mutex<Option<AckHandle>>,
    position: Option<(Arc<str>, i32, i64)>,
}

impl BundleAck {
    fn done_one(&self) {
        if self.left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            if let Some(record) = self.record.lock().unwrap_or_else(|e| e.into_inner()).take() {
                record.ack();
            }
        }
    }
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

    /// Splits the handle of a bundle record into one handle per job: the record is acked
    /// when all `n` are (a handle dropped unacked leaves the record unacked).
    pub(crate) fn split(self, n: usize) -> Vec<AckHandle> {
        if n == 1 {
            return vec![self];
        }
        let position = self.position().map(|(t, p, o)| (Arc::from(t), p, o));
        let shared = Arc::new(BundleAck {
            left: std::sync::atomic::AtomicUsize::new(n),
            record: std::sync::Mutex::new(Some(self)),
            position,
        });
        (0..n).map(|_| AckHandle { inner: AckInner::Part(shared.clone()) }).collect()
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
            AckInner::Part(bundle) => bundle.done_one(),
            AckInner::Noop => {}
        }
    }

    /// `(topic, partition, offset)` of a Kafka delivery, for logs and dead letters.
    pub fn position(&self) -> Option<(&str, i32, i64)> {
        match &self.inner {
            AckInner::Kafka { topic, partition, offset, .. } => Some((topic, *partition, *offset)),
            AckInner::Part(bundle) => bundle.position.as_ref().map(|(t, p, o)| (&**t, *p, *o)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bundle_record_is_acked_by_its_last_job_only() {
        let sem = Arc::new(tokio::sync::Semaphore::new(1));
        let record = AckHandle::embedded(sem.clone().acquire_owned().await.unwrap());
        let mut parts = record.split(3);
        assert_eq!(sem.available_permits(), 0);
        parts.pop().unwrap().ack();
        parts.pop().unwrap().ack();
        assert_eq!(sem.available_permits(), 0, "one job of the bundle is still out");
        let last = parts.pop().unwrap();
        drop(parts);
        last.ack();
        assert_eq!(sem.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_job_dropped_unacked_keeps_its_bundle_unacked() {
        let sem = Arc::new(tokio::sync::Semaphore::new(1));
        let mut parts = AckHandle::embedded(sem.clone().acquire_owned().await.unwrap()).split(2);
        parts.pop().unwrap().ack();
        let unacked = parts.pop().unwrap();
        std::mem::forget(unacked);
        assert_eq!(sem.available_permits(), 0);
    }
}
