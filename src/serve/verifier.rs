//! The price verifier in `serve` (`[verifier] topic = ...`): consumes pricing samples as
//! the consumer group `kafka.group + ".verifier"`, verifies them in micro-batches and
//! counts them (see `crate::verify::metrics`).
//!
//! At least once: a sample's offset is acknowledged only after its verdict is counted and
//! the check jobs of its batch are published (a `stale_source` goods is checked and
//! repaired by the handlers like any other drift). A store that cannot be read fails the
//! batch, which is retried with backoff and stays unacknowledged. A sample that does not
//! decode goes to `kafka.dead_letter_topic` with the reason (`dlq.reason` header) and is
//! acknowledged once the dead letter is out.
//!
//! Back-pressure: at most `verifier.concurrency` batches are verified at once; while all
//! are busy, intake stops taking records and the Kafka source pauses its partitions.

use std::sync::Arc;
use std::time::Duration;

use model::job::{Job, TriggerKind};
use model::pricing::Sample;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use triggers::bus::kafka::{DeadLetterPublisher, KafkaSource, RawRecord};
use triggers::{AckHandle, JobPublisher};

use crate::app::App;
use crate::verify::{metrics as m, Engine};

/// Starts the verifier when `[verifier] topic` is set; the task ends after shutdown,
/// once in-flight batches are done and offsets are committed.
pub async fn spawn(
    app: &App,
    publisher: Arc<dyn JobPublisher>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let config = &app.config;
    let Some(topic) = config.verifier.topic.clone() else { return Ok(None) };
    let k = &config.kafka;
    triggers::bus::kafka::admin::ensure_topics(&k.brokers, &[&topic, &k.dead_letter_topic], k.partitions).await?;
    let mut options = super::source_options(config);
    options.buffer = config.verifier.batch_size * config.verifier.concurrency;
    let group = format!("{}.verifier", k.group);
    let source = KafkaSource::subscribe(&k.brokers, &group, &[&topic], options)?;
    let dead_letters = DeadLetterPublisher::new(&k.brokers, &k.dead_letter_topic)?;
    m::register_zero(config.targets.iter().map(|t| t.name().to_string()));
    tracing::info!(%topic, %group, "price verifier started");
    let engine = Arc::new(Engine::new(app));
    let settings = Settings {
        batch_size: config.verifier.batch_size,
        batch_wait: Duration::from_millis(config.verifier.batch_wait_ms),
        concurrency: config.verifier.concurrency,
    };
    let parts = Parts { engine, publisher, dead_letters };
    Ok(Some(tokio::spawn(run(source, Arc::new(parts), settings, shutdown))))
}

struct Settings {
    batch_size: usize,
    batch_wait: Duration,
    concurrency: usize,
}

struct Parts {
    engine: Arc<Engine>,
    publisher: Arc<dyn JobPublisher>,
    dead_letters: DeadLetterPublisher,
}

async fn run(mut source: KafkaSource, parts: Arc<Parts>, settings: Settings, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let mut running = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            p = slots.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let first = tokio::select! {
            _ = shutdown.changed() => break,
            r = source.next() => match r { Some(r) => r, None => break },
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + settings.batch_wait;
        while batch.len() < settings.batch_size {
            match tokio::time::timeout_at(deadline, source.next()).await {
                Ok(Some(r)) => batch.push(r),
                _ => break,
            }
        }
        let (parts, rx) = (parts.clone(), shutdown.clone());
        running.spawn(async move {
            handle_batch(&parts, batch, &rx).await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    // Batches in flight finish (or give up unacknowledged when a store stays down).
    while running.join_next().await.is_some() {}
    source.shutdown().await;
    tracing::info!("price verifier stopped");
}

async fn handle_batch(parts: &Parts, batch: Vec<(RawRecord, AckHandle)>, shutdown: &watch::Receiver<bool>) {
    let mut samples = Vec::with_capacity(batch.len());
    let mut acks = Vec::with_capacity(batch.len());
    let mut positions = Vec::with_capacity(batch.len());
    for (record, ack) in batch {
        match Sample::decode(record.payload.as_deref().unwrap_or_default()) {
            Ok(s) => {
                samples.push(s);
                positions.push(format!("{}-{}-{}", record.topic, record.partition, record.offset));
                acks.push(ack);
            }
            Err(e) => {
                let reason = format!(
                    "pricing sample at topic {} partition {} offset {}: {e}",
                    record.topic, record.partition, record.offset
                );
                if !retry(shutdown, "dead letter", || parts.dead_letters.send(&record, &reason)).await {
                    return;
                }
                metrics::counter!(m::MALFORMED).increment(1);
                ack.ack();
            }
        }
    }
    if samples.is_empty() {
        return;
    }
    let verify = || parts.engine.verify(samples.clone());
    let Some(verified) = retry_value(shutdown, verify).await else { return };
    let mut jobs: Vec<Job> = Vec::new();
    let now = common::clock::now_ms();
    for (v, position) in verified.iter().zip(&positions) {
        m::record(v);
        if v.judgement.check_goods && !jobs.iter().any(|j| j.goods_id == v.sample.goods_id) {
            jobs.push(Job::new(v.sample.goods_id, TriggerKind::Verifier, format!("verifier-{position}")));
        }
    }
    if let Some(last) = verified.last() {
        metrics::gauge!(m::LAG_SECONDS).set((now - last.sample.at_ms).max(0) as f64 / 1000.0);
    }
    if !jobs.is_empty() {
        if !retry(shutdown, "check job publish", || parts.publisher.publish(&jobs)).await {
            return;
        }
        metrics::counter!(m::CHECK_JOBS).increment(jobs.len() as u64);
    }
    for ack in acks {
        ack.ack();
    }
}

/// Retries `op` with backoff until it succeeds (true) or shutdown is requested (false,
/// the batch then stays unacknowledged and is redelivered).
async fn retry<F, Fut, E>(shutdown: &watch::Receiver<bool>, what: &str, mut op: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(()) => return true,
            Err(e) => {
                metrics::counter!(super::telemetry::ERRORS, "component" => "verifier").increment(1);
                tracing::warn!(error = %e, what, retry_in_ms = backoff.as_millis() as u64, "price verifier step failed, retrying");
            }
        }
        if *shutdown.borrow() {
            return false;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn retry_value<F, Fut, T>(shutdown: &watch::Receiver<bool>, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, handlers::StoreError>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) => {
                metrics::counter!(m::BATCH_RETRIES).increment(1);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "sample batch failed, retrying");
            }
        }
        if *shutdown.borrow() {
            return None;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
