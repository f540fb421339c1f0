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

use common::retry::RetryPolicy;
use model::job::{Job, TriggerKind};
use model::pricing::Sample;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use triggers::bus::kafka::{DeadLetterPublisher, KafkaSource, RawRecord};
use triggers::{AckHandle, JobPublisher};

use super::telemetry::ERRORS;
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
    // Records held for the batches to come; never below the service's hand-over buffer
    // (a small one pauses and resumes partitions all the time, BENCHMARKS.md).
    options.buffer = options.buffer.max(config.verifier.batch_size * config.verifier.concurrency * 8);
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
    let parts = Parts { retry: RetryPolicy::from_config(&config.retry), engine, publisher, dead_letters };
    Ok(Some(tokio::spawn(run(source, Arc::new(parts), settings, shutdown))))
}

struct Settings {
    batch_size: usize,
    batch_wait: Duration,
    concurrency: usize,
}

struct Parts {
    retry: RetryPolicy,
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
                let send = || parts.dead_letters.send(&record, &reason);
                if until_done(&parts.retry, shutdown, "dead letter", count_error, send).await.is_none() {
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
    let Some(verified) = until_done(&parts.retry, shutdown, "verify", count_retry, verify).await else {
        return;
    };
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
        let publish = || parts.publisher.publish(&jobs);
        if until_done(&parts.retry, shutdown, "check job publish", count_error, publish).await.is_none() {
            return;
        }
        metrics::counter!(m::CHECK_JOBS).increment(jobs.len() as u64);
    }
    for ack in acks {
        ack.ack();
    }
}

/// Runs `op` until it succeeds (`Some`) or shutdown is requested (`None`: the batch then
/// stays unacknowledged and is redelivered). Attempts are paced by the service's retry
/// policy, its delay schedule started over when used up: a sample is never given up on.
async fn until_done<T, E, F, Fut>(
    policy: &RetryPolicy,
    shutdown: &watch::Receiver<bool>,
    what: &str,
    count_failure: fn(),
    mut op: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delays = policy.delays();
    loop {
        let error = match op().await {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        count_failure();
        let delay = match delays.next() {
            Some(d) => d,
            None => {
                delays = policy.delays();
                policy.max_delay
            }
        };
        tracing::warn!(%error, what, retry_in_ms = delay.as_millis() as u64, "price verifier step failed, retrying");
        if *shutdown.borrow() {
            return None;
        }
        tokio::time::sleep(delay).await;
    }
}

fn count_error() {
    metrics::counter!(ERRORS, "component" => "verifier").increment(1);
}

fn count_retry() {
    metrics::counter!(m::BATCH_RETRIES).increment(1);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts: 3,
            give_up_after: None,
            jitter: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_past_the_policy_bound_until_it_works() {
        let (_tx, rx) = watch::channel(false);
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let got = until_done(
            &policy(),
            &rx,
            "t",
            || {},
            || {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                async move {
                    if n < 5 {
                        Err("down")
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(got, Some(5), "never given up on: six attempts with a policy of three");
        // 100 + 200 ms, then the schedule again: (1 s when used up) + 100 + 200 ms, ...
        assert!(started.elapsed() >= Duration::from_millis(1300), "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_only_on_shutdown() {
        let (tx, rx) = watch::channel(false);
        tx.send(true).unwrap();
        let got: Option<()> = until_done(&policy(), &rx, "t", || {}, || async { Err("down") }).await;
        assert_eq!(got, None, "the batch stays unacknowledged");
    }
}
