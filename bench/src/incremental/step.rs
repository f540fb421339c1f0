//! One step of the incremental phase: a set of changes offered at one rate.
//!
//! Each event is a real change of truth: the bench raises one `activity_goods` row's
//! price in MariaDB (batched UPDATEs per shard, every 100 ms, `updated_at` set to the
//! tick's time; each tick in a task of its own so slow acknowledgements do not slow the
//! offer), then plays the sync pipeline: for every change it did not *lose* it writes the
//! new projection into every target (`HSET` on both Redis dbs, one `mutateRowsTs` on
//! HBase), and it leaves the lost ones alone. Then it produces the Canal flat message
//! DTS would, batched as DTS's producer batches (up to `--canal-batch` records per Kafka
//! record batch). The service checks every goods after the stage delay and repairs the
//! lost ones. The bench records when each change was committed and polls `redis-a`
//! (pipelined `HGET`, every 50 ms) until a lost change's new price is there.
//!
//! Which changes are lost: change `i` when `i % 100 < lost_percent` (100: every change,
//! the repair-bound ladder; 1: the check-bound one, as production's stream mostly is).
//!
//! Figures: events/s sustained: with every change lost, events / (last repair seen -
//! first change - stage delay); otherwise events / (the moment the service's
//! `reconciler_checks_total{trigger="dts"}` counted every event - first change - stage
//! delay). Completeness is polled on every lost change every 250 ms once all were
//! produced; change-to-repair latency beyond the stage delay, p50 and p99, on every 10th
//! lost change (resolution: the 50 ms poll); events never repaired or never checked
//! within the wait.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use model::{ActivityId, Entity, GoodsId, ShardLayout};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use super::service::{self, BROKERS};
use super::Step;
use crate::data::{self, Clock};
use crate::env;
use crate::seed::Targets;

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

/// One change: the goods, its activity, the new price, the entity with that price (its
/// `ver` set when offered), whether the sync pipeline loses it, when it was committed.
pub struct Change {
    goods: GoodsId,
    aid: ActivityId,
    price: i64,
    entity: Entity,
    lost: bool,
    at: Option<Instant>,
    repaired: Option<Instant>,
}

/// What one step needs: the data set, the broker topic, the sync pipeline, and the share
/// of changes it loses.
pub struct Ctx<'a> {
    pub pools: &'a common::mysql::MysqlPools,
    pub layout: &'a ShardLayout,
    pub topic: String,
    pub stage_ms: u64,
    pub canal_batch: u32,
    pub sync: Targets,
    pub lost_percent: u32,
}

/// Picks `total` changes on distinct goods not in `seen` (goods with at least one
/// entity), spread over the id range, `lost_percent` of every 100 lost; fewer when the
/// universe runs out.
pub fn pick(
    goods: u64,
    clock: Clock,
    acts: &HashMap<ActivityId, model::ActivityRow>,
    seen: &mut std::collections::HashSet<GoodsId>,
    total: u64,
    lost_percent: u32,
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
        let entity = Entity { price: e.price + 1, ..e.clone() };
        let lost = (changes.len() % 100) < lost_percent as usize;
        changes.push(Change { goods: g, aid, price: entity.price, entity, lost, at: None, repaired: None });
    }
    changes
}

/// One change as a tick offers it: goods, activity, new price, and the entity the sync
/// pipeline writes (`None`: lost).
type Offer = (GoodsId, ActivityId, i64, Option<Entity>);

