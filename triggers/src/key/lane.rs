//! The priority lane: jobs with `key = true` go to their own publisher (Kafka:
//! `key_activities.priority_topic`, consumed by the handlers ahead of the jobs topic),
//! the rest to the bulk one. Every trigger publishes through this when key activities
//! are configured.

use std::sync::Arc;

use async_trait::async_trait;
use model::job::Job;

use crate::bus::JobPublisher;
use crate::error::Result;

pub struct LanePublisher {
    bulk: Arc<dyn JobPublisher>,
    key: Arc<dyn JobPublisher>,
}

impl LanePublisher {
    pub fn new(bulk: Arc<dyn JobPublisher>, key: Arc<dyn JobPublisher>) -> LanePublisher {
        LanePublisher { bulk, key }
    }
}

#[async_trait]
impl JobPublisher for LanePublisher {
    /// Key jobs first: they are the ones that must not wait.
    async fn publish(&self, jobs: &[Job]) -> Result<()> {
        let (key, bulk): (Vec<Job>, Vec<Job>) = jobs.iter().cloned().partition(|j| j.key);
        if !key.is_empty() {
            self.key.publish(&key).await?;
        }
        if !bulk.is_empty() {
            self.bulk.publish(&bulk).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::JobConsumer;
    use model::job::TriggerKind;

    #[tokio::test]
    async fn key_jobs_take_the_priority_lane() {
        let (bulk_tx, mut bulk_rx) = crate::bus::embedded::channel(10);
        let (key_tx, mut key_rx) = crate::bus::embedded::channel(10);
        let lane = LanePublisher::new(Arc::new(bulk_tx), Arc::new(key_tx));
        let mut key = Job::new(2, TriggerKind::Dts, "k".into());
        key.key = true;
        lane.publish(&[Job::new(1, TriggerKind::Dts, "b".into()), key]).await.unwrap();
        assert_eq!(key_rx.next().await.unwrap().unwrap().job.goods_id, 2);
        assert_eq!(bulk_rx.next().await.unwrap().unwrap().job.goods_id, 1);
    }
}
