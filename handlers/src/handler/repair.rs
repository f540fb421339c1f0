//! The repair half of a batch: re-read truth for the goods a check found drifted, defer
//! those whose truth changed since the check or within the settle window, and apply the
//! rest with compare-and-set, audited write-ahead (one audit round for every target).
//! Also the other users of that one apply path: operator repairs, undos, and the
//! resolution of audit rows a crash left `pending`.
//!
//! A check's planned repairs ([`Repairs`]) carry the truth the check saw, so the repairs
//! of several batches can be merged and applied in one round (a full run does, see
//! `run::coalesce`): the re-read and the compare-and-set make a later round exactly as
//! safe as an immediate one.

use std::collections::{BTreeSet, HashMap, HashSet};

use common::clock::now_ms;
use futures::future::join_all;
use model::repair_plan::{CellRepair, CellWrite};
use model::report::{DeferredEntry, RepairEntry, Report};
use model::{GoodsId, GoodsTruth, ObservedCell, ObservedGoods};

use super::{Handler, Mode};
use crate::audit::{AuditRow, Finished};
use crate::breaker::Breaker;
use crate::error::StoreError;
use crate::stores::{ApplyOutcome, Target};
use crate::truth::{TruthBatch, TruthMap};

/// Repairs a check planned and nobody applied yet, with the truth the check saw for each
/// goods they touch.
#[derive(Debug, Default)]
pub struct Repairs {
    /// Per target, in the handler's target order.
    plans: Vec<Vec<CellRepair>>,
    /// The truth the check saw, of every goods with a planned repair.
    seen: HashMap<GoodsId, GoodsTruth, foldhash::fast::RandomState>,
}

impl Repairs {
    /// `plans` per target; `truth` holds (at least) every goods they touch.
    pub(super) fn new(plans: Vec<Vec<CellRepair>>, mut truth: TruthMap) -> Repairs {
        if plans.iter().all(Vec::is_empty) {
            return Repairs::default();
        }
        let mut seen = HashMap::default();
        for r in plans.iter().flatten() {
            if let Some(t) = truth.remove(&r.goods_id) {
                seen.insert(r.goods_id, t);
            }
        }
        Repairs { plans, seen }
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Goods with a planned repair.
    pub fn goods(&self) -> usize {
        self.seen.len()
    }

    /// Adds `other`'s repairs; those of a goods already planned here are dropped (the
    /// same goods checked twice: the first check's plan stands, and compare-and-set
    /// would refuse the second's anyway).
    pub fn merge(&mut self, other: Repairs) {
        let Repairs { plans, seen } = other;
        if self.plans.len() < plans.len() {
            self.plans.resize_with(plans.len(), Vec::new);
        }
        let fresh: HashSet<GoodsId> = seen.keys().filter(|g| !self.seen.contains_key(g)).copied().collect();
        for (mine, theirs) in self.plans.iter_mut().zip(plans) {
            mine.extend(theirs.into_iter().filter(|r| fresh.contains(&r.goods_id)));
        }
        self.seen.extend(seen.into_iter().filter(|(g, _)| fresh.contains(g)));
    }
}

/// A checked batch (or several merged): its report so far and the repairs it planned.
#[derive(Debug, Default)]
pub struct Checked {
    pub report: Report,
    pub repairs: Repairs,
}

impl Checked {
    pub fn merge(&mut self, other: Checked) {
        self.report.merge(other.report);
        self.repairs.merge(other.repairs);
    }
}

impl Handler {
    /// Applies planned repairs: a target whose breaker is open by now gets none
    /// (`halted`); truth is re-read for the goods left and each is deferred when its
    /// truth changed since the check or within the settle window; the rest are written
    /// with compare-and-set. The report holds repairs, deferrals, unreachable targets
    /// and `halted` (no checked or drifted counts: the check's report has them). `Err`
    /// only when truth cannot be read or a store failed in a way a retry will not mend.
    pub async fn repair(&self, repairs: Repairs, mode: &Mode, breaker: &Breaker) -> Result<Report, StoreError> {
        let Repairs { mut plans, seen } = repairs;
        let mut report = Report { dry_run: mode.dry_run, ..Default::default() };
        if !mode.bootstrap {
            let mut halted = Vec::new();
            for (target, plan) in self.targets.iter().zip(plans.iter_mut()) {
                if plan.is_empty() {
                    continue;
                }
                if let Some(reason) = breaker.open_reason(target.name()) {
                    plan.clear();
                    halted.push(reason);
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
            let (before, after) = (&seen[g], &fresh.truth[g]);
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

/// A planned delete of cell `qualifier` of `goods_id` (unit tests).
#[cfg(test)]
fn repair(goods_id: GoodsId, qualifier: &str) -> CellRepair {
    CellRepair {
        goods_id,
        activity_id: None,
        qualifier: qualifier.as_bytes().to_vec(),
        kind: model::DriftKind::Extra,
        expected: None,
        write: CellWrite::Delete,
    }
}

/// Repairs of `goods` on the first of two targets, with an empty truth for each (unit
/// tests).
#[cfg(test)]
pub(crate) fn planned(goods: &[GoodsId]) -> Repairs {
    let plans = vec![goods.iter().map(|&g| repair(g, "a")).collect(), Vec::new()];
    Repairs::new(plans, goods.iter().map(|&g| (g, GoodsTruth::default())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_without_plans_holds_no_truth() {
        let r = Repairs::new(vec![Vec::new(), Vec::new()], [(1, GoodsTruth::default())].into_iter().collect());
        assert!(r.is_empty());
        assert_eq!(r.goods(), 0);
    }

    #[test]
    fn only_the_truth_of_planned_goods_is_kept() {
        let truth: TruthMap = (1..=10).map(|g| (g, GoodsTruth::default())).collect();
        let r = Repairs::new(vec![vec![repair(3, "a"), repair(3, "b")], vec![repair(7, "a")]], truth);
        assert_eq!(r.goods(), 2);
        let mut kept: Vec<GoodsId> = r.seen.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![3, 7]);
    }

    #[test]
    fn merged_plans_keep_their_targets_and_a_goods_planned_twice_keeps_its_first_plan() {
        let mut a = planned(&[1, 2]);
        let mut b = Repairs::new(
            vec![vec![repair(2, "late")], vec![repair(3, "b")]],
            [(2, GoodsTruth::default()), (3, GoodsTruth::default())].into_iter().collect(),
        );
        b.plans[1].push(repair(2, "late"));
        a.merge(b);
        assert_eq!(a.goods(), 3);
        let quals = |t: usize| a.plans[t].iter().map(|r| (r.goods_id, r.qualifier.clone())).collect::<Vec<_>>();
        assert_eq!(quals(0), vec![(1, b"a".to_vec()), (2, b"a".to_vec())]);
        assert_eq!(quals(1), vec![(3, b"b".to_vec())]);
    }
}
