//! Check and repair one batch of goods against every target.
//!
//! The flow, per batch: read truth once (one query per shard table), read every target
//! concurrently, diff; then, when repairing, judge the run's blast radius, re-read truth
//! for the drifted goods and defer any whose truth changed since the check or within the
//! settle window, and apply the rest with compare-and-set, audited write-ahead.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::clock::now_ms;
use futures::future::join_all;
use model::config::RepairConfig;
use model::diff::{diff_goods_encoded, Encoded};
use model::job::TriggerKind;
use model::repair_plan::{plan_repairs, CellRepair};
use model::report::{DeferredEntry, DriftEntry, RepairEntry, Report};
use model::GoodsId;

use crate::audit::AuditLog;
use crate::error::StoreError;
use crate::limit::RateLimiter;
use crate::stores::{ApplyOutcome, Target};
use crate::truth::TruthReader;

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

/// Counters shared by every batch of one run, for the blast-radius limit.
#[derive(Debug, Default)]
pub struct RunState {
    checked: AtomicU64,
    drifted: AtomicU64,
    halted: Mutex<Option<String>>,
}

impl RunState {
    pub fn halted(&self) -> Option<String> {
        self.halted.lock().unwrap().clone()
    }
}

pub struct Handler {
    truth: TruthReader,
    targets: Vec<Arc<dyn Target>>,
    audit: AuditLog,
    limiter: RateLimiter,
    config: RepairConfig,
}

