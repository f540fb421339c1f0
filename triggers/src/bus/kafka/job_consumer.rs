//! The handlers' side of the Kafka bus: records of the jobs topic decoded into jobs. A
//! record that is not a valid job (or bundle of jobs) is dead-lettered with the decode
//! error and acked, so one bad producer can not stall a partition. A bundle record
//! becomes one delivery per job; the record is acked when all of them are.
//!
//! `next` is cancel-safe: a record taken off the source is first parked in the consumer
//! (`parked`), so a call dropped while its dead letter was on the way (a `select!`
//! branch losing) leaves it to the next call instead of losing it, which would pin its
//! partition's commits forever. A dead letter that cannot be published is returned as
//! an error (the record stays parked, unacked) so the caller backs off and calls again.
//!
//! Re-checks (deferred or halted repairs) are published to the jobs topic again, and
//! jobs the handler gives up on go to the dead-letter topic, through [`KafkaReroute`].

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use async_trait::async_trait;
use model::job::Job;

use super::{DeadLetterPublisher, KafkaPublisher, KafkaSource, RawRecord, SourceOptions};
use crate::bus::{AckHandle, Delivery, JobConsumer, Reroute};
use crate::error::{Result, TriggerError};

pub struct KafkaJobConsumer {
    source: KafkaSource,
    dead_letters: DeadLetterPublisher,
    reroute: Arc<KafkaReroute>,
    /// A record taken off the source whose dead letter is not out yet, with the reason.
    parked: Option<(RawRecord, AckHandle, String)>,
    /// Jobs of a bundle record not handed out yet.
    unpacked: std::collections::VecDeque<Delivery>,
}

impl KafkaJobConsumer {
    pub fn new(
        brokers: &str,
        group: &str,
        jobs_topic: &str,
        dead_letter_topic: &str,
        options: SourceOptions,
    ) -> Result<Self> {
        let dead_letters = DeadLetterPublisher::new(brokers, dead_letter_topic)?;
        Ok(KafkaJobConsumer {
            source: KafkaSource::subscribe(brokers, group, &[jobs_topic], options)?,
            reroute: Arc::new(KafkaReroute {
                jobs: KafkaPublisher::new(brokers, jobs_topic)?,
                dead_letters: dead_letters.clone(),
            }),
            dead_letters,
            parked: None,
            unpacked: Default::default(),
        })
    }

    /// Re-checks are published with `publisher` (the service's jobs publisher, with its
    /// producer settings) instead of a default one.
    pub fn with_recheck_publisher(mut self, publisher: KafkaPublisher) -> Self {
        self.reroute = Arc::new(KafkaReroute { jobs: publisher, dead_letters: self.dead_letters.clone() });
        self
    }

    /// Commits what was acked and leaves the group.
    pub async fn shutdown(self) {
        self.source.shutdown().await
    }

    /// Finishes the parked dead letter, if any.
    async fn unpark(&mut self) -> Result<()> {
        if let Some((record, _, reason)) = &self.parked {
            self.dead_letters.send(record, reason).await?;
            let (_, ack, _) = self.parked.take().expect("parked above");
            metrics::counter!(crate::metrics::DEAD_LETTERS, "source" => "jobs").increment(1);
            ack.ack();
        }
        Ok(())
    }
}

#[async_trait]
impl JobConsumer for KafkaJobConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        loop {
            if let Some(d) = self.unpacked.pop_front() {
                return Ok(Some(d));
            }
            self.unpark().await?;
            // Receiving from the source's queue is cancel-safe; nothing is awaited
            // between taking a record and parking it.
            let Some((record, ack)) = self.source.next().await else {
                return Ok(None);
            };
            let payload = record.payload.as_deref().unwrap_or_default();
            match model::job::decode_record(payload) {
                Ok(jobs) => {
                    let acks = ack.split(jobs.len());
                    self.unpacked.extend(jobs.into_iter().zip(acks).map(|(job, ack)| Delivery { job, ack }));
                }
                Err(e) => {
                    let reason =
                        format!("topic {} partition {} offset {}: {e}", record.topic, record.partition, record.offset);
                    self.parked = Some((record, ack, reason));
                }
            }
        }
    }

    fn reroute(&self) -> Arc<dyn Reroute> {
        self.reroute.clone()
    }

    fn heartbeat(&self) -> Option<Arc<AtomicI64>> {
        Some(self.source.heartbeat())
    }
}

/// Re-checks to the jobs topic, give-ups to the dead-letter topic.
pub struct KafkaReroute {
    jobs: KafkaPublisher,
    dead_letters: DeadLetterPublisher,
}

#[async_trait]
impl Reroute for KafkaReroute {
    async fn recheck(&self, delivery: Delivery, later: Job) -> std::result::Result<(), (Delivery, TriggerError)> {
        use crate::bus::JobPublisher;
        match self.jobs.publish(std::slice::from_ref(&later)).await {
            Ok(()) => {
                delivery.ack.ack();
                Ok(())
            }
            Err(e) => Err((delivery, e)),
        }
    }

    async fn dead_letter(&self, delivery: Delivery, reason: &str) -> std::result::Result<(), (Delivery, TriggerError)> {
        let (topic, partition, offset) = match delivery.ack.position() {
            Some((t, p, o)) => (Arc::from(t), p, o),
            None => (Arc::from(self.jobs.topic()), -1, -1),
        };
        // The job as decoded (the same JSON the producer sent, re-encoded).
        let record = RawRecord {
            topic,
            partition,
            offset,
            key: Some(delivery.job.key().into_bytes()),
            payload: Some(delivery.job.encode()),
            timestamp_ms: None,
            headers: Vec::new(),
        };
        match self.dead_letters.send(&record, reason).await {
            Ok(()) => {
                metrics::counter!(crate::metrics::DEAD_LETTERS, "source" => "handler").increment(1);
                delivery.ack.ack();
                Ok(())
            }
            Err(e) => Err((delivery, e)),
        }
    }
}
