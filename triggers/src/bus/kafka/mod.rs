//! The Kafka bus: a publisher keyed by goods id, a raw at-least-once record source shared
//! by the job consumer and the DTS trigger, the dead-letter producer, and the producer
//! both send with (one whose delivery reports are served without a spinning thread).

pub mod admin;
pub mod dead_letter;
pub mod job_consumer;
pub mod offsets;
pub mod producer;
pub mod publisher;
pub mod source;
pub mod watchdog;

pub use admin::{create_topics, ensure_topics, ensure_topics_for, TopicSettings};
pub use dead_letter::DeadLetterPublisher;
pub use job_consumer::{KafkaJobConsumer, KafkaReroute};
pub use producer::Producer;
pub use publisher::KafkaPublisher;
pub use source::{KafkaSource, RawRecord, SourceOptions};

use rdkafka::ClientConfig;

/// Client settings shared by every producer and consumer of this crate. Reconnects to a
/// broker that went away back off to at most 1 s (librdkafka's default cap is 10 s), the
/// same low cap as the service's retry policy: work resumes soon after a broker returns.
pub(crate) fn base_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "reconciler")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000");
    config
}

/// Producer settings: every publish waits for the full in-sync replica set, so a publish
/// that returned survives a broker failover (with topics replicated: see
/// [`admin`]).
pub(crate) fn producer_config(brokers: &str) -> ClientConfig {
    let mut config = base_config(brokers);
    config.set("acks", "all").set("linger.ms", "5").set("message.timeout.ms", "30000");
    config
}
