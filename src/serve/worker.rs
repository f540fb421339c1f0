//! Handler workers: take jobs off the bus, hold each until its not-before time, gather
//! due jobs into micro-batches, check and repair them, and only then let them go.
//!
//! Every job leaves in one of four ways, never silently:
//! - **done**: checked on every target, its repairs finished: acknowledged;
//! - **re-checked**: its repair was deferred (settle window, compare-and-set conflict, a
//!   write that did not land) or its goods could not be checked: a later copy
//!   (`rechecks + 1`, due after a backoff from `repair.settle_ms` doubling up to
//!   `handler.max_recheck_delay_ms`) goes on the bus, then the job is acknowledged; past
//!   `handler.max_rechecks` re-checks it is dead-lettered;
//! - **halted**: the blast-radius breaker stopped repairs on a target its goods drifted
//!   on: a later copy goes on the bus every `handler.halted_recheck_ms` until the breaker
//!   closes or an operator resets it (these do not count as re-checks);
//! - **dead-lettered** (with the reason in `dlq.reason`): a store failure that outlasted
//!   the retry policy (`[retry]`, one policy for the service), a permanent failure (the
//!   batch is retried goods by goods first, so only the poison goods goes), a handler
//!   panic, or a `not_before_ms` beyond the horizon (the largest DTS stage plus
//!   `handler.not_before_margin_ms`: a timestamp in micro- or nanoseconds).
//!
//! The consumer is driven by a task of its own (its `next` is cancel-safe), so intake
//! never drops a message and never blocks on handling. Workers are supervised: one that
//! dies is restarted, and `/healthz` is not ready meanwhile. On shutdown, jobs not yet
//! handled are left unacknowledged (Kafka redelivers them; the embedded bus loses them,
//! see its docs). Audit rows left pending are resolved at start and every minute.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use common::clock::Clock;
use common::RetryPolicy;
use futures::FutureExt;
use handlers::{Handler, Mode};
use model::config::Config;
use model::job::{Job, TriggerKind};
use model::report::Report;
use model::GoodsId;
use tokio::sync::{mpsc, watch, Mutex};
use triggers::bus::Reroute;
use triggers::{Delivery, JobConsumer};

use super::health::Health;
use super::telemetry::{CHANGE_TO_REPAIR, ERRORS, JOBS, JOBS_WAITING, JOB_LAG, WORKER_RESTARTS};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub workers: usize,
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Jobs held for their not-before time at most; past it intake pauses (the Kafka
    /// consumer then pauses its partitions) until some fall due. Bounds memory.
    pub max_waiting: usize,
    /// How a batch whose store failed is retried before its jobs are dead-lettered.
    pub retry: RetryPolicy,
    /// Re-checks of one job before it is dead-lettered.
    pub max_rechecks: u32,
    /// Longest delay between two re-checks of one job.
    pub max_recheck_delay: Duration,
    /// A job due further than this in the future is dead-lettered.
    pub horizon_ms: i64,
    /// First delay of a re-check (doubles per re-check, at most `max_recheck_delay`).
    pub recheck: Duration,
    /// Delay of the re-check of a job whose repair the breaker halted.
    pub halted_recheck: Duration,
    pub clock: Arc<dyn Clock>,
    /// Where checked batches are counted for time-to-consistency (`None`: not counted).
    pub consistency: Option<Arc<super::consistency::ConsistencyBook>>,
    /// This instance's name in the run ledger (which instance handled which job).
    pub instance: String,
}

