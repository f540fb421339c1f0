//! Check and repair one batch of goods against every target.
//!
//! The flow, per batch: read truth once (one query per shard table), read every target
//! concurrently, diff, and when repairing let the blast-radius breaker judge each
//! target's window: that is the check ([`Handler::check`]), whose planned repairs
//! ([`Repairs`]) the repair half (`repair.rs`) applies: re-read truth for the drifted
//! goods, defer any whose truth changed since the check or within the settle window, and
//! apply the rest with compare-and-set, audited write-ahead. [`Handler::process`] does
//! both for one batch; a full run merges several batches' repairs into one round.
//!
//! Poison is never an outage: a goods whose truth rows cannot be used, or that one
//! target could not read, is reported in `errors` and the rest of the batch is checked
//! and repaired as usual; a key of another type is drift like any other. A target is
//! `unreachable` only when the store does not answer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::future::join_all;
use model::config::RepairConfig;
use model::diff::{diff_goods_encoded, Encoded, Heads};
use model::job::TriggerKind;
use model::repair_plan::{plan_repairs, CellRepair};
use model::report::{DriftEntry, GoodsError, Report};
use model::GoodsId;

mod repair;

#[cfg(test)]
pub(crate) use repair::planned;
pub use repair::{Applied, Checked, Repairs, Verdict};

use crate::audit::AuditLog;
use crate::breaker::Breaker;
use crate::error::StoreError;
use crate::limit::RateLimiter;
use crate::stores::Target;
use crate::truth::{TruthBatch, TruthReader};

/// How a run treats drift.
#[derive(Debug, Clone)]
pub struct Mode {
    /// Repair drift (`repair`, `full`, triggers) or only report it (`check`).
    pub repair: bool,
    /// Plan repairs but write nothing.
    pub dry_run: bool,
    pub trigger: TriggerKind,
    /// Recorded with every audit row of the run.
    pub run_id: String,
    /// `sync`: project truth as it is now, without settle window, blast-radius limit or
    /// audit rows (a bootstrap is not a repair); compare-and-set still applies.
    pub bootstrap: bool,
}

impl Mode {
    pub fn check(run_id: String) -> Mode {
        Mode { repair: false, dry_run: false, trigger: TriggerKind::Operator, run_id, bootstrap: false }
    }

    pub fn repair(trigger: TriggerKind, run_id: String) -> Mode {
        Mode { repair: true, dry_run: false, trigger, run_id, bootstrap: false }
    }

    pub fn sync(run_id: String) -> Mode {
        Mode { repair: true, dry_run: false, trigger: TriggerKind::Operator, run_id, bootstrap: true }
    }
}

/// What a run's batches share: the blast-radius breaker they are judged by.
pub type RunState = Breaker;

impl Default for Breaker {
    /// The default limits on the system clock.
    fn default() -> Breaker {
        Breaker::from_config(&RepairConfig::default())
    }
}

pub struct Handler {
    truth: TruthReader,
    targets: Vec<Arc<dyn Target>>,
    audit: AuditLog,
    limiter: RateLimiter,
    /// The write cap of `sync` (bootstrap, recovery); `None`: unlimited.
    bulk_limiter: Option<RateLimiter>,
    config: RepairConfig,
    breaker: Arc<Breaker>,
    /// Memos of encoded entity heads, one per batch being checked at a time: a batch
    /// takes one and gives it back, so they outlive the batch (see [`Heads`]).
    heads: std::sync::Mutex<Vec<Heads>>,
}

impl Handler {
    pub fn new(truth: TruthReader, targets: Vec<Arc<dyn Target>>, audit: AuditLog, config: RepairConfig) -> Handler {
        Handler {
            limiter: RateLimiter::new(config.max_repairs_per_sec),
            bulk_limiter: (config.bulk_writes_per_sec > 0).then(|| RateLimiter::new(config.bulk_writes_per_sec)),
            breaker: Arc::new(Breaker::from_config(&config)),
            truth,
            targets,
            audit,
            config,
            heads: Default::default(),
        }
    }

