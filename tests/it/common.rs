//! Test harness: every test gets its own databases (random `db_prefix`), its own Redis
//! key prefixes and its own in-process HBase emulator on port 0, against the real MariaDB
//! and Redis servers. Addresses come from `common::testenv` (`RECONCILER_TEST_*`,
//! defaulting to loopback). Raw clients (redis, thrift) let
//! tests tamper with and verify targets independently of the code under test.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hbase_thrift::hbase::{BatchMutation, HbaseSyncClient, Mutation, THbaseSyncClient};
use model::config::Config;
use model::{hbase_row_key, Entity, GoodsId};
use rand::Rng;
use reconciler::app::App;
use reconciler::seed::{self, DataSet};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport, TIoChannel, TTcpChannel};

pub fn mysql_url() -> String {
    ::common::testenv::mysql_url()
}

pub fn redis_url() -> String {
    ::common::testenv::redis_url()
}

/// A raw Thrift1 client of the test's HBase server.
pub type ThriftClient = HbaseSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<thrift::transport::ReadHalf<TTcpChannel>>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<thrift::transport::WriteHalf<TTcpChannel>>>,
>;

pub struct TestEnv {
    pub prefix: String,
    pub app: App,
    /// `None` while the test has the HBase server stopped.
    pub emulator: Option<hbase_emulator::EmulatorHandle>,
    pub hbase_addr: std::net::SocketAddr,
    hbase_store: std::sync::Arc<hbase_emulator::Store>,
    pub config_path: PathBuf,
    pub toml: String,
    /// The MySQL server of the test's truth (the shared one, or a private one).
    pub mysql: String,
}

impl TestEnv {
    /// Targets: `redis-a`, `redis-b` (same server, own key prefixes) and `hbase-a`.
    pub async fn new() -> TestEnv {
        Self::with_repair("settle_ms = 3000\nmax_drift_ratio = 0.5\nmax_repairs_per_sec = 100000").await
    }

    pub async fn with_repair(repair: &str) -> TestEnv {
        Self::on_mysql(&mysql_url(), repair).await
    }

    /// Truth on the MySQL server at `mysql` (a private server a test may restart).
    pub async fn on_mysql(mysql: &str, repair: &str) -> TestEnv {
        let prefix = format!("t{:08x}_", rand::thread_rng().gen::<u32>());
        let emulator = hbase_emulator::start("127.0.0.1:0", Default::default()).expect("emulator");
        let toml = format!(
            r#"
[mysql]
url = "{mysql}"
databases = 2
tables_per_database = 4
db_prefix = "{prefix}"

[repair]
{repair}

[full]
batch_size = 50

[[targets]]
name = "redis-a"
kind = "redis"
url = "{redis}/0"
key_prefix = "{prefix}a:"

[[targets]]
name = "redis-b"
kind = "redis"
url = "{redis}/0"
key_prefix = "{prefix}b:"

[[targets]]
name = "hbase-a"
kind = "hbase"
address = "{hbase}"
table = "{prefix}goods"
"#,
            redis = redis_url(),
            hbase = emulator.local_addr(),
        );
        let config = Config::parse(&toml, "test.toml", &|_| None).expect("test config");
        let config_path = std::env::temp_dir().join(format!("{prefix}reconciler.toml"));
        std::fs::write(&config_path, &toml).unwrap();
        let app = App::new(config).expect("app");
        ::common::mysql::schema::create(&app.pools).await.expect("schema");
        for t in &app.config.targets {
            if let model::config::TargetConfig::Hbase(h) = t {
                let h = h.clone();
                tokio::task::spawn_blocking(move || reconciler::hbase_admin::ensure_table(&h)).await.unwrap().unwrap();
            }
        }
        let (hbase_addr, hbase_store) = (emulator.local_addr(), emulator.store().clone());
        TestEnv {
            prefix,
            app,
            emulator: Some(emulator),
            hbase_addr,
            hbase_store,
            config_path,
            toml,
            mysql: mysql.to_string(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.app.config
    }

    /// Seeds truth dated `age_ms` ago.
    pub async fn seed(&self, set: &DataSet, age_ms: u64) {
        seed::insert(&self.app.pools, &self.config().layout(), set, age_ms).await.expect("seed");
    }

    /// Runs SQL against the truth server (tests play the pricing system's writers).
    pub async fn sql(&self, sql: &str) {
        sqlx::raw_sql(sql).execute(self.app.pools.meta_pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub fn db(&self, name: &str) -> String {
        format!("`{}{name}`", self.prefix)
    }

    pub fn redis(&self) -> redis::Connection {
        redis::Client::open(format!("{}/0", redis_url())).unwrap().get_connection().unwrap()
    }

    pub fn redis_key(&self, target: &str, goods: GoodsId) -> String {
        let letter = if target == "redis-a" { "a" } else { "b" };
        format!("{}{letter}:{goods}", self.prefix)
    }

    /// The hash of one goods on a redis target, read raw.
    pub fn redis_hash(&self, target: &str, goods: GoodsId) -> BTreeMap<String, Vec<u8>> {
        redis::cmd("HGETALL").arg(self.redis_key(target, goods)).query(&mut self.redis()).unwrap()
    }

    pub fn hbase_table(&self) -> String {
        format!("{}goods", self.prefix)
    }

    pub fn thrift(&self) -> ThriftClient {
        let mut channel = TTcpChannel::new();
        channel.open(self.hbase_addr.to_string()).unwrap();
        let (r, w) = channel.split().unwrap();
        HbaseSyncClient::new(
            TBinaryInputProtocol::new(TBufferedReadTransport::new(r), true),
            TBinaryOutputProtocol::new(TBufferedWriteTransport::new(w), true),
        )
    }

    /// The row of one goods on the hbase target, read raw: qualifier -> (value, ts).
    pub fn hbase_row(&self, goods: GoodsId) -> BTreeMap<String, (Vec<u8>, i64)> {
        let rows = self
            .thrift()
            .get_row(self.hbase_table().into_bytes(), hbase_row_key(goods).into_bytes(), BTreeMap::new())
            .unwrap();
        let mut out = BTreeMap::new();
        for r in rows {
            for (col, cell) in r.columns.unwrap_or_default() {
                let col = String::from_utf8(col).unwrap();
                let q = col.strip_prefix("a:").unwrap().to_string();
                out.insert(q, (cell.value.unwrap(), cell.timestamp.unwrap()));
            }
        }
        out
    }

    /// Writes one cell raw at `ts` (None: delete the column at or below `ts`).
    pub fn hbase_write(&self, goods: GoodsId, qualifier: &str, value: Option<&[u8]>, ts: i64) {
        let column = format!("a:{qualifier}").into_bytes();
        let mut client = self.thrift();
        let table = self.hbase_table().into_bytes();
        let row = hbase_row_key(goods).into_bytes();
        match value {
            Some(v) => {
                let m = Mutation {
                    is_delete: Some(false),
                    column: Some(column),
                    value: Some(v.to_vec()),
                    write_to_w_a_l: Some(true),
                };
                client
                    .mutate_rows_ts(
                        table,
                        vec![BatchMutation { row: Some(row), mutations: Some(vec![m]) }],
                        ts,
                        BTreeMap::new(),
                    )
                    .unwrap();
            }
            None => client.delete_all_ts(table, row, column, ts, BTreeMap::new()).unwrap(),
        }
    }

    /// Stops the HBase server (its data is kept, as a real cluster's would be).
    pub fn stop_hbase(&mut self) {
        self.emulator.take().expect("running").shutdown();
    }

    /// Starts it again on the same address with the same data.
    pub fn start_hbase(&mut self) {
        let h = hbase_emulator::start_with_store(
            &self.hbase_addr.to_string(),
            Default::default(),
            self.hbase_store.clone(),
        )
        .expect("restart on the same port");
        self.emulator = Some(h);
    }

    /// Truth of one goods, through the reader under test.
    pub async fn truth(&self, goods: GoodsId) -> model::GoodsTruth {
        self.app.handler.truth().read(&[goods]).await.unwrap().remove(&goods).unwrap()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let layout = self.app.config.layout();
        let url = self.mysql.clone();
        let prefix = self.prefix.clone();
        let _ = std::fs::remove_file(&self.config_path);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(pool) = sqlx::mysql::MySqlPool::connect(&url).await {
                    for s in model::schema::drop_all(&layout) {
                        let _ = sqlx::raw_sql(&s).execute(&pool).await;
                    }
                }
            });
            if let Ok(mut c) = redis::Client::open(format!("{}/0", redis_url())).and_then(|c| c.get_connection()) {
                let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query(&mut c).unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut c);
                }
            }
        })
        .join()
        .ok();
    }
}