impl WorkerSettings {
    pub fn from_config(config: &Config) -> WorkerSettings {
        let largest_stage = config
            .triggers
            .dts
            .iter()
            .flat_map(|d| d.stages_ms.iter().copied())
            .chain(model::config::DtsConfig::default_stages())
            .chain(config.key_activities.stages_ms.iter().copied())
            .max()
            .unwrap_or(0);
        WorkerSettings {
            workers: config.handler.workers,
            batch_size: config.handler.batch_size,
            batch_wait: Duration::from_millis(config.handler.batch_wait_ms),
            max_waiting: 200_000,
            retry: RetryPolicy::from_config(&config.retry),
            max_rechecks: config.handler.max_rechecks,
            max_recheck_delay: Duration::from_millis(config.handler.max_recheck_delay_ms),
            horizon_ms: largest_stage.saturating_add(config.handler.not_before_margin_ms).min(i64::MAX as u64) as i64,
            recheck: Duration::from_millis(config.repair.settle_ms.max(1000)),
            halted_recheck: Duration::from_millis(config.handler.halted_recheck_ms.max(1)),
            clock: common::clock::system(),
            consistency: None,
            instance: instance_name(config),
        }
    }
}

/// `kafka.instance_id`, or host and process id.
pub fn instance_name(config: &Config) -> String {
    config.kafka.instance_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
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

/// Resolves once shutdown is requested (or the sender is gone).
async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// What the workers share.
pub(super) struct Ctx {
    pub(super) handler: Arc<Handler>,
    reroute: Arc<dyn Reroute>,
    pub(super) settings: WorkerSettings,
    shutdown: watch::Receiver<bool>,
    /// The run ledger, where batch jobs of distributed full runs count their outcome.
    pub(super) ledger: common::mysql::ledger::Ledger,
    /// Batch jobs being checked by this instance now.
    pub(super) running: super::batch::Running,
}

impl Ctx {
    fn now(&self) -> i64 {
        self.settings.clock.now_ms()
    }

    pub(super) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps `d`, or less when shutdown is requested; false when shutting down.
    pub(super) async fn pause(&self, d: Duration) -> bool {
        let mut rx = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopping(),
            _ = until_stopped(&mut rx) => false,
        }
    }
}

/// Runs intake and `settings.workers` supervised batch workers until `shutdown` turns
/// true or the bus closes; returns the consumer so the caller can commit and close it.
pub async fn run<C: JobConsumer + 'static>(
    handler: Arc<Handler>,
    consumer: C,
    settings: WorkerSettings,
    shutdown: watch::Receiver<bool>,
    health: Arc<Health>,
) -> C {
    health.watch_consumer(consumer.heartbeat());
    let ledger = common::mysql::ledger::Ledger::new(handler.truth().pools());
    let ctx = Arc::new(Ctx {
        handler: handler.clone(),
        reroute: consumer.reroute(),
        settings,
        shutdown,
        ledger,
        running: Default::default(),
    });
    let pending = tokio::spawn(resolve_pending_every_minute(ctx.clone()));

    let (ready_tx, ready_rx) = mpsc::channel::<Delivery>(ctx.settings.batch_size.max(1) * ctx.settings.workers.max(1));
    let ready_rx = Arc::new(Mutex::new(ready_rx));
    let make_worker = {
        let ctx = ctx.clone();
        move || worker(ctx.clone(), ready_rx.clone())
    };
    let supervisor = tokio::spawn(supervise(
        ctx.settings.workers.max(1),
        health,
        ctx.shutdown.clone(),
        Duration::from_secs(1),
        make_worker,
    ));
    let (intake_tx, mut intake_rx) = mpsc::channel::<Delivery>(64);
    let receiver = tokio::spawn(receive(consumer, intake_tx, ctx.shutdown.clone()));

    let mut shutdown_rx = ctx.shutdown.clone();
    let mut waiting: BinaryHeap<Waiting> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        metrics::gauge!(JOBS_WAITING).set(waiting.len() as f64);
        let next_due = waiting.peek().map(|w| w.due_ms);
        let sleep_for = next_due
            .map(|d| Duration::from_millis(d.saturating_sub(ctx.now()).max(0) as u64))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = until_stopped(&mut shutdown_rx) => break,
            _ = tokio::time::sleep(sleep_for), if next_due.is_some() => {
                while waiting.peek().is_some_and(|w| w.due_ms <= ctx.now()) {
                    let w = waiting.pop().expect("peeked");
                    if ready_tx.send(w.delivery).await.is_err() {
                        break;
                    }
                }
            }
            next = intake_rx.recv(), if waiting.len() < ctx.settings.max_waiting => {
                let Some(d) = next else { break };
                let now = ctx.now();
                let due = d.job.not_before_ms;
                if due.saturating_sub(now) > ctx.settings.horizon_ms {
                    let reason = format!(
                        "not_before_ms {due} is {} ms in the future, beyond the horizon of {} ms (largest stage plus handler.not_before_margin_ms): a timestamp in micro- or nanoseconds?",
                        due.saturating_sub(now),
                        ctx.settings.horizon_ms
                    );
                    let ctx = ctx.clone();
                    tokio::spawn(async move { dead_letter(&ctx, vec![d], &reason).await });
                } else if due > now {
                    seq += 1;
                    waiting.push(Waiting { due_ms: due, seq, delivery: d });
                } else if ready_tx.send(d).await.is_err() {
                    break;
                }
            }
        }
    }
    // Waiting jobs stay unacknowledged: Kafka redelivers them after the restart.
    drop(waiting);
    drop(ready_tx);
    drop(intake_rx);
    let _ = supervisor.await;
    pending.abort();
    receiver.await.expect("the job receiver never panics")
}