    /// Replaces the process-wide breaker (tests give it a paused clock).
    pub fn with_breaker(mut self, breaker: Breaker) -> Handler {
        self.breaker = Arc::new(breaker);
        self
    }

    pub fn truth(&self) -> &TruthReader {
        &self.truth
    }

    pub fn targets(&self) -> &[Arc<dyn Target>] {
        &self.targets
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    pub fn config(&self) -> &RepairConfig {
        &self.config
    }

    /// The process-wide breaker: every batch of `serve` (jobs, scheduled full runs) is
    /// judged by it.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// A fresh breaker for one run (CLI commands, an operator's `POST /repair`).
    pub fn run_breaker(&self) -> Breaker {
        Breaker::from_config(&self.config)
    }

    /// Checks (and per `mode` repairs) one batch. `Err` only when truth cannot be read;
    /// an unreachable target is reported in the report and the others are still handled.
    pub async fn process(&self, ids: &[GoodsId], mode: &Mode, run: &Breaker) -> Result<Report, StoreError> {
        let checked = self.check(ids, mode, run).await?;
        let report = self.finish(checked, mode, run).await?;
        crate::metrics::record_report(mode.trigger, &report);
        Ok(report)
    }

    /// [`process`](Self::process) for every goods of shard `shard` with
    /// `lo <= goods_id <= hi`, truth read by range (one query per table, no id list);
    /// the goods checked are those with a goods row in the range.
    pub async fn process_range(
        &self,
        shard: u32,
        lo: GoodsId,
        hi: GoodsId,
        mode: &Mode,
        run: &Breaker,
    ) -> Result<Report, StoreError> {
        let checked = self.check_range(shard, lo, hi, mode, run).await?;
        let report = self.finish(checked, mode, run).await?;
        crate::metrics::record_report(mode.trigger, &report);
        Ok(report)
    }

    /// The check half of [`process`](Self::process): the batch's report and the repairs
    /// it plans, not applied yet ([`finish`](Self::finish) applies them; a run may merge
    /// several batches' first). Metrics are the caller's, once the report is final.
    pub async fn check(&self, ids: &[GoodsId], mode: &Mode, run: &Breaker) -> Result<Checked, StoreError> {
        self.check_batch(ids, None, mode, run).await
    }

    /// The check half of [`process_range`](Self::process_range).
    pub async fn check_range(
        &self,
        shard: u32,
        lo: GoodsId,
        hi: GoodsId,
        mode: &Mode,
        run: &Breaker,
    ) -> Result<Checked, StoreError> {
        let (ids, truth) = self.truth.read_range(shard, lo, hi).await?;
        self.check_batch(&ids, Some(truth), mode, run).await
    }

    /// Applies what a check planned (see [`repair`](Self::repair)) and completes its
    /// report with the outcome.
    pub async fn finish(&self, checked: Checked, mode: &Mode, run: &Breaker) -> Result<Report, StoreError> {
        let Checked { mut report, repairs } = checked;
        if !repairs.is_empty() {
            report.merge(self.repair(repairs, mode, run).await?);
        }
        Ok(report)
    }

    /// `known`: truth of exactly `ids` when already read (a range read).
    async fn check_batch(
        &self,
        ids: &[GoodsId],
        known: Option<TruthBatch>,
        mode: &Mode,
        breaker: &Breaker,
    ) -> Result<Checked, StoreError> {
        // Sources may repeat a goods (dumps, several jobs): check each once.
        let mut seen = HashSet::with_capacity_and_hasher(ids.len(), foldhash::fast::RandomState::default());
        let ids: Vec<GoodsId> = ids.iter().copied().filter(|g| seen.insert(*g)).collect();
        let ids = &ids[..];
        let mut report = Report { checked: ids.len() as u64, dry_run: mode.dry_run, ..Default::default() };
        if ids.is_empty() {
            return Ok(Checked { report, repairs: Repairs::default() });
        }
        // Truth and every target are read concurrently: none depends on another.
        let reads = join_all(self.targets.iter().map(|t| t.read(ids)));
        let (truth, reads) = match known {
            Some(truth) => (truth, reads.await),
            None => {
                let (truth, reads) = tokio::join!(self.truth.read_checked(ids), reads);
                (truth?, reads)
            }
        };
        let (unusable, truth) = (truth.unusable, truth.truth);
        for (&goods_id, why) in &unusable {
            report.errors.push(GoodsError { goods_id, target: None, reason: why.clone() });
        }
        // Each goods' canonical encodings, once for all targets; the heads from a memo
        // this batch has to itself.
        let mut heads = self.heads.lock().expect("heads lock").pop().unwrap_or_default();
        let encoded: HashMap<GoodsId, Encoded, foldhash::fast::RandomState> = truth
            .iter()
            .filter(|(_, t)| !t.entities.is_empty())
            .map(|(&g, t)| (g, Encoded::of_with(t, &mut heads)))
            .collect();
        self.heads.lock().expect("heads lock").push(heads);
        let no_entities = Encoded::default();

        let mut drifted: BTreeSet<GoodsId> = BTreeSet::new();
        let mut unchecked: HashSet<GoodsId> = unusable.keys().copied().collect();
        let mut plans: Vec<Vec<CellRepair>> = vec![Vec::new(); self.targets.len()];
        // Per target: goods checked and drifted there (for the breaker); `None` when the
        // target could not be read at all.
        let mut tally: Vec<Option<(u64, u64)>> = vec![None; self.targets.len()];
        for (ti, (target, read)) in self.targets.iter().zip(reads).enumerate() {
            let observed = match read {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(target = target.name(), error = %e, "target unreachable, skipping it for this batch");
                    report.unreachable.push(target.name().to_string());
                    continue;
                }
            };
            let (mut checked, mut drifted_here) = (0u64, 0u64);
            for (&goods, held) in ids.iter().zip(&observed) {
                if unusable.contains_key(&goods) {
                    continue;
                }
                if let Some(why) = &held.error {
                    unchecked.insert(goods);
                    report.errors.push(GoodsError {
                        goods_id: goods,
                        target: Some(target.name().to_string()),
                        reason: why.clone(),
                    });
                    continue;
                }
                checked += 1;
                let t = &truth[&goods];
                let drift = diff_goods_encoded(goods, t, encoded.get(&goods).unwrap_or(&no_entities), held);
                if drift.is_empty() {
                    continue;
                }
                drifted_here += 1;
                drifted.insert(goods);
                plans[ti].extend(plan_repairs(t, held, &drift));
                report.drift.extend(drift.into_iter().map(|d| DriftEntry {
                    goods_id: d.goods_id,
                    target: target.name().to_string(),
                    activity_id: d.activity_id,
                    fields: (d.kind == model::DriftKind::Stale).then_some(d.fields),
                    kind: d.kind,
                }));
            }
            tally[ti] = Some((checked, drifted_here));
        }
        report.drifted_goods = drifted.len() as u64;
        report.unknown_goods = ids
            .iter()
            .filter(|g| truth[g].last_change_ms == 0 && !drifted.contains(g) && !unchecked.contains(g))
            .copied()
            .collect();
        report.errors.sort_by(|a, b| (a.goods_id, &a.target).cmp(&(b.goods_id, &b.target)));

        if !mode.repair || mode.dry_run {
            return Ok(Checked { report, repairs: Repairs::default() });
        }
        if !mode.bootstrap {
            // Every check counts towards the window, clean ones too; a target whose
            // breaker is open gets no repairs.
            let mut halted = Vec::new();
            for (ti, target) in self.targets.iter().enumerate() {
                let Some((checked, drifted_here)) = tally[ti] else { continue };
                if let Some(reason) = breaker.record(target.name(), checked, drifted_here) {
                    if !plans[ti].is_empty() {
                        plans[ti].clear();
                        halted.push(reason);
                    }
                }
            }
            if !halted.is_empty() {
                report.halted = Some(halted.join("; "));
            }
        }
        Ok(Checked { report, repairs: Repairs::new(plans, truth) })
    }
}
