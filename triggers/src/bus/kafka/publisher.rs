//! The Kafka job publisher. Single-goods jobs are keyed by their goods' bucket
//! ([`model::job::bucket_key`]: one goods, one partition) and **bundled**: jobs handed to
//! `publish` by any caller within [`LINGER`] are grouped by the partition their bucket
//! goes to into bundle records of at most [`BUNDLE_MAX`] jobs (a JSON array, see
//! [`model::job::encode_bundle`]), so a stream of changes costs the broker one record
//! per partition and linger rather than one per goods. A bucket's partition is the one
//! Kafka's default partitioner gives its key ([`partition_of`]: librdkafka's
//! `consistent_random`, CRC-32 of the key modulo the topic's partitions), so a goods
//! lands on the same partition whether its job travels alone, keyed by its bucket, or in
//! a bundle, which names its partition explicitly (key `p<partition>`). While the
//! topic's partition count is unknown (no metadata), bundles hold one bucket each and are
//! keyed by it. Other jobs (batch jobs of distributed runs) go as one record each, keyed
//! by [`Job::key`]. `publish` returns after the broker acknowledged every record holding
//! the caller's jobs.
//!
//! Each bundle is one record, so the one-record-per-batch producer setting Tansu needs
//! (`batch.num.messages = 1`, see `scripts/kafka.sh`) costs one broker request per bundle.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::{join_all, try_join_all};
use model::job::{bucket_key, encode_bundle, Job, BUNDLE_MAX, JOB_VERSION};
use rdkafka::error::KafkaError;
use tokio::sync::{mpsc, oneshot};

use super::producer::{Producer, Record as Outgoing};

use crate::bus::JobPublisher;
use crate::error::{Result, TriggerError};

/// How long the bundler waits for more jobs after the first of a bundle arrives. Jobs
/// carry their own due time (`not_before_ms`), so the wait delays no check; it bounds
/// the job records to (partitions / LINGER) per second however many jobs are published.
pub const LINGER: Duration = Duration::from_millis(20);

/// The bundler stops waiting once this many jobs are pending: a trigger's page of goods
/// (a scanner page, an activity's fan-out) goes out at once.
pub const FLUSH_AT: usize = 1000;

/// How long a topic's partition count is trusted before the bundler asks again (a
/// failed lookup is retried after [`PARTITIONS_RETRY`]).
const PARTITIONS_TTL: Duration = Duration::from_secs(60);
const PARTITIONS_RETRY: Duration = Duration::from_secs(5);
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

/// The partition Kafka's default partitioner (librdkafka's `consistent_random`) gives a
/// non-empty `key` among `partitions`: CRC-32 of the key, modulo the count.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    (crc32fast::hash(key.as_bytes()) % partitions.max(1) as u32) as i32
}

const SEND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct KafkaPublisher {
    producer: Producer,
    topic: String,
    /// The bundler task, started by the first publish (it needs the runtime).
    bundler: Arc<OnceLock<mpsc::Sender<Pending>>>,
}

/// Jobs of one `publish` call waiting to be bundled, and where to say they are out.
struct Pending {
    jobs: Vec<Job>,
    done: oneshot::Sender<std::result::Result<(), KafkaError>>,
}

impl KafkaPublisher {
    pub fn new(brokers: &str, topic: &str) -> Result<KafkaPublisher> {
        Self::with_config(brokers, topic, &[])
    }

    /// With extra librdkafka producer settings. `batch.num.messages = 1` makes every
    /// record its own record batch, which Tansu 0.6 needs for consumers that resume from
    /// a committed offset inside a batch (see `scripts/kafka.sh`); Kafka does not.
    pub fn with_config(brokers: &str, topic: &str, extra: &[(&str, &str)]) -> Result<KafkaPublisher> {
        let mut config = super::producer_config(brokers);
        for (k, v) in extra {
            config.set(*k, *v);
        }
        Ok(KafkaPublisher {
            producer: Producer::new(&config)?,
            topic: topic.to_string(),
            bundler: Arc::new(OnceLock::new()),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn bundler(&self) -> &mpsc::Sender<Pending> {
        self.bundler.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4096);
            tokio::spawn(bundle_loop(self.producer.clone(), self.topic.clone(), rx));
            tx
        })
    }

    /// Sends one record (to `partition`, or where its key goes) and waits for the
    /// broker's acknowledgement.
    async fn send(
        producer: &Producer,
        topic: &str,
        key: &str,
        partition: Option<i32>,
        payload: &[u8],
    ) -> std::result::Result<(), KafkaError> {
        let mut record = Outgoing::to(topic).key(key).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        producer.send(record, SEND_TIMEOUT).await.map(|_| ())
    }
}

