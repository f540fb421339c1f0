//! The in-process bus: a bounded tokio mpsc queue. Publishers wait while it is full, and
//! a job holds one of `capacity` in-flight slots until it is acked, so a slow handler
//! slows triggers down instead of growing memory.
//!
//! Nothing survives the process: use it for one-process deployments whose triggers can
//! re-derive their work (the scanner's watermark only moves after publish, the DTS
//! trigger's source offsets only after publish, so on restart they redo what was lost).

use std::sync::Arc;

use async_trait::async_trait;
use model::job::Job;
use tokio::sync::{mpsc, Mutex, Semaphore};

use crate::bus::{AckHandle, Delivery, JobConsumer, JobPublisher};
use crate::error::{Result, TriggerError};

/// Builds a connected publisher/consumer pair holding at most `capacity` unacked jobs.
pub fn channel(capacity: usize) -> (EmbeddedPublisher, EmbeddedConsumer) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let slots = Arc::new(Semaphore::new(capacity));
    (EmbeddedPublisher { tx, slots: slots.clone() }, EmbeddedConsumer { rx: Arc::new(Mutex::new(rx)) })
}

#[derive(Clone)]
pub struct EmbeddedPublisher {
    tx: mpsc::Sender<Delivery>,
    /// Shared with consumers through the acks: a slot is free again once its job is acked.
    slots: Arc<Semaphore>,
}

#[async_trait]
impl JobPublisher for EmbeddedPublisher {
    async fn publish(&self, jobs: &[Job]) -> Result<()> {
        for job in jobs {
            let permit = self.slots.clone().acquire_owned().await.map_err(|_| TriggerError::BusClosed)?;
            let delivery = Delivery { job: job.clone(), ack: AckHandle::embedded(permit) };
            self.tx.send(delivery).await.map_err(|_| TriggerError::BusClosed)?;
        }
        crate::bus::count_published(jobs);
        Ok(())
    }
}

/// Clones share one queue, so several handler workers can consume it.
#[derive(Clone)]
pub struct EmbeddedConsumer {
    rx: Arc<Mutex<mpsc::Receiver<Delivery>>>,
}

#[async_trait]
impl JobConsumer for EmbeddedConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        Ok(self.rx.lock().await.recv().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::job::TriggerKind;
    use std::time::Duration;

    fn job(id: u64) -> Job {
        Job::new(id, TriggerKind::Scanner, format!("j{id}"))
    }

    #[tokio::test]
    async fn delivers_in_order_and_closes_when_publishers_are_gone() {
        let (publisher, mut consumer) = channel(4);
        publisher.publish(&[job(1), job(2)]).await.unwrap();
        drop(publisher);
        let a = consumer.next().await.unwrap().unwrap();
        let b = consumer.next().await.unwrap().unwrap();
        assert_eq!((a.job.goods_id, b.job.goods_id), (1, 2));
        a.ack.ack();
        b.ack.ack();
        assert!(consumer.next().await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn unacked_jobs_hold_back_publishers() {
        let (publisher, mut consumer) = channel(2);
        publisher.publish(&[job(1), job(2)]).await.unwrap();
        let first = consumer.next().await.unwrap().unwrap();
        let _second = consumer.next().await.unwrap().unwrap();
        // Both slots are held by unacked jobs: a third publish waits.
        let blocked = tokio::time::timeout(Duration::from_secs(5), publisher.publish(&[job(3)])).await;
        assert!(blocked.is_err(), "publish must wait while every slot is unacked");
        first.ack.ack();
        tokio::time::timeout(Duration::from_secs(5), publisher.publish(&[job(3)])).await.unwrap().unwrap();
        assert_eq!(consumer.next().await.unwrap().unwrap().job.goods_id, 3);
    }
}