impl Handler {
    pub fn new(truth: TruthReader, targets: Vec<Arc<dyn Target>>, audit: AuditLog, config: RepairConfig) -> Handler {
        Handler { limiter: RateLimiter::new(config.max_repairs_per_sec), truth, targets, audit, config }
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

    /// Checks (and per `mode` repairs) one batch. `Err` only when truth cannot be read;
    /// an unreachable target is reported in the report and the others are still handled.
    pub async fn process(&self, ids: &[GoodsId], mode: &Mode, run: &RunState) -> Result<Report, StoreError> {
        let report = self.process_batch(ids, mode, run).await?;
        crate::metrics::record_report(mode.trigger, &report);
        Ok(report)
    }

    async fn process_batch(&self, ids: &[GoodsId], mode: &Mode, run: &RunState) -> Result<Report, StoreError> {
        // Sources may repeat a goods (dumps, several jobs): check each once.
        let mut seen = HashSet::with_capacity(ids.len());
        let ids: Vec<GoodsId> = ids.iter().copied().filter(|g| seen.insert(*g)).collect();
        let ids = &ids[..];
        let mut report = Report { checked: ids.len() as u64, dry_run: mode.dry_run, ..Default::default() };
        if ids.is_empty() {
            return Ok(report);
        }
        // Truth and every target are read concurrently: none depends on another.
        let (truth, reads) = tokio::join!(self.truth.read(ids), join_all(self.targets.iter().map(|t| t.read(ids))));
        let truth = truth?;
        // Each goods' canonical encodings, once for all targets.
        let encoded: HashMap<GoodsId, Encoded> =
            truth.iter().filter(|(_, t)| !t.entities.is_empty()).map(|(&g, t)| (g, Encoded::of(t))).collect();
        let no_entities = Encoded::default();

        let mut drifted: BTreeSet<GoodsId> = BTreeSet::new();
        let mut plans: Vec<Vec<CellRepair>> = vec![Vec::new(); self.targets.len()];
        for (ti, (target, read)) in self.targets.iter().zip(reads).enumerate() {
            let observed = match read {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(target = target.name(), error = %e, "target unreachable, skipping it for this batch");
                    report.unreachable.push(target.name().to_string());
                    continue;
                }
            };
            for (&goods, held) in ids.iter().zip(&observed) {
                let t = &truth[&goods];
                let drift = diff_goods_encoded(goods, t, encoded.get(&goods).unwrap_or(&no_entities), held);
                if drift.is_empty() {
                    continue;
                }
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
        }
        report.drifted_goods = drifted.len() as u64;
        report.unknown_goods =
            ids.iter().filter(|g| truth[g].last_change_ms == 0 && !drifted.contains(g)).copied().collect();
        let checked = run.checked.fetch_add(ids.len() as u64, Ordering::Relaxed) + ids.len() as u64;
        let drifted_total = run.drifted.fetch_add(drifted.len() as u64, Ordering::Relaxed) + drifted.len() as u64;

        if !mode.repair || drifted.is_empty() || mode.dry_run {
            return Ok(report);
        }
        if !mode.bootstrap {
            if let Some(reason) = self.blast_radius(checked, drifted_total, run) {
                report.halted = Some(reason);
                return Ok(report);
            }
        }

        // Safety: re-read truth right before repairing.
        let goods: Vec<GoodsId> = drifted.iter().copied().collect();
        let fresh = self.truth.read(&goods).await?;
        let now = now_ms();
        let mut hold: HashMap<GoodsId, String> = HashMap::new();
        for g in &goods {
            let (before, after) = (&truth[g], &fresh[g]);
            if before.entities != after.entities {
                hold.insert(*g, "truth changed since the check".into());
            } else if !mode.bootstrap && now - after.last_change_ms < self.config.settle_ms as i64 {
                hold.insert(*g, format!("truth changed {} ms ago", now - after.last_change_ms));
            }
        }
        let applies = self.targets.iter().zip(plans).map(|(target, plan)| {
            let (ready, held): (Vec<CellRepair>, Vec<CellRepair>) =
                plan.into_iter().partition(|r| !hold.contains_key(&r.goods_id));
            let deferred: Vec<DeferredEntry> = held
                .iter()
                .map(|r| r.goods_id)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|g| DeferredEntry { goods_id: g, target: target.name().to_string(), reason: hold[&g].clone() })
                .collect();
            async move { (deferred, self.apply(target.as_ref(), ready, mode).await) }
        });
        for (deferred, applied) in join_all(applies).await {
            report.deferred.extend(deferred);
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

    fn blast_radius(&self, checked: u64, drifted: u64, run: &RunState) -> Option<String> {
        let mut halted = run.halted.lock().unwrap();
        if halted.is_none()
            && checked >= self.config.min_goods_for_ratio
            && drifted as f64 > self.config.max_drift_ratio * checked as f64
        {
            let reason = format!(
                "drifted goods {drifted} of {checked} checked exceed max_drift_ratio {}: repairs stopped, a systemic fault needs a human",
                self.config.max_drift_ratio
            );
            tracing::error!(%reason, "blast radius limit reached");
            *halted = Some(reason);
        }
        halted.clone()
    }

    /// Applies one target's repairs: rate limit, write-ahead audit, compare-and-set
    /// write, outcome audit. Conflicts come back as deferrals.
    pub async fn apply(
        &self,
        target: &dyn Target,
        repairs: Vec<CellRepair>,
        mode: &Mode,
    ) -> Result<Report, StoreError> {
        let mut report = Report::default();
        if repairs.is_empty() {
            return Ok(report);
        }
        self.limiter.acquire(repairs.len()).await;
        let ids: Vec<Option<u64>> = if mode.bootstrap {
            vec![None; repairs.len()]
        } else {
            self.audit
                .record_pending(&mode.run_id, target.name(), mode.trigger, &repairs, None)
                .await?
                .into_iter()
                .map(Some)
                .collect()
        };
        let audited: Vec<u64> = ids.iter().flatten().copied().collect();
        let outcomes = match target.apply(&repairs).await {
            Ok(o) => o,
            Err(e) => {
                let _ = self.audit.mark_many(&audited, "failed").await;
                return Err(e);
            }
        };
        if !audited.is_empty() {
            self.audit.record_outcomes(&audited, &outcomes).await?;
        }
        let mut conflicted = HashSet::new();
        for ((r, id), outcome) in repairs.iter().zip(ids).zip(outcomes) {
            match outcome {
                ApplyOutcome::Applied { .. } => report.repairs.push(RepairEntry {
                    goods_id: r.goods_id,
                    target: target.name().to_string(),
                    activity_id: r.activity_id,
                    kind: r.kind,
                    repair_id: id,
                }),
                ApplyOutcome::Conflict { .. } => {
                    if conflicted.insert(r.goods_id) {
                        report.deferred.push(DeferredEntry {
                            goods_id: r.goods_id,
                            target: target.name().to_string(),
                            reason: "target value changed since the check; left for the next check".into(),
                        });
                    }
                }
            }
        }
        Ok(report)
    }
}
