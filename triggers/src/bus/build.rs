//! Builds the configured bus for `serve`: the publisher every trigger shares and the
//! consumers the handler workers take jobs from.

use std::sync::Arc;

use model::config::{BusConfig, BusKind, KafkaConfig};

use super::embedded::{self, EmbeddedConsumer};
use super::kafka::{ensure_topics, KafkaJobConsumer, KafkaPublisher, SourceOptions};
use super::{JobConsumer, JobPublisher};
use crate::error::Result;

/// The bus of one process. For Kafka, each [`consumer`](Bus::consumer) call joins the
/// handlers' group once more (partitions are split among them); for the embedded queue,
/// consumers share the one queue.
pub struct Bus {
    pub publisher: Arc<dyn JobPublisher>,
    kind: BusKind,
    kafka: KafkaConfig,
    embedded: Option<EmbeddedConsumer>,
}

impl Bus {
    /// Creates the jobs and dead-letter topics when they do not exist (Kafka).
    pub async fn connect(bus: &BusConfig, kafka: &KafkaConfig) -> Result<Bus> {
        match bus.kind {
            BusKind::Embedded => {
                let (publisher, consumer) = embedded::channel(bus.queue_capacity);
                Ok(Bus {
                    publisher: Arc::new(publisher),
                    kind: bus.kind,
                    kafka: kafka.clone(),
                    embedded: Some(consumer),
                })
            }
            BusKind::Kafka => {
                ensure_topics(&kafka.brokers, &[&kafka.jobs_topic, &kafka.dead_letter_topic], kafka.partitions).await?;
                let publisher = KafkaPublisher::new(&kafka.brokers, &kafka.jobs_topic)?;
                Ok(Bus { publisher: Arc::new(publisher), kind: bus.kind, kafka: kafka.clone(), embedded: None })
            }
        }
    }

    pub fn kind(&self) -> BusKind {
        self.kind
    }

    /// A consumer for one handler worker.
    pub fn consumer(&self) -> Result<Box<dyn JobConsumer>> {
        match &self.embedded {
            Some(consumer) => Ok(Box::new(consumer.clone())),
            None => {
                let k = &self.kafka;
                Ok(Box::new(KafkaJobConsumer::new(
                    &k.brokers,
                    &k.group,
                    &k.jobs_topic,
                    &k.dead_letter_topic,
                    SourceOptions::for_kafka(k),
                )?))
            }
        }
    }
}
