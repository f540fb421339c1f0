//! The run report: what `check`, `repair`, `full` and `POST /repair` answer (contract
//! section 7), built up batch by batch and merged.

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
    /// Set when the blast-radius limit stopped repairs: the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
    pub dry_run: bool,
    pub elapsed_ms: u64,
}

/// Process exit status (contract section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Clean, or all drift repaired.
    Clean = 0,
    /// Drift found and left (check, dry run, deferred, halted).
    DriftLeft = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// A store could not be reached.
    Unreachable = 3,
}

impl Report {
    pub fn merge(&mut self, other: Report) {
        self.checked += other.checked;
        self.drift.extend(other.drift);
        self.repairs.extend(other.repairs);
        self.deferred.extend(other.deferred);
        for t in other.unreachable {
            if !self.unreachable.contains(&t) {
                self.unreachable.push(t);
            }
        }
        self.drifted_goods += other.drifted_goods;
        self.unknown_goods.extend(other.unknown_goods);
        if self.halted.is_none() {
            self.halted = other.halted;
        }
    }

    /// Exit status: unreachable beats drift left beats clean. Drift is "left" unless
    /// every drift entry has a matching repair.
    pub fn outcome(&self) -> Outcome {
        if !self.unreachable.is_empty() {
            return Outcome::Unreachable;
        }
        if self.drift.is_empty() {
            return Outcome::Clean;
        }
        let all_repaired = self.halted.is_none()
            && !self.dry_run
            && self.deferred.is_empty()
            && self.drift.iter().all(|d| {
                self.repairs.iter().any(|r| {
                    r.goods_id == d.goods_id
                        && r.target == d.target
                        && (r.activity_id == d.activity_id || d.kind == DriftKind::Orphan || d.activity_id.is_none())
                })
            });
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
    }

    /// Count of drift entries per kind, in [`DriftKind::ALL`] order.
    pub fn drift_by_kind(&self) -> Vec<(DriftKind, usize)> {
        DriftKind::ALL.iter().map(|k| (*k, self.drift.iter().filter(|d| d.kind == *k).count())).collect()
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
}
