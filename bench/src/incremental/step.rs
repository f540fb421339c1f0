//! One step of the incremental phase: a set of changes offered at one rate.
//!
//! Each event is a real change of truth that the sync pipeline "lost": the bench raises
//! one `activity_goods` row's price in MariaDB (batched UPDATEs per shard, every 100 ms,
//! each tick in a task of its own so slow acknowledgements do not slow the offer) and
//! leaves the targets alone, then produces the Canal flat message DTS would, batched as
//! DTS's producer batches (up to `--canal-batch` records per Kafka record batch). The
//! service checks the goods after the stage delay and repairs it. The bench records when
//! each change was committed and polls `redis-a` (pipelined `HGET`, every 50 ms) until
//! the new price is there.
//!
//! Figures: events/s sustained = events / (last repair seen - first change - stage
//! delay), completeness polled on every change every 250 ms once all were produced;
//! change-to-repair latency beyond the stage delay, p50 and p99, on every 10th change
//! (resolution: the 50 ms poll); events never repaired within the wait.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use model::{ActivityId, Entity, GoodsId, ShardLayout};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use super::service::BROKERS;
use super::Step;
use crate::data::{self, Clock};
use crate::env;

struct Options {
    rate: u64,
    stage_ms: u64,
}

fn canal(db: &str, table: &str, goods: GoodsId, aid: ActivityId, price: i64) -> String {
    let now = common::clock::now_ms();
    json!({"data": [{"goods_id": goods.to_string(), "activity_id": aid.to_string(), "activity_price": price.to_string()}],
           "database": db, "es": now, "id": 1, "isDdl": false, "old": [{"activity_price": (price - 1).to_string()}],
           "pkNames": ["id"], "table": table, "ts": now, "type": "UPDATE"})
    .to_string()
}

/// One change: the goods, its activity, the new price, when it was committed.
pub struct Change {
    goods: GoodsId,
    aid: ActivityId,
    price: i64,
    at: Option<Instant>,
    repaired: Option<Instant>,
}

/// What one step needs: the data set, the broker topic, and where to poll.
pub struct Ctx<'a> {
    pub pools: &'a common::mysql::MysqlPools,
    pub layout: &'a ShardLayout,
    pub topic: String,
    pub stage_ms: u64,
    pub canal_batch: u32,
}

/// Picks `total` changes on distinct goods not in `seen` (goods with at least one
/// entity), spread over the id range; fewer when the universe runs out.
pub fn pick(
    goods: u64,
    clock: Clock,
    acts: &HashMap<ActivityId, model::ActivityRow>,
    seen: &mut std::collections::HashSet<GoodsId>,
    total: u64,
    rng: &mut data::Rng,
) -> Vec<Change> {
    let mut changes = Vec::with_capacity(total as usize);
    let mut misses = 0u64;
    while (changes.len() as u64) < total && misses < goods.saturating_mul(4) {
        let g = 1 + rng.next() % goods;
        if !seen.insert(g) {
            misses += 1;
            continue;
        }
        let t = data::truth(g, clock, acts);
        let Some((&aid, e)) = t.entities.iter().next() else { continue };
        changes.push(Change { goods: g, aid, price: e.price + 1, at: None, repaired: None });
    }
    changes
}

