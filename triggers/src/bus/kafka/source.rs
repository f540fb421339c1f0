//! An at-least-once Kafka record source for a consumer group.
//!
//! A background task owns the consumer and never stops polling, so a slow caller can not
//! get the consumer thrown out of its group: when the hand-off queue is full it pauses
//! the assigned partitions and keeps polling (which serves rebalances, heartbeats and
//! `max.poll.interval.ms`) until the caller catches up.
//!
//! Offsets: auto commit is on but auto offset *store* is off. An offset is stored only
//! when the caller acked it and everything before it in the partition (see
//! [`offsets`](super::offsets)); librdkafka commits stored offsets every second, on
//! rebalance and on close. Consumers of one group split the partitions and resume from
//! the committed offsets.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientContext, Message, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::offsets::SharedTracker;
use crate::bus::AckHandle;
use crate::error::Result;

/// One message, copied out of librdkafka's buffer.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Broker or producer timestamp, epoch ms.
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RawRecord {
    fn from_message(message: &BorrowedMessage<'_>, topic: Arc<str>) -> RawRecord {
        let headers = message
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec())).collect())
            .unwrap_or_default();
        RawRecord {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            timestamp_ms: message.timestamp().to_millis(),
            headers,
        }
    }

    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }
}

#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Records handed over but not yet taken by the caller before partitions are paused.
    pub buffer: usize,
    /// Where a group without committed offsets starts: `earliest` (default, lose nothing)
    /// or `latest`.
    pub auto_offset_reset: String,
    /// How often stored offsets are committed.
    pub commit_interval_ms: u64,
    /// Extra librdkafka settings (`session.timeout.ms`, ...).
    pub extra: Vec<(String, String)>,
}

impl SourceOptions {
    /// Defaults plus the service's Kafka settings (`kafka.session_timeout_ms`).
    pub fn for_kafka(kafka: &model::config::KafkaConfig) -> SourceOptions {
        let mut options = SourceOptions::default();
        options.extra.push(("session.timeout.ms".into(), kafka.session_timeout_ms.to_string()));
        let heartbeat = (kafka.session_timeout_ms / 3).max(100);
        options.extra.push(("heartbeat.interval.ms".into(), heartbeat.to_string()));
        options
    }
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions { buffer: 256, auto_offset_reset: "earliest".into(), commit_interval_ms: 1000, extra: Vec::new() }
    }
}

/// Forgets revoked partitions in the tracker so stale acks can not store offsets there.
pub struct TrackingContext {
    tracker: Arc<SharedTracker>,
    /// Partitions taken away from this consumer so far, for health checks and tests.
    revocations: Arc<AtomicU64>,
}

impl ClientContext for TrackingContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        Self::record_lag(&statistics);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel::*;
        match level {
            Emerg | Alert | Critical | Error => tracing::error!(fac, "librdkafka: {log_message}"),
            Warning => tracing::warn!(fac, "librdkafka: {log_message}"),
            Notice | Info => tracing::info!(fac, "librdkafka: {log_message}"),
            Debug => tracing::debug!(fac, "librdkafka: {log_message}"),
        }
    }
}

impl TrackingContext {
    /// Consumer lag per assigned partition, from librdkafka's statistics.
    fn record_lag(stats: &rdkafka::Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(crate::metrics::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for TrackingContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            for elem in list.elements() {
                self.revocations.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::metrics::REVOCATIONS, "topic" => elem.topic().to_string()).increment(1);
                tracing::info!(topic = elem.topic(), partition = elem.partition(), "partition revoked");
                self.tracker.revoke(elem.topic(), elem.partition());
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            for elem in list.elements() {
                tracing::info!(topic = elem.topic(), partition = elem.partition(), "partition assigned");
            }
        }
    }
}

type Consumer_ = StreamConsumer<TrackingContext>;
type Item = (RawRecord, AckHandle);