/// Drives the consumer: its `next` is cancel-safe, so stopping it on shutdown loses
/// nothing; a bus error is logged and retried with backoff.
async fn receive<C: JobConsumer>(
    mut consumer: C,
    tx: mpsc::Sender<Delivery>,
    mut shutdown: watch::Receiver<bool>,
) -> C {
    let mut backoff = Duration::from_millis(100);
    loop {
        let next = tokio::select! {
            _ = until_stopped(&mut shutdown) => break,
            next = consumer.next() => next,
        };
        match next {
            Ok(Some(d)) => {
                backoff = Duration::from_millis(100);
                if tx.send(d).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                metrics::counter!(ERRORS, "component" => "bus").increment(1);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "job bus error, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = until_stopped(&mut shutdown) => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    consumer
}

/// Keeps `workers` workers running until they end on their own (the bus closed): one
/// that dies (a panic outside a batch; panics inside one are caught per batch) is
/// restarted after `restart_delay`, and `/healthz` is not ready meanwhile.
async fn supervise<F, Fut>(
    workers: usize,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
    restart_delay: Duration,
    make_worker: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        health.worker_started();
        set.spawn(make_worker());
    }
    while let Some(result) = set.join_next().await {
        health.worker_stopped();
        let Err(e) = result else { continue };
        if *shutdown.borrow() {
            continue;
        }
        metrics::counter!(WORKER_RESTARTS).increment(1);
        tracing::error!(error = %e, "handler worker died; restarting it");
        health.worker_restarted();
        tokio::time::sleep(restart_delay).await;
        health.worker_started();
        set.spawn(make_worker());
    }
}

async fn worker(ctx: Arc<Ctx>, rx: Arc<Mutex<mpsc::Receiver<Delivery>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            // A batch job (a piece of a full run) is a batch already: no gathering.
            let mut gather = first.job.batch.is_none();
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + ctx.settings.batch_wait;
            while gather && batch.len() < ctx.settings.batch_size {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(d)) => {
                        gather = d.job.batch.is_none();
                        batch.push(d);
                    }
                    _ => break,
                }
            }
            batch
        };
        let (batch_jobs, batch): (Vec<Delivery>, Vec<Delivery>) =
            batch.into_iter().partition(|d| d.job.batch.is_some());
        for d in batch_jobs {
            super::batch::handle(&ctx, d).await;
        }
        let mut by_trigger: BTreeMap<&'static str, (TriggerKind, Vec<Delivery>)> = BTreeMap::new();
        for d in batch {
            by_trigger.entry(d.job.trigger.as_str()).or_insert_with(|| (d.job.trigger, Vec::new())).1.push(d);
        }
        for (_, (trigger, deliveries)) in by_trigger {
            handle(&ctx, trigger, deliveries).await;
        }
    }
}

