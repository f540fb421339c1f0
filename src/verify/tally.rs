//! Counts of verified samples, and the summary `reconciler verify` and the demo print:
//! readable (verdicts, causes, every dimension, the first mismatches in full) or as the
//! counts of the JSON document. Memory is bounded whatever the number of samples: label
//! values are bounded, only the first [`FIRST_MISMATCHES`] mismatches and
//! [`HINT_GOODS`] goods to repair are kept.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use model::pricing::dimensions::{kind_label, reason_label, DIMENSIONS};
use model::pricing::{Cause, Inconclusive, Pick, Scene, Verdict};
use model::GoodsId;
use serde_json::{json, Map, Value};

use super::Verified;

/// Mismatches printed in full by the readable summary.
pub const FIRST_MISMATCHES: usize = 20;
/// Goods with a stale source listed for `reconciler repair`.
pub const HINT_GOODS: usize = 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DimCount {
    pub samples: u64,
    pub mismatches: u64,
    pub logic: u64,
    pub stale_source: u64,
    pub inconclusive: u64,
}

/// `(scene, reason, type)` of a dropped activity.
pub type DropKey = (&'static str, &'static str, &'static str);

#[derive(Debug, Default)]
pub struct Tally {
    pub samples: u64,
    pub verdicts: BTreeMap<Verdict, u64>,
    pub causes: BTreeMap<Cause, u64>,
    pub inconclusive: BTreeMap<Inconclusive, u64>,
    /// By (index into [`DIMENSIONS`], value).
    pub dimensions: BTreeMap<(usize, String), DimCount>,
    pub dropped: BTreeMap<DropKey, u64>,
    pub wrong_drops: BTreeMap<DropKey, u64>,
    /// Samples whose answer had a price <= 0.
    pub nonpositive_prices: u64,
    /// Samples whose goods should be checked (stale source, removed rows still held).
    pub check_samples: u64,
    pub check_goods: BTreeSet<GoodsId>,
    pub first: Vec<Value>,
}

impl Tally {
    /// Counts one sample; returns its JSON entry when it is a mismatch.
    pub fn add(&mut self, v: &Verified) -> Option<Value> {
        let j = &v.judgement;
        self.samples += 1;
        *self.verdicts.entry(j.verdict).or_default() += 1;
        if let Some(c) = j.cause {
            *self.causes.entry(c).or_default() += 1;
        }
        if let Some(i) = j.inconclusive {
            *self.inconclusive.entry(i).or_default() += 1;
        }
        for (dim, value) in v.labels.pairs() {
            let index = DIMENSIONS.iter().position(|d| *d == dim).unwrap_or(DIMENSIONS.len());
            let c = self.dimensions.entry((index, value.to_string())).or_default();
            c.samples += 1;
            c.mismatches += u64::from(j.verdict.is_mismatch());
            c.logic += u64::from(j.cause == Some(Cause::Logic));
            c.stale_source += u64::from(j.cause == Some(Cause::StaleSource));
            c.inconclusive += u64::from(j.verdict == Verdict::Inconclusive);
        }
        let scene = v.sample.scene.as_str();
        if let Some(ctx) = &v.sample.context {
            for (d, kind) in ctx.dropped.iter().zip(&j.dropped_kinds) {
                *self.dropped.entry((scene, reason_label(&d.reason), kind_label(*kind))).or_default() += 1;
            }
            for d in &j.wrong_drops {
                let kind = ctx.dropped.iter().position(|x| x.aid == d.aid).and_then(|i| j.dropped_kinds[i]);
                *self.wrong_drops.entry((scene, reason_label(&d.reason), kind_label(kind))).or_default() += 1;
            }
        }
        if v.sample.answer.is_some_and(|a| a.price <= 0) {
            self.nonpositive_prices += 1;
        }
        if j.check_goods {
            self.check_samples += 1;
            if self.check_goods.len() < HINT_GOODS {
                self.check_goods.insert(v.sample.goods_id);
            }
        }
        if !j.verdict.is_mismatch() {
            return None;
        }
        let entry = mismatch_entry(v);
        if self.first.len() < FIRST_MISMATCHES {
            self.first.push(entry.clone());
        }
        Some(entry)
    }

    pub fn mismatches(&self) -> u64 {
        self.verdicts.iter().filter(|(v, _)| v.is_mismatch()).map(|(_, n)| n).sum()
    }

    pub fn count(&self, verdict: Verdict) -> u64 {
        self.verdicts.get(&verdict).copied().unwrap_or(0)
    }

    /// The counts of the JSON document (everything but `mismatches`).
    pub fn json_counts(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("samples".into(), json!(self.samples));
        let verdicts: Map<String, Value> =
            Verdict::ALL.iter().map(|v| (v.as_str().into(), json!(self.count(*v)))).collect();
        m.insert("verdicts".into(), Value::Object(verdicts));
        let causes: Map<String, Value> =
            Cause::ALL.iter().map(|c| (c.as_str().into(), json!(self.causes.get(c).copied().unwrap_or(0)))).collect();
        m.insert("causes".into(), Value::Object(causes));
        let inconclusive: Map<String, Value> = Inconclusive::ALL
            .iter()
            .map(|i| (i.as_str().into(), json!(self.inconclusive.get(i).copied().unwrap_or(0))))
            .collect();
        m.insert("inconclusive".into(), Value::Object(inconclusive));
        let mut dims = Map::new();
        for ((index, value), c) in &self.dimensions {
            let name = DIMENSIONS.get(*index).copied().unwrap_or("other");
            let entry = dims.entry(name).or_insert_with(|| Value::Object(Map::new()));
            entry.as_object_mut().expect("object").insert(
                value.clone(),
                json!({"samples": c.samples, "mismatches": c.mismatches, "logic": c.logic,
                       "stale_source": c.stale_source, "inconclusive": c.inconclusive}),
            );
        }
        m.insert("dimensions".into(), Value::Object(dims));
        let drops = |map: &BTreeMap<DropKey, u64>| -> Value {
            map.iter().map(|((s, r, t), n)| json!({"scene": s, "reason": r, "type": t, "count": n})).collect()
        };
        m.insert("dropped".into(), drops(&self.dropped));
        m.insert("wrong_drops".into(), drops(&self.wrong_drops));
        m.insert("nonpositive_prices".into(), json!(self.nonpositive_prices));
        m.insert("check_goods".into(), json!(self.check_goods));
        m
    }

    /// The readable summary.
    pub fn human(&self, elapsed_ms: u64) -> String {
        let mut out = String::new();
        let secs = elapsed_ms as f64 / 1000.0;
        let rate = if secs > 0.0 { self.samples as f64 / secs } else { 0.0 };
        let _ = writeln!(
            out,
            "verified {} samples in {secs:.2} s ({rate:.0}/s): {} match, {} mismatches, {} inconclusive",
            self.samples,
            self.count(Verdict::Match),
            self.mismatches(),
            self.count(Verdict::Inconclusive)
        );
        let line =
            |items: Vec<(&str, u64)>| items.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ");
        let _ =
            writeln!(out, "verdicts: {}", line(Verdict::ALL.iter().map(|v| (v.as_str(), self.count(*v))).collect()));
        let _ = writeln!(
            out,
            "causes: {}",
            line(Cause::ALL.iter().map(|c| (c.as_str(), self.causes.get(c).copied().unwrap_or(0))).collect())
        );
        let _ = writeln!(
            out,
            "inconclusive: {}",
            line(
                Inconclusive::ALL
                    .iter()
                    .map(|i| (i.as_str(), self.inconclusive.get(i).copied().unwrap_or(0)))
                    .collect()
            )
        );
        if !self.dimensions.is_empty() {
            let _ = writeln!(
                out,
                "by dimension:\n  {:<10} {:<18} {:>9} {:>10} {:>7} {:>7} {:>12} {:>12}",
                "dimension", "value", "samples", "mismatches", "ratio", "logic", "stale_source", "inconclusive"
            );
            for ((index, value), c) in &self.dimensions {
                let ratio = if c.samples > 0 { 100.0 * c.mismatches as f64 / c.samples as f64 } else { 0.0 };
                let _ = writeln!(
                    out,
                    "  {:<10} {:<18} {:>9} {:>10} {:>6.1}% {:>7} {:>12} {:>12}",
                    DIMENSIONS.get(*index).copied().unwrap_or("other"),
                    value,
                    c.samples,
                    c.mismatches,
                    ratio,
                    c.logic,
                    c.stale_source,
                    c.inconclusive
                );
            }
        }
        drops_table(&mut out, "dropped activities by reason and scene", &self.dropped);
        drops_table(&mut out, "WRONG DROPS (the rule's winner was dropped) by reason and scene", &self.wrong_drops);
        if self.nonpositive_prices > 0 {
            let _ = writeln!(out, "PRICES <= 0 answered by the service: {}", self.nonpositive_prices);
        }
        if !self.first.is_empty() {
            let _ = writeln!(out, "first {} mismatches:", self.first.len());
            for m in &self.first {
                let _ = writeln!(out, "  {}", describe(m));
            }
        }
        if self.check_samples > 0 {
            let ids: Vec<String> = self.check_goods.iter().take(40).map(u64::to_string).collect();
            let more = if self.check_goods.len() > 40 { ",…" } else { "" };
            let _ = writeln!(
                out,
                "{} samples found a drifted source target on {} goods; serve publishes check jobs for them, by hand: reconciler repair --goods {}{more}",
                self.check_samples,
                self.check_goods.len(),
                ids.join(",")
            );
        }
        out
    }
}

/// Reasons down, scenes across (types are in the JSON document and the metrics).
fn drops_table(out: &mut String, title: &str, map: &BTreeMap<DropKey, u64>) {
    if map.is_empty() {
        return;
    }
    let mut by: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for ((scene, reason, _), n) in map {
        *by.entry(reason).or_default().entry(scene).or_default() += n;
    }
    let _ = write!(out, "{title}:\n  {:<16}", "reason");
    for scene in Scene::ALL {
        let _ = write!(out, " {:>10}", scene.as_str());
    }
    let _ = writeln!(out);
    for (reason, scenes) in by {
        let _ = write!(out, "  {reason:<16}");
        for scene in Scene::ALL {
            let _ = write!(out, " {:>10}", scenes.get(scene.as_str()).copied().unwrap_or(0));
        }
        let _ = writeln!(out);
    }
}

fn pick(p: Option<Pick>) -> Value {
    p.map(|p| json!({"activity_id": p.activity_id, "price": p.price})).unwrap_or(Value::Null)
}

/// One mismatch as the JSON document lists it.
pub fn mismatch_entry(v: &Verified) -> Value {
    let (s, j) = (&v.sample, &v.judgement);
    json!({
        "sample_id": s.sample_id,
        "goods_id": s.goods_id,
        "sku_id": s.sku_id,
        "scene": s.scene.as_str(),
        "member": s.member,
        "at_ms": s.at_ms,
        "source": s.source(),
        "verdict": j.verdict.as_str(),
        "cause": j.cause.map(Cause::as_str),
        "expected": pick(j.expected),
        "answer": pick(s.answer),
        "wrong_drops": j.wrong_drops.iter().map(|d| json!({"aid": d.aid, "reason": d.reason})).collect::<Vec<_>>(),
        "note": j.note,
    })
}

/// One line for a mismatch entry.
fn describe(m: &Value) -> String {
    let show = |p: &Value| match p.get("activity_id") {
        Some(a) => format!("activity {} at {}", a, p["price"]),
        None => "no activity".to_string(),
    };
    let sku = m["sku_id"].as_u64().map(|k| format!(" sku {k}")).unwrap_or_default();
    let source = m["source"].as_str().unwrap_or("-");
    let note = m["note"].as_str().map(|n| format!(" ({n})")).unwrap_or_default();
    let drops = m["wrong_drops"]
        .as_array()
        .filter(|d| !d.is_empty())
        .map(|d| {
            format!(
                " wrong_drop: {}",
                d.iter().map(|x| x["reason"].as_str().unwrap_or("?")).collect::<Vec<_>>().join(",")
            )
        })
        .unwrap_or_default();
    format!(
        "sample {} goods {}{sku} {} source {source}: {} {}: service {}, rule {}{drops}{note}",
        m["sample_id"].as_str().unwrap_or("?"),
        m["goods_id"],
        m["scene"].as_str().unwrap_or("?"),
        m["verdict"].as_str().unwrap_or("?"),
        m["cause"].as_str().unwrap_or("-"),
        show(&m["answer"]),
        show(&m["expected"]),
    )
}
