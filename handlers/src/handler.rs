//! Check and repair one batch of goods against every target.
//!
//! The flow, per batch: read truth once (one query per shard table), read every target
//! concurrently, diff; then, when repairing, let the blast-radius breaker judge each
//! target's window, re-read truth for the drifted goods and defer any whose truth changed
//! since the check or within the settle window, and apply the rest with compare-and-set,
//! audited write-ahead.
//!
//! Poison is never an outage: a goods whose truth rows cannot be used, or that one
//! target could not read, is reported in `errors` and the rest of the batch is checked
//! and repaired as usual; a key of another type is drift like any other. A target is
//! `unreachable` only when the store does not answer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use common::clock::now_ms;
use futures::future::join_all;
use model::config::RepairConfig;
use model::diff::{diff_goods_encoded, Encoded};
use model::job::TriggerKind;
use model::repair_plan::{plan_repairs, CellRepair, CellWrite};
use model::report::{DeferredEntry, DriftEntry, GoodsError, RepairEntry, Report};
use model::{GoodsId, ObservedCell, ObservedGoods};

use crate::audit::{AuditLog, AuditRow, Finished};
use crate::breaker::Breaker;
use crate::error::StoreError;
use crate::limit::RateLimiter;
use crate::stores::{ApplyOutcome, Target};
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

/// What became of one repair write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Applied {
        timestamp: Option<i64>,
    },
    /// The cell held something else than the check saw: nothing written.
    Conflict,
    /// The write did not land (verified by re-reading after an error).
    NotApplied {
        reason: String,
    },
    /// Neither the store nor a re-read could say; the audit row stays `pending`.
    Unknown {
        reason: String,
    },
}

/// One repair's audit id (`None` when not audited) and verdict.
pub type Applied = (Option<u64>, Verdict);

