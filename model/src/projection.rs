//! The projection rule (contract section 3): from the truth rows of one goods to the
//! entities every derived store must hold.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::entity::Entity;
use crate::ids::{ActivityId, GoodsId};

/// Status of an `activity` row that makes it project.
pub const ACTIVITY_ONLINE: i8 = 1;
/// Status of an `activity_goods` / `activity_sku` row that makes it project.
pub const ROW_EFFECTIVE: i8 = 1;

/// A row of `act_meta.activity`, times as epoch milliseconds (UTC).
///
/// `biz_code` and the tags are shared (`Arc`) with every entity projected from the row:
/// a full run projects ~3 entities per goods, and copying the two strings into each cost
/// 0.34 G of the 24.1 G instructions of a clean 200,000-goods full run (callgrind,
/// BENCHMARKS.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub activity_id: ActivityId,
    pub kind: i32,
    pub biz_code: Arc<str>,
    /// The `tags` column split at ',' ([`split_tags`]).
    pub tags: Arc<[String]>,
    pub status: i8,
    pub start_ms: i64,
    pub end_ms: i64,
    pub priority: i32,
    pub updated_ms: i64,
}

/// A row of `activity_goods_{s}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoodsRow {
    pub activity_id: ActivityId,
    pub goods_id: GoodsId,
    pub activity_price: i64,
    pub limit_per_user: i32,
    pub status: i8,
    pub updated_ms: i64,
}

/// A row of `activity_sku_{s}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuRow {
    pub activity_id: ActivityId,
    pub goods_id: GoodsId,
    pub sku_id: u64,
    pub activity_price: i64,
    pub status: i8,
    pub updated_ms: i64,
}

/// What truth says of one goods at the moment it was read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GoodsTruth {
    /// The entities every target must hold, by activity id.
    pub entities: BTreeMap<ActivityId, Entity>,
    /// Latest `updated_at` among every row read for the goods, projecting or not
    /// (removed rows, offline activities). Drives the settle window: a goods whose truth
    /// moved this recently may still be in flight through the sync pipeline.
    pub last_change_ms: i64,
    /// Activities with an `activity_goods` row for the goods, whatever its status, whose
    /// `activity` row exists, whatever its status. An activity a sample names that is
    /// not here had its rows physically removed (archived) or never had any: the price
    /// verifier cannot tell what truth said before, so such a sample is inconclusive.
    pub present: BTreeSet<ActivityId>,
}

/// Splits `tags` on ',' dropping empty parts, keeping stored order.
pub fn split_tags(tags: &str) -> Vec<String> {
    tags.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect()
}

