//! Key activities and time-to-consistency against the real servers: which activities are
//! key (rules over MySQL, re-read), live sweeps that repair drift no event announced (and
//! none outside the window), the priority lane of `serve` on Kafka overtaking a bulk
//! backlog queued earlier, and time-to-consistency figures matching the test's changes.

use std::sync::Arc;
use std::time::Duration;

use model::config::{KeyActivitiesConfig, KeyRuleConfig};
use model::job::{Job, TriggerKind};
use model::GoodsId;
use reconciler::serve::consistency::ConsistencyBook;
use reconciler::serve::health::Health;
use reconciler::serve::worker::{self, WorkerSettings};
use serde_json::Value;
use triggers::key::{Refresher, Sweeper};
use triggers::JobPublisher;

use crate::common::{corrupt, data, healed, projected_goods, TestEnv};
use crate::service::{brokers, eventually, http, kafka_section, Service};
use ::common::clock::now_ms;

async fn synced_env(first: GoodsId, n: u64) -> (TestEnv, Vec<GoodsId>) {
    let env = TestEnv::with_repair("settle_ms = 0\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
    let set = data(first, n);
    env.seed(&set, 3_600_000).await;
    // The seeded activities ran in June 2026; these run now (key sets skip ended ones).
    let now = now_ms();
    env.sql(&format!(
        "UPDATE {}.activity SET start_time = '{}', end_time = '{}'",
        env.db("act_meta"),
        reconciler::seed::datetime(now - 3_600_000),
        reconciler::seed::datetime(now + 86_400_000)
    ))
    .await;
    let ids: Vec<GoodsId> = (first..first + n).collect();
    handlers::run::run_goods(&env.app.handler, &ids, &handlers::Mode::sync("t".into()), &env.app.run_options(None))
        .await
        .unwrap();
    let goods = projected_goods(&env, &set).await;
    (env, goods)
}

/// Goods of `goods` whose truth holds an entity of `activity`.
async fn members(env: &TestEnv, goods: &[GoodsId], activity: u64) -> Vec<GoodsId> {
    let truth = env.app.handler.truth().read(goods).await.unwrap();
    goods.iter().filter(|g| truth[g].entities.contains_key(&activity)).copied().collect()
}

fn key_config(rules: Vec<KeyRuleConfig>) -> KeyActivitiesConfig {
    KeyActivitiesConfig { rules, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_activities_by_id_type_and_tag_are_read_from_mysql_and_follow_new_tags() {
    let (env, goods) = synced_env(60_000, 60).await;
    // Seeded: 7001 (discount, "618,hot"), 7002 (seckill), 7003 (subsidy, "double11"),
    // 7004 (member price), 7005 (offline), 7006 (draft, "618,hot").
    let config = key_config(vec![
        KeyRuleConfig { ids: vec![7002], ..Default::default() },
        KeyRuleConfig { types: vec![model::config::ActivityTypeRef::Name("subsidy".into())], ..Default::default() },
        KeyRuleConfig { tags: vec!["618".into()], biz_codes: vec!["main".into()], ..Default::default() },
    ]);
    let refresher = Refresher::new(env.app.pools.clone(), &config);
    let keys = refresher.keys();
    let (activities, key_goods) = refresher.refresh(now_ms()).await.unwrap();
    let key_ids = |keys: &triggers::key::SharedKeySet| {
        keys.read().unwrap().activities().map(|a| (a.meta.activity_id, a.rule)).collect::<Vec<_>>()
    };
    // 7006 is tagged 618 but of business `brand`.
    assert_eq!(key_ids(&keys), vec![(7001, 2), (7002, 0), (7003, 1)]);
    assert_eq!(activities, 3);
    let expected: std::collections::BTreeSet<GoodsId> =
        [members(&env, &goods, 7001).await, members(&env, &goods, 7002).await, members(&env, &goods, 7003).await]
            .concat()
            .into_iter()
            .collect();
    assert!(key_goods >= expected.len() && !expected.is_empty(), "{key_goods} >= {}", expected.len());
    assert!(expected.iter().all(|g| keys.read().unwrap().is_key_goods(*g)));

    // Tagged later: key at the next refresh, no restart.
    env.sql(&format!(
        "UPDATE {}.activity SET tags = 'hot,618', biz_code = 'main' WHERE activity_id = 7004",
        env.db("act_meta")
    ))
    .await;
    refresher.refresh(now_ms()).await.unwrap();
    assert_eq!(key_ids(&keys), vec![(7001, 2), (7002, 0), (7003, 1), (7004, 2)]);

    // The operator's view (CLI and admin API share it).
    let mut app_config = env.app.config.clone();
    app_config.key_activities = config;
    let s = reconciler::serve::key::activity_status(&env.app.pools, &app_config, 7004).await.unwrap();
    assert_eq!((s.exists, s.key, s.rule, s.last_swept_ms), (true, true, Some(2), None));
    let s = reconciler::serve::key::activity_status(&env.app.pools, &app_config, 7005).await.unwrap();
    assert_eq!((s.exists, s.key), (true, false));

    let toml = format!("{}\n[key_activities]\n[[key_activities.rules]]\nids = [7002]\n", env.toml);
    let path = std::env::temp_dir().join(format!("{}key.toml", env.prefix));
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--config", path.to_str().unwrap(), "check", "--activity", "7002", "--json"])
        .env("RECONCILER_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("activity 7002: key activity (key_activities.rules[0])"), "{stderr}");
    assert!(stderr.contains("never swept"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout holds the JSON report alone");
    assert!(report["checked"].as_u64().unwrap() > 0);
    let _ = std::fs::remove_file(path);
}

/// Embedded priority lane: a key handler's workers consuming what the sweeper publishes.
fn key_lane(
    env: &TestEnv,
    settings: WorkerSettings,
) -> (Arc<dyn JobPublisher>, tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (publisher, consumer) = triggers::bus::embedded::channel(10_000);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handler = Arc::new(reconciler::serve::key::key_handler(&env.app.handler, &env.app.config));
    let health = Arc::new(Health::new(settings.workers, 60_000, ::common::clock::system()));
    let task = tokio::spawn(async move {
        worker::run(handler, consumer, settings, stopped, health).await;
    });
    (Arc::new(publisher), stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_sweep_repairs_drift_no_event_announced_and_none_runs_outside_the_window() {
    let (env, goods) = synced_env(61_000, 80).await;
    let meta = env.db("act_meta");
    let now = now_ms();
    let at = |ms: i64| reconciler::seed::datetime(ms);
    // 7001 is live now; 7002 starts in two hours (lead: 10 min); 7003 ended a minute ago.
    env.sql(&format!(
        "UPDATE {meta}.activity SET start_time = '{}', end_time = '{}' WHERE activity_id = 7001",
        at(now - 60_000),
        at(now + 3_600_000)
    ))
    .await;
    env.sql(&format!(
        "UPDATE {meta}.activity SET start_time = '{}', end_time = '{}' WHERE activity_id = 7002",
        at(now + 7_200_000),
        at(now + 9_000_000)
    ))
    .await;
    env.sql(&format!(
        "UPDATE {meta}.activity SET start_time = '{}', end_time = '{}' WHERE activity_id = 7003",
        at(now - 3_600_000),
        at(now - 60_000)
    ))
    .await;
    // The time changes moved `ver`: bring the targets up to date, then drift with no event.
    handlers::run::run_goods(&env.app.handler, &goods, &handlers::Mode::sync("t".into()), &env.app.run_options(None))
        .await
        .unwrap();
    // Sweeps check every goods with a row of the activity, removed rows too.
    let rows_of = |activity: u64| {
        let pools = env.app.pools.clone();
        async move {
            let mut pager = ::common::mysql::pager::ActivityGoodsPager::new(&pools, activity, 1000);
            let mut all = Vec::new();
            while let Some(page) = pager.next_page().await.unwrap() {
                all.extend(page);
            }
            all
        }
    };
    let live = members(&env, &goods, 7001).await;
    let (live_rows, later_rows, ended_rows) = (rows_of(7001).await, rows_of(7002).await, rows_of(7003).await);
    let later = members(&env, &goods, 7002).await;
    let ended = members(&env, &goods, 7003).await;
    let only = |of: &[GoodsId], not: &[&[GoodsId]]| -> Vec<GoodsId> {
        of.iter().filter(|g| not.iter().all(|n| !n.contains(g))).copied().collect()
    };
    let live_only = only(&live, &[&later_rows, &ended_rows]);
    let later_only = only(&later, &[&live_rows, &ended_rows]);
    let ended_only = only(&ended, &[&live_rows, &later_rows]);
    assert!(!live_only.is_empty() && !later_only.is_empty() && !ended_only.is_empty());
    let live_fields = corrupt(&env, "redis-a", &live_only);
    let later_fields = corrupt(&env, "redis-a", &later_only);
    let ended_fields = corrupt(&env, "redis-a", &ended_only);

    let mut config = key_config(vec![KeyRuleConfig { ids: vec![7001, 7002, 7003], ..Default::default() }]);
    config.ended_grace_secs = 3600;
    config.sweep.goods_per_sec = 100_000;
    let refresher = Refresher::new(env.app.pools.clone(), &config);
    refresher.refresh(now_ms()).await.unwrap();
    let mut settings = WorkerSettings::from_config(&env.app.config);
    let book = Arc::new(ConsistencyBook::new(vec!["redis-a".into()], 3_600_000, ::common::clock::system()));
    settings.consistency = Some(book.clone());
    let (publisher, stop, workers) = key_lane(&env, settings);
    let sweeper = Sweeper::new(env.app.pools.clone(), refresher.keys(), publisher, config.sweep.clone()).await.unwrap();

    let started = now_ms();
    let done = sweeper.pass(started).await.unwrap();
    assert_eq!(done.len(), 1, "only the live activity: {done:?}");
    assert_eq!((done[0].activity_id, done[0].started_ms), (7001, started));
    assert_eq!(done[0].goods, live_rows.len() as u64, "every goods of the activity");
    assert!(
        eventually(Duration::from_secs(60), || healed(&env, "redis-a", &live_only, &live_fields)).await,
        "the sweep's jobs repaired the live activity's drift"
    );
    assert_eq!(triggers::key::last_swept(&env.app.pools, 7001).await.unwrap(), Some(started));
    assert!(sweeper.pass(started + 1000).await.unwrap().is_empty(), "not again within the interval");
    let next = sweeper.pass(started + config.sweep.interval_secs as i64 * 1000).await.unwrap();
    assert_eq!(next.iter().map(|d| d.activity_id).collect::<Vec<_>>(), vec![7001], "again after it");

    // Outside their windows: never swept, their drift left alone.
    assert_eq!(triggers::key::last_swept(&env.app.pools, 7002).await.unwrap(), None);
    assert_eq!(triggers::key::last_swept(&env.app.pools, 7003).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(later_only.iter().zip(&later_fields).all(|(g, f)| env.redis_hash("redis-a", *g)[f] == b"{corrupt"));
    assert!(ended_only.iter().zip(&ended_fields).all(|(g, f)| env.redis_hash("redis-a", *g)[f] == b"{corrupt"));
    // Sweep drift had no known change: "age unknown", no time-to-consistency.
    let figures = book.figures();
    assert_eq!(figures["targets"]["redis-a"]["hour"]["changes"], 0, "{figures}");
    assert_eq!(figures["targets"]["redis-a"]["hour"]["age_unknown"], live_only.len() as u64, "{figures}");

    // The operator's view says when it was swept.
    let mut app_config = env.app.config.clone();
    app_config.key_activities = config;
    let s = reconciler::serve::key::activity_status(&env.app.pools, &app_config, 7001).await.unwrap();
    assert_eq!((s.key, s.in_sweep_window, s.last_swept_ms), (true, true, Some(next[0].started_ms)));
    let _ = stop.send(true);
    workers.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_consistency_matches_the_changes_and_repairs_of_the_test() {
    let (env, goods) = synced_env(62_000, 20).await;
    let (a, b, c) = (goods[0], goods[1], goods[2]);
    corrupt(&env, "redis-a", &[a, b, c]);
    let (publisher, consumer) = triggers::bus::embedded::channel(100);
    let mut settings = WorkerSettings::from_config(&env.app.config);
    let targets: Vec<String> = env.app.config.targets.iter().map(|t| t.name().to_string()).collect();
    let book = Arc::new(ConsistencyBook::new(targets.clone(), 3_600_000, ::common::clock::system()));
    settings.consistency = Some(book.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let health = Arc::new(Health::new(settings.workers, 60_000, ::common::clock::system()));
    let workers = tokio::spawn(worker::run(env.app.handler.clone(), consumer, settings, stopped, health));

    // a changed 5 s ago, b 2 min ago (its drift is repaired now), c with no known change.
    let now = now_ms();
    let job = |g: GoodsId, origin: i64, id: &str| {
        let mut j = Job::new(g, if origin > 0 { TriggerKind::Dts } else { TriggerKind::Full }, id.into());
        j.origin_ms = origin;
        j
    };
    publisher.publish(&[job(a, now - 5_000, "a0"), job(b, now - 120_000, "b0"), job(c, 0, "c0")]).await.unwrap();
    assert!(eventually(Duration::from_secs(30), || book.figures()["targets"]["redis-a"]["hour"]["changes"] == 2).await);
    // A later stage of a's change finds it consistent again: not counted twice.
    publisher.publish(&[job(a, now - 5_000, "a1")]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let f = book.figures();
    for t in &targets {
        let hour = &f["targets"][t.as_str()]["hour"];
        assert_eq!(hour["changes"], 2, "{t}: {f}");
        assert_eq!(hour["within"]["1s"], 0, "{t}: {f}");
        assert_eq!(hour["within"]["10s"], 1, "{t}: a's change, 5 s and a check: {f}");
        assert_eq!(hour["within"]["1m"], 1, "{t}: {f}");
        assert_eq!(hour["within"]["5m"], 2, "{t}: {f}");
        let max = hour["max_ms"].as_i64().unwrap();
        assert!((120_000..180_000).contains(&max), "{t}: b's change {max}");
        assert_eq!(hour["age_unknown"], if t == "redis-a" { 1 } else { 0 }, "{t}: c drifted on redis-a only: {f}");
        assert_eq!(f["targets"][t.as_str()]["day"]["changes"], 2);
    }
    let _ = stop.send(true);
    workers.await.unwrap();
}

fn canal_goods_update(db: &str, table: &str, goods: GoodsId, activity: u64, price: i64, es: i64) -> String {
    serde_json::json!({"data": [{"goods_id": goods.to_string(), "activity_id": activity.to_string(), "activity_price": price.to_string()}],
        "database": db, "es": es, "id": 1, "isDdl": false, "old": [{"activity_price": "1"}], "pkNames": ["id"],
        "table": table, "ts": es, "type": "UPDATE"})
    .to_string()
}

/// `serve` on Kafka: a bulk backlog of drifted goods is queued first; then a change of a
/// key activity's goods arrives. Its jobs take the key stages on the priority lane and
/// it is repaired while the bulk backlog is still being worked through; `GET
/// /consistency` counts its change per target and the bulk drift as age unknown;
/// `GET /activities/{id}` says which activity is key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_handles_a_key_change_on_the_priority_lane_ahead_of_bulk_jobs_queued_earlier() {
    let (env, goods) = synced_env(63_000, 1000).await;
    let key_members = members(&env, &goods, 7002).await;
    let key_goods = key_members[0];
    let bulk: Vec<GoodsId> = goods.iter().filter(|g| !key_members.contains(g)).copied().collect();
    assert!(bulk.len() > 400, "{}", bulk.len());
    let bulk_fields = corrupt(&env, "redis-a", &bulk);

    let p = env.prefix.clone();
    let jobs_topic = format!("{p}jobs");
    let key_topic = format!("{p}jobs.key");
    let dts_topic = format!("{p}canal");
    triggers::bus::kafka::ensure_topics(&brokers(), &[&jobs_topic, &key_topic, &dts_topic], 2).await.unwrap();
    let bulk_publisher = triggers::bus::kafka::publisher::KafkaPublisher::with_config(
        &brokers(),
        &jobs_topic,
        &[("batch.num.messages", "1")],
    )
    .unwrap();
    let jobs: Vec<Job> = bulk.iter().map(|g| Job::new(*g, TriggerKind::Scanner, format!("bulk-{g}"))).collect();
    bulk_publisher.publish(&jobs).await.unwrap();

    let extra = format!(
        "{}\n[handler]\nworkers = 1\nbatch_size = 1\nbatch_wait_ms = 0\n[[triggers.dts]]\ntopic = \"{dts_topic}\"\nformat = \"canal\"\nstages_ms = [600000]\n\
         [key_activities]\nstages_ms = [200, 1500]\npriority_topic = \"{key_topic}\"\nworkers = 1\n[key_activities.sweep]\nenabled = false\n[[key_activities.rules]]\nids = [7002]\n",
        kafka_section(&env).replace("[handler]\nworkers = 2\nbatch_size = 50\nbatch_wait_ms = 20\n", "")
    );
    let service = Service::start(&env, &extra);

    // The pricing system changes the key goods' price; DTS announces it.
    let shard = env.app.config.layout().route(key_goods);
    env.sql(&format!(
        "UPDATE `{}`.{} SET activity_price = activity_price + 7 WHERE goods_id = {key_goods} AND activity_id = 7002",
        shard.database, shard.goods_table
    ))
    .await;
    let new_price = env.truth(key_goods).await.entities[&7002].price;
    let es = now_ms();
    crate::dts::produce(
        &dts_topic,
        &key_goods.to_string(),
        &canal_goods_update(&shard.database, &shard.goods_table, key_goods, 7002, new_price, es),
    )
    .await;

    let repaired = |target: &str| {
        env.redis_hash(target, key_goods).get("7002").is_some_and(|v| crate::common::decode(v).price == new_price)
    };
    assert!(
        eventually(Duration::from_secs(90), || repaired("redis-a") && repaired("redis-b")).await,
        "key change repaired"
    );
    let bulk_done =
        bulk.iter().zip(&bulk_fields).filter(|(g, f)| healed(&env, "redis-a", &[**g], &[f.to_string()])).count();
    eprintln!("the key change was repaired with {bulk_done} of {} bulk goods done", bulk.len());
    assert!(
        bulk_done < bulk.len(),
        "the key change overtook the bulk backlog ({bulk_done} of {} bulk goods done)",
        bulk.len()
    );
    assert!(
        eventually(Duration::from_secs(180), || healed(&env, "redis-a", &bulk, &bulk_fields)).await,
        "the bulk backlog is done too"
    );

    // The key stages, on the priority lane.
    let planned: Vec<i64> = {
        use rdkafka::consumer::{Consumer, StreamConsumer};
        use rdkafka::Message;
        let c: StreamConsumer = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", format!("{p}key-reader"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        c.subscribe(&[&key_topic]).unwrap();
        let mut due = Vec::new();
        while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(10), c.recv()).await {
            for job in model::job::decode_record(m.payload().unwrap()).unwrap() {
                if job.goods_id == key_goods && job.trigger == TriggerKind::Dts && job.rechecks == 0 {
                    assert!(job.key);
                    due.push(job.not_before_ms);
                }
            }
            if due.len() == 2 {
                break;
            }
        }
        due.sort();
        due
    };
    use triggers::dts::planner::StagePlanner;
    assert_eq!(planned, vec![StagePlanner::due_ms(es, 200), StagePlanner::due_ms(es, 1500)]);

    let (status, body) = http(&service.admin, "GET", "/consistency", None, None).unwrap();
    assert_eq!(status, 200, "{body}");
    let f: Value = serde_json::from_str(&body).unwrap();
    for t in ["redis-a", "redis-b", "hbase-a"] {
        let hour = &f["targets"][t]["hour"];
        assert_eq!(hour["changes"], 1, "{t}: the one change: {f}");
        assert_eq!(hour["within"]["1m"], 1, "{t}: {f}");
        assert_eq!(hour["age_unknown"], if t == "redis-a" { bulk.len() as u64 } else { 0 }, "{t}: {f}");
    }
    let (_, metrics) = http(&service.admin, "GET", "/metrics", None, None).unwrap();
    assert!(
        metrics.contains("reconciler_time_to_consistency_ms_count{target=\"redis-a\",trigger=\"dts\"} 1"),
        "{metrics}"
    );
    let (status, body) = http(&service.admin, "GET", "/activities/7002", None, None).unwrap();
    let a: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, a["key"].as_bool(), a["rule"].as_u64()), (200, Some(true), Some(0)), "{body}");
    let (_, body) = http(&service.admin, "GET", "/activities/7003", None, None).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["key"], false);
    // The key lane's own breaker, beside the bulk one.
    let (status, body) = http(&service.admin, "GET", "/breaker/key", None, None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("redis-a"), "{body}");
    let (status, _) = http(&service.admin, "POST", "/breaker/key/reset", None, None).unwrap();
    assert_eq!(status, 401, "POST needs the token");
    let (status, body) = http(&service.admin, "POST", "/breaker/key/reset", None, Some("sekret")).unwrap();
    assert_eq!(status, 200, "{body}");
    let (code, log) = service.terminate();
    assert_eq!(code, 0, "{log}");
}
