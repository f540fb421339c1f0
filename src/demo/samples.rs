//! The demo's pricing samples (contract section 10): a few hundred requests answered the
//! way the pricing service would, from what the targets hold after the drift injection,
//! with a share of deliberate mistakes of every kind. Most answers are right; those read
//! from a drifted target are `stale_source`; the planted mistakes are `logic`; a few are
//! inconclusive (a sample older than the truth, an activity with no rows).

use std::collections::HashMap;

use handlers::verify::{decode_held, Held};
use handlers::Target;
use model::pricing::{applies, winner, Dropped, Pick, Query, Sample, SampleContext, Scene};
use model::{DriftKind, Entity, GoodsId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{FIRST_GOODS, GOODS};
use crate::app::App;

/// Every `MISTAKE_EVERY`-th sample carries a planted logic mistake.
const MISTAKE_EVERY: usize = 9;

/// The samples, in the order they are verified.
pub async fn generate(app: &App, now_ms: i64, drifted: &[(String, DriftKind, GoodsId)]) -> anyhow::Result<Vec<Sample>> {
    let ids: Vec<GoodsId> = (FIRST_GOODS..FIRST_GOODS + GOODS).collect();
    let targets = app.handler.targets();
    let mut held: HashMap<&str, HashMap<GoodsId, Held>> = HashMap::new();
    for t in targets {
        let mut wanted = ids.clone();
        wanted.extend(drifted.iter().filter(|(n, _, _)| n == t.name()).map(|(_, _, g)| *g));
        let observed = t.read(&wanted).await?;
        held.insert(t.name(), wanted.into_iter().zip(observed.iter().map(decode_held)).collect());
    }
    let truth = app.handler.truth().read(&ids).await?;
    let source_of = |scene: Scene, i: usize| -> &dyn Target {
        let pick = |kind: &str| targets.iter().filter(|t| t.kind() == kind).nth(i / 4);
        let by_kind = if scene == Scene::List { targets.iter().find(|t| t.kind() == "hbase") } else { pick("redis") };
        by_kind.or_else(|| targets.get(i % targets.len())).map(|t| t.as_ref()).expect("at least one target")
    };

    let mut rng = StdRng::seed_from_u64(7);
    let mut samples = Vec::new();
    for (i, g) in ids.iter().enumerate() {
        let scene = Scene::ALL[i % 4];
        let source = source_of(scene, i % 8);
        let entities = &held[source.name()][g];
        let skus: Vec<u64> = truth[g].entities.values().flat_map(|e| e.skus.iter().map(|(k, _)| *k)).collect();
        let sku_id = match (skus.is_empty(), rng.gen_ratio(1, 2)) {
            (false, true) => Some(skus[rng.gen_range(0..skus.len())]),
            _ if rng.gen_ratio(1, 8) => Some(g * 10 + 9),
            _ => None,
        };
        let q = Query { sku_id, at_ms: now_ms, member: rng.gen_ratio(1, 3) };
        let mut s = answered(format!("demo-{i}"), scene, *g, q, source.name(), entities);
        if i % MISTAKE_EVERY == MISTAKE_EVERY - 1 {
            plant_mistake(&mut s, i / MISTAKE_EVERY, entities, &q);
        }
        samples.push(s);
    }
    // Requests answered from the drifted targets (before the full run repairs them).
    for (n, (target, kind, g)) in drifted.iter().enumerate() {
        if *kind == DriftKind::Orphan {
            continue;
        }
        let scene = if target.starts_with("hbase") { Scene::List } else { Scene::Detail };
        for member in [false, true] {
            let q = Query { sku_id: None, at_ms: now_ms, member };
            let id = format!("demo-drift-{n}-{}", u8::from(member));
            samples.push(answered(id, scene, *g, q, target, &held[target.as_str()][g]));
        }
    }
    // One of each kind of oddity: an unknown source, a sample older than the truth, an
    // activity that has no rows.
    let g = ids[0];
    let first = &held[targets[0].name()][&g];
    let q = Query { sku_id: None, at_ms: now_ms, member: true };
    let mut odd = answered("demo-unknown-source".into(), Scene::Order, g, q, "redis-z", first);
    odd.answer = Some(Pick { activity_id: odd.answer.map_or(7001, |a| a.activity_id), price: 1 });
    samples.push(odd);
    let before = Query { at_ms: now_ms - 2 * 3_600_000, ..q };
    samples.push(answered("demo-before-truth".into(), Scene::Detail, g, before, targets[0].name(), first));
    let mut archived = answered("demo-archived".into(), Scene::Detail, g, q, targets[0].name(), first);
    archived.answer = Some(Pick { activity_id: 424_242, price: 99 });
    samples.push(archived);
    Ok(samples)
}

/// The sample of a request the service answered with the rule applied to `entities`.
fn answered(id: String, scene: Scene, goods_id: GoodsId, q: Query, source: &str, entities: &Held) -> Sample {
    let answer = winner(entities.values(), &q);
    let dropped = entities
        .values()
        .filter(|e| Some(e.aid) != answer.map(|a| a.activity_id))
        .map(|e| Dropped { aid: e.aid, reason: drop_reason(e, &q, answer).into() })
        .collect();
    Sample {
        sample_id: id,
        scene,
        goods_id,
        sku_id: q.sku_id,
        at_ms: q.at_ms,
        member: q.member,
        answer,
        context: Some(SampleContext {
            source: Some(source.to_string()),
            candidates: entities.keys().copied().collect(),
            dropped,
        }),
    }
}

fn drop_reason(e: &Entity, q: &Query, answer: Option<Pick>) -> &'static str {
    if q.at_ms < e.start {
        "not_started"
    } else if q.at_ms > e.end {
        "ended"
    } else if e.kind == model::pricing::rule::MEMBER_PRICE && !q.member {
        "member_only"
    } else if applies(e, q).is_none() {
        "sku_not_covered"
    } else if answer.is_some_and(|a| applies(e, q).is_some_and(|p| p > a.price)) {
        "higher_price"
    } else {
        "lower_priority"
    }
}

/// Makes the answer wrong in one of five ways (by `n`), when the goods allows it.
fn plant_mistake(s: &mut Sample, n: usize, entities: &Held, q: &Query) {
    let runner_up = entities
        .values()
        .filter(|e| Some(e.aid) != s.answer.map(|a| a.activity_id))
        .find_map(|e| applies(e, q).map(|p| (e.aid, p)));
    match (n % 5, s.answer) {
        (0, Some(a)) => s.answer = Some(Pick { price: a.price + 10, ..a }),
        (1, Some(a)) if runner_up.is_some() => {
            let (aid, price) = runner_up.expect("checked");
            s.answer = Some(Pick { activity_id: aid, price });
            // The winner dropped as if it lost on priority: a wrong drop.
            let ctx = s.context.as_mut().expect("demo samples have a context");
            ctx.dropped.retain(|d| d.aid != aid);
            ctx.dropped.push(Dropped { aid: a.activity_id, reason: "lower_priority".into() });
        }
        (2, Some(_)) => s.answer = None,
        (3, Some(a)) => s.answer = Some(Pick { price: 0, ..a }),
        (_, None) => {
            if let Some(e) = entities.values().next() {
                s.answer = Some(Pick { activity_id: e.aid, price: e.price });
            }
        }
        (_, Some(a)) => s.answer = Some(Pick { price: a.price - 1, ..a }),
    }
}
