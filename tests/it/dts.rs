//! End to end through Kafka: MySQL changes happen in truth while the sync pipeline "loses"
//! them (targets untouched); the test produces the change events DTS would (Canal,
//! Debezium, Maxwell); `reconciler serve` checks each goods after the stage delay and
//! repairs the drift. Malformed events are dead-lettered; a killed service loses nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use model::GoodsId;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde_json::{json, Value};

use crate::common::{data, projected_goods, TestEnv};
use crate::service::{brokers, kafka_section, Service};

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.timeout.ms", "10000")
        .set("batch.num.messages", "1")
        .create()
        .unwrap()
}

pub async fn produce(topic: &str, key: &str, payload: &str) {
    producer()
        .send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

use ::common::clock::now_ms;

fn strings(row: &Value) -> Value {
    Value::Object(
        row.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.to_string().trim_matches('"').to_string())))
            .collect(),
    )
}

/// A Canal flat message for one row.
fn canal(db: &str, table: &str, kind: &str, row: Value, old: Option<Value>) -> String {
    json!({"data": [strings(&row)], "database": db, "es": now_ms(), "id": 1, "isDdl": false, "old": old.map(|o| json!([strings(&o)])),
           "pkNames": ["id"], "table": table, "ts": now_ms(), "type": kind})
    .to_string()
}

fn debezium(db: &str, table: &str, op: &str, before: Option<Value>, after: Option<Value>) -> String {
    json!({"schema": {"type": "struct"}, "payload": {"before": before, "after": after, "op": op, "ts_ms": now_ms(),
           "source": {"db": db, "table": table, "ts_ms": now_ms(), "connector": "mysql"}}})
    .to_string()
}

fn maxwell(db: &str, table: &str, kind: &str, row: Value) -> String {
    json!({"database": db, "table": table, "type": kind, "ts": now_ms() / 1000, "xid": 1, "commit": true, "data": row})
        .to_string()
}

fn dts_section(env: &TestEnv, topics: &[(&str, &str)]) -> String {
    let mut s = kafka_section(env);
    for (topic, format) in topics {
        s.push_str(&format!(
            "[[triggers.dts]]\ntopic = \"{}{topic}\"\nformat = \"{format}\"\nstages_ms = [1000]\n",
            env.prefix
        ));
    }
    s
}