/// One tick's changes: the truth UPDATEs (one per shard, `updated_at` = the tick's
/// time), the sync pipeline's writes of the changes not lost, then the Canal event of
/// each; when the truth was committed.
async fn offer(
    pools: &common::mysql::MysqlPools,
    layout: &ShardLayout,
    producer: &FutureProducer,
    topic: &str,
    sync: &Targets,
    changes: Vec<Offer>,
) -> Result<Instant> {
    let now = common::clock::now_ms();
    let mut by_shard: std::collections::BTreeMap<u32, Vec<(GoodsId, ActivityId)>> = Default::default();
    for &(g, aid, _, _) in &changes {
        by_shard.entry(layout.shard_of(g)).or_default().push((g, aid));
    }
    let updates = by_shard.iter().map(|(&s, pairs)| {
        let shard = layout.shard(s);
        let pairs: Vec<String> = pairs.iter().map(|(g, aid)| format!("({g},{aid})")).collect();
        let sql = format!(
            "UPDATE `{}`.{} SET activity_price = activity_price + 1, updated_at = '{}' WHERE (goods_id, activity_id) IN ({})",
            shard.database,
            shard.goods_table,
            data::datetime(now),
            pairs.join(",")
        );
        let pool = pools.shard_pool(shard.database_index).clone();
        async move { sqlx::raw_sql(&sql).execute(&pool).await }
    });
    futures::future::try_join_all(updates).await?;
    let at = Instant::now();
    // The entity's `ver` is the largest `updated_at` of its rows: now the goods row's.
    let synced: Vec<(GoodsId, Entity)> = changes
        .iter()
        .filter_map(|(g, _, _, e)| {
            let mut e = e.clone()?;
            e.ver = e.ver.max(now);
            Some((*g, e))
        })
        .collect();
    sync.write(synced).await?;
    let sends = changes.iter().map(|&(g, aid, price, _)| {
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

/// The service's DTS check counter over one step: checks seen since the step began, and
/// when they first covered every event.
struct Checks {
    before: u64,
    want: u64,
    seen: u64,
    all: Option<Instant>,
}

impl Checks {
    async fn start(want: u64) -> Result<Checks> {
        Ok(Checks { before: service::checks_total().await?, want, seen: 0, all: None })
    }

    /// Reads the counter once.
    async fn poll(&mut self) -> Result<()> {
        self.seen = service::checks_total().await?.saturating_sub(self.before);
        if self.seen >= self.want && self.all.is_none() {
            self.all = Some(Instant::now());
        }
        Ok(())
    }
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
    // Every event is checked once the service's check counter has grown by the step's
    // events (each change is a goods of its own, so a check per event).
    let mut checks = Checks::start(changes.len() as u64).await?;
    let mut last_scrape = Instant::now();
    loop {
        // Offer this tick's changes in a task of its own, so a slow commit or broker
        // acknowledgement delays that tick only, not the ticks after it: the bench must
        // be able to offer more than the service takes.
        if next < changes.len() && t0.elapsed() >= tick * tick_no {
            let end = (next + per_tick).min(changes.len());
            let tick_changes: Vec<Offer> = changes[next..end]
                .iter()
                .map(|c| (c.goods, c.aid, c.price, (!c.lost).then(|| c.entity.clone())))
                .collect();
            let (first, last, done) = (next, end, done_tx.clone());
            let (producer, topic, layout) = (producer.clone(), topic.clone(), layout.clone());
            let (pools, sync) = (pools.clone(), ctx.sync.clone());
            tokio::spawn(async move {
                let offered = offer(&pools, &layout, &producer, &topic, &sync, tick_changes).await;
                let _ = done.send(offered.map(|at| (first, last, at)));
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
                // Redis and this machine's CPU), lost ones only (the others were synced);
                // completeness is checked on every lost one at the end.
                if c.lost && i % 10 == 0 {
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
        if checks.all.is_none() && produced_all.is_some() && last_scrape.elapsed() >= Duration::from_millis(250) {
            last_scrape = Instant::now();
            checks.poll().await?;
        }
        if let Some(p) = produced_all {
            if pending.is_empty() && all_done.is_none() {
                all_done = Some(Instant::now());
            }
            let checked = ctx.lost_percent >= 100 || checks.all.is_some();
            if (all_done.is_some() && checked) || p.elapsed() > deadline_after_last {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Completeness: every lost change (not only the sampled ones), polled every 250 ms;
    // with every change lost, the time the last one was seen repaired ends the
    // sustained-rate window.
    let mut left: Vec<usize> = (0..changes.len()).filter(|&i| changes[i].lost).collect();
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
        let mut still = Vec::new();
        for (&i, v) in left.iter().zip(values) {
            if v.and_then(|v| Entity::decode(&v).ok()).is_some_and(|e| e.price == changes[i].price) {
                changes[i].repaired.get_or_insert(now);
            } else {
                still.push(i);
            }
        }
        left = still;
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    let stage = Duration::from_millis(opts.stage_ms);
    let mut lat: Vec<f64> = changes
        .iter()
        .enumerate()
        .filter(|(i, c)| c.lost && i % 10 == 0)
        .map(|(_, c)| c)
        .filter_map(|c| Some((c.repaired? - c.at?).saturating_sub(stage).as_secs_f64() * 1000.0))
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * p).round() as usize] };
    // The counter is recorded after a batch's repairs: with every change lost, the last
    // repairs can be seen in `redis-a` a moment before their checks are counted.
    while checks.all.is_none() && Instant::now() < end_by {
        checks.poll().await?;
        if checks.all.is_none() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let first = changes.iter().filter_map(|c| c.at).min();
    let repaired = changes.iter().filter(|c| c.repaired.is_some()).count() as u64;
    let lost = changes.iter().filter(|c| c.lost).count() as u64;
    let (all_checked, checks) = (checks.all, checks.seen);
    // Every change lost: the last repair ends the window; otherwise the last check.
    let (done, done_count) = if ctx.lost_percent >= 100 {
        (changes.iter().filter_map(|c| c.repaired).max(), repaired)
    } else {
        (all_checked, checks.min(changes.len() as u64))
    };
    let span = match (first, done) {
        (Some(f), Some(l)) => (l - f).saturating_sub(stage).as_secs_f64(),
        _ => f64::NAN,
    };
    let offer_secs = produced_all.map_or(f64::NAN, |p| (p - t0).as_secs_f64());
    Ok(Step {
        offered: opts.rate,
        achieved_offer: changes.len() as f64 / offer_secs.max(0.1),
        events: changes.len() as u64,
        lost_percent: ctx.lost_percent,
        sustained: done_count as f64 / span,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        unrepaired: lost - repaired,
        unchecked: (changes.len() as u64).saturating_sub(checks),
        cpu_us_per_event: Vec::new(),
        statements_per_event: None,
    })
}
