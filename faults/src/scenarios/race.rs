//! Scenario `race`: a correct sync pipeline racing the reconciler. For each of the race
//! goods, a writer loops: change one entity's price in truth, publish the Canal event,
//! read the new projection, wait 0-600 ms, then write it to both targets as the sync
//! pipeline would (Redis `HSET`, HBase put at timestamp `ver`). Meanwhile `serve` checks
//! the events (settle window 0, so nothing is deferred) and `reconciler repair` runs back
//! to back over every race goods.
//!
//! A race is a sync write issued while a `reconciler repair` over its goods is running.
//! A stale overwrite is a cell found holding an older `ver` than the harness last wrote
//! there: checked before each of the harness's writes, by a sweep of every race cell
//! every 250 ms, and once at the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use model::{hbase_row_key, ActivityId, Entity, GoodsId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::FutureRecord;
use serde_json::json;

use super::{pause, Outcome, Run};
use crate::check::Checker;
use crate::env::{Ctx, Env};
use crate::{hb, procs, stream};

/// Shared state of the writers, the repair loop and the sweeper.
#[derive(Default)]
struct Shared {
    /// (goods, aid) → the last `ver` the harness wrote there.
    written: Mutex<HashMap<(GoodsId, ActivityId), i64>>,
    repairing: AtomicBool,
    races: AtomicU64,
    writes: AtomicU64,
    stale: Mutex<Vec<String>>,
    stop: AtomicBool,
    repair_runs: AtomicU64,
    repairs: AtomicU64,
    conflicts_or_deferred: AtomicU64,
}

impl Shared {
    fn stale(&self, what: String) {
        let mut s = self.stale.lock().unwrap();
        s.push(what);
    }
}

/// The `ver` a target cell holds, if any value decodes there.
fn ver_of(bytes: Option<&[u8]>) -> Option<i64> {
    bytes.and_then(|b| Entity::decode(b).ok()).map(|e| e.ver)
}

struct Cells {
    redis: redis::aio::MultiplexedConnection,
    key_prefix: String,
    hbase: String,
    table: String,
}

impl Cells {
    /// What each target holds for (goods, aid): (redis ver, hbase ver).
    async fn read(&mut self, cells: &[(GoodsId, ActivityId)]) -> Result<Vec<(Option<i64>, Option<i64>)>> {
        let mut pipe = redis::pipe();
        for (g, a) in cells {
            pipe.cmd("HGET").arg(format!("{}{g}", self.key_prefix)).arg(a.to_string());
        }
        let r: Vec<Option<Vec<u8>>> = pipe.query_async(&mut self.redis).await?;
        let (addr, table) = (self.hbase.clone(), self.table.clone());
        let keys: Vec<String> = cells.iter().map(|(g, _)| hbase_row_key(*g)).collect();
        let rows = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut c = hb::connect(&addr)?;
            hb::read_rows(&mut c, &table, &keys)
        })
        .await??;
        Ok(cells
            .iter()
            .zip(r)
            .map(|((g, a), rv)| {
                let hv = rows
                    .get(&hbase_row_key(*g))
                    .and_then(|c| c.get(a.to_string().as_bytes()))
                    .map(|(v, _)| v.as_slice());
                (ver_of(rv.as_deref()), ver_of(hv))
            })
            .collect())
    }

    fn judge(
        &self,
        shared: &Shared,
        cells: &[(GoodsId, ActivityId)],
        seen: &[(Option<i64>, Option<i64>)],
        want: &[i64],
        when: &str,
    ) {
        for (((g, a), (r, h)), w) in cells.iter().zip(seen).zip(want) {
            for (target, v) in [("redis-a", r), ("hbase-a", h)] {
                if v.is_none_or(|v| v < *w) {
                    shared.stale(format!(
                        "{when}: goods {g} activity {a} on {target} holds ver {v:?} after the harness wrote {w}"
                    ));
                }
            }
        }
    }
}

pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let target_races: u64 = if ctx.quick { 1_000 } else { 10_000 };
    let (_hbase, hbase_addr) = procs::start_emulator(&ctx.binary, &ctx.work)?;
    let mut env = Env::new(
        ctx,
        "race",
        common::testenv::mysql_url(),
        format!("{}/0", common::testenv::redis_url().trim_end_matches('/')),
        hbase_addr,
        common::testenv::kafka_brokers(),
    )?;
    env.settle_ms = 0;
    env.stages_ms = vec![300];
    let mut run = Run::prepare(ctx, env, 1, 1, 0x7ACE).await?;
    let mut out = Outcome {
        name: "race".into(),
        fault: format!("a sync writer racing checks and repairs ({target_races} races; settle window 0, stage 300 ms, `reconciler repair` back to back)"),
        ..Default::default()
    };
    // Race goods: the first 200 with an entity; one race cell (activity) each.
    let ids: Vec<GoodsId> = run.universe.as_ref().expect("seeded").goods.keys().copied().take(600).collect();
    let truth = run.checker.truth(&ids).await?;
    let cells: Vec<(GoodsId, ActivityId)> =
        truth.iter().filter_map(|(&g, t)| t.entities.keys().next().map(|&a| (g, a))).take(200).collect();
    let shared = Arc::new(Shared::default());
    let producer = stream::producer(&run.env.brokers)?;
    let redis_client = redis::Client::open(run.env.redis_url.as_str())?;
    let mut tasks = Vec::new();

    // The repair loop.
    {
        let shared = shared.clone();
        let (binary, config) = (run.env.binary.clone(), run.env.config.clone());
        let list = cells.iter().map(|(g, _)| g.to_string()).collect::<Vec<_>>().join(",");
        tasks.push(tokio::spawn(async move {
            while !shared.stop.load(Ordering::SeqCst) {
                shared.repairing.store(true, Ordering::SeqCst);
                let (b, c, l) = (binary.clone(), config.clone(), list.clone());
                let res = tokio::task::spawn_blocking(move || {
                    crate::env::run_reconciler(&b, &c, &["repair", "--goods", &l, "--json"])
                })
                .await;
                shared.repairing.store(false, Ordering::SeqCst);
                shared.repair_runs.fetch_add(1, Ordering::SeqCst);
                if let Ok(Ok(text)) = res {
                    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) {
                        let n = |k: &str| doc[k].as_array().map_or(0, |a| a.len() as u64);
                        shared.repairs.fetch_add(n("repairs"), Ordering::SeqCst);
                        shared.conflicts_or_deferred.fetch_add(n("deferred"), Ordering::SeqCst);
                    }
                }
            }
        }));
    }

    // The writers: 200 goods, each a cycle every 0.3-1.2 s.
    for (i, &(g, aid)) in cells.iter().enumerate() {
        let shared = shared.clone();
        let checker: Checker = run.checker.clone();
        let producer = producer.clone();
        let topic = run.env.topic("canal");
        let sh = run.env.layout.route(g);
        let mut target = Cells {
            redis: redis_client.get_multiplexed_async_connection().await?,
            key_prefix: run.env.key_prefix.clone(),
            hbase: run.env.hbase_addr.clone(),
            table: run.env.hbase_table.clone(),
        };
        let pool = run.pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(0x7ACE0 + i as u64);
            let key = format!("{}{g}", target.key_prefix);
            let row = hbase_row_key(g);
            while !shared.stop.load(Ordering::SeqCst) {
                pause(rng.gen_range(300..1200)).await;
                let sql = format!(
                    "UPDATE `{}`.{} SET activity_price = activity_price + 1 WHERE goods_id = {g} AND activity_id = {aid}",
                    sh.database, sh.goods_table
                );
                if sqlx::raw_sql(&sql).execute(&pool).await.is_err() {
                    continue;
                }
                let event = stream::canal(&sh.database, &sh.goods_table, "UPDATE",
                    json!({"goods_id": g.to_string(), "activity_id": aid.to_string()}));
                let _ = producer.send_result(FutureRecord::to(&topic).key(&g.to_string()).payload(&event));
                let Ok(t) = checker.truth(&[g]).await else { continue };
                let Some(e) = t.get(&g).and_then(|t| t.entities.get(&aid)).cloned() else { continue };
                pause(rng.gen_range(0..600)).await;
                // Before writing: nothing older than what the harness last wrote.
                let last = shared.written.lock().unwrap().get(&(g, aid)).copied();
                if let (Some(w), Ok(seen)) = (last, target.read(&[(g, aid)]).await) {
                    target.judge(&shared, &[(g, aid)], &seen, &[w], "before a sync write");
                }
                let racing = shared.repairing.load(Ordering::SeqCst);
                let bytes = e.encode();
                let mut c = target.redis.clone();
                if redis::cmd("HSET").arg(&key).arg(aid.to_string()).arg(&bytes).query_async::<()>(&mut c).await.is_err() {
                    continue;
                }
                let (addr, table, ver) = (target.hbase.clone(), target.table.clone(), e.ver);
                let row2 = row.clone();
                let put = tokio::task::spawn_blocking(move || -> Result<()> {
                    let mut c = hb::connect(&addr)?;
                    hb::put(&mut c, &table, &row2, aid.to_string().as_bytes(), bytes, ver)
                })
                .await;
                if !matches!(put, Ok(Ok(()))) {
                    continue;
                }
                shared.written.lock().unwrap().insert((g, aid), ver);
                shared.writes.fetch_add(1, Ordering::SeqCst);
                if racing || shared.repairing.load(Ordering::SeqCst) {
                    shared.races.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }

    // The sweeper.
    {
        let shared = shared.clone();
        let mut target = Cells {
            redis: redis_client.get_multiplexed_async_connection().await?,
            key_prefix: run.env.key_prefix.clone(),
            hbase: run.env.hbase_addr.clone(),
            table: run.env.hbase_table.clone(),
        };
        tasks.push(tokio::spawn(async move {
            while !shared.stop.load(Ordering::SeqCst) {
                let snapshot: Vec<((GoodsId, ActivityId), i64)> =
                    shared.written.lock().unwrap().iter().map(|(&k, &v)| (k, v)).collect();
                let (keys, want): (Vec<_>, Vec<_>) = snapshot.into_iter().unzip();
                if !keys.is_empty() {
                    if let Ok(seen) = target.read(&keys).await {
                        target.judge(&shared, &keys, &seen, &want, "sweep");
                    }
                }
                pause(250).await;
            }
        }));
    }

    let started = Instant::now();
    let limit = Duration::from_secs(if ctx.quick { 240 } else { 1200 });
    while shared.races.load(Ordering::SeqCst) < target_races && started.elapsed() < limit {
        pause(1_000).await;
    }
    shared.stop.store(true, Ordering::SeqCst);
    let stop_at = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    // The end: every cell the harness wrote, once more.
    let snapshot: Vec<((GoodsId, ActivityId), i64)> =
        shared.written.lock().unwrap().iter().map(|(&k, &v)| (k, v)).collect();
    let (keys, want): (Vec<_>, Vec<_>) = snapshot.into_iter().unzip();
    let mut target = Cells {
        redis: redis_client.get_multiplexed_async_connection().await?,
        key_prefix: run.env.key_prefix.clone(),
        hbase: run.env.hbase_addr.clone(),
        table: run.env.hbase_table.clone(),
    };
    let seen = target.read(&keys).await?;
    target.judge(&shared, &keys, &seen, &want, "end");

    let goods: Vec<GoodsId> = cells.iter().map(|(g, _)| *g).collect();
    let bad = run.settle(&goods, Duration::from_secs(60)).await;
    out.recovery_ms = Some(stop_at.elapsed().as_millis() as u64).filter(|_| bad.is_empty());
    let log = stream::Log {
        touched: goods.iter().map(|&g| (g, stop_at)).collect(),
        changes: shared.writes.load(Ordering::SeqCst),
        events: shared.writes.load(Ordering::SeqCst),
        ..Default::default()
    };
    run.finish(&log, &[], &mut out).await?;
    let stale = shared.stale.lock().unwrap().clone();
    out.stale_overwrites = Some(stale.len() as u64);
    out.notes.push(format!(
        "{} races in {} sync writes; {} `reconciler repair` runs over the {} race goods reported {} repairs and {} deferrals",
        shared.races.load(Ordering::SeqCst),
        shared.writes.load(Ordering::SeqCst),
        shared.repair_runs.load(Ordering::SeqCst),
        goods.len(),
        shared.repairs.load(Ordering::SeqCst),
        shared.conflicts_or_deferred.load(Ordering::SeqCst),
    ));
    out.notes.extend(stale.into_iter().take(5));
    run.clean_up(ctx).await;
    Ok(out)
}
