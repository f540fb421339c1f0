//! Runs: a list of goods, every goods of an activity, or the full universe (keyset over
//! every shard, or any other id source such as a Parquet dump) followed by an orphan scan
//! of every target. Batches flow through a bounded channel to a fixed number of
//! concurrent workers, so memory stays flat whatever the number of goods.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::mysql::pager::ActivityGoodsPager;
use model::report::{Entries, Report};
use model::{ActivityId, GoodsId};
use roaring::RoaringTreemap;
use tokio::sync::mpsc;

mod coalesce;

pub use coalesce::{Coalescer, RepairRound};

use crate::breaker::Breaker;
use crate::error::StoreError;
use crate::handler::{Handler, Mode};
use crate::limit::RateLimiter;
use crate::stores::Target;

/// A batch of goods from an id source, or why the source failed.
pub type IdBatch = Result<Batch, String>;

/// Goods to check: a list of ids, which the MySQL keyset source also knows as the range
/// of one shard they span (truth is then read by range: one query per table, no `IN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub ids: Vec<GoodsId>,
    /// `(shard, lo, hi)`: `ids` are every goods of shard `shard` with a goods row in
    /// `lo..=hi` (as of the page read).
    pub range: Option<(u32, GoodsId, GoodsId)>,
}

impl From<Vec<GoodsId>> for Batch {
    fn from(ids: Vec<GoodsId>) -> Batch {
        Batch { ids, range: None }
    }
}

/// Running totals, handed to the progress callback after each batch.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub phase: &'static str,
    pub checked: u64,
    pub drifted: u64,
    pub repaired: u64,
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Where a run's drift, repair, deferral, unknown-goods and error entries go as its
/// batches finish, instead of accumulating in the run's report (which then keeps only
/// counters): a full run's memory stays flat whatever the drift.
pub trait EntrySink: Send + Sync {
    fn accept(&self, entries: Entries);
}

/// Keeps no entry: the run's report counts them (scheduled runs, whose figures go to
/// the log and metrics).
pub struct CountOnly;

impl EntrySink for CountOnly {
    fn accept(&self, _: Entries) {}
}

#[derive(Clone, Default)]
pub struct RunOptions {
    pub batch_size: usize,
    pub concurrency: usize,
    /// Goods per second fed to the workers (0: unlimited).
    pub goods_per_sec: u32,
    pub progress: Option<ProgressFn>,
    /// Streams entries out batch by batch; `None`: the report holds them all.
    pub entries: Option<Arc<dyn EntrySink>>,
    /// The blast-radius breaker the run is judged by; `None`: a fresh one for the run.
    pub breaker: Option<Arc<Breaker>>,
    /// When the repairs the run's batches planned are applied (several batches' in one
    /// round).
    pub repair_round: RepairRound,
}

impl RunOptions {
    fn breaker(&self, handler: &Handler) -> Arc<Breaker> {
        self.breaker.clone().unwrap_or_else(|| Arc::new(handler.run_breaker()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("activity {0} does not exist in act_meta.activity and no goods rows reference it")]
    UnknownActivity(ActivityId),
    #[error("goods id source failed: {0}")]
    Source(String),
}

/// Checks / repairs the given goods.
pub async fn run_goods(
    handler: &Arc<Handler>,
    ids: &[GoodsId],
    mode: &Mode,
    opts: &RunOptions,
) -> Result<Report, RunError> {
    let (tx, rx) = mpsc::channel(opts.concurrency.max(1));
    let batches: Vec<Vec<GoodsId>> = ids.chunks(opts.batch_size.max(1)).map(<[_]>::to_vec).collect();
    tokio::spawn(async move {
        for b in batches {
            if tx.send(Ok(b.into())).await.is_err() {
                break;
            }
        }
    });
    let run = opts.breaker(handler);
    drive(handler, rx, mode, opts, &run, "goods", None).await
}

/// Checks / repairs every goods that carries the activity (any row status, so goods
/// whose row was just removed are cleaned too).
pub async fn run_activity(
    handler: &Arc<Handler>,
    activity: ActivityId,
    mode: &Mode,
    opts: &RunOptions,
) -> Result<Report, RunError> {
    let exists = handler.truth().activity_exists(activity).await?;
    let found = Arc::new(AtomicU64::new(0));
    let counter = found.clone();
    let (tx, rx) = mpsc::channel(opts.concurrency.max(1));
    let mut pager = ActivityGoodsPager::new(handler.truth().pools(), activity, opts.batch_size.max(1) as u32);
    tokio::spawn(async move {
        loop {
            let page = match pager.next_page().await {
                Ok(Some(page)) => page,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(StoreError::mysql(e).to_string())).await;
                    return;
                }
            };
            counter.fetch_add(page.len() as u64, Ordering::Relaxed);
            if tx.send(Ok(page.into())).await.is_err() {
                return;
            }
        }
    });
    let run = opts.breaker(handler);
    let report = drive(handler, rx, mode, opts, &run, "activity", None).await?;
    if !exists && found.load(Ordering::Relaxed) == 0 {
        return Err(RunError::UnknownActivity(activity));
    }
    Ok(report)
}

