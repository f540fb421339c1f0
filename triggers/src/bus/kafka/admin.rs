//! Topic creation for the topics the service owns (jobs, dead letters, and DTS topics
//! that do not exist yet).
//!
//! Partitions and replication factor are configuration (`kafka.partitions`,
//! `kafka.replication_factor`); 0 asks the broker for its defaults (`num.partitions`,
//! `default.replication.factor`, KIP-464), so on a production cluster the jobs topic is
//! replicated like every other topic and a publish acknowledged with `acks=all` survives
//! a broker failover. Existing topics are never changed.

use std::time::Duration;

use model::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{Result, TriggerError};

/// How the service creates its topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    /// 0 or less: the broker's default.
    pub partitions: i32,
    /// 0 or less: the broker's default.
    pub replication_factor: i32,
}

impl TopicSettings {
    pub fn of(kafka: &KafkaConfig) -> TopicSettings {
        TopicSettings { partitions: kafka.partitions, replication_factor: kafka.replication_factor }
    }
}

/// Creates each topic that does not exist yet with `partitions` (0: the broker's
/// default) and the broker's default replication factor.
pub async fn ensure_topics(brokers: &str, topics: &[&str], partitions: i32) -> Result<()> {
    create_topics(brokers, topics, TopicSettings { partitions, replication_factor: 0 }).await
}

/// [`create_topics`] with the service's settings (`kafka.brokers`, `kafka.partitions`,
/// `kafka.replication_factor`).
pub async fn ensure_topics_for(kafka: &KafkaConfig, topics: &[&str]) -> Result<()> {
    create_topics(&kafka.brokers, topics, TopicSettings::of(kafka)).await
}

/// Creates each topic that does not exist yet; existing topics are left as they are.
pub async fn create_topics(brokers: &str, topics: &[&str], settings: TopicSettings) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = super::base_config(brokers).create()?;
    // -1: the broker's default (CreateTopics v4+, KIP-464).
    let partitions = if settings.partitions > 0 { settings.partitions } else { -1 };
    let replication = if settings.replication_factor > 0 { settings.replication_factor } else { -1 };
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication))).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                tracing::error!(topic = %topic, code = ?code, partitions, replication, "topic creation failed");
                return Err(TriggerError::Config(format!(
                    "creating topic `{topic}` with {} partitions and replication factor {} failed: {code:?} (kafka.partitions, kafka.replication_factor; 0 is the broker's default)",
                    if partitions > 0 { partitions.to_string() } else { "the broker's default".into() },
                    if replication > 0 { replication.to_string() } else { "the broker's default".into() },
                )));
            }
        }
    }
    Ok(())
}
