//! `serve` stays dependable when the data is worst: nothing checked is forgotten
//! (deferred and halted checks come back), no job pins a partition (malformed jobs,
//! absurd not-before times), a job that cannot be handled is dead-lettered after the
//! retry bound, and the blast-radius breaker works across micro-batches with an
//! operator reset.

use std::process::Command;
use std::time::Duration;

use common::mysql::ledger::{JobOutcome, Ledger};
use model::job::{Job, TriggerKind, Work};
use model::GoodsId;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use triggers::JobPublisher;

use crate::common::{corrupt, data, healed, projected_goods, TestEnv};
use crate::service::{brokers, eventually, http, Service};

/// The Kafka bus of the test (2 partitions), with `handler` and `retry` sections.
fn bus(env: &TestEnv, handler: &str, retry: &str) -> String {
    format!(
        "[bus]\nkind = \"kafka\"\n[kafka]\nbrokers = \"{}\"\ngroup = \"{p}handlers\"\njobs_topic = \"{p}jobs\"\ndead_letter_topic = \"{p}dlq\"\ntrigger_group = \"{p}dts\"\npartitions = 2\nproducer_config = {{ \"batch.num.messages\" = \"1\" }}\n[handler]\n{handler}\n[retry]\n{retry}\n",
        brokers(),
        p = env.prefix
    )
}

async fn synced(env: &TestEnv, first: GoodsId, n: u64) -> Vec<GoodsId> {
    let set = data(first, n);
    env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (first..first + n).collect();
    let mut opts = env.app.run_options(None);
    opts.batch_size = 500;
    handlers::run::run_goods(&env.app.handler, &ids, &handlers::Mode::sync("t".into()), &opts).await.unwrap();
    projected_goods(env, &set).await
}

fn publisher(env: &TestEnv) -> triggers::bus::kafka::KafkaPublisher {
    let topic = format!("{}jobs", env.prefix);
    triggers::bus::kafka::KafkaPublisher::with_config(&brokers(), &topic, &[("batch.num.messages", "1")]).unwrap()
}

fn job(goods: GoodsId, i: usize) -> Job {
    let mut j = Job::new(goods, TriggerKind::Scanner, format!("t-{goods}-{i}"));
    j.origin_ms = ::common::clock::now_ms();
    j
}

/// Dead letters of the test's topic: (reason header, payload), read from the start.
async fn dead_letters(env: &TestEnv, want: usize, timeout: Duration) -> Vec<(String, String)> {
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}dlq-reader-{}", env.prefix, rand::random::<u32>()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader.subscribe(&[&format!("{}dlq", env.prefix)]).unwrap();
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + timeout;
    while out.len() < want {
        let Ok(Ok(m)) = tokio::time::timeout_at(end, reader.recv()).await else { break };
        let reason = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "dlq.reason").and_then(|h| h.value.map(|v| v.to_vec())))
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        out.push((reason, String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()));
    }
    out
}

/// Committed offset and end of each partition of the jobs topic.
fn commits(env: &TestEnv) -> Vec<(i64, i64)> {
    let topic = format!("{}jobs", env.prefix);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}handlers", env.prefix))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition(&topic, p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    (0..2)
        .map(|p| {
            let at = match committed.find_partition(&topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            };
            let (_, high) = c.fetch_watermarks(&topic, p, Duration::from_secs(10)).unwrap();
            (at, high)
        })
        .collect()
}

async fn all_committed(env: &TestEnv, timeout: Duration) -> bool {
    eventually(timeout, || commits(env).iter().all(|(at, high)| at == high)).await
}

