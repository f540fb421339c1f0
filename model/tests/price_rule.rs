//! Property tests of the price rule and the verdict against a deliberately naive second
//! implementation of contract section 10, written here from the text and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use model::pricing::{judge, winner, Cause, Pick, Query, Sample, SampleContext, Scene, SourceView, Verdict};
use model::{Entity, GoodsTruth};
use proptest::prelude::*;

/// The rule, naively: keep every applying entity with its price, then sort the list three
/// times with a stable sort (least significant key first) and take the head.
fn naive(entities: &[Entity], sku: Option<u64>, at: i64, member: bool) -> Option<(u64, i64)> {
    let mut applying: Vec<(u64, i32, i64)> = Vec::new();
    for e in entities {
        let in_time = e.start <= at && at <= e.end;
        let allowed = e.kind != 4 || member;
        if !in_time || !allowed {
            continue;
        }
        let mut price = e.price;
        if let Some(k) = sku {
            if !e.skus.is_empty() {
                let mut found = None;
                for (id, p) in &e.skus {
                    if *id == k {
                        found = Some(*p);
                    }
                }
                match found {
                    Some(p) => price = p,
                    None => continue,
                }
            }
        }
        applying.push((e.aid, e.prio, price));
    }
    applying.sort_by_key(|a| a.0); // smallest id
    applying.sort_by_key(|a| a.2); // lowest price
    applying.sort_by_key(|a| std::cmp::Reverse(a.1)); // highest priority
    applying.first().map(|a| (a.0, a.2))
}

fn entity() -> impl Strategy<Value = Entity> {
    (1u64..8, 1i32..6, 0i32..3, 0i64..12, 0i64..12, 1i64..6, proptest::collection::btree_map(1u64..5, 1i64..6, 0..3))
        .prop_map(|(aid, kind, prio, start, len, price, skus)| Entity {
            aid,
            kind,
            biz: "main".into(),
            tags: [].into(),
            prio,
            start,
            end: start + len,
            price,
            limit: 0,
            skus: skus.into_iter().collect(),
            ver: 1,
        })
}

/// Entities with distinct activity ids (as one goods' projection has them).
fn entities() -> impl Strategy<Value = Vec<Entity>> {
    proptest::collection::vec(entity(), 0..7).prop_map(|v| {
        let by_aid: BTreeMap<u64, Entity> = v.into_iter().map(|e| (e.aid, e)).collect();
        by_aid.into_values().collect()
    })
}

fn query() -> impl Strategy<Value = (Option<u64>, i64, bool)> {
    (proptest::option::of(1u64..6), -1i64..25, any::<bool>())
}

fn truth(entities: &[Entity]) -> GoodsTruth {
    GoodsTruth {
        entities: entities.iter().map(|e| (e.aid, e.clone())).collect(),
        last_change_ms: 0,
        present: (1..8).collect::<BTreeSet<u64>>(),
    }
}

fn sample(sku: Option<u64>, at: i64, member: bool, answer: Option<(u64, i64)>) -> Sample {
    Sample {
        sample_id: "p".into(),
        scene: Scene::List,
        goods_id: 1,
        sku_id: sku,
        at_ms: at.max(0),
        member,
        answer: answer.map(|(activity_id, price)| Pick { activity_id, price }),
        context: Some(SampleContext { source: Some("t".into()), ..Default::default() }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn rule_equals_the_naive_rule(es in entities(), (sku, at, member) in query()) {
        let fast = winner(&es, &Query { sku_id: sku, at_ms: at, member }).map(|p| (p.activity_id, p.price));
        prop_assert_eq!(fast, naive(&es, sku, at, member));
    }

    #[test]
    fn rule_ignores_entity_order(mut es in entities(), (sku, at, member) in query()) {
        let q = Query { sku_id: sku, at_ms: at, member };
        let before = winner(&es, &q);
        es.reverse();
        prop_assert_eq!(winner(&es, &q), before);
    }

    #[test]
    fn verdict_and_cause_agree_with_the_naive_rule(
        truth_es in entities(),
        source_es in entities(),
        (sku, at, member) in (proptest::option::of(1u64..6), 0i64..25, any::<bool>()),
        answer in proptest::option::of((1u64..8, 1i64..6)),
    ) {
        let t = truth(&truth_es);
        let held: BTreeMap<u64, Entity> = source_es.iter().map(|e| (e.aid, e.clone())).collect();
        let s = sample(sku, at, member, answer);
        let j = judge(&s, &t, &SourceView::Held(&held));
        let expected = naive(&truth_es, sku, at, member);
        let want = match (answer, expected) {
            (a, e) if a == e => Verdict::Match,
            (Some(a), Some(e)) if a.0 == e.0 => Verdict::WrongPrice,
            (Some(_), Some(_)) => Verdict::WrongActivity,
            (None, Some(_)) => Verdict::MissedActivity,
            _ => Verdict::PhantomActivity,
        };
        prop_assert_eq!(j.verdict, want);
        let cause = (want != Verdict::Match).then(|| {
            if naive(&source_es, sku, at, member) == answer { Cause::StaleSource } else { Cause::Logic }
        });
        prop_assert_eq!(j.cause, cause);
        prop_assert_eq!(j.check_goods, cause == Some(Cause::StaleSource));
    }
}
