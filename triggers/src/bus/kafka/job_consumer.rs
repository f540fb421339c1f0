//! The handlers' side of the Kafka bus: records of the jobs topic decoded into jobs. A
//! record that is not a valid job is dead-lettered with the decode error and acked, so
//! one bad producer can not stall a partition.

use std::time::Duration;

use async_trait::async_trait;
use model::job::Job;

use super::{DeadLetterPublisher, KafkaSource, SourceOptions};
use crate::bus::{Delivery, JobConsumer};
use crate::error::Result;

pub struct KafkaJobConsumer {
    source: KafkaSource,
    dead_letters: DeadLetterPublisher,
}

impl KafkaJobConsumer {
    pub fn new(
        brokers: &str,
        group: &str,
        jobs_topic: &str,
        dead_letter_topic: &str,
        options: SourceOptions,
    ) -> Result<Self> {
        Ok(KafkaJobConsumer {
            source: KafkaSource::subscribe(brokers, group, &[jobs_topic], options)?,
            dead_letters: DeadLetterPublisher::new(brokers, dead_letter_topic)?,
        })
    }

    /// Commits what was acked and leaves the group.
    pub async fn shutdown(self) {
        self.source.shutdown().await
    }
}

#[async_trait]
impl JobConsumer for KafkaJobConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        loop {
            let Some((record, ack)) = self.source.next().await else {
                return Ok(None);
            };
            let payload = record.payload.as_deref().unwrap_or_default();
            match Job::decode(payload) {
                Ok(job) => return Ok(Some(Delivery { job, ack })),
                Err(e) => {
                    let reason =
                        format!("topic {} partition {} offset {}: {e}", record.topic, record.partition, record.offset);
                    // Until the dead letter is out the record stays unacked: retry rather than
                    // stall the partition's commits behind it.
                    let mut backoff = Duration::from_millis(100);
                    while let Err(e) = self.dead_letters.send(&record, &reason).await {
                        tracing::warn!(error = %e, "dead letter not published, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                    metrics::counter!(crate::metrics::DEAD_LETTERS, "source" => "jobs").increment(1);
                    ack.ack();
                }
            }
        }
    }
}