/// A repair deferred by the settle window comes back and is done once truth settled
/// (the code before acknowledged the job and dropped it: the drift stayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_repair_is_checked_again_later() {
    let env = TestEnv::with_repair("settle_ms = 2000\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
    let goods = synced(&env, 60_000, 20).await;
    let g = goods[0];
    let fields = corrupt(&env, "redis-a", &[g]);
    let shard = env.config().layout().route(g);
    env.sql(&format!(
        "UPDATE `{}`.{} SET limit_per_user = limit_per_user + 1, updated_at = NOW(3) WHERE goods_id = {g}",
        shard.database, shard.goods_table
    ))
    .await;
    let service = Service::start(&env, &bus(&env, "workers = 2\nbatch_size = 10\nbatch_wait_ms = 20", ""));
    publisher(&env).publish(&[job(g, 0)]).await.unwrap();
    let truth = env.truth(g).await;
    let want: Vec<Vec<u8>> = truth.entities.values().map(|e| e.encode()).collect();
    let repaired = eventually(Duration::from_secs(30), || {
        let held = env.redis_hash("redis-a", g);
        healed(&env, "redis-a", &[g], &fields) && want.iter().all(|w| held.values().any(|v| v == w))
    })
    .await;
    let (_, metrics) = http(&service.admin, "GET", "/metrics", None, None).unwrap();
    assert!(repaired, "re-checked once the settle window passed: {metrics}");
    assert!(metrics.contains("reconciler_jobs_total{trigger=\"scanner\",outcome=\"rechecked\"}"), "{metrics}");
    assert!(all_committed(&env, Duration::from_secs(20)).await, "{:?}", commits(&env));
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

/// A batch job redelivered after the run ledger counted it (a rebalance, or a handler
/// stopped before its offset was committed) is acknowledged without checking its piece
/// again; a job of the same goods the ledger has not counted is checked and repairs.
/// (The code before ran every redelivery: at 1,000,000 goods an orphan-scan part ran 17 s
/// again, long enough for the other member's assignment watchdog to force a rebalance.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_the_ledger_counted_is_acknowledged_without_running_it_again() {
    let env = TestEnv::with_repair("max_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
    let goods = synced(&env, 61_000, 20).await;
    let fields = corrupt(&env, "redis-a", &goods[..3]);
    Ledger::ensure_tables(&env.app.pools).await.unwrap();
    let ledger = Ledger::new(&env.app.pools);
    let run = format!("{}run", env.prefix);
    let now = ::common::clock::now_ms();
    ledger.create(&run, "mysql", false, "p1", now, 60_000).await.unwrap();
    let ids = |seq| Job::batch(&run, Work::Ids { seq, ids: goods.clone() });
    let (counted, fresh) = (ids(0), ids(1));
    let outcome = JobOutcome { checked: 20, handled_by: "another instance".into(), ..Default::default() };
    assert!(ledger.record(&run, &counted.job_id, &outcome, now).await.unwrap());

    let service = Service::start(&env, &bus(&env, "workers = 2\nbatch_size = 10\nbatch_wait_ms = 20", ""));
    publisher(&env).publish(&[counted]).await.unwrap();
    assert!(all_committed(&env, Duration::from_secs(30)).await, "{:?}", commits(&env));
    assert!(!healed(&env, "redis-a", &goods[..3], &fields), "the counted job's piece was not checked again");
    let (_, metrics) = http(&service.admin, "GET", "/metrics", None, None).unwrap();
    assert!(metrics.contains("reconciler_jobs_total{trigger=\"full\",outcome=\"redelivered\"} 1"), "{metrics}");

    publisher(&env).publish(&[fresh]).await.unwrap();
    let repaired = eventually(Duration::from_secs(30), || healed(&env, "redis-a", &goods[..3], &fields)).await;
    assert!(repaired, "a job the ledger has not counted is checked and repaired");
    // The job's outcome is recorded after its repairs land: wait for the record.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = ledger.get(&run).await.unwrap().unwrap();
        if r.jobs_done >= 2 || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((r.jobs_done, r.repaired), (2, 3), "counted once each; only the fresh job repaired: {r:?}");
    assert!(r.checked > 20, "the fresh job's goods were added to the counted one's: {r:?}");
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

/// Malformed messages arrive while due jobs keep the intake's timers firing: each
/// malformed one is dead-lettered and acknowledged and both partitions commit to their
/// end (the code before could drop a message being dead-lettered when a due timer won
/// the `select!`, pinning its partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_due_jobs_at_the_same_moment_keep_both_partitions_committing() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 61_000, 60).await;
    let service = Service::start(&env, &bus(&env, "workers = 2\nbatch_size = 10\nbatch_wait_ms = 5", ""));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let topic = format!("{}jobs", env.prefix);
    let now = ::common::clock::now_ms();
    let mut sends = Vec::new();
    for (i, g) in goods.iter().take(40).enumerate() {
        let mut j = job(*g, i);
        j.not_before_ms = now + 300 + (i as i64) * 15;
        let (key, payload) = (format!("{g}"), j.encode());
        let bad_key = format!("{}", i % 2);
        let bad = format!("{{\"v\":1,\"job_id\":\"broken-{i}\",\"goods_id\":\"not a number\"}}");
        let p = producer.clone();
        let t = topic.clone();
        sends.push(tokio::spawn(async move {
            let to = Timeout::After(Duration::from_secs(30));
            p.send(FutureRecord::to(&t).key(&key).payload(&payload), to).await.map_err(|(e, _)| e).unwrap();
            p.send(FutureRecord::to(&t).key(&bad_key).payload(&bad), to).await.map_err(|(e, _)| e).unwrap();
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    assert!(
        all_committed(&env, Duration::from_secs(60)).await,
        "both partitions commit to the end: {:?}",
        commits(&env)
    );
    let dead = dead_letters(&env, 40, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 40, "{dead:?}");
    assert!(dead.iter().all(|(reason, _)| reason.contains("not valid JSON of the job shape")), "{dead:?}");
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

/// A store that stays down: the batch is retried under the retry policy and then
/// dead-lettered with the reason, and the partition moves on (the code before retried
/// forever). A job due in microseconds is dead-lettered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_cannot_be_handled_are_dead_lettered_and_the_partitions_move_on() {
    let mut env = TestEnv::new().await;
    let goods = synced(&env, 62_000, 20).await;
    let service = Service::start(
        &env,
        &bus(
            &env,
            "workers = 1\nbatch_size = 10\nbatch_wait_ms = 20",
            "initial_backoff_ms = 100\nmax_backoff_ms = 200\nmax_attempts = 3",
        ),
    );
    env.stop_hbase();
    let mut far = job(goods[1], 1);
    far.not_before_ms = ::common::clock::now_ms() * 1000;
    publisher(&env).publish(&[job(goods[0], 0), far]).await.unwrap();
    let dead = dead_letters(&env, 2, Duration::from_secs(60)).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reasons: Vec<&str> = dead.iter().map(|(r, _)| r.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("beyond the horizon")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("gave up after 3 attempts") && r.contains("hbase-a")), "{reasons:?}");
    assert!(all_committed(&env, Duration::from_secs(20)).await, "{:?}", commits(&env));
    env.start_hbase();
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

/// 300 goods drift while jobs arrive in micro-batches of 10: the breaker, judged over a
/// sliding window of the service, trips and nothing more is repaired; the halted jobs
/// keep coming back, and once an operator resets the breaker (`reconciler breaker
/// reset`) they are all repaired (the code before judged each micro-batch alone, below
/// `min_goods_for_ratio`: it never tripped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_storm_trips_the_breaker_and_its_jobs_are_repaired_after_the_reset() {
    let env = TestEnv::with_repair(
        "settle_ms = 0\nmax_drift_ratio = 0.2\nmin_goods_for_ratio = 50\nmax_repairs_per_sec = 100000\nbreaker_window_goods = 1000\nbreaker_window_ms = 120000",
    )
    .await;
    let goods = synced(&env, 63_000, 450).await;
    assert!(goods.len() >= 300, "{}", goods.len());
    let victims = &goods[..300];
    let fields = corrupt(&env, "redis-a", victims);
    let service = Service::start(
        &env,
        &bus(&env, "workers = 2\nbatch_size = 10\nbatch_wait_ms = 5\nhalted_recheck_ms = 500", ""),
    );
    let jobs: Vec<Job> = victims.iter().enumerate().map(|(i, g)| job(*g, i)).collect();
    publisher(&env).publish(&jobs).await.unwrap();

    let count =
        || victims.iter().zip(&fields).filter(|(g, f)| healed(&env, "redis-a", &[**g], &[(*f).clone()])).count();
    let metric = |name: &str| {
        let (_, m) = http(&service.admin, "GET", "/metrics", None, None).unwrap();
        m.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert!(
        eventually(Duration::from_secs(30), || metric("reconciler_breaker_open{target=\"redis-a\"}") == Some(1.0))
            .await,
        "the breaker trips"
    );
    let at_trip = count();
    assert!(at_trip < 150, "repairs stopped soon after the window held 50 goods: {at_trip}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(), at_trip, "nothing more repaired while the breaker is open");
    assert!(metric("reconciler_jobs_total{trigger=\"scanner\",outcome=\"halted\"}").unwrap_or(0.0) > 0.0);
    let (_, state) = http(&service.admin, "GET", "/breaker", None, None).unwrap();
    assert!(state.contains("\"open\":true"), "{state}");

    let reset = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--config", service.config_path.to_str().unwrap(), "breaker", "reset", "--target", "redis-a"])
        .output()
        .unwrap();
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    assert!(String::from_utf8_lossy(&reset.stdout).contains("\"reset\":[\"redis-a\"]"));
    assert!(eventually(Duration::from_secs(60), || count() == 300).await, "after the reset: {}", count());
    assert!(all_committed(&env, Duration::from_secs(30)).await, "{:?}", commits(&env));
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("BLAST-RADIUS BREAKER TRIPPED"), "loud in the log");
}

/// Admin hardening: a listener reachable from other hosts without a token is warned
/// about; `/healthz` says what it judged; POSTs need the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exposed_admin_listener_is_warned_about_and_healthz_reports_workers_and_consumer() {
    let env = TestEnv::new().await;
    let port = crate::service::free_port();
    let toml = format!(
        "{}\n[admin]\nlisten = \"0.0.0.0:{port}\"\n{}",
        env.toml,
        bus(&env, "workers = 3\nbatch_size = 10\nbatch_wait_ms = 20", "")
    );
    let path = std::env::temp_dir().join(format!("{}exposed.toml", env.prefix));
    std::fs::write(&path, toml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--config", path.to_str().unwrap(), "serve"])
        .env("RECONCILER_LOG", "info,sqlx=warn,rdkafka=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let admin = format!("127.0.0.1:{port}");
    let ready =
        eventually(Duration::from_secs(30), || matches!(http(&admin, "GET", "/healthz", None, None), Ok((200, _))))
            .await;
    let (_, health) = http(&admin, "GET", "/healthz", None, None).unwrap_or_default();
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(ready, "{stderr}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!((health["status"].as_str(), health["workers_alive"].as_u64()), (Some("ok"), Some(3)), "{health}");
    assert!(health["consumer_last_poll_ms_ago"].as_i64().is_some_and(|ms| ms < 5000), "{health}");
    assert!(stderr.contains("SECURITY: admin.listen is not a loopback address"), "{stderr}");
}

/// A target that panics when asked about one goods (a bug in a store adapter).
struct Panicky {
    inner: std::sync::Arc<dyn handlers::stores::Target>,
    poison: GoodsId,
}

#[async_trait::async_trait]
impl handlers::stores::Target for Panicky {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn read(&self, goods: &[GoodsId]) -> Result<Vec<model::ObservedGoods>, handlers::StoreError> {
        assert!(!goods.contains(&self.poison), "poisoned read of goods {}", self.poison);
        self.inner.read(goods).await
    }
    async fn apply(
        &self,
        repairs: &[model::repair_plan::CellRepair],
    ) -> Result<Vec<handlers::stores::ApplyOutcome>, handlers::StoreError> {
        self.inner.apply(repairs).await
    }
    async fn scan(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<handlers::stores::ScanPage, handlers::StoreError> {
        self.inner.scan(cursor, limit).await
    }
}

/// A handler panic on one goods: the batch is retried goods by goods, the poison goods
/// is dead-lettered and the rest repaired; the workers stay alive (the code before lost
/// the worker and every job of its batch, unacknowledged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_one_goods_dead_letters_it_alone_and_the_workers_live_on() {
    use std::sync::Arc;
    let env = TestEnv::new().await;
    let goods = synced(&env, 64_000, 30).await;
    let (poison, others) = (goods[0], &goods[1..6]);
    let fields = corrupt(&env, "redis-a", others);
    let redis_a = env.app.handler.targets().iter().find(|t| t.name() == "redis-a").unwrap().clone();
    let handler = Arc::new(handlers::Handler::new(
        handlers::truth::TruthReader::new(env.app.pools.clone()),
        vec![Arc::new(Panicky { inner: redis_a, poison })],
        env.app.handler.audit().clone(),
        env.config().repair.clone(),
    ));
    let (publisher, consumer) = triggers::bus::embedded::channel(6);
    let mut settings = reconciler::serve::worker::WorkerSettings::from_config(&env.app.config);
    settings.batch_size = 10;
    settings.batch_wait = Duration::from_millis(300);
    let health = Arc::new(reconciler::serve::health::Health::new(settings.workers, 60_000, ::common::clock::system()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(reconciler::serve::worker::run(handler, consumer, settings, stopped, health.clone()));
    let jobs: Vec<Job> =
        std::iter::once(poison).chain(others.iter().copied()).enumerate().map(|(i, g)| job(g, i)).collect();
    publisher.publish(&jobs).await.unwrap();
    assert!(eventually(Duration::from_secs(30), || healed(&env, "redis-a", others, &fields)).await);
    // Every slot of the queue is free again: each job was acknowledged or dead-lettered.
    tokio::time::timeout(Duration::from_secs(10), publisher.publish(&jobs)).await.expect("six free slots").unwrap();
    let r = health.readiness();
    assert!(r.ready() && r.worker_restarts == 0, "{r:?}");
    stop.send(true).unwrap();
    workers.await.unwrap();
}