enum Failure {
    Transient(String),
    Permanent(String),
}

/// Checks and repairs the goods of `deliveries` (one trigger), retrying store failures
/// under the retry policy; then settles every delivery (see the module).
fn handle<'a>(ctx: &'a Ctx, trigger: TriggerKind, deliveries: Vec<Delivery>) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        let ids: Vec<GoodsId> =
            deliveries.iter().map(|d| d.job.goods_id).collect::<BTreeSet<_>>().into_iter().collect();
        let mode = Mode::repair(trigger, format!("serve-{}", trigger.as_str()));
        let mut delays = ctx.settings.retry.delays();
        let (mut attempt, started) = (1u32, tokio::time::Instant::now());
        loop {
            let run = ctx.handler.process(&ids, &mode, ctx.handler.breaker());
            let failure = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(Ok(report)) if report.unreachable.is_empty() => return settle(ctx, deliveries, report).await,
                Ok(Ok(report)) => Failure::Transient(format!("targets unreachable: {}", report.unreachable.join(", "))),
                Ok(Err(e)) if e.is_retryable() => Failure::Transient(e.to_string()),
                Ok(Err(e)) => Failure::Permanent(e.to_string()),
                Err(panic) => Failure::Permanent(format!("handler panicked: {}", panic_message(&panic))),
            };
            metrics::counter!(ERRORS, "component" => "handler").increment(1);
            match failure {
                Failure::Transient(why) => match delays.next() {
                    Some(delay) => {
                        tracing::warn!(goods = ids.len(), attempt, error = %why, retry_in_ms = delay.as_millis() as u64, "batch failed, retrying");
                        if !ctx.pause(delay).await {
                            tracing::info!(goods = ids.len(), "shutting down with a batch unacknowledged");
                            return;
                        }
                        attempt += 1;
                    }
                    None => {
                        let secs = started.elapsed().as_secs();
                        let reason =
                            format!("gave up after {attempt} attempts in {secs} s (the [retry] policy): {why}");
                        return dead_letter(ctx, deliveries, &reason).await;
                    }
                },
                Failure::Permanent(why) if ids.len() > 1 => {
                    // Find the poison: every goods on its own, so the others go through.
                    tracing::warn!(goods = ids.len(), error = %why, "batch failed permanently, retrying goods by goods");
                    let mut by_goods: BTreeMap<GoodsId, Vec<Delivery>> = BTreeMap::new();
                    for d in deliveries {
                        by_goods.entry(d.job.goods_id).or_default().push(d);
                    }
                    for (_, ds) in by_goods {
                        handle(ctx, trigger, ds).await;
                    }
                    return;
                }
                Failure::Permanent(why) => return dead_letter(ctx, deliveries, &why).await,
            }
        }
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Where each delivery of a checked batch goes: done, re-checked or halted.
async fn settle(ctx: &Ctx, deliveries: Vec<Delivery>, report: Report) {
    if let Some(book) = &ctx.settings.consistency {
        book.record(deliveries.iter().map(|d| &d.job), &report);
    }
    let now = ctx.now();
    let mut recheck: HashMap<GoodsId, String> = HashMap::new();
    for e in &report.errors {
        recheck.entry(e.goods_id).or_insert_with(|| format!("could not be checked: {}", e.reason));
    }
    for d in &report.deferred {
        recheck.entry(d.goods_id).or_insert_with(|| format!("repair deferred on {}: {}", d.target, d.reason));
    }
    // Goods with drift no repair covered: with the breaker open, they wait for it.
    let mut halted: HashSet<GoodsId> = HashSet::new();
    if report.halted.is_some() {
        let repaired: HashSet<(GoodsId, &str)> =
            report.repairs.iter().map(|r| (r.goods_id, r.target.as_str())).collect();
        halted.extend(
            report.drift.iter().filter(|d| !repaired.contains(&(d.goods_id, d.target.as_str()))).map(|d| d.goods_id),
        );
    }
    for d in deliveries {
        let g = d.job.goods_id;
        let trigger = d.job.trigger.as_str();
        if let Some(why) = recheck.get(&g) {
            if d.job.rechecks >= ctx.settings.max_rechecks {
                let reason = format!("re-checked {} times, still not settled: {why}", d.job.rechecks);
                dead_letter(ctx, vec![d], &reason).await;
                continue;
            }
            let delay = recheck_delay(&ctx.settings, d.job.rechecks);
            let later = later_copy(&d.job, now, delay, d.job.rechecks + 1);
            tracing::debug!(goods_id = g, rechecks = later.rechecks, reason = %why, "job re-checked later");
            if reroute(ctx, d, later, "rechecked").await {
                metrics::counter!(JOBS, "trigger" => trigger, "outcome" => "rechecked").increment(1);
            }
        } else if halted.contains(&g) {
            let later = later_copy(&d.job, now, ctx.settings.halted_recheck, d.job.rechecks);
            if reroute(ctx, d, later, "halted").await {
                metrics::counter!(JOBS, "trigger" => trigger, "outcome" => "halted").increment(1);
            }
        } else {
            metrics::counter!(JOBS, "trigger" => trigger, "outcome" => "done").increment(1);
            metrics::gauge!(JOB_LAG).set(now.saturating_sub(d.job.not_before_ms).max(0) as f64);
            if d.job.origin_ms > 0 {
                metrics::histogram!(CHANGE_TO_REPAIR, "trigger" => trigger)
                    .record(now.saturating_sub(d.job.origin_ms).max(0) as f64);
            }
            d.ack.ack();
        }
    }
}

