//! The run report: what `check`, `repair`, `full` and `POST /repair` answer (contract
//! section 7), built up batch by batch and merged.
//!
//! A long run streams its entries out batch by batch ([`Report::take_entries`]) and
//! keeps only counters ([`Streamed`]), so its memory does not grow with the drift;
//! merging and the exit status are linear in the entries.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::diff::DriftKind;
use crate::ids::{ActivityId, GoodsId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftEntry {
    pub goods_id: GoodsId,
    pub target: String,
    pub activity_id: Option<ActivityId>,
    pub kind: DriftKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairEntry {
    pub goods_id: GoodsId,
    pub target: String,
    pub activity_id: Option<ActivityId>,
    pub kind: DriftKind,
    /// Id of the audit row; `reconciler undo` takes it. `None` in a dry run.
    pub repair_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeferredEntry {
    pub goods_id: GoodsId,
    pub target: String,
    pub reason: String,
}

/// A goods that could not be checked, and why: its truth could not be used (a zero
/// DATETIME in a row) or one target could not read it (an error reply for that key
/// only). The rest of the batch is checked as usual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoodsError {
    pub goods_id: GoodsId,
    /// The target that could not read the goods; `None` when truth was unusable.
    pub target: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Goods compared.
    pub checked: u64,
    pub drift: Vec<DriftEntry>,
    pub repairs: Vec<RepairEntry>,
    pub deferred: Vec<DeferredEntry>,
    /// Names of targets that could not be reached.
    pub unreachable: Vec<String>,
    /// Goods with at least one drift on any target.
    pub drifted_goods: u64,
    /// Goods with no truth rows and no derived data anywhere (likely a wrong id).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_goods: Vec<GoodsId>,
    /// Goods that could not be checked (see [`GoodsError`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<GoodsError>,
    /// Set when the blast-radius limit stopped repairs: the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
    pub dry_run: bool,
    pub elapsed_ms: u64,
    /// What was already handed to an output stream ([`Report::take_entries`]): only
    /// counted here, so a run's memory does not grow with its drift.
    #[serde(skip)]
    pub streamed: Streamed,
}

/// Counters of entries moved out of a [`Report`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streamed {
    pub drift: u64,
    pub repairs: u64,
    pub deferred: u64,
    pub unknown_goods: u64,
    pub errors: u64,
    /// Drift entries that had no matching repair.
    pub drift_left: u64,
    /// Drift entries per target, by kind in [`DriftKind::ALL`] order.
    pub drift_by_target: BTreeMap<String, [u64; 5]>,
}

impl Streamed {
    fn add(&mut self, other: Streamed) {
        self.drift += other.drift;
        self.repairs += other.repairs;
        self.deferred += other.deferred;
        self.unknown_goods += other.unknown_goods;
        self.errors += other.errors;
        self.drift_left += other.drift_left;
        for (target, counts) in other.drift_by_target {
            let mine = self.drift_by_target.entry(target).or_default();
            for (m, c) in mine.iter_mut().zip(counts) {
                *m += c;
            }
        }
    }
}

/// The entry lists of a report, moved out by [`Report::take_entries`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entries {
    pub drift: Vec<DriftEntry>,
    pub repairs: Vec<RepairEntry>,
    pub deferred: Vec<DeferredEntry>,
    pub unknown_goods: Vec<GoodsId>,
    pub errors: Vec<GoodsError>,
}

/// Process exit status (contract section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Clean, or all drift repaired.
    Clean = 0,
    /// Drift found and left (check, dry run, deferred, halted, goods that could not be
    /// checked).
    DriftLeft = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// A store could not be reached.
    Unreachable = 3,
}

fn kind_index(kind: DriftKind) -> usize {
    DriftKind::ALL.iter().position(|k| *k == kind).expect("every kind is in ALL")
}

/// Drift entries without a matching repair (same goods and target, and the same activity
/// unless the drift is about the whole goods). Linear: one hash set of the repairs.
fn unmatched(drift: &[DriftEntry], repairs: &[RepairEntry]) -> u64 {
    if drift.is_empty() {
        return 0;
    }
    let cells: HashSet<(GoodsId, &str, Option<ActivityId>)> =
        repairs.iter().map(|r| (r.goods_id, r.target.as_str(), r.activity_id)).collect();
    let goods: HashSet<(GoodsId, &str)> = repairs.iter().map(|r| (r.goods_id, r.target.as_str())).collect();
    drift
        .iter()
        .filter(|d| {
            let whole = d.kind == DriftKind::Orphan || d.activity_id.is_none();
            !if whole {
                goods.contains(&(d.goods_id, d.target.as_str()))
            } else {
                cells.contains(&(d.goods_id, d.target.as_str(), d.activity_id))
            }
        })
        .count() as u64
}

