//! The price rule (contract section 10): which of a goods' entities wins for one request.
//!
//! An entity *applies* at time t when `start <= t <= end` (both ends inclusive); a
//! member-price entity (type 4) only for members; and, when the request names a SKU and
//! the entity lists SKUs, only if the SKU is listed (then at that SKU's price, otherwise
//! at the entity's price). The winner is the applying entity with the highest `prio`,
//! then the lowest price, then the smallest activity id.

use serde::Serialize;

use crate::entity::Entity;
use crate::ids::ActivityId;

/// Activity type of a member price.
pub const MEMBER_PRICE: i32 = 4;

/// An answer: the winning activity and its price (cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Pick {
    pub activity_id: ActivityId,
    pub price: i64,
}

/// The request a price is computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub sku_id: Option<u64>,
    pub at_ms: i64,
    pub member: bool,
}

/// The price `e` offers for `q`, or `None` when it does not apply.
pub fn applies(e: &Entity, q: &Query) -> Option<i64> {
    if q.at_ms < e.start || q.at_ms > e.end {
        return None;
    }
    if e.kind == MEMBER_PRICE && !q.member {
        return None;
    }
    match q.sku_id {
        Some(sku) if !e.skus.is_empty() => e.skus.iter().find(|(id, _)| *id == sku).map(|(_, price)| *price),
        _ => Some(e.price),
    }
}

/// The winning entity's activity and price, `None` when no entity applies.
pub fn winner<'a>(entities: impl IntoIterator<Item = &'a Entity>, q: &Query) -> Option<Pick> {
    entities
        .into_iter()
        .filter_map(|e| applies(e, q).map(|price| (e.prio, price, e.aid)))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)))
        .map(|(_, price, activity_id)| Pick { activity_id, price })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(aid: ActivityId, prio: i32, price: i64) -> Entity {
        Entity {
            aid,
            kind: 1,
            biz: "main".into(),
            tags: [].into(),
            prio,
            start: 1000,
            end: 2000,
            price,
            limit: 0,
            skus: vec![],
            ver: 1,
        }
    }

    fn q(at_ms: i64) -> Query {
        Query { sku_id: None, at_ms, member: false }
    }

    fn pick(activity_id: ActivityId, price: i64) -> Option<Pick> {
        Some(Pick { activity_id, price })
    }

    #[test]
    fn time_window_is_inclusive_at_both_ends() {
        let e = entity(1, 0, 500);
        assert_eq!(applies(&e, &q(999)), None);
        assert_eq!(applies(&e, &q(1000)), Some(500));
        assert_eq!(applies(&e, &q(2000)), Some(500));
        assert_eq!(applies(&e, &q(2001)), None);
    }

    #[test]
    fn member_price_only_for_members() {
        let mut e = entity(1, 0, 500);
        e.kind = MEMBER_PRICE;
        assert_eq!(applies(&e, &q(1500)), None);
        assert_eq!(applies(&e, &Query { member: true, ..q(1500) }), Some(500));
        e.kind = 2;
        assert_eq!(applies(&e, &q(1500)), Some(500), "other types apply to everyone");
    }

    #[test]
    fn sku_coverage_and_sku_price() {
        let mut e = entity(1, 0, 500);
        e.skus = vec![(88, 240), (89, 250)];
        assert_eq!(applies(&e, &Query { sku_id: Some(89), ..q(1500) }), Some(250), "the SKU's price");
        assert_eq!(applies(&e, &Query { sku_id: Some(90), ..q(1500) }), None, "SKU not covered");
        assert_eq!(applies(&e, &q(1500)), Some(500), "goods level: the entity's price");
        e.skus.clear();
        assert_eq!(applies(&e, &Query { sku_id: Some(90), ..q(1500) }), Some(500), "no SKU list: covers every SKU");
    }

    #[test]
    fn winner_by_priority_then_price_then_activity_id() {
        let a = entity(3, 10, 900);
        let b = entity(2, 5, 100);
        assert_eq!(winner([&a, &b], &q(1500)), pick(3, 900), "priority beats price");
        let c = entity(1, 10, 800);
        assert_eq!(winner([&a, &b, &c], &q(1500)), pick(1, 800), "same priority: lower price");
        let d = entity(0, 10, 800);
        let e = entity(5, 10, 800);
        assert_eq!(winner([&e, &c, &d], &q(1500)), pick(0, 800), "same priority and price: smaller id");
    }

    #[test]
    fn winner_price_is_the_sku_price_and_ties_use_it() {
        let mut a = entity(1, 10, 100);
        a.skus = vec![(7, 900)];
        let b = entity(2, 10, 500);
        let sku7 = Query { sku_id: Some(7), ..q(1500) };
        assert_eq!(winner([&a, &b], &sku7), pick(2, 500), "a's SKU price 900 loses to 500");
        assert_eq!(winner([&a, &b], &q(1500)), pick(1, 100));
    }

    #[test]
    fn nothing_applies_means_no_activity() {
        let a = entity(1, 10, 100);
        assert_eq!(winner([&a], &q(5000)), None);
        assert_eq!(winner([], &q(1500)), None);
    }
}
