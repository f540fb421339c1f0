//! Batch jobs of a distributed full run (job message version 2, `model::job::Work`):
//! what one handler does with a piece of a run, and how its outcome enters the run
//! ledger (`common::mysql::ledger`) exactly once.
//!
//! - `range`: truth of the shard's goods-id range is read by range (one query per table),
//!   then every target is read, diffed and repaired through [`Handler`] as any batch.
//! - `ids`: the dump's ids, checked in batches of `batch_size`.
//! - `orphan_scan`: the part's keys of one target (HBase: a row-key prefix range; Redis:
//!   the node), and those goods without a goods row in MySQL are checked (their derived
//!   data is orphaned). A Redis Cluster target gets one part per master: the per-master
//!   listing plugs in at [`scan_part`].

use std::collections::BTreeSet;

use common::mysql::ledger::{JobOutcome, Ledger};
use model::job::{prefix_range, BatchJob, Work};
use model::report::Report;
use model::{hbase_row_key, GoodsId};

use crate::breaker::Breaker;
use crate::error::StoreError;
use crate::handler::{Handler, Mode};
use crate::stores::Target;

/// What checking one batch job found: the merged report (entries included) and how
/// many of its goods were orphans (found by an orphan scan, absent from truth).
#[derive(Debug, Default)]
pub struct BatchResult {
    pub report: Report,
    pub orphans: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("orphan-scan job names target `{0}`, which is not configured here")]
    UnknownTarget(String),
}

impl BatchError {
    pub fn is_retryable(&self) -> bool {
        match self {
            BatchError::Store(e) => e.is_retryable(),
            BatchError::UnknownTarget(_) => false,
        }
    }
}

/// Checks (and per `mode` repairs) the goods of one batch job.
pub async fn run_batch(
    handler: &Handler,
    job: &BatchJob,
    mode: &Mode,
    breaker: &Breaker,
    batch_size: usize,
) -> Result<BatchResult, BatchError> {
    let batch_size = batch_size.max(1);
    match &job.work {
        Work::Range { shard, lo, hi } => {
            Ok(BatchResult { report: handler.process_range(*shard, *lo, *hi, mode, breaker).await?, orphans: 0 })
        }
        Work::Ids { ids, .. } => {
            let mut report = Report { dry_run: mode.dry_run, ..Default::default() };
            for chunk in ids.chunks(batch_size) {
                report.merge(handler.process(chunk, mode, breaker).await?);
            }
            Ok(BatchResult { report, orphans: 0 })
        }
        Work::OrphanScan { target, part, parts } => {
            let t = handler
                .targets()
                .iter()
                .find(|t| t.name() == target)
                .ok_or_else(|| BatchError::UnknownTarget(target.clone()))?;
            orphan_scan(handler, t.as_ref(), *part, *parts, mode, breaker, batch_size).await
        }
    }
}

async fn orphan_scan(
    handler: &Handler,
    target: &dyn Target,
    part: u32,
    parts: u32,
    mode: &Mode,
    breaker: &Breaker,
    batch_size: usize,
) -> Result<BatchResult, BatchError> {
    let mut result =
        BatchResult { report: Report { dry_run: mode.dry_run, ..Default::default() }, ..Default::default() };
    let mut pending: BTreeSet<GoodsId> = BTreeSet::new();
    let mut cursor = None;
    loop {
        let Some((goods, next)) = scan_part(target, part, parts, cursor.take(), batch_size).await? else { break };
        pending.extend(goods);
        if pending.len() >= batch_size || next.is_none() {
            let ids: Vec<GoodsId> = std::mem::take(&mut pending).into_iter().collect();
            let present = handler.truth().present(&ids).await?;
            let orphans: Vec<GoodsId> = ids.into_iter().filter(|g| !present.contains(g)).collect();
            if !orphans.is_empty() {
                result.orphans += orphans.len() as u64;
                result.report.merge(handler.process(&orphans, mode, breaker).await?);
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok(result)
}

/// One page of part `part` of `parts` of a target's keys: (goods ids, next cursor), or
/// `None` when the part holds nothing. HBase parts are row-key prefix ranges; a Redis
/// target (one node) has its whole keyspace in part 0.
// Redis Cluster: one part per master, each scanning its own node, plugs in here.
async fn scan_part(
    target: &dyn Target,
    part: u32,
    parts: u32,
    cursor: Option<Vec<u8>>,
    limit: usize,
) -> Result<Option<(Vec<GoodsId>, Option<Vec<u8>>)>, StoreError> {
    if target.kind() != "hbase" {
        if part > 0 {
            return Ok(None);
        }
        let page = target.scan(cursor, limit).await?;
        return Ok(Some((page.goods, page.next)));
    }
    let (lo, hi) = prefix_range(part, parts);
    let start = cursor.unwrap_or_else(|| format!("{lo:04x}").into_bytes());
    let stop = (hi < 65536).then(|| format!("{hi:04x}").into_bytes());
    if stop.as_ref().is_some_and(|s| &start >= s) {
        return Ok(None);
    }
    let page = target.scan(Some(start), limit).await?;
    let before_stop = |g: &GoodsId| stop.as_ref().is_none_or(|s| hbase_row_key(*g).as_bytes() < s.as_slice());
    let goods: Vec<GoodsId> = page.goods.into_iter().filter(before_stop).collect();
    let next = page.next.filter(|n| stop.as_ref().is_none_or(|s| n < s));
    Ok(Some((goods, next)))
}

/// The ledger outcome of a checked job; its entries move out of `result.report` into
/// the outcome's JSON.
pub fn outcome(result: &mut BatchResult, handled_by: &str) -> JobOutcome {
    let report = &mut result.report;
    let drift_left = report.drift_left();
    let entries = report.take_entries();
    let has_entries = !(entries.drift.is_empty()
        && entries.repairs.is_empty()
        && entries.deferred.is_empty()
        && entries.unknown_goods.is_empty()
        && entries.errors.is_empty());
    let json = has_entries.then(|| {
        serde_json::json!({
            "drift": entries.drift,
            "repairs": entries.repairs,
            "deferred": entries.deferred,
            "unknown_goods": entries.unknown_goods,
            "errors": entries.errors,
        })
        .to_string()
    });
    JobOutcome {
        checked: report.checked.saturating_sub(result.orphans),
        orphans_checked: result.orphans,
        drifted: report.drifted_goods,
        drift: report.drift_count(),
        drift_left,
        repaired: report.repair_count(),
        deferred: report.deferred_count(),
        errors: report.error_count(),
        unknown_goods: report.unknown_count(),
        halted: report.halted.is_some(),
        unreachable: report.unreachable.clone(),
        failed: false,
        handled_by: handled_by.to_string(),
        entries: json,
    }
}

/// Records a job's outcome in its run, exactly once per job id; true when this call
/// counted it.
pub async fn record(ledger: &Ledger, job_id: &str, run_id: &str, outcome: &JobOutcome) -> Result<bool, StoreError> {
    ledger.record(run_id, job_id, outcome, common::clock::now_ms()).await.map_err(StoreError::mysql)
}