#[async_trait]
impl JobPublisher for KafkaPublisher {
    async fn publish(&self, jobs: &[Job]) -> Result<()> {
        let (single, bundled): (Vec<&Job>, Vec<&Job>) = jobs.iter().partition(|j| j.v != JOB_VERSION);
        let singles =
            try_join_all(single.iter().map(|job| {
                let (key, payload) = (job.key(), job.encode());
                async move {
                    Self::send(&self.producer, &self.topic, &key, None, &payload).await.map_err(TriggerError::from)
                }
            }));
        let bundles = async {
            if bundled.is_empty() {
                return Ok(());
            }
            let (done, rx) = oneshot::channel();
            let pending = Pending { jobs: bundled.into_iter().cloned().collect(), done };
            self.bundler().send(pending).await.map_err(|_| TriggerError::BusClosed)?;
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(TriggerError::Kafka(e)),
                Err(_) => Err(TriggerError::BusClosed),
            }
        };
        futures::try_join!(singles, bundles)?;
        crate::bus::count_published(jobs);
        Ok(())
    }
}

/// Collects pending publishes for [`LINGER`] after the first (or until [`FLUSH_AT`] jobs
/// are pending), then sends their bundles in a task of their own and
/// goes on collecting.
async fn bundle_loop(producer: Producer, topic: String, mut rx: mpsc::Receiver<Pending>) {
    // The topic's partition count, and when it was looked up.
    let mut partitions: Option<(Option<i32>, Instant)> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut jobs = batch[0].jobs.len();
        let deadline = tokio::time::Instant::now() + LINGER;
        while jobs < FLUSH_AT {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => {
                    jobs += p.jobs.len();
                    batch.push(p);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let stale = partitions
            .is_none_or(|(known, at)| at.elapsed() > if known.is_some() { PARTITIONS_TTL } else { PARTITIONS_RETRY });
        if stale {
            partitions = Some((partition_count(&producer, &topic).await, Instant::now()));
        }
        tokio::spawn(flush(producer.clone(), topic.clone(), partitions.and_then(|(n, _)| n), batch));
    }
}

/// The topic's partition count from the broker's metadata; `None` when it can not be
/// read (broker away, topic not there yet).
async fn partition_count(producer: &Producer, topic: &str) -> Option<i32> {
    let (producer, topic) = (producer.clone(), topic.to_string());
    let lookup = tokio::task::spawn_blocking(move || {
        let metadata = producer.client().fetch_metadata(Some(&topic), METADATA_TIMEOUT).ok()?;
        let found = metadata.topics().iter().find(|t| t.name() == topic)?;
        let n = found.partitions().len() as i32;
        (found.error().is_none() && n > 0).then_some(n)
    });
    lookup.await.ok().flatten()
}

/// The jobs of one bundle record's worth (before cutting at [`BUNDLE_MAX`]): where they
/// go and, per job, the index of the caller that published it.
struct Group {
    key: String,
    partition: Option<i32>,
    jobs: Vec<(Job, usize)>,
}

/// One record to send, and the callers with a job in it.
struct Record<'a> {
    key: &'a str,
    partition: Option<i32>,
    payload: Vec<u8>,
    callers: Vec<usize>,
}

/// Sends the bundles of `batch` (one group per partition when `partitions` is known,
/// else per bucket) and tells every caller whether all of its jobs are out.
async fn flush(producer: Producer, topic: String, partitions: Option<i32>, batch: Vec<Pending>) {
    // Groups in the order their first job came (one partition keeps its callers' order).
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut callers = Vec::with_capacity(batch.len());
    for (i, p) in batch.into_iter().enumerate() {
        for job in p.jobs {
            let bucket = bucket_key(job.goods_id);
            let (key, partition) = match partitions {
                Some(n) => {
                    let p = partition_of(&bucket, n);
                    (format!("p{p}"), Some(p))
                }
                None => (bucket, None),
            };
            let at = match index.get(&key) {
                Some(&at) => at,
                None => {
                    groups.push(Group { key: key.clone(), partition, jobs: Vec::new() });
                    index.insert(key, groups.len() - 1);
                    groups.len() - 1
                }
            };
            groups[at].jobs.push((job, i));
        }
        callers.push(p.done);
    }
    let mut failed: Vec<Option<KafkaError>> = vec![None; callers.len()];
    let mut records: Vec<Record> = Vec::new();
    for group in &groups {
        for chunk in group.jobs.chunks(BUNDLE_MAX) {
            let owned: Vec<Job> = chunk.iter().map(|(j, _)| j.clone()).collect();
            let payload = if owned.len() == 1 { owned[0].encode() } else { encode_bundle(&owned) };
            let who = chunk.iter().map(|(_, i)| *i).collect();
            records.push(Record { key: &group.key, partition: group.partition, payload, callers: who });
        }
    }
    let sends = records.iter().map(|r| {
        let (producer, topic) = (&producer, &topic);
        async move { (&r.callers, KafkaPublisher::send(producer, topic, r.key, r.partition, &r.payload).await) }
    });
    for (who, result) in join_all(sends).await {
        if let Err(e) = result {
            for &i in who {
                failed[i].get_or_insert_with(|| e.clone());
            }
        }
    }
    for (done, failure) in callers.into_iter().zip(failed) {
        let _ = done.send(failure.map_or(Ok(()), Err));
    }
}
