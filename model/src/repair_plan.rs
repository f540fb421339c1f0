//! From drift to the cell writes that make a target equal truth (pure).
//!
//! Every write carries what the check saw (`expected`), so the store adapter can refuse
//! to overwrite anything that changed since: compare-and-set on Redis, timestamps on
//! HBase.

use crate::diff::{qualifier, Drift, DriftKind, ObservedCell, ObservedGoods};
use crate::ids::{ActivityId, GoodsId};
use crate::projection::GoodsTruth;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellWrite {
    /// Store the canonical value; `ver` is the entity's version (HBase cell timestamp).
    Put { value: Vec<u8>, ver: i64 },
    /// Remove the cell.
    Delete,
    /// Remove whatever the store holds for the goods: a key that is not of the contract's
    /// shape (a Redis key of another type). `expected` is the store's image of it (Redis:
    /// `DUMP`), so a key changed since the check is left alone. The qualifier is empty.
    DeleteWhole,
}

/// One cell-level repair for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellRepair {
    pub goods_id: GoodsId,
    pub activity_id: Option<ActivityId>,
    pub qualifier: Vec<u8>,
    pub kind: DriftKind,
    /// What the check saw in this cell (`None`: absent). The repair applies only if the
    /// cell still holds exactly this.
    pub expected: Option<ObservedCell>,
    pub write: CellWrite,
}

