//! Drift injection with raw clients, recorded exactly, and the accuracy check of a run's
//! report against what was injected (per kind and target).
//!
//! Each injection takes its own goods, so one goods never carries two injected drifts on
//! one target. Kinds and targets go round robin: `missing`, `extra`, `stale`, `corrupt`,
//! `orphan` × `redis-a`, `redis-b`, `hbase-a`. Orphans are keys/rows of goods ids
//! beyond every truth row (`ORPHAN_BASE + i`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use model::projection::ActivityRow;
use model::report::Report;
use model::{hbase_row_key, ActivityId, DriftKind, GoodsId};

use crate::data::{self, Clock, Rng};
use crate::env;
use crate::hb;

pub const TARGETS: [&str; 3] = ["redis-a", "redis-b", "hbase-a"];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Injected {
    pub target: &'static str,
    pub kind: DriftKind,
    pub goods_id: GoodsId,
    /// `None` for orphans.
    pub activity_id: Option<ActivityId>,
}

pub struct Injector<'a> {
    pub clock: Clock,
    pub acts: &'a HashMap<ActivityId, ActivityRow>,
    pub redis: Vec<redis::aio::MultiplexedConnection>,
    pub hbase: Arc<Mutex<hb::Client>>,
    pub hbase_table: String,
    pub hbase_family: String,
}

impl Injector<'_> {
    /// Injects `count` drifts over goods `1..=goods`; returns them.
    pub async fn inject(&self, goods: u64, count: u64, seed: u64) -> Result<Vec<Injected>> {
        let mut rng = Rng::new(seed);
        let mut used = BTreeSet::new();
        let mut out = Vec::new();
        let mut pipes = vec![redis::pipe(), redis::pipe()];
        let mut cells = Vec::new();
        let online: Vec<ActivityId> = {
            let mut v: Vec<_> = self.acts.values().filter(|a| a.status == 1).map(|a| a.activity_id).collect();
            v.sort_unstable();
            v
        };
        let mut orphans = 0;
        let mut i = 0u64;
        while (out.len() as u64) < count {
            let kind = DriftKind::ALL[(i % 5) as usize];
            let ti = ((i / 5) % 3) as usize;
            i += 1;
            let target = TARGETS[ti];
            let (goods_id, qualifier, value, ts): (GoodsId, String, Option<Vec<u8>>, i64);
            let activity_id;
            if kind == DriftKind::Orphan {
                orphans += 1;
                goods_id = data::ORPHAN_BASE + orphans;
                let e = data::truth(1 + rng.next() % goods, self.clock, self.acts).entities.into_values().next();
                let Some(mut e) = e else { continue };
                e.aid = online[(rng.next() % online.len() as u64) as usize];
                qualifier = e.aid.to_string();
                value = Some(e.encode());
                ts = e.ver;
                activity_id = None;
            } else {
                let g = 1 + rng.next() % goods;
                if !used.insert(g) {
                    continue;
                }
                let truth = data::truth(g, self.clock, self.acts);
                let Some(first) = truth.entities.values().next().cloned() else { continue };
                goods_id = g;
                match kind {
                    DriftKind::Missing => {
                        qualifier = first.aid.to_string();
                        value = None;
                        ts = first.ver;
                        activity_id = Some(first.aid);
                    }
                    DriftKind::Extra => {
                        let aid = loop {
                            let a = online[(rng.next() % online.len() as u64) as usize];
                            if !truth.entities.contains_key(&a) {
                                break a;
                            }
                        };
                        let mut e = first.clone();
                        e.aid = aid;
                        qualifier = aid.to_string();
                        value = Some(e.encode());
                        ts = e.ver;
                        activity_id = Some(aid);
                    }
                    DriftKind::Stale => {
                        let mut e = first.clone();
                        e.price += 1;
                        qualifier = e.aid.to_string();
                        value = Some(e.encode());
                        ts = e.ver;
                        activity_id = Some(e.aid);
                    }
                    DriftKind::Corrupt => {
                        qualifier = first.aid.to_string();
                        value = Some(format!("{{\"aid\":{},\"price\":", first.aid).into_bytes());
                        ts = first.ver;
                        activity_id = Some(first.aid);
                    }
                    DriftKind::Orphan => unreachable!(),
                }
            }
            if ti < 2 {
                let key = format!("{}{goods_id}", env::KEY_PREFIX);
                match &value {
                    Some(v) => pipes[ti].cmd("HSET").arg(&key).arg(&qualifier).arg(v).ignore(),
                    None => pipes[ti].cmd("HDEL").arg(&key).arg(&qualifier).ignore(),
                };
            } else {
                cells.push(hb::Cell {
                    row: hbase_row_key(goods_id).into_bytes(),
                    qualifier: qualifier.into_bytes(),
                    value,
                    ts,
                });
            }
            out.push(Injected { target, kind, goods_id, activity_id });
        }
        for (conn, pipe) in self.redis.iter().zip(&pipes) {
            let mut c = conn.clone();
            pipe.query_async::<()>(&mut c).await?;
        }
        let hbase = self.hbase.clone();
        let (table, family) = (self.hbase_table.clone(), self.hbase_family.clone());
        tokio::task::spawn_blocking(move || hb::write(&mut hbase.lock().unwrap(), &table, &family, cells)).await??;
        out.sort();
        Ok(out)
    }
}

/// Injected, found and repaired per (target, kind), plus what the run reported beyond
/// the injected set.
#[derive(Debug, Default)]
pub struct Accuracy {
    pub rows: BTreeMap<(String, DriftKind), [u64; 3]>,
    /// Drift reported that was not injected, and injected drift not reported/repaired.
    pub unexpected: u64,
    pub missed: u64,
    pub unrepaired: u64,
    pub deferred: u64,
    pub halted: Option<String>,
}

impl Accuracy {
    pub fn perfect(&self) -> bool {
        self.unexpected == 0 && self.missed == 0 && self.unrepaired == 0 && self.deferred == 0 && self.halted.is_none()
    }
}

pub fn accuracy(injected: &[Injected], report: &Report) -> Accuracy {
    type Key = (String, DriftKind, GoodsId, Option<ActivityId>);
    let norm = |t: &str, k: DriftKind, g: GoodsId, a: Option<ActivityId>| -> Key {
        (t.to_string(), k, g, if k == DriftKind::Orphan { None } else { a })
    };
    let want: BTreeSet<Key> = injected.iter().map(|i| norm(i.target, i.kind, i.goods_id, i.activity_id)).collect();
    let found: BTreeSet<Key> =
        report.drift.iter().map(|d| norm(&d.target, d.kind, d.goods_id, d.activity_id)).collect();
    let repaired: BTreeSet<Key> =
        report.repairs.iter().map(|r| norm(&r.target, r.kind, r.goods_id, r.activity_id)).collect();
    let mut acc =
        Accuracy { deferred: report.deferred.len() as u64, halted: report.halted.clone(), ..Default::default() };
    for k in &want {
        let row = acc.rows.entry((k.0.clone(), k.1)).or_default();
        row[0] += 1;
        if found.contains(k) {
            row[1] += 1;
        } else {
            acc.missed += 1;
        }
        if repaired.contains(k) {
            row[2] += 1;
        } else {
            acc.unrepaired += 1;
        }
    }
    acc.unexpected = found.difference(&want).count() as u64 + repaired.difference(&want).count() as u64;
    for k in found.difference(&want).take(5) {
        tracing::warn!(?k, "reported drift that was not injected");
    }
    acc
}
