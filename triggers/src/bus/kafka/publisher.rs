//! The Kafka job publisher: key = decimal goods id (one goods, one partition, one handler
//! at a time), value = the job's JSON. `publish` returns after the broker acknowledged
//! every job.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;
use model::job::Job;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::bus::JobPublisher;
use crate::error::Result;

#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
    topic: String,
}

impl KafkaPublisher {
    pub fn new(brokers: &str, topic: &str) -> Result<KafkaPublisher> {
        Self::with_config(brokers, topic, &[])
    }

    /// With extra librdkafka producer settings. `batch.num.messages = 1` makes every job
    /// its own record batch, which Tansu 0.6 needs for consumers that resume from a
    /// committed offset inside a batch (see `scripts/kafka.sh`); Kafka does not.
    pub fn with_config(brokers: &str, topic: &str, extra: &[(&str, &str)]) -> Result<KafkaPublisher> {
        let mut config = super::producer_config(brokers);
        for (k, v) in extra {
            config.set(*k, *v);
        }
        Ok(KafkaPublisher { producer: config.create()?, topic: topic.to_string() })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
}

#[async_trait]
impl JobPublisher for KafkaPublisher {
    async fn publish(&self, jobs: &[Job]) -> Result<()> {
        let sends = jobs.iter().map(|job| {
            let key = job.key();
            let payload = job.encode();
            let producer = self.producer.clone();
            let topic = self.topic.clone();
            async move {
                let record = FutureRecord::to(&topic).key(&key).payload(&payload);
                producer.send(record, Timeout::After(Duration::from_secs(30))).await.map(|_| ()).map_err(|(e, _)| e)
            }
        });
        try_join_all(sends).await?;
        crate::bus::count_published(jobs);
        Ok(())
    }
}