/// Spawns the keyset walk over every shard: distinct goods ids, ascending per shard
/// (goods id 0 included), one shard per batch (so each batch costs one query per table),
/// streamed through a channel a few batches deep.
pub fn mysql_id_source(handler: &Arc<Handler>, batch_size: usize) -> mpsc::Receiver<IdBatch> {
    let (tx, rx) = mpsc::channel(4);
    let truth = handler.truth().clone();
    let limit = batch_size.max(1) as u32;
    tokio::spawn(async move {
        for shard in 0..truth.layout().total_shards() {
            let mut after = None;
            loop {
                match truth.goods_page(shard, after, limit).await {
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string())).await;
                        return;
                    }
                    Ok(ids) if ids.is_empty() => break,
                    Ok(ids) => {
                        let lo = after.map_or(0, |a| a + 1);
                        after = ids.last().copied();
                        let range = Some((shard, lo, *ids.last().expect("not empty")));
                        if tx.send(Ok(Batch { ids, range })).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    rx
}

/// Full reconciliation: every goods from `source`, then an orphan scan of every target
/// for goods the source did not name.
pub async fn run_full(
    handler: &Arc<Handler>,
    source: mpsc::Receiver<IdBatch>,
    mode: &Mode,
    opts: &RunOptions,
) -> Result<Report, RunError> {
    let run = opts.breaker(handler);
    let seen = Arc::new(std::sync::Mutex::new(RoaringTreemap::new()));
    let mut report = drive(handler, source, mode, opts, &run, "full", Some(seen.clone())).await?;

    // The orphan scan: every target's pages at once into one drive. A target's scan is a
    // chain of round trips; one target after another left the cores idle for most of it.
    let (tx, rx) = mpsc::channel(opts.concurrency.max(1));
    let scans: Vec<_> = handler
        .targets()
        .iter()
        .map(|target| tokio::spawn(scan_target(target.clone(), seen.clone(), tx.clone(), opts.batch_size.max(1))))
        .collect();
    drop(tx);
    report.merge(drive(handler, rx, mode, opts, &run, "orphan-scan", None).await?);
    for (target, scan) in handler.targets().iter().zip(scans) {
        match scan.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(target = target.name(), error = %e, "orphan scan failed");
                if !report.unreachable.contains(&target.name().to_string()) {
                    report.unreachable.push(target.name().to_string());
                }
            }
            Err(e) => return Err(RunError::Source(format!("orphan scan task failed: {e}"))),
        }
    }
    report.sort();
    Ok(report)
}

/// Pages through `target`, sending the goods no earlier batch named (marked seen) in
/// batches of about `limit`.
async fn scan_target(
    target: Arc<dyn Target>,
    seen: Arc<std::sync::Mutex<RoaringTreemap>>,
    tx: mpsc::Sender<IdBatch>,
    limit: usize,
) -> Result<(), StoreError> {
    let mut cursor = None;
    let mut foreign = 0u64;
    let mut pending = Vec::new();
    loop {
        let page = target.scan(cursor.take(), limit).await?;
        foreign += page.foreign.len() as u64;
        {
            let mut seen = seen.lock().unwrap();
            pending.extend(page.goods.into_iter().filter(|g| seen.insert(*g)));
        }
        if pending.len() >= limit || page.next.is_none() {
            let batch = std::mem::take(&mut pending);
            if !batch.is_empty() && tx.send(Ok(batch.into())).await.is_err() {
                break;
            }
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    if foreign > 0 {
        tracing::warn!(
            target = target.name(),
            keys = foreign,
            "orphan scan found keys not of the contract's shape, left untouched"
        );
    }
    Ok(())
}

/// A finished part of a run (one batch, or a repair round with the batches it served):
/// counted, its entries streamed, merged into the worker's report.
fn account(
    mut part: Report,
    report: &mut Report,
    mode: &Mode,
    opts: &RunOptions,
    progress: &std::sync::Mutex<Progress>,
) {
    crate::metrics::record_report(mode.trigger, &part);
    if let Some(sink) = &opts.entries {
        sink.accept(part.take_entries());
    }
    if let Some(cb) = &opts.progress {
        let snapshot = {
            let mut p = progress.lock().unwrap();
            p.checked += part.checked;
            p.drifted += part.drifted_goods;
            p.repaired += part.repair_count();
            p.clone()
        };
        cb(&snapshot);
    }
    report.merge(part);
}

/// Feeds batches from `rx` to `opts.concurrency` workers and merges their reports. Each
/// worker checks a batch; the repairs it plans go to the run's [`Coalescer`] and are
/// applied by the worker whose batch makes a round due (or that ends last).
async fn drive(
    handler: &Arc<Handler>,
    rx: mpsc::Receiver<IdBatch>,
    mode: &Mode,
    opts: &RunOptions,
    run: &Arc<Breaker>,
    phase: &'static str,
    seen: Option<Arc<std::sync::Mutex<RoaringTreemap>>>,
) -> Result<Report, RunError> {
    let started = Instant::now();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let limiter = (opts.goods_per_sec > 0).then(|| Arc::new(RateLimiter::new(opts.goods_per_sec)));
    let progress = Arc::new(std::sync::Mutex::new(Progress { phase, ..Default::default() }));
    // Batches' planned repairs wait here to be applied a few batches' worth at a time.
    let coalescer = Arc::new(Coalescer::new(opts.repair_round));
    // The last worker to finish applies what is left (one round, not one per worker).
    let active = Arc::new(AtomicUsize::new(opts.concurrency.max(1)));
    // Workers are tasks of their own, so decoding and diffing use every runtime thread.
    // A JoinSet aborts the workers if this run is dropped (e.g. a caller's timeout).
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.concurrency.max(1) {
        let rx = rx.clone();
        let limiter = limiter.clone();
        let seen = seen.clone();
        let progress = progress.clone();
        let coalescer = coalescer.clone();
        let active = active.clone();
        let (handler, mode, opts, run) = (handler.clone(), mode.clone(), opts.clone(), run.clone());
        workers.spawn(async move {
            let (mode, run) = (&mode, &*run);
            let mut report = Report::default();
            let checks = async {
                loop {
                    let next = rx.lock().await.recv().await;
                    let batch = match next {
                        None => return Ok(()),
                        Some(Err(e)) => return Err(RunError::Source(e)),
                        Some(Ok(b)) => b,
                    };
                    // A full run checks each goods once: claim it before checking, so a
                    // source that repeats ids (a dump) never checks one goods in two
                    // concurrent batches.
                    let Batch { ids, mut range } = batch;
                    let ids: Vec<GoodsId> = match &seen {
                        Some(seen) => {
                            let mut seen = seen.lock().unwrap();
                            let n = ids.len();
                            let fresh: Vec<GoodsId> = ids.into_iter().filter(|g| seen.insert(*g)).collect();
                            if fresh.len() != n {
                                range = None; // some were checked already: by id
                            }
                            fresh
                        }
                        None => ids,
                    };
                    if ids.is_empty() {
                        continue;
                    }
                    if let Some(l) = &limiter {
                        l.acquire(ids.len()).await;
                    }
                    let checked = match range {
                        Some((shard, lo, hi)) => handler.check_range(shard, lo, hi, mode, run).await?,
                        None => handler.check(&ids, mode, run).await?,
                    };
                    let due = if checked.repairs.is_empty() {
                        account(checked.report, &mut report, mode, &opts, &progress);
                        coalescer.due()
                    } else {
                        coalescer.add(checked)
                    };
                    if let Some(due) = due {
                        account(handler.finish(due, mode, run).await?, &mut report, mode, &opts, &progress);
                    }
                }
            };
            let checks: Result<(), RunError> = checks.await;
            // Repairs already planned go out even when the run fails (a source or check
            // error, which ends the other workers): the goods they fix were checked.
            let last = active.fetch_sub(1, Ordering::AcqRel) == 1;
            if last || checks.is_err() {
                if let Some(rest) = coalescer.rest() {
                    account(handler.finish(rest, mode, run).await?, &mut report, mode, &opts, &progress);
                }
            }
            checks?;
            Ok::<Report, RunError>(report)
        });
    }
    let mut report = Report { dry_run: mode.dry_run, ..Default::default() };
    while let Some(part) = workers.join_next().await {
        report.merge(part.map_err(|e| RunError::Source(format!("worker task failed: {e}")))??);
    }
    report.halted = report.halted.or_else(|| run.halted());
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report.sort();
    Ok(report)
}