impl Report {
    /// Adds `other` to this report. Linear in the size of `other`.
    pub fn merge(&mut self, other: Report) {
        self.checked += other.checked;
        self.drift.extend(other.drift);
        self.repairs.extend(other.repairs);
        self.deferred.extend(other.deferred);
        for t in other.unreachable {
            // A handful of target names at most.
            if !self.unreachable.contains(&t) {
                self.unreachable.push(t);
            }
        }
        self.drifted_goods += other.drifted_goods;
        self.unknown_goods.extend(other.unknown_goods);
        self.errors.extend(other.errors);
        if self.halted.is_none() {
            self.halted = other.halted;
        }
        self.streamed.add(other.streamed);
    }

    /// Moves every entry list out (to an output stream), keeping their counts, the drift
    /// left unrepaired among them and the drift per target and kind. Call it on a report
    /// whose drift and repairs belong together (one batch): matching is done here.
    pub fn take_entries(&mut self) -> Entries {
        let s = &mut self.streamed;
        s.drift += self.drift.len() as u64;
        s.repairs += self.repairs.len() as u64;
        s.deferred += self.deferred.len() as u64;
        s.unknown_goods += self.unknown_goods.len() as u64;
        s.errors += self.errors.len() as u64;
        s.drift_left += unmatched(&self.drift, &self.repairs);
        for d in &self.drift {
            s.drift_by_target.entry(d.target.clone()).or_default()[kind_index(d.kind)] += 1;
        }
        Entries {
            drift: std::mem::take(&mut self.drift),
            repairs: std::mem::take(&mut self.repairs),
            deferred: std::mem::take(&mut self.deferred),
            unknown_goods: std::mem::take(&mut self.unknown_goods),
            errors: std::mem::take(&mut self.errors),
        }
    }

    /// Drift entries, streamed or held.
    pub fn drift_count(&self) -> u64 {
        self.streamed.drift + self.drift.len() as u64
    }

    pub fn repair_count(&self) -> u64 {
        self.streamed.repairs + self.repairs.len() as u64
    }

    pub fn deferred_count(&self) -> u64 {
        self.streamed.deferred + self.deferred.len() as u64
    }

    pub fn unknown_count(&self) -> u64 {
        self.streamed.unknown_goods + self.unknown_goods.len() as u64
    }

    pub fn error_count(&self) -> u64 {
        self.streamed.errors + self.errors.len() as u64
    }

    /// Drift entries without a matching repair.
    pub fn drift_left(&self) -> u64 {
        self.streamed.drift_left + unmatched(&self.drift, &self.repairs)
    }

    /// Drift entries per target, by kind in [`DriftKind::ALL`] order.
    pub fn drift_by_target(&self) -> BTreeMap<String, [u64; 5]> {
        let mut table = self.streamed.drift_by_target.clone();
        for d in &self.drift {
            table.entry(d.target.clone()).or_default()[kind_index(d.kind)] += 1;
        }
        table
    }

    /// Exit status: unreachable beats drift left beats clean. Drift is "left" unless
    /// every drift entry has a matching repair; goods that could not be checked are left
    /// too.
    pub fn outcome(&self) -> Outcome {
        if !self.unreachable.is_empty() {
            return Outcome::Unreachable;
        }
        if self.error_count() > 0 {
            return Outcome::DriftLeft;
        }
        if self.drift_count() == 0 {
            return Outcome::Clean;
        }
        let all_repaired =
            self.halted.is_none() && !self.dry_run && self.deferred_count() == 0 && self.drift_left() == 0;
        if all_repaired {
            Outcome::Clean
        } else {
            Outcome::DriftLeft
        }
    }

    /// Orders every list by target, goods and activity, so output is stable whatever
    /// order concurrent batches finished in.
    pub fn sort(&mut self) {
        self.drift.sort_by(|a, b| (&a.target, a.goods_id, a.activity_id).cmp(&(&b.target, b.goods_id, b.activity_id)));
        self.repairs
            .sort_by(|a, b| (&a.target, a.goods_id, a.activity_id).cmp(&(&b.target, b.goods_id, b.activity_id)));
        self.deferred.sort_by(|a, b| (&a.target, a.goods_id).cmp(&(&b.target, b.goods_id)));
        self.unreachable.sort();
        self.unknown_goods.sort_unstable();
        self.errors.sort_by(|a, b| (a.goods_id, &a.target).cmp(&(b.goods_id, &b.target)));
    }