/// How long after its `rechecks`-th re-check a job is checked again: from the settle
/// window, doubling, at most `max_recheck_delay` (not the retry policy's cap, which is
/// short on purpose: a deferred repair waits for the sync pipeline, not for a store).
fn recheck_delay(settings: &WorkerSettings, rechecks: u32) -> Duration {
    settings.recheck.saturating_mul(1u32 << rechecks.min(16)).min(settings.max_recheck_delay.max(settings.recheck))
}

/// The same check, due `delay` from now.
fn later_copy(job: &Job, now: i64, delay: Duration, rechecks: u32) -> Job {
    let base = job.job_id.split("~r").next().unwrap_or(&job.job_id);
    let mut later = job.clone();
    later.job_id = format!("{base}~r{rechecks}-{now}");
    later.rechecks = rechecks;
    later.not_before_ms = now.saturating_add(delay.as_millis().min(i64::MAX as u128) as i64);
    later
}

/// Puts `later` on the bus in place of `d`, retrying until it is accepted (or shutdown:
/// `d` then stays unacknowledged). True when done.
async fn reroute(ctx: &Ctx, mut d: Delivery, later: Job, what: &str) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match ctx.reroute.recheck(d, later.clone()).await {
            Ok(()) => return true,
            Err((back, e)) => {
                metrics::counter!(ERRORS, "component" => "bus").increment(1);
                tracing::warn!(error = %e, what, "re-check not published, retrying");
                d = back;
            }
        }
        if !ctx.pause(backoff).await {
            return false;
        }
        backoff = (backoff * 2).min(ctx.settings.retry.max_delay);
    }
}