/// Projects one goods. `goods_rows` and `sku_rows` are that goods' rows in any order and
/// any status; `activities` holds at least every activity they reference that exists.
pub fn project_goods<A: Borrow<ActivityRow>, S: BuildHasher>(
    goods_rows: &[GoodsRow],
    sku_rows: &[SkuRow],
    activities: &HashMap<ActivityId, A, S>,
) -> GoodsTruth {
    let activity = |id: &ActivityId| activities.get(id).map(Borrow::borrow);
    let mut truth = GoodsTruth::default();
    let mut bump = |ms: i64| truth.last_change_ms = truth.last_change_ms.max(ms);
    for r in goods_rows {
        bump(r.updated_ms);
        if let Some(a) = activity(&r.activity_id) {
            bump(a.updated_ms);
        }
    }
    for s in sku_rows {
        bump(s.updated_ms);
    }
    truth.present = goods_rows.iter().map(|r| r.activity_id).filter(|aid| activities.contains_key(aid)).collect();

    for r in goods_rows.iter().filter(|r| r.status == ROW_EFFECTIVE) {
        let Some(a) = activity(&r.activity_id).filter(|a| a.status == ACTIVITY_ONLINE) else {
            continue;
        };
        let own_skus = sku_rows.iter().filter(|s| s.activity_id == r.activity_id);
        let mut ver = a.updated_ms.max(r.updated_ms);
        let mut skus = Vec::with_capacity(own_skus.clone().filter(|s| s.status == ROW_EFFECTIVE).count());
        for s in own_skus {
            ver = ver.max(s.updated_ms);
            if s.status == ROW_EFFECTIVE {
                skus.push((s.sku_id, s.activity_price));
            }
        }
        skus.sort_unstable_by_key(|(sku, _)| *sku);
        truth.entities.insert(
            a.activity_id,
            Entity {
                aid: a.activity_id,
                kind: a.kind,
                biz: a.biz_code.clone(),
                tags: a.tags.clone(),
                prio: a.priority,
                start: a.start_ms,
                end: a.end_ms,
                price: r.activity_price,
                limit: r.limit_per_user,
                skus,
                ver,
            },
        );
    }
    truth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(id: ActivityId, status: i8, updated_ms: i64) -> ActivityRow {
        ActivityRow {
            activity_id: id,
            kind: 2,
            biz_code: "main".into(),
            tags: split_tags("618,,hot,").into(),
            status,
            start_ms: 1000,
            end_ms: 2000,
            priority: 10,
            updated_ms,
        }
    }

    fn goods(aid: ActivityId, status: i8, updated_ms: i64) -> GoodsRow {
        GoodsRow { activity_id: aid, goods_id: 1001, activity_price: 250, limit_per_user: 2, status, updated_ms }
    }

    fn sku(aid: ActivityId, sku_id: u64, status: i8, updated_ms: i64) -> SkuRow {
        SkuRow { activity_id: aid, goods_id: 1001, sku_id, activity_price: sku_id as i64 * 10, status, updated_ms }
    }

    fn acts(rows: Vec<ActivityRow>) -> HashMap<ActivityId, ActivityRow> {
        rows.into_iter().map(|a| (a.activity_id, a)).collect()
    }

    #[test]
    fn projects_every_field() {
        let t = project_goods(&[goods(7, 1, 5)], &[sku(7, 89, 1, 6), sku(7, 88, 1, 4)], &acts(vec![activity(7, 1, 3)]));
        let e = &t.entities[&7];
        assert_eq!(e.aid, 7);
        assert_eq!(e.kind, 2);
        assert_eq!(&*e.biz, "main");
        assert_eq!(e.tags.to_vec(), vec!["618", "hot"]);
        assert_eq!((e.prio, e.start, e.end, e.price, e.limit), (10, 1000, 2000, 250, 2));
        assert_eq!(e.skus, vec![(88, 880), (89, 890)], "ascending sku id");
        assert_eq!(e.ver, 6);
    }

    #[test]
    fn removed_goods_row_does_not_project_but_counts_as_change() {
        let t = project_goods(&[goods(7, 0, 50)], &[], &acts(vec![activity(7, 1, 3)]));
        assert!(t.entities.is_empty());
        assert_eq!(t.last_change_ms, 50);
        assert_eq!(t.present, [7].into(), "a removed row is still present");
    }

    #[test]
    fn activity_must_exist_and_be_online() {
        for status in [0, 2, 3] {
            let t = project_goods(&[goods(7, 1, 5)], &[], &acts(vec![activity(7, status, 60)]));
            assert!(t.entities.is_empty(), "status {status}");
            assert_eq!(t.last_change_ms, 60);
        }
        let t = project_goods(&[goods(7, 1, 5)], &[], &HashMap::<ActivityId, ActivityRow>::new());
        assert!(t.entities.is_empty());
        assert!(t.present.is_empty(), "an activity row that does not exist makes the goods row absent too");
    }

    #[test]
    fn removed_skus_are_dropped_but_bump_ver() {
        let t =
            project_goods(&[goods(7, 1, 5)], &[sku(7, 88, 0, 90), sku(7, 87, 1, 1)], &acts(vec![activity(7, 1, 3)]));
        let e = &t.entities[&7];
        assert_eq!(e.skus, vec![(87, 870)]);
        assert_eq!(e.ver, 90);
    }

    #[test]
    fn skus_of_other_activities_do_not_leak() {
        let t = project_goods(
            &[goods(7, 1, 5), goods(8, 1, 5)],
            &[sku(8, 88, 1, 99)],
            &acts(vec![activity(7, 1, 3), activity(8, 1, 3)]),
        );
        assert!(t.entities[&7].skus.is_empty());
        assert_eq!(t.entities[&7].ver, 5);
        assert_eq!(t.entities[&8].skus, vec![(88, 880)]);
        assert_eq!(t.entities[&8].ver, 99);
    }

    #[test]
    fn ver_takes_activity_time_when_newest() {
        let t = project_goods(&[goods(7, 1, 5)], &[], &acts(vec![activity(7, 1, 77)]));
        assert_eq!(t.entities[&7].ver, 77);
    }

    #[test]
    fn tags_split_drops_empty_parts_in_order() {
        assert_eq!(split_tags(""), Vec::<String>::new());
        assert_eq!(split_tags(",b,,a,"), vec!["b", "a"]);
    }
}