pub struct KafkaSource {
    rx: mpsc::Receiver<Item>,
    /// `None` once shut down. Dropping the last handle closes the consumer, which blocks
    /// while it leaves the group, so shutdown drops it on a blocking thread.
    consumer: Option<Arc<Consumer_>>,
    tracker: Arc<SharedTracker>,
    revocations: Arc<AtomicU64>,
    /// When the poll loop last went round (epoch ms): it goes round at least every
    /// second while alive, so an old value means the source stalled.
    heartbeat: Arc<AtomicI64>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl KafkaSource {
    /// Joins `group` and subscribes to `topics`. Topics must exist (see
    /// [`ensure_topics`](super::ensure_topics)) or are picked up once created.
    pub fn subscribe(brokers: &str, group: &str, topics: &[&str], options: SourceOptions) -> Result<KafkaSource> {
        let slot: Arc<OnceLock<Weak<Consumer_>>> = Arc::new(OnceLock::new());
        let store_slot = slot.clone();
        let tracker = Arc::new(SharedTracker::new(Box::new(move |topic, partition, next| {
            let Some(consumer) = store_slot.get().and_then(Weak::upgrade) else {
                return;
            };
            // `store_offset` stores offset + 1 (it takes a message offset); a list stores
            // exactly the next offset to read.
            let mut list = TopicPartitionList::new();
            let stored = list
                .add_partition_offset(topic, partition, rdkafka::Offset::Offset(next))
                .and_then(|()| consumer.store_offsets(&list));
            if let Err(e) = stored {
                tracing::debug!(topic, partition, next, error = %e, "offset not stored (partition no longer owned)");
            }
        })));
        let mut config = super::base_config(brokers);
        config
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", options.commit_interval_ms.to_string())
            .set("auto.offset.reset", &options.auto_offset_reset)
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", "5000");
        for (k, v) in &options.extra {
            config.set(k, v);
        }
        let revocations = Arc::new(AtomicU64::new(0));
        let context = TrackingContext { tracker: tracker.clone(), revocations: revocations.clone() };
        let consumer: Arc<Consumer_> = Arc::new(config.create_with_context(context)?);
        let _ = slot.set(Arc::downgrade(&consumer));
        consumer.subscribe(topics)?;
        let (tx, rx) = mpsc::channel(options.buffer.max(1));
        let (stop, stop_rx) = watch::channel(false);
        let heartbeat = Arc::new(AtomicI64::new(common::clock::now_ms()));
        let session_ms = options
            .extra
            .iter()
            .find(|(k, _)| k == "session.timeout.ms")
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .unwrap_or(45_000);
        let watch = Rejoin {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            every: Duration::from_millis((session_ms / 2).max(3_000)),
        };
        let task = tokio::spawn(poll_loop(consumer.clone(), tracker.clone(), tx, stop_rx, heartbeat.clone(), watch));
        Ok(KafkaSource { rx, consumer: Some(consumer), tracker, revocations, heartbeat, stop, task: Some(task) })
    }

    /// When the poll loop last went round (epoch ms).
    pub fn heartbeat(&self) -> Arc<AtomicI64> {
        self.heartbeat.clone()
    }

    /// The next record and its ack handle; `None` after [`shutdown`](Self::shutdown).
    pub async fn next(&mut self) -> Option<Item> {
        self.rx.recv().await
    }

    /// Records handed out and not yet committable.
    pub fn in_flight(&self) -> usize {
        self.tracker.in_flight()
    }

    /// Partitions revoked from this consumer since it started (rebalances, or being
    /// thrown out of the group).
    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::Relaxed)
    }

    /// Stops polling, commits what was acked so far and leaves the group. Records handed
    /// out but not acked are redelivered to whoever owns their partition next.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "final commit skipped");
            }
            consumer.unsubscribe();
            drop(consumer);
        })
        .await;
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// What the assignment watchdog (see [`watchdog`](super::watchdog)) needs: the
/// subscription, and how often to check (half a session timeout, at least 3 s).
struct Rejoin {
    topics: Vec<String>,
    every: Duration,
}

type Probe = JoinHandle<Option<super::watchdog::Offsets>>;