/// Plans the repairs of one goods on one target from its drift and the truth it was
/// computed against.
pub fn plan_repairs(truth: &GoodsTruth, observed: &ObservedGoods, drift: &[Drift]) -> Vec<CellRepair> {
    let mut out = Vec::new();
    let delete_whole = |d: &Drift, foreign: &ObservedCell| CellRepair {
        goods_id: d.goods_id,
        activity_id: None,
        qualifier: Vec::new(),
        kind: d.kind,
        expected: Some(foreign.clone()),
        write: CellWrite::DeleteWhole,
    };
    for d in drift {
        match d.kind {
            DriftKind::Orphan => {
                if let Some(foreign) = &observed.foreign {
                    out.push(delete_whole(d, foreign));
                }
                for (q, cell) in &observed.cells {
                    out.push(CellRepair {
                        goods_id: d.goods_id,
                        activity_id: crate::diff::parse_qualifier(q),
                        qualifier: q.clone(),
                        kind: DriftKind::Orphan,
                        expected: Some(cell.clone()),
                        write: CellWrite::Delete,
                    });
                }
            }
            DriftKind::Extra => {
                // An extra's qualifier is the one observed; recover it by elimination.
                for (q, cell) in &observed.cells {
                    let aid = crate::diff::parse_qualifier(q);
                    if aid == d.activity_id && !aid.is_some_and(|a| truth.entities.contains_key(&a)) {
                        out.push(CellRepair {
                            goods_id: d.goods_id,
                            activity_id: aid,
                            qualifier: q.clone(),
                            kind: DriftKind::Extra,
                            expected: Some(cell.clone()),
                            write: CellWrite::Delete,
                        });
                    }
                }
            }
            DriftKind::Corrupt if d.activity_id.is_none() => {
                if let Some(foreign) = &observed.foreign {
                    out.push(delete_whole(d, foreign));
                }
            }
            DriftKind::Missing | DriftKind::Stale | DriftKind::Corrupt => {
                let Some(aid) = d.activity_id else { continue };
                let entity = &truth.entities[&aid];
                let q = qualifier(aid);
                out.push(CellRepair {
                    goods_id: d.goods_id,
                    activity_id: Some(aid),
                    expected: observed.cells.get(&q).cloned(),
                    qualifier: q,
                    kind: d.kind,
                    write: CellWrite::Put { value: entity.encode(), ver: entity.ver },
                });
            }
        }
    }
    // Extra drift with `activity_id: None` matches every junk qualifier at once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| r.write == CellWrite::DeleteWhole || seen.insert(r.qualifier.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff_goods;
    use crate::entity::sample;

    fn cell(v: &[u8], ts: i64) -> ObservedCell {
        ObservedCell { value: v.to_vec(), timestamp: Some(ts) }
    }

    #[test]
    fn plans_put_for_missing_stale_corrupt_and_delete_for_extra() {
        let mut e2 = sample();
        e2.aid = 2;
        let mut e3 = sample();
        e3.aid = 3;
        let truth = GoodsTruth {
            entities: [(7001, sample()), (2, e2.clone()), (3, e3.clone())].into(),
            last_change_ms: 0,
            ..Default::default()
        };
        let mut stale = e2.clone();
        stale.price = 1;
        let observed = ObservedGoods::of_cells(
            [
                (b"2".to_vec(), cell(&stale.encode(), 10)),
                (b"3".to_vec(), cell(b"junk", 11)),
                (b"9".to_vec(), cell(b"x", 12)),
                (b"zz".to_vec(), cell(b"y", 13)),
                (b"yy".to_vec(), cell(b"y", 14)),
            ]
            .into(),
        );
        let drift = diff_goods(1, &truth, &observed);
        let plan = plan_repairs(&truth, &observed, &drift);
        let summary: Vec<_> = plan
            .iter()
            .map(|r| {
                (
                    String::from_utf8(r.qualifier.clone()).unwrap(),
                    r.kind,
                    matches!(r.write, CellWrite::Put { .. }),
                    r.expected.as_ref().and_then(|c| c.timestamp),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("2".into(), DriftKind::Stale, true, Some(10)),
                ("3".into(), DriftKind::Corrupt, true, Some(11)),
                ("7001".into(), DriftKind::Missing, true, None),
                ("9".into(), DriftKind::Extra, false, Some(12)),
                ("yy".into(), DriftKind::Extra, false, Some(14)),
                ("zz".into(), DriftKind::Extra, false, Some(13)),
            ]
        );
        assert_eq!(plan[0].write, CellWrite::Put { value: e2.encode(), ver: e2.ver });
    }

    #[test]
    fn orphan_deletes_every_cell_seen() {
        let truth = GoodsTruth::default();
        let observed = ObservedGoods::of_cells([(b"5".to_vec(), cell(b"a", 1)), (b"6".to_vec(), cell(b"b", 2))].into());
        let plan = plan_repairs(&truth, &observed, &diff_goods(1, &truth, &observed));
        assert_eq!(plan.len(), 2);
        assert!(plan.iter().all(|r| r.kind == DriftKind::Orphan && r.write == CellWrite::Delete));
        assert_eq!(plan[1].activity_id, Some(6));
    }

    #[test]
    fn a_key_of_another_type_is_removed_first_then_every_entity_put() {
        let truth = GoodsTruth { entities: [(7001, sample())].into(), ..Default::default() };
        let image = ObservedCell { value: b"\x00\x03abc".to_vec(), timestamp: None };
        let observed = ObservedGoods { foreign: Some(image.clone()), ..Default::default() };
        let plan = plan_repairs(&truth, &observed, &diff_goods(1, &truth, &observed));
        assert_eq!(plan.len(), 2, "{plan:?}");
        assert_eq!((plan[0].write.clone(), plan[0].expected.clone()), (CellWrite::DeleteWhole, Some(image.clone())));
        assert_eq!(plan[0].kind, DriftKind::Corrupt);
        assert!(plan[0].qualifier.is_empty() && plan[0].activity_id.is_none());
        assert_eq!((plan[1].kind, plan[1].expected.clone()), (DriftKind::Missing, None));
        // Without truth the key is an orphan, removed whole.
        let empty = GoodsTruth::default();
        let plan = plan_repairs(&empty, &observed, &diff_goods(1, &empty, &observed));
        assert_eq!(plan.len(), 1);
        assert_eq!((plan[0].kind, plan[0].write.clone()), (DriftKind::Orphan, CellWrite::DeleteWhole));
    }
}
