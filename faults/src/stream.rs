//! The steady stream: every 100 ms a tick of truth changes committed to MySQL (price
//! changes, rows removed and restored, SKU rows added, changed, removed and physically
//! deleted, new activity rows), each followed by the Canal flat message DTS would
//! publish, keyed by goods id. The targets are left alone, as if the sync pipeline had
//! lost every change: each one is drift the service must find and repair. Every change
//! is recorded (goods, when); a write the database refuses (it is down) is counted and
//! no event is sent for it. The producer buffers through a broker outage (2 min timeout).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use model::{GoodsId, ShardLayout};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde_json::{json, Value};

use crate::universe::{Slot, Universe};

#[derive(Default)]
pub struct Log {
    /// Goods changed, with the time of their last change.
    pub touched: HashMap<GoodsId, Instant>,
    pub changes: u64,
    pub events: u64,
    pub refused: u64,
    /// Events the broker never took, after every resend.
    pub undelivered: u64,
    /// Events sent again after a failed delivery (a change-data-capture tool retries
    /// until the broker takes its event; so does the stream).
    pub resent: u64,
    /// Per goods, the sequence number of its latest change.
    pub last_change: HashMap<GoodsId, u64>,
    /// Goods whose latest change's event the broker never took: the service was never
    /// told of that change.
    pub untold: std::collections::HashSet<GoodsId>,
}

/// Sends `payload` until the broker takes it (a broker that restarts fails deliveries
/// for a while), at most for five minutes; true when it was delivered.
async fn deliver(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &str,
    first: DeliveryFuture,
    log: &Mutex<Log>,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut pending = first;
    loop {
        if matches!(pending.await, Ok(Ok(_))) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        log.lock().unwrap().resent += 1;
        match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
            Ok(d) => pending = d,
            Err(_) => return false,
        }
    }
}

pub fn producer(brokers: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // One record per batch: Tansu 0.6 cannot fetch from inside a batch (scripts/kafka.sh).
        .set("batch.num.messages", "1")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000")
        // Reconnect as soon as the broker is back (librdkafka's default cap is 10 s), so
        // the broker scenario's recovery measures the service, not this producer.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000")
        .create()?)
}

/// A Canal flat message for one row.
pub fn canal(db: &str, table: &str, kind: &str, row: Value) -> String {
    let now = common::clock::now_ms();
    let old = if kind == "UPDATE" { json!([{"updated_at": "1970-01-01 00:00:00.000"}]) } else { Value::Null };
    json!({"data": [row], "database": db, "es": now, "id": 1, "isDdl": false, "old": old,
           "pkNames": ["id"], "table": table, "ts": now, "type": kind})
    .to_string()
}

pub struct Stream {
    pub log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    join: tokio::task::JoinHandle<Result<()>>,
}

struct Change {
    goods: GoodsId,
    sql: String,
    event: String,
}

impl Stream {
    pub fn spawn(
        pool: sqlx::MySqlPool,
        layout: ShardLayout,
        mut universe: Universe,
        rate: u64,
        producer: FutureProducer,
        topic: String,
        seed: u64,
    ) -> Stream {
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let join = tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let ids: Vec<GoodsId> = universe.goods.keys().copied().collect();
            let per_tick = (rate / 10).max(1);
            let mut deliveries = tokio::task::JoinSet::new();
            let mut next = Instant::now();
            while !stop2.load(Ordering::SeqCst) {
                next += Duration::from_millis(100);
                let changes: Vec<Change> = (0..per_tick)
                    .map(|_| {
                        let g = ids[rng.gen_range(0..ids.len())];
                        plan(&layout, g, universe.goods.get_mut(&g).expect("goods"), &mut rng)
                    })
                    .collect();
                let done: Vec<(Change, bool)> = futures::stream::iter(changes)
                    .map(|c| {
                        let pool = pool.clone();
                        async move {
                            let ok = sqlx::raw_sql(&c.sql).execute(&pool).await.is_ok();
                            (c, ok)
                        }
                    })
                    .buffer_unordered(8)
                    .collect()
                    .await;
                let now = Instant::now();
                for (c, ok) in done {
                    if !ok {
                        log2.lock().unwrap().refused += 1;
                        continue;
                    }
                    let key = c.goods.to_string();
                    let sent = producer.send_result(FutureRecord::to(&topic).key(&key).payload(&c.event));
                    let mut l = log2.lock().unwrap();
                    l.changes += 1;
                    l.touched.insert(c.goods, now);
                    let seq = l.changes;
                    l.last_change.insert(c.goods, seq);
                    match sent {
                        Ok(d) => {
                            l.events += 1;
                            let (producer, topic, log) = (producer.clone(), topic.clone(), log2.clone());
                            let goods = c.goods;
                            deliveries.spawn(async move {
                                let delivered = deliver(&producer, &topic, &key, &c.event, d, &log).await;
                                let mut l = log.lock().unwrap();
                                let latest = l.last_change.get(&goods) == Some(&seq);
                                if !delivered {
                                    l.undelivered += 1;
                                    if latest {
                                        l.untold.insert(goods);
                                    }
                                } else if latest {
                                    l.untold.remove(&goods);
                                }
                            });
                        }
                        Err(_) => {
                            l.undelivered += 1;
                            l.untold.insert(c.goods);
                        }
                    }
                }
                tokio::time::sleep_until(next.into()).await;
            }
            while deliveries.join_next().await.is_some() {}
            Ok(())
        });
        Stream { log, stop, join }
    }

    /// Stops after the current tick and waits until every event was delivered (or failed).
    pub async fn stop(self) -> Result<Arc<Mutex<Log>>> {
        self.stop.store(true, Ordering::SeqCst);
        self.join.await??;
        Ok(self.log)
    }
}