async fn poll_loop(
    consumer: Arc<Consumer_>,
    tracker: Arc<SharedTracker>,
    tx: mpsc::Sender<Item>,
    mut stop: watch::Receiver<bool>,
    heartbeat: Arc<AtomicI64>,
    rejoin: Rejoin,
) {
    let mut backlog: VecDeque<Item> = VecDeque::new();
    let mut paused = false;
    let mut topics: Vec<Arc<str>> = Vec::new();
    let mut watchdog = super::watchdog::Watchdog::default();
    let mut next_check = tokio::time::Instant::now() + rejoin.every;
    let mut probe: Option<Probe> = None;
    loop {
        heartbeat.store(common::clock::now_ms(), Ordering::Relaxed);
        check_assignment(&consumer, &rejoin, &mut watchdog, &mut next_check, &mut probe).await;
        // Hand over what we can without waiting.
        while let Some(item) = backlog.pop_front() {
            match tx.try_send(item) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(item)) => {
                    backlog.push_front(item);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        let full = !backlog.is_empty();
        if full != paused || full {
            set_paused(&consumer, full);
            paused = full;
        }
        tokio::select! {
            _ = stop.changed() => return,
            permit = tx.reserve(), if !backlog.is_empty() => match permit {
                Ok(permit) => permit.send(backlog.pop_front().expect("backlog is not empty")),
                Err(_) => return,
            },
            // Come back every second: while paused to poll again (polling is what keeps
            // the consumer in its group), while idle to show it is alive.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            message = consumer.recv() => match message {
                Ok(message) => {
                    let topic = interned(&mut topics, message.topic());
                    let record = RawRecord::from_message(&message, topic.clone());
                    let generation = tracker.track(&topic, record.partition, record.offset);
                    let ack = AckHandle::kafka(tracker.clone(), topic, record.partition, record.offset, generation);
                    backlog.push_back((record, ack));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
}

/// The watchdog's turn in the poll loop: starts a probe of the offsets when a check is
/// due, and judges a finished probe.
async fn check_assignment(
    consumer: &Arc<Consumer_>,
    rejoin: &Rejoin,
    watchdog: &mut super::watchdog::Watchdog,
    next_check: &mut tokio::time::Instant,
    probe: &mut Option<Probe>,
) {
    if let Some(running) = probe.take_if(|p| p.is_finished()) {
        let offsets = running.await.ok().flatten();
        if watchdog.observe(&owned(consumer), offsets.as_ref()) {
            tracing::warn!(
                topics = ?rejoin.topics,
                "records wait on a partition nobody consumes: rejoining the consumer group"
            );
            metrics::counter!(crate::metrics::RESUBSCRIBES).increment(1);
            consumer.unsubscribe();
            let topics: Vec<&str> = rejoin.topics.iter().map(String::as_str).collect();
            if let Err(e) = consumer.subscribe(&topics) {
                tracing::warn!(error = %e, "subscribing again failed");
            }
        }
    }
    if probe.is_some() || tokio::time::Instant::now() < *next_check {
        return;
    }
    *next_check = tokio::time::Instant::now() + rejoin.every;
    let (c, topics) = (consumer.clone(), rejoin.topics.clone());
    *probe = Some(tokio::task::spawn_blocking(move || {
        super::watchdog::probe(c.as_ref(), &topics, Duration::from_secs(5))
            .map_err(|e| tracing::debug!(error = %e, "offset probe failed"))
            .ok()
    }));
}

/// The partitions this consumer owns now.
fn owned(consumer: &Consumer_) -> std::collections::BTreeSet<super::watchdog::Partition> {
    consumer
        .assignment()
        .map(|a| a.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect())
        .unwrap_or_default()
}

fn set_paused(consumer: &Consumer_, pause: bool) {
    let assignment = match consumer.assignment() {
        Ok(a) => a,
        Err(e) => return tracing::warn!(error = %e, "assignment unavailable"),
    };
    if assignment.count() == 0 {
        return;
    }
    let list: TopicPartitionList = assignment;
    let result = if pause { consumer.pause(&list) } else { consumer.resume(&list) };
    if let Err(e) = result {
        tracing::warn!(error = %e, pause, "pause/resume failed");
    }
}

fn interned(topics: &mut Vec<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(t) = topics.iter().find(|t| &***t == name) {
        return t.clone();
    }
    let t: Arc<str> = Arc::from(name);
    topics.push(t.clone());
    t
}
