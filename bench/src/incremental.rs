//! The incremental phase: `reconciler serve` (a child process, Kafka bus, DTS-delay
//! trigger on one Canal topic) keeps up with a stream of truth changes.
//!
//! Each event is a real change of truth that the sync pipeline "lost": the bench raises
//! one `activity_goods` row's price in MariaDB (batched UPDATEs per shard, every 100 ms)
//! and leaves the targets alone, then produces the Canal flat message DTS would. The
//! service checks the goods after the stage delay and repairs it. Offered rate and
//! duration are flags; the bench records when each change was committed and polls
//! `redis-a` (pipelined `HGET`, every 50 ms) until the new price is there.
//!
//! Figures: events/s sustained = events / (last repair seen - first change - stage
//! delay), completeness polled on every change every 250 ms once all were produced;
//! change-to-repair latency beyond the stage delay, p50 and p99, on every 10th change
//! (resolution: the 50 ms poll); events never repaired within the wait.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use model::{ActivityId, Entity, GoodsId, ShardLayout};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::data::{self, Clock};
use crate::env;

pub const BROKERS: &str = "127.0.0.1:9092";
pub const ADMIN_LISTEN: &str = "127.0.0.1:19100";

pub struct Options {
    pub rate: u64,
    pub seconds: u64,
    pub stage_ms: u64,
}

pub struct Incremental {
    pub offered: u64,
    pub events: u64,
    pub sustained: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub unrepaired: u64,
    pub stage_ms: u64,
}

impl Incremental {
    pub fn summary(&self) -> String {
        format!(
            "{:.0} events/s sustained ({} events offered at {}/s); change-to-repair beyond the {} ms stage delay: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} not repaired",
            self.sustained, self.events, self.offered, self.stage_ms, self.p50_ms, self.p99_ms, self.max_ms, self.unrepaired
        )
    }
}

fn serve_config(base: &str, tag: &str, stage_ms: u64) -> String {
    // Every event is drift (a lost sync), so the blast-radius ratio must not stop repairs.
    let base =
        base.replace("settle_ms = 3000", "settle_ms = 1000").replace("max_drift_ratio = 0.5", "max_drift_ratio = 1.0");
    format!(
        r#"{base}
[bus]
kind = "kafka"

[kafka]
brokers = "{BROKERS}"
group = "bench-{tag}-handlers"
jobs_topic = "bench-{tag}-jobs"
dead_letter_topic = "bench-{tag}-dlq"
trigger_group = "bench-{tag}-dts"
partitions = 16
producer_config = {{ "batch.num.messages" = "1" }}

[handler]
workers = 4

[admin]
listen = "{ADMIN_LISTEN}"

[[triggers.dts]]
topic = "bench-{tag}-canal"
format = "canal"
stages_ms = [{stage_ms}]
"#
    )
}

pub struct Service(pub Child);

impl Drop for Service {
    fn drop(&mut self) {
        // SIGTERM: the service drains; then make sure it is gone.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn healthy() -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(ADMIN_LISTEN) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

fn canal(db: &str, table: &str, goods: GoodsId, aid: ActivityId, price: i64) -> String {
    let now = common::clock::now_ms();
    json!({"data": [{"goods_id": goods.to_string(), "activity_id": aid.to_string(), "activity_price": price.to_string()}],
           "database": db, "es": now, "id": 1, "isDdl": false, "old": [{"activity_price": (price - 1).to_string()}],
           "pkNames": ["id"], "table": table, "ts": now, "type": "UPDATE"})
    .to_string()
}

/// One change: the goods, its activity, the new price, when it was committed.
struct Change {
    goods: GoodsId,
    aid: ActivityId,
    price: i64,
    at: Option<Instant>,
    repaired: Option<Instant>,
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    root: &Path,
    base_config: &str,
    pools: &common::mysql::MysqlPools,
    layout: &ShardLayout,
    clock: Clock,
    acts: &HashMap<ActivityId, model::ActivityRow>,
    goods: u64,
    opts: &Options,
) -> Result<Incremental> {
    if std::net::TcpStream::connect(BROKERS).is_err() {
        bail!("no Kafka broker on {BROKERS} (scripts/kafka.sh starts one)");
    }
    let tag = format!("{}", common::clock::now_ms());
    let topic = format!("bench-{tag}-canal");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", BROKERS).create()?;
    admin
        .create_topics(&[NewTopic::new(&topic, 16, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .context("creating the canal topic")?;
    let path = root.join("target/bench/serve.toml");
    std::fs::write(&path, serve_config(base_config, &tag, opts.stage_ms))?;
    let log = std::fs::File::create(root.join("target/bench/serve.log"))?;
    let child = Command::new(env::reconciler_binary(root))
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .env("RECONCILER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting reconciler serve")?;
    let _service = Service(child);
    let started = Instant::now();
    while !healthy() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("reconciler serve did not become healthy (see target/bench/serve.log)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the consumers join their groups before the clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The changes: distinct goods with at least one entity, spread over the id range.
    let total = opts.rate * opts.seconds;
    let mut changes: Vec<Change> = Vec::with_capacity(total as usize);
    let mut rng = data::Rng::new(0x1AC4);
    let mut seen = std::collections::HashSet::new();
    while (changes.len() as u64) < total {
        let g = 1 + rng.next() % goods;
        if !seen.insert(g) {
            continue;
        }
        let d = data::goods(g, clock);
        let t = data::truth(g, clock, acts);
        let Some((&aid, e)) = t.entities.iter().next() else { continue };
        let _ = d;
        changes.push(Change { goods: g, aid, price: e.price + 1, at: None, repaired: None });
    }

    let producer: FutureProducer =
        // One record per produce batch, as the project's own producers use with Tansu.
        ClientConfig::new()
            .set("bootstrap.servers", BROKERS)
            .set("batch.num.messages", "1")
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
    loop {
        // Produce this tick's changes.
        if next < changes.len() && t0.elapsed() >= tick * tick_no {
            let end = (next + per_tick).min(changes.len());
            let mut by_shard: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
            for (i, change) in changes.iter().enumerate().take(end).skip(next) {
                by_shard.entry(layout.shard_of(change.goods)).or_default().push(i);
            }
            let updates = by_shard.iter().map(|(&s, idx)| {
                let shard = layout.shard(s);
                let pairs: Vec<String> =
                    idx.iter().map(|&i| format!("({},{})", changes[i].goods, changes[i].aid)).collect();
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
            let sends = (next..end).map(|i| {
                let c = &changes[i];
                let shard = layout.route(c.goods);
                let payload = canal(&shard.database, &shard.goods_table, c.goods, c.aid, c.price);
                let key = c.goods.to_string();
                let producer = producer.clone();
                let topic = topic.clone();
                async move {
                    producer
                        .send(FutureRecord::to(&topic).key(&key).payload(&payload), Duration::from_secs(10))
                        .await
                        .map_err(|(e, _)| e)
                }
            });
            futures::future::try_join_all(sends).await?;
            for (i, c) in changes.iter_mut().enumerate().take(end).skip(next) {
                c.at = Some(at);
                // Latency is sampled on every 10th change (polling all of them would load
                // Redis and this machine's CPU); completeness is checked on all at the end.
                if i % 10 == 0 {
                    pending.push(i);
                }
            }
            next = end;
            tick_no += 1;
            if next == changes.len() {
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
    Ok(Incremental {
        offered: opts.rate,
        events: changes.len() as u64,
        sustained: repaired as f64 / span,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        unrepaired: changes.len() as u64 - repaired,
        stage_ms: opts.stage_ms,
    })
}