/// Compares what the target holds now with a repair's before and after images.
fn verdict_from_read(r: &CellRepair, now: &ObservedGoods, truncated: bool) -> Verdict {
    let same = |held: &[u8], image: &[u8]| if truncated { held.starts_with(image) } else { held == image };
    let expected = r.expected.as_ref().map(|c| c.value.as_slice());
    let not_applied = || Verdict::NotApplied { reason: "re-read: the target still holds the before image".into() };
    match &r.write {
        CellWrite::DeleteWhole => match &now.foreign {
            None => Verdict::Applied { timestamp: None },
            Some(f) if expected.is_some_and(|e| same(&f.value, e)) => not_applied(),
            Some(_) => Verdict::Conflict,
        },
        CellWrite::Put { value, .. } => match now.cells.get(&r.qualifier) {
            Some(c) if same(&c.value, value) => Verdict::Applied { timestamp: c.timestamp },
            None if expected.is_none() => not_applied(),
            Some(c) if expected.is_some_and(|e| same(&c.value, e)) => not_applied(),
            _ => Verdict::Conflict,
        },
        CellWrite::Delete => match now.cells.get(&r.qualifier) {
            None => Verdict::Applied { timestamp: None },
            Some(c) if expected.is_some_and(|e| same(&c.value, e)) => not_applied(),
            Some(_) => Verdict::Conflict,
        },
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
        let report = self.process_batch(ids, None, mode, run).await?;
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
        let (ids, truth) = self.truth.read_range(shard, lo, hi).await?;
        let report = self.process_batch(&ids, Some(truth), mode, run).await?;
        crate::metrics::record_report(mode.trigger, &report);
        Ok(report)
    }

    /// `known`: truth of exactly `ids` when already read (a range read).
    async fn process_batch(
        &self,
        ids: &[GoodsId],
        known: Option<TruthBatch>,
        mode: &Mode,
        breaker: &Breaker,
    ) -> Result<Report, StoreError> {
        // Sources may repeat a goods (dumps, several jobs): check each once.
        let mut seen = HashSet::with_capacity_and_hasher(ids.len(), foldhash::fast::RandomState::default());
        let ids: Vec<GoodsId> = ids.iter().copied().filter(|g| seen.insert(*g)).collect();
        let ids = &ids[..];
        let mut report = Report { checked: ids.len() as u64, dry_run: mode.dry_run, ..Default::default() };
        if ids.is_empty() {
            return Ok(report);
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
        // Each goods' canonical encodings, once for all targets.
        let encoded: HashMap<GoodsId, Encoded, foldhash::fast::RandomState> =
            truth.iter().filter(|(_, t)| !t.entities.is_empty()).map(|(&g, t)| (g, Encoded::of(t))).collect();
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
            return Ok(report);
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
        if plans.iter().all(Vec::is_empty) {
            return Ok(report);
        }

        // Safety: re-read truth right before repairing. A bootstrap skips it for goods
        // whose every write fills an absent cell: compare-and-set on absence already
        // keeps any value the sync pipeline wrote meanwhile, so there is nothing newer to
        // protect (a wiped target's recovery then reads truth once, not twice).
        let overwritten: Option<HashSet<GoodsId>> = mode
            .bootstrap
            .then(|| plans.iter().flatten().filter(|r| r.expected.is_some()).map(|r| r.goods_id).collect());
        let overwrites = |g: &GoodsId| overwritten.as_ref().is_none_or(|o| o.contains(g));
        let goods: Vec<GoodsId> = plans
            .iter()
            .flatten()
            .map(|r| r.goods_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(overwrites)
            .collect();
        let fresh = if goods.is_empty() { TruthBatch::default() } else { self.truth.read_checked(&goods).await? };
        let now = now_ms();
        let mut hold: HashMap<GoodsId, String> = HashMap::new();
        for g in &goods {
            let (before, after) = (&truth[g], &fresh.truth[g]);
            if let Some(why) = fresh.unusable.get(g) {
                hold.insert(*g, format!("truth became unusable: {why}"));
            } else if before.entities != after.entities {
                hold.insert(*g, "truth changed since the check".into());
            } else if !mode.bootstrap && now.saturating_sub(after.last_change_ms) < self.config.settle_ms as i64 {
                hold.insert(*g, format!("truth changed {} ms ago", now.saturating_sub(after.last_change_ms)));
            }
        }
        let mut ready: Vec<(&dyn Target, Vec<CellRepair>)> = Vec::with_capacity(self.targets.len());
        for (target, plan) in self.targets.iter().zip(plans) {
            let (go, held): (Vec<CellRepair>, Vec<CellRepair>) =
                plan.into_iter().partition(|r| !hold.contains_key(&r.goods_id));
            let held: BTreeSet<GoodsId> = held.iter().map(|r| r.goods_id).collect();
            report.deferred.extend(held.into_iter().map(|g| DeferredEntry {
                goods_id: g,
                target: target.name().to_string(),
                reason: hold[&g].clone(),
            }));
            ready.push((target.as_ref(), go));
        }
        let parts = match self.apply_many(&ready, mode).await {
            Ok(parts) => parts,
            // The audit log could not be written: nothing was applied.
            Err(e) => vec![Err(e)],
        };
        for applied in parts {
            match applied {
                Ok(part) => report.merge(part),
                Err(e) => {
                    tracing::warn!(error = %e, "repair failed");
                    if e.is_retryable() {
                        report.unreachable.push(e.store().to_string());
                    } else {
                        return Err(e);
                    }
                }
            }
        }
        report.checked = ids.len() as u64;
        report.drifted_goods = drifted.len() as u64;
        Ok(report)
    }

    /// Applies one target's repairs: rate limit, write-ahead audit, compare-and-set
    /// write, outcome audit. Conflicts, and writes that verifiably did not land, come
    /// back as deferrals.
    pub async fn apply(
        &self,
        target: &dyn Target,
        repairs: Vec<CellRepair>,
        mode: &Mode,
    ) -> Result<Report, StoreError> {
        self.apply_many(&[(target, repairs)], mode).await?.pop().expect("one target in, one out")
    }

    /// [`apply`](Self::apply) for several targets at once, with one audit round for all
    /// of them (see `apply_audited_many`). `Err` when the
    /// audit log could not be written; otherwise one result per target, in order.
    async fn apply_many(
        &self,
        plans: &[(&dyn Target, Vec<CellRepair>)],
        mode: &Mode,
    ) -> Result<Vec<Result<Report, StoreError>>, StoreError> {
        let groups: Vec<(&dyn Target, &[CellRepair])> = plans.iter().map(|(t, r)| (*t, &r[..])).collect();
        let applied = self.apply_audited_many(&groups, mode, None).await?;
        Ok(plans
            .iter()
            .zip(applied)
            .map(|((target, repairs), applied)| Ok(report_of(*target, repairs, applied?)))
            .collect())
    }

    /// The one apply path of repairs and undos, for one target: see
    /// `apply_audited_many`.
    pub async fn apply_audited(
        &self,
        target: &dyn Target,
        repairs: &[CellRepair],
        mode: &Mode,
        undo_of: Option<u64>,
    ) -> Result<Vec<Applied>, StoreError> {
        self.apply_audited_many(&[(target, repairs)], mode, undo_of).await?.pop().expect("one target in, one out")
    }

    /// The one apply path of repairs and undos: takes tokens from the rate limiter (the
    /// bulk cap for a bootstrap), records the rows of every target `pending` in one
    /// write (not for a bootstrap), writes each target with compare-and-set (targets
    /// concurrently), settles an unclear outcome by reading the target again, and
    /// records every outcome in one update. One audit round per batch rather than one
    /// per target: each statement is a durable commit (no throughput change measured on
    /// the bench's machine, see BENCHMARKS.md).
    /// The outer `Err` when the audit log could not be written; an inner one when a
    /// target failed and could not be read back either (its rows stay `pending` and are
    /// resolved later).
    async fn apply_audited_many(
        &self,
        groups: &[(&dyn Target, &[CellRepair])],
        mode: &Mode,
        undo_of: Option<u64>,
    ) -> Result<Vec<Result<Vec<Applied>, StoreError>>, StoreError> {
        let total: usize = groups.iter().map(|(_, r)| r.len()).sum();
        if total == 0 {
            return Ok(groups.iter().map(|_| Ok(Vec::new())).collect());
        }
        match (&self.bulk_limiter, mode.bootstrap) {
            (Some(bulk), true) => bulk.acquire(total).await,
            (None, true) => {}
            (_, false) => self.limiter.acquire(total).await,
        }
        let ids: Vec<Vec<Option<u64>>> = if mode.bootstrap {
            groups.iter().map(|(_, r)| vec![None; r.len()]).collect()
        } else {
            let named: Vec<(&str, &[CellRepair])> = groups.iter().map(|(t, r)| (t.name(), *r)).collect();
            self.audit
                .record_pending(&mode.run_id, mode.trigger, &named, undo_of)
                .await?
                .into_iter()
                .map(|ids| ids.into_iter().map(Some).collect())
                .collect()
        };
        let settled = join_all(groups.iter().map(|(target, repairs)| write_and_settle(*target, repairs))).await;
        let finished: Vec<Finished> = ids
            .iter()
            .zip(&settled)
            .filter_map(|(ids, verdicts)| Some(ids.iter().zip(verdicts.as_ref().ok()?)))
            .flatten()
            .filter_map(|(id, v)| finished((*id)?, v))
            .collect();
        self.audit.finish(&finished).await?;
        Ok(ids.into_iter().zip(settled).map(|(ids, verdicts)| Ok(ids.into_iter().zip(verdicts?).collect())).collect())
    }

    /// Resolves audit rows left `pending` by a crash, SIGTERM or an unreachable target:
    /// each is marked by reading its target again (`applied` when the cell holds the
    /// after image, `failed` when it still holds the before image, `conflict` otherwise).
    /// Rows younger than `min_age_ms` may belong to a write in flight and are left.
    /// Returns how many rows were resolved; rows of a target that cannot be read (or is
    /// not configured) stay pending.
    pub async fn resolve_pending(&self, min_age_ms: u64) -> Result<u64, StoreError> {
        let mut resolved = 0;
        let mut after = 0;
        loop {
            let rows = self.audit.pending(min_age_ms, after, 500).await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let mut by_target: HashMap<&str, Vec<&AuditRow>> = HashMap::new();
            for r in &rows {
                by_target.entry(r.target.as_str()).or_default().push(r);
            }
            for (name, rows) in by_target {
                let Some(target) = self.targets.iter().find(|t| t.name() == name) else {
                    tracing::warn!(target = name, rows = rows.len(), "pending audit rows of a target not configured");
                    continue;
                };
                let goods: Vec<GoodsId> =
                    rows.iter().map(|r| r.goods_id).collect::<BTreeSet<_>>().into_iter().collect();
                let now = match target.read(&goods).await {
                    Ok(now) => goods.into_iter().zip(now).collect::<HashMap<_, _>>(),
                    Err(e) => {
                        tracing::warn!(target = name, error = %e, "pending audit rows left: target unreadable");
                        continue;
                    }
                };
                let mut done = Vec::new();
                for r in rows {
                    let repair = CellRepair {
                        goods_id: r.goods_id,
                        activity_id: r.activity_id,
                        qualifier: r.qualifier.clone(),
                        kind: model::DriftKind::Stale,
                        expected: r.before_value.clone().map(|value| ObservedCell { value, timestamp: r.before_ts }),
                        write: r.write(),
                    };
                    let v = verdict_from_read(&repair, &now[&r.goods_id], r.truncated);
                    count_resolved(name, &v);
                    done.extend(finished(r.id, &v));
                }
                resolved += done.len() as u64;
                self.audit.finish(&done).await?;
            }
        }
        if resolved > 0 {
            tracing::info!(rows = resolved, "pending audit rows resolved by reading the targets again");
        }
        Ok(resolved)
    }
}

/// Writes one target's repairs with compare-and-set and settles each outcome: an
/// unclear one (the write failed, or the store said nothing) by reading the target
/// again. `Err` when the store failed and could not be read back either.
async fn write_and_settle(target: &dyn Target, repairs: &[CellRepair]) -> Result<Vec<Verdict>, StoreError> {
    if repairs.is_empty() {
        return Ok(Vec::new());
    }
    let (outcomes, failure) = match target.apply(repairs).await {
        Ok(o) => (o, None),
        Err(e) => {
            tracing::warn!(target = target.name(), error = %e, "repair write failed; reading the target back");
            (vec![ApplyOutcome::Unknown { reason: e.to_string() }; repairs.len()], Some(e))
        }
    };
    let mut verdicts: Vec<Verdict> = outcomes
        .into_iter()
        .map(|o| match o {
            ApplyOutcome::Applied { timestamp } => Verdict::Applied { timestamp },
            ApplyOutcome::Conflict { .. } => Verdict::Conflict,
            ApplyOutcome::Unknown { reason } => Verdict::Unknown { reason },
        })
        .collect();
    let unknown: Vec<usize> = (0..repairs.len()).filter(|&i| matches!(verdicts[i], Verdict::Unknown { .. })).collect();
    if !unknown.is_empty() {
        let goods: Vec<GoodsId> =
            unknown.iter().map(|&i| repairs[i].goods_id).collect::<BTreeSet<_>>().into_iter().collect();
        match target.read(&goods).await {
            Ok(now) => {
                let now: HashMap<GoodsId, ObservedGoods> = goods.into_iter().zip(now).collect();
                for &i in &unknown {
                    let v = verdict_from_read(&repairs[i], &now[&repairs[i].goods_id], false);
                    count_resolved(target.name(), &v);
                    verdicts[i] = v;
                }
            }
            Err(e) => {
                tracing::warn!(target = target.name(), error = %e, "repair outcome unknown: rows left pending");
                if let Some(f) = failure {
                    return Err(f);
                }
            }
        }
    }
    Ok(verdicts)
}

/// One target's part of a report from its applied repairs: repairs done, and the goods
/// deferred (conflicts, writes that did not land, outcomes unknown), each once.
fn report_of(target: &dyn Target, repairs: &[CellRepair], applied: Vec<Applied>) -> Report {
    let mut report = Report::default();
    let mut deferred = HashSet::new();
    for (r, (id, verdict)) in repairs.iter().zip(applied) {
        let reason = match verdict {
            Verdict::Applied { .. } => {
                report.repairs.push(RepairEntry {
                    goods_id: r.goods_id,
                    target: target.name().to_string(),
                    activity_id: r.activity_id,
                    kind: r.kind,
                    repair_id: id,
                });
                continue;
            }
            Verdict::Conflict => "target value changed since the check; left for the next check".to_string(),
            Verdict::NotApplied { reason } => format!("the write did not land ({reason}); left for the next check"),
            Verdict::Unknown { reason } => format!("write outcome unknown ({reason}); audit row left pending"),
        };
        if deferred.insert(r.goods_id) {
            report.deferred.push(DeferredEntry { goods_id: r.goods_id, target: target.name().to_string(), reason });
        }
    }
    report
}

fn finished(id: u64, v: &Verdict) -> Option<Finished> {
    let (status, after_ts) = match v {
        Verdict::Applied { timestamp } => ("applied", *timestamp),
        Verdict::Conflict => ("conflict", None),
        Verdict::NotApplied { .. } => ("failed", None),
        Verdict::Unknown { .. } => return None,
    };
    Some(Finished { id, status, after_ts })
}

fn count_resolved(target: &str, v: &Verdict) {
    let status = match v {
        Verdict::Applied { .. } => "applied",
        Verdict::Conflict => "conflict",
        Verdict::NotApplied { .. } => "failed",
        Verdict::Unknown { .. } => "unknown",
    };
    metrics::counter!(crate::metrics::UNKNOWN_OUTCOMES, "target" => target.to_string(), "status" => status)
        .increment(1);
}