/// One tick's changes: the truth UPDATEs (one per shard), then the Canal event of each;
/// when the truth was committed.
async fn offer(
    pools: &common::mysql::MysqlPools,
    layout: &ShardLayout,
    producer: &FutureProducer,
    topic: &str,
    changes: &[(GoodsId, ActivityId, i64)],
) -> Result<Instant> {
    let mut by_shard: std::collections::BTreeMap<u32, Vec<(GoodsId, ActivityId)>> = Default::default();
    for &(g, aid, _) in changes {
        by_shard.entry(layout.shard_of(g)).or_default().push((g, aid));
    }
    let updates = by_shard.iter().map(|(&s, pairs)| {
        let shard = layout.shard(s);
        let pairs: Vec<String> = pairs.iter().map(|(g, aid)| format!("({g},{aid})")).collect();
        let sql = format!(
            "UPDATE `{}`.{} SET activity_price = activity_price + 1 WHERE (goods_id, activity_id) IN ({})",
            shard.database,
            shard.goods_table,
            pairs.join(",")
        );
        let pool = pools.shard_pool(shard.database_index).clone();
        async move { sqlx::raw_sql(&sql).execute(&pool).await }
    });
    futures::future::try_join_all(updates).await?;
    let at = Instant::now();
    let sends = changes.iter().map(|&(g, aid, price)| {
        let shard = layout.route(g);
        let payload = canal(&shard.database, &shard.goods_table, g, aid, price);
        let key = g.to_string();
        async move {
            producer
                .send(FutureRecord::to(topic).key(&key).payload(&payload), Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)
        }
    });
    futures::future::try_join_all(sends).await?;
    Ok(at)
}

