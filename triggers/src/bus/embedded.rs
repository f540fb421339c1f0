//! The in-process bus: a bounded tokio mpsc queue. Publishers wait while it is full, and
//! a job holds one of `capacity` in-flight slots until it is acked, so a slow handler
//! slows triggers down instead of growing memory.
//!
//! Within the process nothing is lost: a deferred or halted check is put back on the
//! queue (its in-flight slot moves with it, so this never waits on a full queue), and a
//! job acknowledged is done. Nothing survives the process: jobs queued, waiting for
//! their stage or being re-checked are gone after a restart, and a dead letter is only
//! logged (error level, with the job and the reason) and counted, not kept. Use it for
//! one-process deployments whose triggers can re-derive their work (the scanner's
//! watermark only moves after publish, the DTS trigger's source offsets only after
//! publish, so on restart they redo what was queued; re-checks of deferred repairs are
//! redone by the next change, scanner pass or full run).

use std::sync::Arc;

use async_trait::async_trait;
use model::job::Job;
use tokio::sync::{mpsc, Mutex, Semaphore};

use crate::bus::{AckHandle, Delivery, JobConsumer, JobPublisher, Reroute};
use crate::error::{Result, TriggerError};

/// Builds a connected publisher/consumer pair holding at most `capacity` unacked jobs.
pub fn channel(capacity: usize) -> (EmbeddedPublisher, EmbeddedConsumer) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let slots = Arc::new(Semaphore::new(capacity));
    let back = tx.downgrade();
    (EmbeddedPublisher { tx, slots: slots.clone() }, EmbeddedConsumer { rx: Arc::new(Mutex::new(rx)), back })
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
    /// Re-checks go back on the queue (weak: the queue still closes when every
    /// publisher is gone).
    back: mpsc::WeakSender<Delivery>,
}

#[async_trait]
impl JobConsumer for EmbeddedConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        Ok(self.rx.lock().await.recv().await)
    }

    fn reroute(&self) -> Arc<dyn Reroute> {
        Arc::new(EmbeddedReroute { back: self.back.clone() })
    }
}

struct EmbeddedReroute {
    back: mpsc::WeakSender<Delivery>,
}

#[async_trait]
impl Reroute for EmbeddedReroute {
    async fn recheck(&self, delivery: Delivery, later: Job) -> std::result::Result<(), (Delivery, TriggerError)> {
        let Some(tx) = self.back.upgrade() else { return Err((delivery, TriggerError::BusClosed)) };
        let ack = delivery.ack.take_permit().map(AckHandle::embedded).unwrap_or_else(AckHandle::noop);
        // The slot moves with the job, so the queue has room for it.
        let jobs = [later.clone()];
        tx.send(Delivery { job: later, ack }).await.map_err(|e| (e.0, TriggerError::BusClosed))?;
        crate::bus::count_published(&jobs);
        Ok(())
    }

    async fn dead_letter(&self, delivery: Delivery, reason: &str) -> std::result::Result<(), (Delivery, TriggerError)> {
        let job = String::from_utf8_lossy(&delivery.job.encode()).into_owned();
        tracing::error!(%job, reason, "dead letter (embedded bus: logged, not kept)");
        metrics::counter!(crate::metrics::DEAD_LETTERS, "source" => "jobs").increment(1);
        delivery.ack.ack();
        Ok(())
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

    #[tokio::test(start_paused = true)]
    async fn a_recheck_takes_the_slot_of_the_job_it_replaces() {
        let (publisher, mut consumer) = channel(1);
        publisher.publish(&[job(1)]).await.unwrap();
        let first = consumer.next().await.unwrap().unwrap();
        // The only slot is held; the re-check goes back on the queue all the same.
        let mut later = job(1);
        later.rechecks = 1;
        tokio::time::timeout(Duration::from_secs(5), consumer.reroute().recheck(first, later)).await.unwrap().unwrap();
        let again = consumer.next().await.unwrap().unwrap();
        assert_eq!(again.job.rechecks, 1);
        let blocked = tokio::time::timeout(Duration::from_secs(5), publisher.publish(&[job(2)])).await;
        assert!(blocked.is_err(), "the re-check still holds the slot");
        again.ack.ack();
        publisher.publish(&[job(2)]).await.unwrap();
    }
}