    /// Count of drift entries per kind, in [`DriftKind::ALL`] order.
    pub fn drift_by_kind(&self) -> Vec<(DriftKind, u64)> {
        let mut counts = [0u64; 5];
        for row in self.drift_by_target().values() {
            for (c, n) in counts.iter_mut().zip(row) {
                *c += n;
            }
        }
        DriftKind::ALL.iter().copied().zip(counts).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drift(kind: DriftKind, aid: Option<u64>) -> DriftEntry {
        DriftEntry { goods_id: 1, target: "redis-a".into(), activity_id: aid, kind, fields: None }
    }

    #[test]
    fn outcome_rules() {
        let mut r = Report::default();
        assert_eq!(r.outcome(), Outcome::Clean);
        r.drift.push(drift(DriftKind::Stale, Some(7)));
        assert_eq!(r.outcome(), Outcome::DriftLeft);
        r.repairs.push(RepairEntry {
            goods_id: 1,
            target: "redis-a".into(),
            activity_id: Some(7),
            kind: DriftKind::Stale,
            repair_id: Some(1),
        });
        assert_eq!(r.outcome(), Outcome::Clean);
        r.dry_run = true;
        assert_eq!(r.outcome(), Outcome::DriftLeft);
        r.dry_run = false;
        r.unreachable.push("hbase-a".into());
        assert_eq!(r.outcome(), Outcome::Unreachable);
    }

    #[test]
    fn json_has_contract_keys() {
        let mut r = Report::default();
        let mut d = drift(DriftKind::Stale, Some(7001));
        d.fields = Some(vec!["price"]);
        r.drift.push(d);
        r.drift.push(drift(DriftKind::Orphan, None));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        for key in ["checked", "drift", "repairs", "deferred", "unreachable"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["drift"][0]["fields"], serde_json::json!(["price"]));
        assert_eq!(v["drift"][0]["kind"], "stale");
        assert!(v["drift"][1]["activity_id"].is_null());
        assert!(v["drift"][1].get("fields").is_none());
    }

    fn repair(goods: u64, aid: Option<u64>) -> RepairEntry {
        RepairEntry {
            goods_id: goods,
            target: "redis-a".into(),
            activity_id: aid,
            kind: DriftKind::Stale,
            repair_id: None,
        }
    }

    #[test]
    fn streamed_entries_keep_counts_and_the_outcome() {
        let mut batch = Report { checked: 2, drifted_goods: 2, ..Default::default() };
        batch.drift.push(drift(DriftKind::Stale, Some(7)));
        batch.drift.push(DriftEntry { goods_id: 2, ..drift(DriftKind::Corrupt, None) });
        batch.repairs.push(repair(1, Some(7)));
        batch.repairs.push(repair(2, None));
        let mut total = Report::default();
        let entries = batch.take_entries();
        assert_eq!((entries.drift.len(), entries.repairs.len()), (2, 2));
        total.merge(batch);
        assert!(total.drift.is_empty());
        assert_eq!((total.drift_count(), total.repair_count(), total.drift_left()), (2, 2, 0));
        assert_eq!(total.outcome(), Outcome::Clean);
        let mut left = Report::default();
        left.drift.push(DriftEntry { goods_id: 3, ..drift(DriftKind::Missing, Some(9)) });
        left.take_entries();
        total.merge(left);
        assert_eq!((total.drift_count(), total.drift_left()), (3, 1));
        assert_eq!(total.outcome(), Outcome::DriftLeft);
        assert_eq!(total.drift_by_target()["redis-a"], [1, 0, 1, 1, 0]);
        let errors = Report {
            errors: vec![GoodsError { goods_id: 5, target: None, reason: "zero DATETIME".into() }],
            ..Default::default()
        };
        assert_eq!(errors.outcome(), Outcome::DriftLeft, "a goods that could not be checked is left");
    }

    #[test]
    fn the_exit_status_is_linear_in_the_entries() {
        // 200,000 drift entries each with its repair: a quadratic match would take minutes.
        let mut r = Report::default();
        for g in 0..200_000u64 {
            r.drift.push(DriftEntry { goods_id: g, ..drift(DriftKind::Stale, Some(7)) });
            r.repairs.push(repair(g, Some(7)));
        }
        let started = std::time::Instant::now();
        assert_eq!(r.outcome(), Outcome::Clean);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        let mut other = Report::default();
        other.drift.push(DriftEntry { goods_id: 1, ..drift(DriftKind::Stale, Some(8)) });
        r.merge(other);
        assert_eq!(r.drift_left(), 1);
    }
}
