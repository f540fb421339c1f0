//! Dead letters: a message that cannot be used goes, byte for byte, to the dead-letter
//! topic with headers saying why and where it came from, so an operator can read the
//! reason and replay the original after a fix.
//!
//! Headers: `dlq.reason`, `dlq.source.topic`, `dlq.source.partition`, `dlq.source.offset`.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};

use super::producer::{Producer, Record};
use super::RawRecord;
use crate::error::Result;

pub const REASON_HEADER: &str = "dlq.reason";

#[derive(Clone)]
pub struct DeadLetterPublisher {
    producer: Producer,
    topic: String,
}

impl DeadLetterPublisher {
    pub fn new(brokers: &str, topic: &str) -> Result<DeadLetterPublisher> {
        Ok(DeadLetterPublisher { producer: Producer::new(&super::producer_config(brokers))?, topic: topic.to_string() })
    }

    /// Publishes `record` with `reason`; returns once the broker has it, so the caller may
    /// then commit the source offset.
    pub async fn send(&self, record: &RawRecord, reason: &str) -> Result<()> {
        tracing::warn!(topic = %record.topic, partition = record.partition, offset = record.offset, reason, "dead-lettering message");
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: REASON_HEADER, value: Some(reason) })
            .insert(Header { key: "dlq.source.topic", value: Some(&*record.topic) })
            .insert(Header { key: "dlq.source.partition", value: Some(&partition) })
            .insert(Header { key: "dlq.source.offset", value: Some(&offset) });
        let payload = record.payload.as_deref().unwrap_or_default();
        let mut out = Record::to(&self.topic).payload(payload).headers(headers);
        if let Some(key) = record.key.as_deref() {
            out = out.key(key);
        }
        self.producer.send(out, Duration::from_secs(30)).await?;
        Ok(())
    }
}
