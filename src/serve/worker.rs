//! Handler workers: take jobs off the bus, hold each until its not-before time, gather
//! due jobs into micro-batches, check and repair them, and only then acknowledge them.
//!
//! Intake never blocks on handling (it keeps calling the consumer, so a Kafka consumer
//! is never thrown out of its group for slow handling). A store that is down (MySQL, or
//! any target) is retried with backoff and the batch's jobs stay unacknowledged until
//! every target was checked, so nothing is lost; while one target is down, the backlog
//! waits (lag and `reconciler_unreachable_total` say so) and drains when it is back. On shutdown, jobs not yet handled are left unacknowledged (Kafka redelivers).

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use common::clock::now_ms;
use handlers::{Handler, Mode, RunState};
use model::job::TriggerKind;
use model::GoodsId;
use tokio::sync::{mpsc, watch, Mutex};
use triggers::{Delivery, JobConsumer};

use super::telemetry::{CHANGE_TO_REPAIR, ERRORS, JOBS, JOBS_WAITING, JOB_LAG};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub workers: usize,
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Jobs held for their not-before time at most; past it intake pauses (the Kafka
    /// consumer then pauses its partitions) until some fall due. Bounds memory.
    pub max_waiting: usize,
}

/// A delivery waiting for its not-before time; ordered soonest first.
struct Waiting {
    due_ms: i64,
    seq: u64,
    delivery: Delivery,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.due_ms, self.seq) == (other.due_ms, other.seq)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due_ms, other.seq).cmp(&(self.due_ms, self.seq))
    }
}

/// Runs intake and `settings.workers` batch workers until `shutdown` turns true or the
/// bus closes; returns the consumer so the caller can commit and close it.
pub async fn run<C: JobConsumer + 'static>(
    handler: Arc<Handler>,
    mut consumer: C,
    settings: WorkerSettings,
    shutdown: watch::Receiver<bool>,
) -> C {
    let (ready_tx, ready_rx) = mpsc::channel::<Delivery>(settings.batch_size.max(1) * settings.workers.max(1));
    let ready_rx = Arc::new(Mutex::new(ready_rx));
    let mut workers = Vec::new();
    for _ in 0..settings.workers.max(1) {
        let (handler, rx, settings, shutdown) = (handler.clone(), ready_rx.clone(), settings.clone(), shutdown.clone());
        workers.push(tokio::spawn(async move { worker(handler, rx, settings, shutdown).await }));
    }

    let mut shutdown_rx = shutdown.clone();
    let mut waiting: BinaryHeap<Waiting> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        metrics::gauge!(JOBS_WAITING).set(waiting.len() as f64);
        let next_due = waiting.peek().map(|w| w.due_ms);
        let sleep_for =
            next_due.map(|d| Duration::from_millis((d - now_ms()).max(0) as u64)).unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = shutdown_rx.changed() => break,
            _ = tokio::time::sleep(sleep_for), if next_due.is_some() => {
                while waiting.peek().is_some_and(|w| w.due_ms <= now_ms()) {
                    let w = waiting.pop().unwrap();
                    if ready_tx.send(w.delivery).await.is_err() {
                        break;
                    }
                }
            }
            next = consumer.next(), if waiting.len() < settings.max_waiting => match next {
                Ok(Some(d)) => {
                    backoff = Duration::from_millis(100);
                    if d.job.not_before_ms > now_ms() {
                        seq += 1;
                        waiting.push(Waiting { due_ms: d.job.not_before_ms, seq, delivery: d });
                    } else if ready_tx.send(d).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    metrics::counter!(ERRORS, "component" => "bus").increment(1);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "job bus error, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
    // Waiting jobs stay unacknowledged: Kafka redelivers them after the restart.
    drop(waiting);
    drop(ready_tx);
    for w in workers {
        let _ = w.await;
    }
    consumer
}

async fn worker(
    handler: Arc<Handler>,
    rx: Arc<Mutex<mpsc::Receiver<Delivery>>>,
    settings: WorkerSettings,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + settings.batch_wait;
            while batch.len() < settings.batch_size {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(d)) => batch.push(d),
                    _ => break,
                }
            }
            batch
        };
        handle_batch(&handler, batch, &shutdown).await;
    }
}

/// Checks and repairs one micro-batch, per trigger, retrying store failures with
/// backoff; acknowledges the jobs once their work is done.
pub async fn handle_batch(handler: &Handler, batch: Vec<Delivery>, shutdown: &watch::Receiver<bool>) {
    let mut by_trigger: std::collections::BTreeMap<&'static str, (TriggerKind, Vec<Delivery>)> = Default::default();
    for d in batch {
        by_trigger.entry(d.job.trigger.as_str()).or_insert_with(|| (d.job.trigger, Vec::new())).1.push(d);
    }
    for (_, (trigger, deliveries)) in by_trigger {
        let ids: Vec<GoodsId> =
            deliveries.iter().map(|d| d.job.goods_id).collect::<BTreeSet<_>>().into_iter().collect();
        let mode = Mode::repair(trigger, format!("serve-{}", trigger.as_str()));
        let mut backoff = Duration::from_millis(200);
        loop {
            match handler.process(&ids, &mode, &RunState::default()).await {
                // A target that could not be reached was not checked: keep the jobs and
                // try again (repairs are idempotent), so nothing is lost while it is down.
                Ok(report) if !report.unreachable.is_empty() => {
                    tracing::warn!(targets = ?report.unreachable, goods = ids.len(), retry_in_ms = backoff.as_millis() as u64, "targets unreachable, batch kept for retry");
                    if *shutdown.borrow() {
                        tracing::info!(goods = ids.len(), "shutting down with a batch unacknowledged");
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Ok(_) => {
                    let now = now_ms();
                    for d in deliveries {
                        metrics::counter!(JOBS, "trigger" => trigger.as_str(), "outcome" => "done").increment(1);
                        metrics::gauge!(JOB_LAG).set((now - d.job.not_before_ms).max(0) as f64);
                        if d.job.origin_ms > 0 {
                            metrics::histogram!(CHANGE_TO_REPAIR, "trigger" => trigger.as_str())
                                .record((now - d.job.origin_ms).max(0) as f64);
                        }
                        d.ack.ack();
                    }
                    break;
                }
                Err(e) => {
                    metrics::counter!(ERRORS, "component" => "handler").increment(1);
                    tracing::warn!(error = %e, goods = ids.len(), retry_in_ms = backoff.as_millis() as u64, "batch failed, retrying");
                    if *shutdown.borrow() {
                        tracing::info!(goods = ids.len(), "shutting down with a failed batch unacknowledged");
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}