/// One random change of goods `g`: its SQL and the Canal event for it.
fn plan(layout: &ShardLayout, g: GoodsId, slots: &mut Vec<Slot>, rng: &mut StdRng) -> Change {
    let sh = layout.route(g);
    let (db, gt, st) = (sh.database.as_str(), sh.goods_table.as_str(), sh.sku_table.as_str());
    let i = rng.gen_range(0..slots.len());
    let aid = slots[i].aid;
    let row = |extra: Value| {
        let mut r = json!({"goods_id": g.to_string(), "activity_id": aid.to_string()});
        if let (Value::Object(r), Value::Object(e)) = (&mut r, extra) {
            r.extend(e);
        }
        r
    };
    let r = rng.gen_range(0..100);
    let (sql, event) = if r < 60 || ((85..95).contains(&r) && slots[i].skus.is_empty()) {
        (
            format!("UPDATE `{db}`.{gt} SET activity_price = activity_price + 1 WHERE goods_id = {g} AND activity_id = {aid}"),
            canal(db, gt, "UPDATE", row(json!({}))),
        )
    } else if r < 70 {
        (
            format!("UPDATE `{db}`.{gt} SET status = 1 - status WHERE goods_id = {g} AND activity_id = {aid}"),
            canal(db, gt, "UPDATE", row(json!({}))),
        )
    } else if r < 85 {
        let sku = g * 100 + rng.gen_range(0..4);
        if !slots[i].skus.contains(&sku) {
            slots[i].skus.push(sku);
        }
        (
            format!(
                "INSERT INTO `{db}`.{st} (activity_id, goods_id, sku_id, activity_price, status) VALUES ({aid}, {g}, {sku}, {}, 1) \
                 ON DUPLICATE KEY UPDATE activity_price = activity_price + 1, status = 1",
                900 + rng.gen_range(0..9000)
            ),
            canal(db, st, "INSERT", row(json!({"sku_id": sku.to_string()}))),
        )
    } else if r < 90 {
        let k = rng.gen_range(0..slots[i].skus.len());
        let sku = slots[i].skus.swap_remove(k);
        (
            format!("DELETE FROM `{db}`.{st} WHERE goods_id = {g} AND activity_id = {aid} AND sku_id = {sku}"),
            canal(db, st, "DELETE", row(json!({"sku_id": sku.to_string()}))),
        )
    } else if r < 95 {
        let sku = slots[i].skus[rng.gen_range(0..slots[i].skus.len())];
        (
            format!("UPDATE `{db}`.{st} SET status = 1 - status WHERE goods_id = {g} AND activity_id = {aid} AND sku_id = {sku}"),
            canal(db, st, "UPDATE", row(json!({"sku_id": sku.to_string()}))),
        )
    } else {
        let new =
            crate::universe::activity_ids().nth(rng.gen_range(0..crate::universe::ACTIVITIES as usize)).unwrap_or(9001);
        if !slots.iter().any(|s| s.aid == new) {
            slots.push(Slot { aid: new, skus: Vec::new() });
        }
        let row = json!({"goods_id": g.to_string(), "activity_id": new.to_string()});
        (
            format!(
                "INSERT INTO `{db}`.{gt} (activity_id, goods_id, activity_price, limit_per_user, status) VALUES ({new}, {g}, {}, 1, 1) \
                 ON DUPLICATE KEY UPDATE status = 1, activity_price = activity_price + 1",
                1000 + rng.gen_range(0..9000)
            ),
            canal(db, gt, "INSERT", row),
        )
    };
    Change { goods: g, sql, event }
}
