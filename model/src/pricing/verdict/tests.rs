use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::pricing::sample::{SampleContext, Scene};

const AT: i64 = 1500;

fn entity(aid: ActivityId, prio: i32, price: i64) -> Entity {
    Entity {
        aid,
        kind: 2,
        biz: "main".into(),
        tags: ["618".to_string()].into(),
        prio,
        start: 1000,
        end: 2000,
        price,
        limit: 0,
        skus: vec![],
        ver: 100,
    }
}

fn truth(entities: &[Entity]) -> GoodsTruth {
    GoodsTruth {
        entities: entities.iter().map(|e| (e.aid, e.clone())).collect(),
        last_change_ms: 100,
        present: entities.iter().map(|e| e.aid).collect(),
    }
}

fn held(entities: &[Entity]) -> BTreeMap<ActivityId, Entity> {
    entities.iter().map(|e| (e.aid, e.clone())).collect()
}

fn sample(answer: Option<(ActivityId, i64)>) -> Sample {
    Sample {
        sample_id: "s1".into(),
        scene: Scene::Detail,
        goods_id: 1001,
        sku_id: None,
        at_ms: AT,
        member: false,
        answer: answer.map(|(activity_id, price)| Pick { activity_id, price }),
        context: Some(SampleContext { source: Some("redis-a".into()), candidates: vec![], dropped: vec![] }),
    }
}

#[test]
fn same_activity_and_price_is_a_match() {
    let t = truth(&[entity(1, 10, 500), entity(2, 5, 100)]);
    let j = judge(&sample(Some((1, 500))), &t, &SourceView::Held(&held(&[entity(1, 10, 500)])));
    assert_eq!((j.verdict, j.cause, j.check_goods), (Verdict::Match, None, false));
    assert_eq!(j.expected, Some(Pick { activity_id: 1, price: 500 }));
    assert_eq!(j.subject.unwrap().biz, "main");
    assert_eq!(j.band_price, Some(500));
}

#[test]
fn no_activity_on_both_sides_is_a_match() {
    let j = judge(&sample(None), &truth(&[]), &SourceView::Absent);
    assert_eq!((j.verdict, j.subject, j.band_price), (Verdict::Match, None, None));
}

#[test]
fn wrong_price_from_a_stale_source_or_from_logic() {
    let t = truth(&[entity(1, 10, 500)]);
    let stale = held(&[entity(1, 10, 450)]);
    let j = judge(&sample(Some((1, 450))), &t, &SourceView::Held(&stale));
    assert_eq!((j.verdict, j.cause, j.check_goods), (Verdict::WrongPrice, Some(Cause::StaleSource), true));
    let fresh = held(&[entity(1, 10, 500)]);
    let j = judge(&sample(Some((1, 450))), &t, &SourceView::Held(&fresh));
    assert_eq!((j.verdict, j.cause, j.check_goods), (Verdict::WrongPrice, Some(Cause::Logic), false));
}

#[test]
fn wrong_activity_missed_and_phantom() {
    let t = truth(&[entity(1, 10, 500), entity(2, 5, 100)]);
    let src = held(&[entity(1, 10, 500), entity(2, 5, 100)]);
    let j = judge(&sample(Some((2, 100))), &t, &SourceView::Held(&src));
    assert_eq!((j.verdict, j.cause), (Verdict::WrongActivity, Some(Cause::Logic)));
    let j = judge(&sample(None), &t, &SourceView::Held(&src));
    assert_eq!((j.verdict, j.cause), (Verdict::MissedActivity, Some(Cause::Logic)));
    assert_eq!(j.band_price, Some(500), "banded by the expected price");

    let mut ended = entity(3, 1, 70);
    ended.end = AT - 1;
    let t = truth(&[ended.clone()]);
    let j = judge(&sample(Some((3, 70))), &t, &SourceView::Held(&held(&[ended])));
    assert_eq!((j.verdict, j.cause), (Verdict::PhantomActivity, Some(Cause::Logic)));
    assert_eq!(j.subject.unwrap().kind, 2, "counted under the service's activity");
    assert_eq!(j.band_price, Some(70));
}

#[test]
fn missing_entity_in_the_source_explains_a_wrong_activity() {
    let t = truth(&[entity(1, 10, 500), entity(2, 5, 100)]);
    let src = held(&[entity(2, 5, 100)]);
    let j = judge(&sample(Some((2, 100))), &t, &SourceView::Held(&src));
    assert_eq!((j.verdict, j.cause, j.check_goods), (Verdict::WrongActivity, Some(Cause::StaleSource), true));
}