/// Offers `changes` at `rate` per second (truth UPDATE per shard, then the Canal event
/// per change), follows every 10th to its repair, then waits for all of them.
pub async fn run(ctx: &Ctx<'_>, mut changes: Vec<Change>, rate: u64) -> Result<Step> {
    let (pools, layout, topic) = (ctx.pools, ctx.layout, ctx.topic.clone());
    let opts = Options { rate, stage_ms: ctx.stage_ms };
    let producer: FutureProducer =
        // Batched as DTS's own producer batches (each tick's events go out together);
        // `--canal-batch 1` sends one record per batch, as the project's producers do
        // with Tansu.
        ClientConfig::new()
            .set("bootstrap.servers", BROKERS)
            .set("batch.num.messages", ctx.canal_batch.to_string())
            .set("message.timeout.ms", "30000")
            .create()?;
    let mut redis = redis::Client::open(env::REDIS_A)?.get_multiplexed_async_connection().await?;

    let tick = Duration::from_millis(100);
    let per_tick = (opts.rate / 10).max(1) as usize;
    let t0 = Instant::now();
    let mut next = 0usize;
    let mut tick_no = 0u32;
    let mut pending: Vec<usize> = Vec::new();
    let poll_every = Duration::from_millis(50);
    let mut last_poll = Instant::now();
    let deadline_after_last = Duration::from_millis(opts.stage_ms) + Duration::from_secs(60);
    let mut produced_all: Option<Instant> = None;
    let mut all_done: Option<Instant> = None;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(usize, usize, Instant)>>();
    let mut offered_count = 0usize;
    loop {
        // Offer this tick's changes in a task of its own, so a slow commit or broker
        // acknowledgement delays that tick only, not the ticks after it: the bench must
        // be able to offer more than the service takes.
        if next < changes.len() && t0.elapsed() >= tick * tick_no {
            let end = (next + per_tick).min(changes.len());
            let tick_changes: Vec<(GoodsId, ActivityId, i64)> =
                changes[next..end].iter().map(|c| (c.goods, c.aid, c.price)).collect();
            let (first, done) = (next, done_tx.clone());
            let (producer, topic, layout) = (producer.clone(), topic.clone(), layout.clone());
            let pools = pools.clone();
            tokio::spawn(async move {
                let offered = offer(&pools, &layout, &producer, &topic, &tick_changes).await;
                let _ = done.send(offered.map(|at| (first, first + tick_changes.len(), at)));
            });
            next = end;
            tick_no += 1;
        }
        // Ticks whose changes are committed and produced.
        while let Ok(offered) = done_rx.try_recv() {
            let (from, to, at) = offered?;
            for (i, c) in changes.iter_mut().enumerate().take(to).skip(from) {
                c.at = Some(at);
                // Latency is sampled on every 10th change (polling all of them would load
                // Redis and this machine's CPU); completeness is checked on all at the end.
                if i % 10 == 0 {
                    pending.push(i);
                }
            }
            offered_count += to - from;
            if offered_count == changes.len() {
                produced_all = Some(Instant::now());
            }
        }
        // Poll the sampled changes that are due (nothing is repaired before the stage delay).
        let due: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&i| {
                changes[i]
                    .at
                    .is_some_and(|at| at.elapsed() + Duration::from_millis(100) >= Duration::from_millis(opts.stage_ms))
            })
            .collect();
        if last_poll.elapsed() >= poll_every && !due.is_empty() {
            last_poll = Instant::now();
            let mut pipe = redis::pipe();
            for &i in &due {
                pipe.cmd("HGET")
                    .arg(format!("{}{}", env::KEY_PREFIX, changes[i].goods))
                    .arg(changes[i].aid.to_string());
            }
            let values: Vec<Option<Vec<u8>>> = pipe.query_async(&mut redis).await?;
            let now = Instant::now();
            for (&i, v) in due.iter().zip(values) {
                let done = v.and_then(|v| Entity::decode(&v).ok()).is_some_and(|e| e.price == changes[i].price);
                if done {
                    changes[i].repaired = Some(now);
                }
            }
            pending.retain(|&i| changes[i].repaired.is_none());
        }
        if let Some(p) = produced_all {
            if pending.is_empty() && all_done.is_none() {
                all_done = Some(Instant::now());
            }
            if all_done.is_some() || p.elapsed() > deadline_after_last {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Completeness: every change (not only the sampled ones), polled every 250 ms; the
    // time the last one was seen repaired ends the sustained-rate window.
    let mut left: Vec<usize> = (0..changes.len()).collect();
    let mut last_seen = None;
    let end_by = produced_all.unwrap_or_else(Instant::now) + deadline_after_last;
    let mut first_pass = true;
    while !left.is_empty() && (first_pass || Instant::now() < end_by) {
        first_pass = false;
        let mut pipe = redis::pipe();
        for &i in &left {
            pipe.cmd("HGET").arg(format!("{}{}", env::KEY_PREFIX, changes[i].goods)).arg(changes[i].aid.to_string());
        }
        let values: Vec<Option<Vec<u8>>> = pipe.query_async(&mut redis).await?;
        let now = Instant::now();
        let before = left.len();
        let mut still = Vec::new();
        for (&i, v) in left.iter().zip(values) {
            if v.and_then(|v| Entity::decode(&v).ok()).is_some_and(|e| e.price == changes[i].price) {
                changes[i].repaired.get_or_insert(now);
            } else {
                still.push(i);
            }
        }
        if still.len() < before {
            last_seen = Some(now);
        }
        left = still;
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let _ = last_seen;

    let stage = Duration::from_millis(opts.stage_ms);
    let mut lat: Vec<f64> = changes
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 0)
        .map(|(_, c)| c)
        .filter_map(|c| Some((c.repaired? - c.at?).saturating_sub(stage).as_secs_f64() * 1000.0))
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * p).round() as usize] };
    let last_repair = changes.iter().filter_map(|c| c.repaired).max();
    let first = changes.iter().filter_map(|c| c.at).min();
    let span = match (first, last_repair) {
        (Some(f), Some(l)) => (l - f).saturating_sub(stage).as_secs_f64(),
        _ => f64::NAN,
    };
    let repaired = changes.iter().filter(|c| c.repaired.is_some()).count() as u64;
    let offer_secs = produced_all.map_or(f64::NAN, |p| (p - t0).as_secs_f64());
    Ok(Step {
        offered: opts.rate,
        achieved_offer: changes.len() as f64 / offer_secs.max(0.1),
        events: changes.len() as u64,
        sustained: repaired as f64 / span,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        unrepaired: changes.len() as u64 - repaired,
        cpu_us_per_event: Vec::new(),
        statements_per_event: None,
    })
}