/// A small data set: activities 7001.. and goods `first..first+n`.
pub fn data(first: GoodsId, n: u64) -> DataSet {
    seed::generate(7, 6, first, n)
}

pub fn decode(bytes: &[u8]) -> Entity {
    Entity::decode(bytes).expect("decodes")
}

/// Goods of the set that project at least one entity on every target after sync.
pub async fn projected_goods(env: &TestEnv, set: &DataSet) -> Vec<GoodsId> {
    let mut ids: Vec<GoodsId> = set.goods.iter().map(|g| g.goods_id).collect();
    ids.dedup();
    let truth = env.app.handler.truth().read(&ids).await.unwrap();
    ids.into_iter().filter(|g| !truth[g].entities.is_empty()).collect()
}

/// Seeds goods `first..first + n` (changed an hour ago), syncs every target from truth and
/// returns the goods that project at least one entity.
pub async fn synced(env: &TestEnv, first: GoodsId, n: u64) -> Vec<GoodsId> {
    let set = data(first, n);
    env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (first..first + n).collect();
    let sync = handlers::Mode::sync("t-sync".into());
    handlers::run::run_goods(&env.app.handler, &ids, &sync, &env.app.run_options(None)).await.unwrap();
    projected_goods(env, &set).await
}

/// Overwrites the first field of each goods on a redis target with undecodable bytes;
/// returns the fields.
pub fn corrupt(env: &TestEnv, target: &str, goods: &[GoodsId]) -> Vec<String> {
    let mut r = env.redis();
    goods
        .iter()
        .map(|g| {
            let field = env.redis_hash(target, *g).into_keys().next().unwrap();
            let _: () =
                redis::cmd("HSET").arg(env.redis_key(target, *g)).arg(&field).arg("{corrupt").query(&mut r).unwrap();
            field
        })
        .collect()
}

/// Whether every field overwritten by [`corrupt`] holds a decodable value again.
pub fn healed(env: &TestEnv, target: &str, goods: &[GoodsId], fields: &[String]) -> bool {
    goods.iter().zip(fields).all(|(g, f)| env.redis_hash(target, *g).get(f).is_some_and(|v| v != b"{corrupt"))
}