#[test]
fn unknown_or_absent_source_is_logic_with_a_note() {
    let t = truth(&[entity(1, 10, 500)]);
    let j = judge(&sample(Some((1, 1))), &t, &SourceView::Unknown("redis-z"));
    assert_eq!((j.verdict, j.cause, j.check_goods), (Verdict::WrongPrice, Some(Cause::Logic), false));
    assert!(j.note.unwrap().contains("redis-z"));
    let j = judge(&sample(Some((1, 1))), &t, &SourceView::Absent);
    assert_eq!(j.cause, Some(Cause::Logic));
    assert!(j.note.unwrap().contains("no source"));
}

#[test]
fn truth_changed_after_the_sample_is_inconclusive() {
    let mut t = truth(&[entity(1, 10, 500)]);
    t.last_change_ms = AT + 1;
    let j = judge(&sample(Some((1, 1))), &t, &SourceView::Absent);
    assert_eq!((j.verdict, j.inconclusive, j.cause), (Verdict::Inconclusive, Some(Inconclusive::TruthChanged), None));
    assert_eq!(j.expected, None);
    t.last_change_ms = AT;
    assert_eq!(
        judge(&sample(Some((1, 500))), &t, &SourceView::Absent).verdict,
        Verdict::Match,
        "at the same ms: conclusive"
    );
}

#[test]
fn a_named_activity_without_rows_is_inconclusive_and_checked_when_the_source_holds_it() {
    let t = truth(&[entity(1, 10, 500)]);
    let archived = entity(9, 99, 10);
    let src = held(&[entity(1, 10, 500), archived]);
    let j = judge(&sample(Some((9, 10))), &t, &SourceView::Held(&src));
    assert_eq!((j.verdict, j.inconclusive), (Verdict::Inconclusive, Some(Inconclusive::RowRemoved)));
    assert!(j.check_goods, "the source still holds the removed activity");
    assert!(j.note.unwrap().contains("activity 9"));

    let mut s = sample(Some((1, 500)));
    s.context.as_mut().unwrap().candidates = vec![1, 9];
    let j = judge(&s, &t, &SourceView::Absent);
    assert_eq!((j.inconclusive, j.check_goods), (Some(Inconclusive::RowRemoved), false), "a candidate counts too");

    let mut t2 = t.clone();
    t2.entities.clear();
    t2.present = BTreeSet::from([1]);
    let j = judge(&sample(Some((1, 500))), &t2, &SourceView::Absent);
    assert_eq!(j.verdict, Verdict::PhantomActivity, "a removed-status row is still present: conclusive");
}

#[test]
fn a_source_newer_than_truth_means_a_sku_row_was_deleted() {
    let mut e = entity(1, 10, 500);
    e.skus = vec![(88, 400)];
    let t = truth(&[e.clone()]);
    let mut newer = e.clone();
    newer.skus = vec![(88, 400), (89, 300)];
    newer.ver = 200;
    let mut s = sample(Some((1, 300)));
    s.sku_id = Some(89);
    let j = judge(&s, &t, &SourceView::Held(&held(&[newer])));
    assert_eq!(j.inconclusive, Some(Inconclusive::RowRemoved));
    assert!(j.check_goods);
}

#[test]
fn a_dropped_winner_is_a_wrong_drop_of_its_reason() {
    let mut member = entity(1, 10, 300);
    member.kind = 4;
    let mut t = truth(&[member.clone(), entity(2, 5, 400)]);
    t.present.insert(77);
    let mut s = sample(Some((2, 400)));
    s.member = true;
    s.context.as_mut().unwrap().dropped =
        vec![Dropped { aid: 1, reason: "member_only".into() }, Dropped { aid: 77, reason: "ended".into() }];
    let j = judge(&s, &t, &SourceView::Held(&held(&[member, entity(2, 5, 400)])));
    assert_eq!(j.verdict, Verdict::WrongActivity);
    assert_eq!(j.cause, Some(Cause::Logic));
    assert_eq!(j.wrong_drops, vec![Dropped { aid: 1, reason: "member_only".into() }]);
    assert_eq!(j.dropped_kinds, vec![Some(4), None]);
}

#[test]
fn verdict_names_and_mismatch() {
    let names: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
    assert_eq!(
        names,
        ["match", "wrong_price", "wrong_activity", "missed_activity", "phantom_activity", "inconclusive"]
    );
    assert_eq!(Verdict::ALL.iter().filter(|v| v.is_mismatch()).count(), 4);
}
