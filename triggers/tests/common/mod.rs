//! Shared test fixtures: the real broker (started through `scripts/kafka.sh` when not
//! reachable), the real MariaDB with a random database prefix, and job collectors.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ::common::mysql::MysqlPools;
use model::job::Job;
use model::ShardLayout;
use rand::Rng;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use triggers::bus::kafka::{KafkaSource, RawRecord, SourceOptions};

pub fn brokers() -> String {
    ::common::testenv::kafka_brokers()
}

pub fn suffix() -> String {
    format!("{:08x}", rand::thread_rng().gen::<u32>())
}

/// Makes sure a broker answers, starting one with `scripts/kafka.sh` if needed.
pub fn ensure_broker() -> String {
    let brokers = brokers();
    let addr = brokers.split(',').next().unwrap().to_string();
    if TcpStream::connect_timeout(&addr.parse().expect("broker address"), Duration::from_secs(1)).is_ok() {
        return brokers;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
    let status = std::process::Command::new("bash").arg(&script).status().expect("run scripts/kafka.sh");
    assert!(status.success(), "no broker at {brokers} and scripts/kafka.sh failed");
    brokers
}

pub async fn create_topics(brokers: &str, topics: &[&str], partitions: i32) {
    triggers::bus::kafka::ensure_topics(brokers, topics, partitions).await.expect("create topics");
}

pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", brokers).set("acks", "all").create().expect("producer")
}

pub async fn produce(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    producer
        .send(FutureRecord::to(topic).key(key).payload(payload), Timeout::After(Duration::from_secs(30)))
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// Reads a topic from the start in a fresh group until `want` records arrived or the
/// deadline passed; acks everything.
pub async fn read_records(brokers: &str, topic: &str, want: usize, deadline: Duration) -> Vec<RawRecord> {
    let group = format!("reader-{}", suffix());
    let mut source = KafkaSource::subscribe(brokers, &group, &[topic], SourceOptions::default()).expect("reader");
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + deadline;
    while out.len() < want {
        match tokio::time::timeout_at(end, source.next()).await {
            Ok(Some((record, ack))) => {
                ack.ack();
                out.push(record);
            }
            _ => break,
        }
    }
    source.shutdown().await;
    out
}

/// Reads jobs from a topic (records of one job or bundles of them) from the start in a
/// fresh group until `want` jobs arrived or the deadline passed.
pub async fn read_jobs(brokers: &str, topic: &str, want: usize, deadline: Duration) -> Vec<Job> {
    let group = format!("reader-{}", suffix());
    let mut source = KafkaSource::subscribe(brokers, &group, &[topic], SourceOptions::default()).expect("reader");
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + deadline;
    while out.len() < want {
        match tokio::time::timeout_at(end, source.next()).await {
            Ok(Some((record, ack))) => {
                ack.ack();
                out.extend(model::job::decode_record(record.payload.as_deref().unwrap_or_default()).expect("jobs"));
            }
            _ => break,
        }
    }
    source.shutdown().await;
    out
}

pub fn by_goods(jobs: &[Job]) -> HashMap<u64, Vec<Job>> {
    let mut map: HashMap<u64, Vec<Job>> = HashMap::new();
    for job in jobs {
        map.entry(job.goods_id).or_default().push(job.clone());
    }
    map
}

/// A throwaway truth schema on the local MariaDB: D=2, T=2, random prefix; dropped by
/// [`Truth::drop_all`].
pub struct Truth {
    pub pool: MySqlPool,
    pub layout: ShardLayout,
}

impl Truth {
    pub async fn create() -> Truth {
        let url = ::common::testenv::mysql_url();
        let pool = MySqlPoolOptions::new().max_connections(8).connect(&url).await.expect("mariadb at 127.0.0.1:3306");
        let layout = ShardLayout { databases: 2, tables_per_database: 2, db_prefix: format!("t{}_", suffix()) };
        ::common::mysql::schema::create(&MysqlPools::from_pool(pool.clone(), layout.clone())).await.expect("schema");
        Truth { pool, layout }
    }

    pub fn pools(&self) -> MysqlPools {
        MysqlPools::from_pool(self.pool.clone(), self.layout.clone())
    }

    pub async fn insert_activity(&self, activity_id: u64, updated_at: &str) {
        exec(
            &self.pool,
            &format!(
            "INSERT INTO `{}`.activity (activity_id, name, type, biz_code, status, start_time, end_time, updated_at)
             VALUES ({activity_id}, 'a', 2, 'main', 1, '2026-01-01', '2027-01-01', {updated_at})",
            self.layout.meta_database()),
        )
        .await;
    }

    /// Inserts an `activity_goods` row in the goods' shard; `updated_at` is SQL.
    pub async fn insert_goods(&self, activity_id: u64, goods_id: u64, updated_at: &str) {
        let s = self.layout.route(goods_id);
        exec(&self.pool, &format!(
            "INSERT INTO `{}`.`{}` (activity_id, goods_id, activity_price, status, updated_at) VALUES ({activity_id}, {goods_id}, 100, 1, {updated_at})",
            s.database, s.goods_table)).await;
    }

    pub async fn insert_sku(&self, activity_id: u64, goods_id: u64, sku_id: u64, updated_at: &str) {
        let s = self.layout.route(goods_id);
        exec(&self.pool, &format!(
            "INSERT INTO `{}`.`{}` (activity_id, goods_id, sku_id, activity_price, status, updated_at) VALUES ({activity_id}, {goods_id}, {sku_id}, 90, 1, {updated_at})",
            s.database, s.sku_table)).await;
    }

    pub async fn drop_all(&self) {
        ::common::mysql::schema::drop_all(&self.pools()).await.expect("drop");
    }
}

pub async fn exec(pool: &MySqlPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub type Shared<T> = Arc<std::sync::Mutex<T>>;