async fn fresh_env(first: GoodsId, n: u64) -> (TestEnv, Vec<GoodsId>) {
    let env = TestEnv::with_repair("settle_ms = 500\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
    let set = data(first, n);
    env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (first..first + n).collect();
    handlers::run::run_goods(&env.app.handler, &ids, &handlers::Mode::sync("t".into()), &env.app.run_options(None))
        .await
        .unwrap();
    let goods = projected_goods(&env, &set).await;
    (env, goods)
}

/// Whether every target holds exactly truth's projection for every goods.
async fn consistent(env: &TestEnv, goods: &[GoodsId]) -> bool {
    let report = handlers::run::run_goods(
        &env.app.handler,
        goods,
        &handlers::Mode::check("t-probe".into()),
        &env.app.run_options(None),
    )
    .await
    .unwrap();
    report.drift.is_empty()
}

async fn wait_consistent(env: &TestEnv, goods: &[GoodsId], timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if consistent(env, goods).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

fn goods_row(env: &TestEnv, g: GoodsId) -> (String, String) {
    let shard = env.config().layout().route(g);
    (shard.database, shard.goods_table)
}

/// id, target, qualifier, kind, before_ts, after_ts, status, run_id of an audit row.
type AuditRow = (u64, String, String, String, Option<i64>, Option<i64>, String, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canal_events_lead_to_repairs_after_the_stage_delay() {
    let (env, goods) = fresh_env(20_000, 40).await;
    let service = Service::start(&env, &dts_section(&env, &[("canal", "canal")]));
    let topic = format!("{}canal", env.prefix);
    let [g_update, g_insert, g_delete, g_sku, ..] = goods[..] else { panic!() };

    // UPDATE of a goods row's price.
    let (db, table) = goods_row(&env, g_update);
    let aid = env.truth(g_update).await.entities.keys().next().copied().unwrap();
    env.sql(&format!("UPDATE `{db}`.{table} SET activity_price = activity_price + 11 WHERE goods_id = {g_update} AND activity_id = {aid}")).await;
    produce(
        &topic,
        &g_update.to_string(),
        &canal(
            &db,
            &table,
            "UPDATE",
            json!({"goods_id": g_update, "activity_id": aid, "activity_price": 1}),
            Some(json!({"activity_price": 0})),
        ),
    )
    .await;

    // INSERT of a new activity for a goods.
    let (db, table) = goods_row(&env, g_insert);
    let held = env.truth(g_insert).await;
    let new_aid = (7001..7005).find(|a| !held.entities.contains_key(a)).unwrap();
    env.sql(&format!("DELETE FROM `{db}`.{table} WHERE goods_id = {g_insert} AND activity_id = {new_aid}")).await;
    env.sql(&format!("INSERT INTO `{db}`.{table} (activity_id, goods_id, activity_price, status) VALUES ({new_aid}, {g_insert}, 999, 1)")).await;
    produce(
        &topic,
        &g_insert.to_string(),
        &canal(
            &db,
            &table,
            "INSERT",
            json!({"goods_id": g_insert, "activity_id": new_aid, "activity_price": 999, "status": 1}),
            None,
        ),
    )
    .await;

    // Physical DELETE of a goods row.
    let (db, table) = goods_row(&env, g_delete);
    let del_aid = env.truth(g_delete).await.entities.keys().next().copied().unwrap();
    env.sql(&format!("DELETE FROM `{db}`.{table} WHERE goods_id = {g_delete} AND activity_id = {del_aid}")).await;
    produce(
        &topic,
        &g_delete.to_string(),
        &canal(&db, &table, "DELETE", json!({"goods_id": g_delete, "activity_id": del_aid}), None),
    )
    .await;

    // An SKU row change.
    let shard = env.config().layout().route(g_sku);
    let sku_aid = env.truth(g_sku).await.entities.keys().next().copied().unwrap();
    env.sql(&format!("INSERT INTO `{}`.{} (activity_id, goods_id, sku_id, activity_price, status) VALUES ({sku_aid}, {g_sku}, 777777, 5, 1)", shard.database, shard.sku_table)).await;
    produce(
        &topic,
        &g_sku.to_string(),
        &canal(
            &shard.database,
            &shard.sku_table,
            "INSERT",
            json!({"goods_id": g_sku, "activity_id": sku_aid, "sku_id": 777777}),
            None,
        ),
    )
    .await;

    // A malformed message and a DDL: one dead-lettered, one skipped; consumption goes on.
    produce(&topic, "junk", "{this is not canal").await;
    produce(&topic, "ddl", &json!({"data": null, "database": "x", "es": 1, "isDdl": true, "table": "activity_goods_0001", "type": "ALTER", "sql": "ALTER TABLE x"}).to_string()).await;

    // An activity going offline: every goods carrying it is affected.
    let members: Vec<GoodsId> = {
        let truth = env.app.handler.truth().read(&goods).await.unwrap();
        goods.iter().filter(|g| truth[g].entities.contains_key(&7003)).copied().collect()
    };
    assert!(members.len() >= 3, "activity 7003 has goods: {members:?}");
    env.sql(&format!("UPDATE {}.activity SET status = 2 WHERE activity_id = 7003", env.db("act_meta"))).await;
    produce(
        &topic,
        "7003",
        &canal(
            &env.app.config.layout().meta_database(),
            "activity",
            "UPDATE",
            json!({"activity_id": 7003, "status": 2}),
            Some(json!({"status": 1})),
        ),
    )
    .await;

    let mut affected = vec![g_update, g_insert, g_delete, g_sku];
    affected.extend(&members);
    assert!(!consistent(&env, &affected).await, "the changes are drift until repaired");
    let started = Instant::now();
    if !wait_consistent(&env, &affected, Duration::from_secs(30)).await {
        let report = handlers::run::run_goods(
            &env.app.handler,
            &affected,
            &handlers::Mode::check("t".into()),
            &env.app.run_options(None),
        )
        .await
        .unwrap();
        let (_, stderr) = service.terminate();
        for d in &report.drift {
            let rows: Vec<AuditRow> = sqlx::query_as(&format!(
                "SELECT id, target, CAST(qualifier AS CHAR), kind, before_ts, after_ts, status, run_id FROM {}.reconcile_repair_log WHERE goods_id = {} ORDER BY id",
                env.db("act_meta"), d.goods_id
            ))
            .fetch_all(env.app.pools.meta_pool())
            .await
            .unwrap();
            eprintln!("audit of {}: {rows:#?}", d.goods_id);
            eprintln!(
                "hbase row now: {:?}",
                env.hbase_row(d.goods_id).iter().map(|(k, v)| (k.clone(), v.1)).collect::<Vec<_>>()
            );
        }
        panic!("not repaired: {:?}\nupdate {g_update} insert {g_insert} delete {g_delete} sku {g_sku} members {members:?}\n{stderr}", report.drift);
    }
    eprintln!("canal: {} goods consistent {} ms after their events", affected.len(), started.elapsed().as_millis());

    // The malformed message is in the dead-letter topic with its reason.
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}dlq-reader", env.prefix))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&format!("{}dlq", env.prefix)]).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(20), dlq.recv()).await.expect("a dead letter arrives").unwrap();
    assert_eq!(msg.payload().unwrap(), b"{this is not canal");
    let headers: BTreeMap<String, String> = {
        use rdkafka::message::Headers;
        msg.headers()
            .map(|h| {
                h.iter()
                    .map(|x| (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let all = format!("{headers:?}");
    assert!(all.contains(&topic) && all.to_lowercase().contains("json"), "reason and origin in headers: {all}");

    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_and_maxwell_events_lead_to_repairs() {
    let (env, goods) = fresh_env(21_000, 20).await;
    let service = Service::start(&env, &dts_section(&env, &[("dbz", "debezium"), ("mxw", "maxwell")]));
    let (g1, g2) = (goods[0], goods[1]);
    for (g, topic) in [(g1, "dbz"), (g2, "mxw")] {
        let (db, table) = goods_row(&env, g);
        let aid = env.truth(g).await.entities.keys().next().copied().unwrap();
        env.sql(&format!("UPDATE `{db}`.{table} SET limit_per_user = limit_per_user + 3 WHERE goods_id = {g} AND activity_id = {aid}")).await;
        let row = json!({"id": 1, "goods_id": g, "activity_id": aid, "limit_per_user": 3});
        let payload = if topic == "dbz" {
            debezium(&db, &table, "u", Some(row.clone()), Some(row))
        } else {
            maxwell(&db, &table, "update", row)
        };
        produce(&format!("{}{topic}", env.prefix), &g.to_string(), &payload).await;
    }
    assert!(wait_consistent(&env, &[g1, g2], Duration::from_secs(30)).await);
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

/// kill -9 in the middle of a stream of change events, restarted at once as a supervisor
/// would; events keep coming before, during and after the restart. Every goods whose
/// event was produced ends consistent: no change event is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_loses_no_change_event() {
    let (env, goods) = fresh_env(22_000, 60).await;
    let topic = format!("{}canal", env.prefix);
    let section = dts_section(&env, &[("canal", "canal")])
        .replace("[kafka]\n", &format!("[kafka]\ninstance_id = \"{}node-1\"\n", env.prefix));
    let mut service = Some(Service::start(&env, &section));
    let mut restarted = None;
    for (i, g) in goods.iter().enumerate() {
        let (db, table) = goods_row(&env, *g);
        env.sql(&format!("UPDATE `{db}`.{table} SET activity_price = activity_price + 1 WHERE goods_id = {g}")).await;
        produce(
            &topic,
            &g.to_string(),
            &canal(&db, &table, "UPDATE", json!({"goods_id": g}), Some(json!({"activity_price": 0}))),
        )
        .await;
        if i == goods.len() / 3 {
            let mut killed = service.take().unwrap();
            killed.child.kill().unwrap();
            killed.child.wait().unwrap();
            restarted = Some(Instant::now());
            service = Some(Service::start(&env, &section));
        }
    }
    assert!(!consistent(&env, &goods).await, "events still in flight");
    if !wait_consistent(&env, &goods, Duration::from_secs(60)).await {
        let report = handlers::run::run_goods(
            &env.app.handler,
            &goods,
            &handlers::Mode::check("t".into()),
            &env.app.run_options(None),
        )
        .await
        .unwrap();
        let (_, stderr) = service.take().unwrap().terminate();
        let drifted: std::collections::BTreeSet<GoodsId> = report.drift.iter().map(|d| d.goods_id).collect();
        panic!("not repaired after restart: {drifted:?} of {goods:?}\n{stderr}");
    }
    eprintln!("all {} goods consistent {} ms after the restart", goods.len(), restarted.unwrap().elapsed().as_millis());
    let (code, stderr) = service.take().unwrap().terminate();
    assert_eq!(code, 0, "{stderr}");
}

/// Publishes slowly and counts, so a test can act in the middle of a fan-out.
struct SlowPublisher {
    inner: triggers::bus::embedded::EmbeddedPublisher,
    published: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl triggers::JobPublisher for SlowPublisher {
    async fn publish(&self, jobs: &[model::job::Job]) -> triggers::error::Result<()> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.inner.publish(jobs).await?;
        self.published.fetch_add(jobs.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// The MySQL server restarts while an `activity` event fans out to its goods page by
/// page: the failed pages are retried as transient (not dead-lettered), and every goods
/// of the activity is checked and repaired. A private server: the shared one is never
/// restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_restart_during_an_activity_fan_out_loses_nothing() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use triggers::dts::trigger::{DtsOptions, DtsTrigger};

    let mut db = tokio::task::spawn_blocking(::common::testenv::mariadb::PrivateMariadb::start)
        .await
        .unwrap()
        .expect("a private mariadbd");
    let env = TestEnv::on_mysql(&db.url(), "settle_ms = 0\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
    let set = data(70_000, 300);
    env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (70_000..70_300).collect();
    handlers::run::run_goods(&env.app.handler, &ids, &handlers::Mode::sync("t".into()), &env.app.run_options(None))
        .await
        .unwrap();
    let goods = projected_goods(&env, &set).await;
    let members: Vec<GoodsId> = {
        let truth = env.app.handler.truth().read(&goods).await.unwrap();
        goods.iter().filter(|g| truth[g].entities.contains_key(&7001)).copied().collect()
    };
    assert!(members.len() >= 60, "{}", members.len());
    let fields = crate::common::corrupt(&env, "redis-a", &members);

    let mut kafka = model::config::KafkaConfig { brokers: brokers(), ..Default::default() };
    kafka.trigger_group = format!("{}dts", env.prefix);
    kafka.dead_letter_topic = format!("{}dlq", env.prefix);
    let topic = format!("{}canal", env.prefix);
    triggers::bus::kafka::ensure_topics(&kafka.brokers, &[&topic, &kafka.dead_letter_topic], 1).await.unwrap();
    let (publisher, consumer) = triggers::bus::embedded::channel(10_000);
    let slow = Arc::new(SlowPublisher { inner: publisher, published: Default::default() });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settings = reconciler::serve::worker::WorkerSettings::from_config(&env.app.config);
    let health = Arc::new(reconciler::serve::health::Health::new(2, 60_000, ::common::clock::system()));
    let workers = tokio::spawn(reconciler::serve::worker::run(
        env.app.handler.clone(),
        consumer,
        settings,
        stopped.clone(),
        health,
    ));
    let dts = model::config::DtsConfig {
        topic: topic.clone(),
        format: model::config::EventFormat::Canal,
        stages_ms: vec![300],
    };
    let options = DtsOptions { page_size: 5, ..Default::default() };
    let trigger = DtsTrigger::new(&kafka, &[dts], slow.clone(), env.app.pools.clone(), options).unwrap();
    let mut rx = stopped.clone();
    let trigger = tokio::spawn(trigger.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));

    produce(
        &topic,
        "7001",
        &canal(
            &env.app.config.layout().meta_database(),
            "activity",
            "UPDATE",
            json!({"activity_id": 7001, "priority": 10}),
            Some(json!({"priority": 9})),
        ),
    )
    .await;
    let started = Instant::now();
    while slow.published.load(Ordering::Relaxed) < 10 {
        assert!(started.elapsed() < Duration::from_secs(30), "the fan-out started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published_before = slow.published.load(Ordering::Relaxed);
    // Down longer than the pools' connect timeout (5 s), so queries fail, not just wait.
    db = tokio::task::spawn_blocking(move || {
        db.stop().expect("stop");
        std::thread::sleep(Duration::from_secs(7));
        db.start_again().expect("start again");
        db
    })
    .await
    .unwrap();
    assert!(published_before < members.len(), "restarted in the middle of the fan-out");
    let repaired = crate::service::eventually(Duration::from_secs(120), || {
        crate::common::healed(&env, "redis-a", &members, &fields)
    })
    .await;
    assert!(repaired, "every goods of the activity checked and repaired; mariadb log:\n{}", db.log());
    assert!(slow.published.load(Ordering::Relaxed) >= members.len());

    // No dead letter: the restart was transient.
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}dlq-reader", env.prefix))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&kafka.dead_letter_topic]).unwrap();
    let dead = tokio::time::timeout(Duration::from_secs(3), dlq.recv()).await;
    assert!(dead.is_err(), "nothing dead-lettered: {:?}", dead.map(|m| m.map(|m| m.detach())));
    let _ = stop.send(true);
    trigger.await.unwrap();
    workers.await.unwrap();
}