/// Dead-letters every delivery with `reason`, retrying until each is accepted (or
/// shutdown: they then stay unacknowledged).
pub(super) async fn dead_letter(ctx: &Ctx, deliveries: Vec<Delivery>, reason: &str) {
    for mut d in deliveries {
        let trigger = d.job.trigger.as_str();
        let mut backoff = Duration::from_millis(100);
        tracing::warn!(goods_id = d.job.goods_id, job_id = %d.job.job_id, reason, "dead-lettering job");
        loop {
            match ctx.reroute.dead_letter(d, reason).await {
                Ok(()) => {
                    metrics::counter!(JOBS, "trigger" => trigger, "outcome" => "dead_lettered").increment(1);
                    break;
                }
                Err((back, e)) => {
                    metrics::counter!(ERRORS, "component" => "bus").increment(1);
                    tracing::warn!(error = %e, "dead letter not published, retrying");
                    d = back;
                }
            }
            if !ctx.pause(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(ctx.settings.retry.max_delay);
        }
    }
}

/// Audit rows left pending (a crash, an outage mid-write) are resolved at start and
/// then every minute.
async fn resolve_pending_every_minute(ctx: Arc<Ctx>) {
    loop {
        if let Err(e) = ctx.handler.resolve_pending(handlers::audit::PENDING_MIN_AGE_MS).await {
            tracing::warn!(error = %e, "pending audit rows not resolved, trying again in a minute");
        }
        if !ctx.pause(Duration::from_secs(60)).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_dead_worker_is_restarted_and_healthz_says_so_meanwhile() {
        let health = Arc::new(Health::new(2, 60_000, common::clock::system()));
        let (stop, shutdown) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let make = {
            let (starts, shutdown) = (starts.clone(), shutdown.clone());
            move || {
                let n = starts.fetch_add(1, Ordering::SeqCst);
                let mut shutdown = shutdown.clone();
                async move {
                    if n == 0 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        panic!("a worker dies");
                    }
                    until_stopped(&mut shutdown).await;
                }
            }
        };
        let supervisor = tokio::spawn(supervise(2, health.clone(), shutdown, Duration::from_secs(1), make));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = health.readiness();
        assert_eq!((r.workers_alive, r.status), (1, "not ready"), "{r:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = health.readiness();
        assert_eq!((r.workers_alive, r.worker_restarts, r.status), (2, 1, "ok"), "{r:?}");
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        stop.send(true).unwrap();
        supervisor.await.unwrap();
        assert_eq!(health.readiness().workers_alive, 0);
    }

    #[test]
    fn rechecks_back_off_to_their_own_cap_not_the_retry_policys() {
        let text = include_str!("../../config/reconciler.toml");
        let config = Config::parse(text, "config/reconciler.toml", &|_| None).unwrap();
        let settings = WorkerSettings::from_config(&config);
        assert_eq!(settings.retry.max_delay, Duration::from_secs(1));
        let delays: Vec<u64> = (0..8).map(|n| recheck_delay(&settings, n).as_secs()).collect();
        assert_eq!(delays, [3, 6, 12, 24, 30, 30, 30, 30], "from repair.settle_ms (3 s)");
        // Twelve re-checks span about five minutes before a job is dead-lettered.
        let total: u64 = (0..settings.max_rechecks).map(|n| recheck_delay(&settings, n).as_secs()).sum();
        assert_eq!((settings.max_rechecks, total), (12, 285));
    }

    #[test]
    fn later_copies_keep_their_id_short_and_never_overflow() {
        let mut job = Job::new(7, TriggerKind::Dts, "dts-7-0-100".into());
        job.not_before_ms = 100;
        let once = later_copy(&job, i64::MAX - 5, Duration::from_secs(60), 1);
        assert_eq!(once.not_before_ms, i64::MAX, "saturates");
        let twice = later_copy(&once, 1000, Duration::from_secs(2), 2);
        assert_eq!(twice.job_id, "dts-7-0-100~r2-1000");
        assert_eq!((twice.rechecks, twice.not_before_ms, twice.stage), (2, 3000, 0));
    }
}
