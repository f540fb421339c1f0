//! Redis Cluster targets against a real local cluster (`scripts/redis-cluster.sh`, seeds
//! from `RECONCILER_TEST_REDIS_CLUSTER`): check and repair of goods spread over every
//! master, a full run finding orphans on each master, poison on a cluster node, and a
//! private cluster with a master down (the target unreachable, the others checked).
//! Tests play the writers with raw clients: the cluster client for keyed commands, one
//! plain connection per master to see where keys live.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use handlers::run::{mysql_id_source, run_full, run_goods};
use handlers::Mode;
use model::config::Config;
use model::job::TriggerKind;
use model::{DriftKind, GoodsId};
use reconciler::app::App;

use crate::common::{data, projected_goods, redis_url, TestEnv};

/// A test env plus an app whose targets are `redis-a` (the single server) and `redis-c`
/// (the cluster at `seeds`, key prefix `{prefix}c:`).
struct ClusterEnv {
    env: TestEnv,
    app: App,
    seeds: Vec<String>,
    key_prefix: String,
    config_path: std::path::PathBuf,
}

impl ClusterEnv {
    async fn new(seeds: Vec<String>) -> ClusterEnv {
        let env = TestEnv::with_repair("settle_ms = 3000\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
        let prefix = env.prefix.clone();
        let cluster = seeds.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        let toml = format!(
            r#"
[mysql]
url = "{mysql}"
databases = 2
tables_per_database = 4
db_prefix = "{prefix}"

[repair]
settle_ms = 3000
max_drift_ratio = 1.0
max_repairs_per_sec = 100000

[full]
batch_size = 50

[[targets]]
name = "redis-a"
kind = "redis"
url = "{redis}/0"
key_prefix = "{prefix}a:"
timeout_ms = 2000

[[targets]]
name = "redis-c"
kind = "redis"
cluster = [{cluster}]
key_prefix = "{prefix}c:"
timeout_ms = 2000
"#,
            mysql = env.mysql,
            redis = redis_url(),
        );
        let config = Config::parse(&toml, "cluster.toml", &|_| None).expect("cluster config");
        let config_path = std::env::temp_dir().join(format!("{prefix}cluster.toml"));
        std::fs::write(&config_path, &toml).unwrap();
        let app = App::new(config).expect("app");
        ClusterEnv { env, app, seeds, key_prefix: format!("{prefix}c:"), config_path }
    }

    fn opts(&self) -> handlers::run::RunOptions {
        self.app.run_options(None)
    }

    fn key(&self, g: GoodsId) -> String {
        format!("{}{g}", self.key_prefix)
    }

    fn cluster(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::new(self.seeds.clone()).unwrap().get_connection().unwrap()
    }

    /// `host:port` of every master, from the first seed that answers.
    fn masters(&self) -> Vec<String> {
        for seed in &self.seeds {
            let Ok(mut c) = redis::Client::open(seed.as_str()).and_then(|c| c.get_connection()) else { continue };
            let Ok(nodes) = redis::cmd("CLUSTER").arg("NODES").query::<String>(&mut c) else { continue };
            let mut masters: Vec<String> = nodes
                .lines()
                .filter(|l| {
                    l.split(' ').nth(2).is_some_and(|flags| flags.contains("master") && !flags.contains("fail"))
                })
                .filter_map(|l| l.split(' ').nth(1)?.split('@').next().map(str::to_string))
                .collect();
            masters.sort();
            return masters;
        }
        panic!("no seed of {:?} answers", self.seeds);
    }

    /// The test's keys on each master, read with `SCAN` on that master alone.
    fn keys_by_master(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        for m in self.masters() {
            // A master that is down (the fault-injection test) holds nothing readable.
            let Ok(mut c) = redis::Client::open(format!("redis://{m}")).and_then(|c| c.get_connection()) else {
                continue;
            };
            let mut keys = BTreeSet::new();
            let mut cursor = 0u64;
            let scan = |cursor: u64, c: &mut redis::Connection| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{}*", self.key_prefix))
                    .arg("COUNT")
                    .arg(1000)
                    .query::<(u64, Vec<String>)>(c)
            };
            while let Ok((next, page)) = scan(cursor, &mut c) {
                keys.extend(page);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            if !keys.is_empty() {
                out.insert(m, keys);
            }
        }
        out
    }

    /// One goods id on each master holding the test's keys.
    fn one_goods_per_master(&self) -> Vec<GoodsId> {
        self.keys_by_master().values().map(|keys| self.goods_of(keys.iter().next().unwrap())).collect()
    }

    fn goods_of(&self, key: &str) -> GoodsId {
        key.strip_prefix(&self.key_prefix).unwrap().parse().unwrap()
    }

    fn hash(&self, g: GoodsId) -> BTreeMap<String, Vec<u8>> {
        redis::cmd("HGETALL").arg(self.key(g)).query(&mut self.cluster()).unwrap()
    }

    async fn sync(&self, ids: &[GoodsId]) {
        let r = run_goods(&self.app.handler, ids, &Mode::sync("t-sync".into()), &self.opts()).await.unwrap();
        assert!(r.unreachable.is_empty(), "{:?}", r.unreachable);
    }

    async fn check(&self, ids: &[GoodsId]) -> model::report::Report {
        run_goods(&self.app.handler, ids, &Mode::check("t-check".into()), &self.opts()).await.unwrap()
    }

    /// Every field of `g` on the cluster is the canonical projection of truth.
    async fn assert_equal_to_truth(&self, g: GoodsId) {
        let truth = self.env.truth(g).await;
        let held = self.hash(g);
        let want: BTreeMap<String, Vec<u8>> = truth.entities.iter().map(|(a, e)| (a.to_string(), e.encode())).collect();
        assert_eq!(held, want, "goods {g} on the cluster");
    }
}

impl Drop for ClusterEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config_path);
        for (m, keys) in self.keys_by_master() {
            if let Ok(mut c) = redis::Client::open(format!("redis://{m}")).and_then(|c| c.get_connection()) {
                let mut pipe = redis::pipe();
                for k in keys {
                    pipe.cmd("DEL").arg(k).ignore();
                }
                let _: redis::RedisResult<()> = pipe.query(&mut c);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_repair_of_goods_spread_over_every_master() {
    let c = ClusterEnv::new(::common::testenv::redis_cluster_nodes()).await;
    let set = data(60_000, 40);
    c.env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (60_000..60_040).collect();
    let goods = projected_goods(&c.env, &set).await;
    c.sync(&ids).await;
    let placed = c.keys_by_master();
    assert_eq!(placed.len(), 3, "the goods' keys land on three different masters: {placed:?}");
    assert_eq!(placed.values().map(BTreeSet::len).sum::<usize>(), goods.len());

    let clean = c.check(&ids).await;
    assert_eq!(clean.checked, 40);
    assert!(clean.drift.is_empty() && clean.unreachable.is_empty(), "{clean:?}");

    // One goods per master: a field deleted, a field corrupted, the whole key deleted.
    let hurt = c.one_goods_per_master();
    let mut r = c.cluster();
    let field = |g| c.hash(g).into_keys().next().unwrap();
    let _: () = redis::cmd("HDEL").arg(c.key(hurt[0])).arg(field(hurt[0])).query(&mut r).unwrap();
    let _: () = redis::cmd("HSET").arg(c.key(hurt[1])).arg(field(hurt[1])).arg("{corrupt").query(&mut r).unwrap();
    let _: () = redis::cmd("DEL").arg(c.key(hurt[2])).query(&mut r).unwrap();

    let check = c.check(&ids).await;
    assert!(check.unreachable.is_empty() && check.errors.is_empty(), "{check:?}");
    let found: BTreeSet<(&str, GoodsId)> = check.drift.iter().map(|d| (d.target.as_str(), d.goods_id)).collect();
    let want: BTreeSet<(&str, GoodsId)> = hurt.iter().map(|&g| ("redis-c", g)).collect();
    assert_eq!(found, want, "exactly the three hurt goods drift, on the cluster target");
    assert!(check.drift.iter().any(|d| d.goods_id == hurt[1] && d.kind == DriftKind::Corrupt));
    assert!(check.drift.iter().any(|d| d.goods_id == hurt[2] && d.kind == DriftKind::Missing));

    let repair = run_goods(&c.app.handler, &ids, &Mode::repair(TriggerKind::Operator, "t-repair".into()), &c.opts())
        .await
        .unwrap();
    assert!(repair.unreachable.is_empty(), "{repair:?}");
    assert_eq!(repair.repairs.len(), check.drift.len(), "every drift repaired: {repair:?}");
    for &g in &hurt {
        c.assert_equal_to_truth(g).await;
    }
    let recheck = c.check(&ids).await;
    assert!(recheck.drift.is_empty(), "{:?}", recheck.drift);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_finds_and_removes_orphans_on_every_master() {
    let c = ClusterEnv::new(::common::testenv::redis_cluster_nodes()).await;
    let set = data(61_000, 20);
    c.env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (61_000..61_020).collect();
    c.sync(&ids).await;
    let synced_keys: usize = c.keys_by_master().values().map(BTreeSet::len).sum();

    // Keys of goods that have no truth, until every master holds some.
    let mut r = c.cluster();
    let mut orphans = Vec::new();
    for g in 910_000u64.. {
        let _: () = redis::cmd("HSET").arg(c.key(g)).arg("7001").arg("{}").query(&mut r).unwrap();
        orphans.push(g);
        let on: BTreeSet<String> = c
            .keys_by_master()
            .into_iter()
            .filter(|(_, keys)| keys.iter().any(|k| c.goods_of(k) >= 910_000))
            .map(|(m, _)| m)
            .collect();
        if on.len() == 3 {
            break;
        }
        assert!(orphans.len() < 200, "orphans never reached three masters: {on:?}");
    }

    let opts = c.opts();
    let report = run_full(
        &c.app.handler,
        mysql_id_source(&c.app.handler, 50),
        &Mode::repair(TriggerKind::Full, "t-full".into()),
        &opts,
    )
    .await
    .unwrap();
    assert!(report.unreachable.is_empty() && report.halted.is_none(), "{report:?}");
    let found: BTreeSet<GoodsId> = report
        .drift
        .iter()
        .filter(|d| d.target == "redis-c" && d.kind == DriftKind::Orphan)
        .map(|d| d.goods_id)
        .collect();
    assert_eq!(found, orphans.iter().copied().collect(), "every orphan on every master is found");
    assert_eq!(report.drift.len(), orphans.len(), "nothing else drifts: {:?}", report.drift);
    assert_eq!(report.repairs.len(), orphans.len());
    let left: usize = c.keys_by_master().values().map(BTreeSet::len).sum();
    assert_eq!(left, synced_keys, "the orphans are gone, the synced goods stay");
    for g in orphans {
        assert!(c.hash(g).is_empty(), "orphan {g} removed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_type_key_on_a_cluster_node_is_drift_repaired_with_the_rest() {
    let c = ClusterEnv::new(::common::testenv::redis_cluster_nodes()).await;
    let set = data(62_000, 30);
    c.env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (62_000..62_030).collect();
    c.sync(&ids).await;
    let hurt = c.one_goods_per_master();
    let bad = hurt[0];
    let mut r = c.cluster();
    let _: () = redis::cmd("DEL").arg(c.key(bad)).query(&mut r).unwrap();
    let _: () = redis::cmd("SET").arg(c.key(bad)).arg("garbage").query(&mut r).unwrap();

    let check = c.check(&ids).await;
    assert!(check.unreachable.is_empty() && check.errors.is_empty(), "poison is not an outage: {check:?}");
    assert_eq!(check.checked, 30);
    assert_eq!(check.drifted_goods, 1, "{:?}", check.drift);
    assert!(check.drift.iter().any(|d| d.goods_id == bad && d.target == "redis-c" && d.kind == DriftKind::Corrupt));

    // The CLI: drift (1), not unreachable (3); then `repair` heals it.
    let cfg = c.config_path.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--config", cfg, "check", "--goods", &bad.to_string(), "--json"])
        .env("RECONCILER_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--config", cfg, "repair", "--goods", &bad.to_string(), "--json"])
        .env("RECONCILER_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let kind: String = redis::cmd("TYPE").arg(c.key(bad)).query(&mut r).unwrap();
    assert_eq!(kind, "hash");
    c.assert_equal_to_truth(bad).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_down_makes_the_cluster_target_unreachable_and_the_others_are_checked() {
    let mut cluster = ::common::testenv::redis_cluster::PrivateRedisCluster::start(3).expect("private cluster");
    let c = ClusterEnv::new(cluster.seeds()).await;
    let set = data(63_000, 30);
    c.env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (63_000..63_030).collect();
    c.sync(&ids).await;
    assert_eq!(c.keys_by_master().len(), 3);
    // Drift on the single-server target, to see it is still checked.
    let g = projected_goods(&c.env, &set).await[0];
    let _: () = redis::cmd("DEL").arg(c.env.redis_key("redis-a", g)).query(&mut c.env.redis()).unwrap();

    let goods = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    cluster.stop_node(1).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--config", c.config_path.to_str().unwrap(), "check", "--goods", &goods, "--json"])
        .env("RECONCILER_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unreachable"], serde_json::json!(["redis-c"]), "{stderr}");
    let drift = report["drift"].as_array().unwrap();
    assert!(!drift.is_empty() && drift.iter().all(|d| d["target"] == "redis-a"), "{drift:?}");
    assert!(drift.iter().any(|d| d["goods_id"] == g), "{drift:?}");
}

/// A slot moves to another master after the store read the slot map: the old master
/// answers `MOVED` for its keys; they are read through the cluster client (which
/// follows the redirect), nothing is reported unreachable, and repairs land on the new
/// master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_after_the_slot_map_was_read_is_followed() {
    let cluster = ::common::testenv::redis_cluster::PrivateRedisCluster::start(3).expect("private cluster");
    let c = ClusterEnv::new(cluster.seeds()).await;
    let set = data(64_000, 30);
    c.env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (64_000..64_030).collect();
    c.sync(&ids).await;
    assert!(c.check(&ids).await.drift.is_empty(), "clean, and the store holds the slot map now");

    // Move the slot of one goods from its master to another one, by hand.
    let placed = c.keys_by_master();
    let (from, keys) = placed.iter().next().unwrap();
    let key = keys.iter().next().unwrap().clone();
    let moved = c.goods_of(&key);
    let to = c.masters().into_iter().find(|m| m != from).unwrap();
    let node = |addr: &str| redis::Client::open(format!("redis://{addr}")).unwrap().get_connection().unwrap();
    let (mut src, mut dst) = (node(from), node(&to));
    let id = |c: &mut redis::Connection| redis::cmd("CLUSTER").arg("MYID").query::<String>(c).unwrap();
    let (src_id, dst_id) = (id(&mut src), id(&mut dst));
    let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key).query(&mut src).unwrap();
    let _: () = redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("IMPORTING").arg(&src_id).query(&mut dst).unwrap();
    let _: () = redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("MIGRATING").arg(&dst_id).query(&mut src).unwrap();
    let (host, port) = to.split_once(':').unwrap();
    let in_slot: Vec<String> = redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(1000).query(&mut src).unwrap();
    let _: () = redis::cmd("MIGRATE")
        .arg(host)
        .arg(port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&in_slot)
        .query(&mut src)
        .unwrap();
    for m in c.masters() {
        let _: () =
            redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("NODE").arg(&dst_id).query(&mut node(&m)).unwrap();
    }
    assert!(c.keys_by_master()[&to].contains(&key), "the key lives on {to} now");

    let check = c.check(&ids).await;
    assert!(check.unreachable.is_empty() && check.errors.is_empty(), "{check:?}");
    assert!(check.drift.is_empty(), "{:?}", check.drift);
    // A repair of the moved goods lands on its new master.
    let field = c.hash(moved).into_keys().next().unwrap();
    let _: () = redis::cmd("HDEL").arg(c.key(moved)).arg(&field).query(&mut c.cluster()).unwrap();
    let repair = run_goods(&c.app.handler, &[moved], &Mode::repair(TriggerKind::Operator, "t-moved".into()), &c.opts())
        .await
        .unwrap();
    assert!(repair.unreachable.is_empty() && repair.deferred.is_empty(), "{repair:?}");
    assert_eq!(repair.repairs.len(), 1, "{repair:?}");
    c.assert_equal_to_truth(moved).await;
    assert!(c.check(&ids).await.drift.is_empty());
}

/// Why cluster reads build their own pipeline per master: redis-rs's cluster pipeline
/// sends the whole pipeline to the node of its first key and refuses keys of different
/// slots. Should a later redis-rs route pipelines per node, this fails and the store can
/// use it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_clients_own_pipeline_does_not_route_per_node() {
    let client = redis::cluster::ClusterClient::new(::common::testenv::redis_cluster_nodes()).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    // Hash tags `{a}` and `{b}`: slots 15495 and 3300.
    pipe.cmd("HGETALL").arg("reconciler-test:{a}:1").cmd("HGETALL").arg("reconciler-test:{b}:1");
    let err = pipe.query_async::<Vec<redis::Value>>(&mut conn).await.unwrap_err();
    assert_eq!(err.kind(), redis::ErrorKind::CrossSlot, "{err}");
}
