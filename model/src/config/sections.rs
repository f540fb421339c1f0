//! The configuration sections. Every key has a default, so a file holding only the keys
//! of the contract is complete.
//!
//! Unknown keys are rejected: sections with defaults collect them all through
//! `serde_ignored` (so one run reports every stray key), tables inside arrays
//! (`[[targets]]`, `[[triggers.dts]]`) use `deny_unknown_fields`.

use serde::Deserialize;

use crate::shard::ShardLayout;

/// The whole configuration, validated.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub mysql: MysqlConfig,
    pub repair: RepairConfig,
    pub retry: RetryConfig,
    pub full: FullConfig,
    pub targets: Vec<TargetConfig>,
    pub bus: BusConfig,
    pub kafka: KafkaConfig,
    pub triggers: TriggersConfig,
    pub handler: HandlerConfig,
    pub admin: AdminConfig,
    pub hbase_emulator: Option<EmulatorConfig>,
    pub verifier: VerifierConfig,
    /// `[key_activities]` (see `key.rs`).
    pub key_activities: super::KeyActivitiesConfig,
}

impl Config {
    pub fn layout(&self) -> ShardLayout {
        ShardLayout {
            databases: self.mysql.databases,
            tables_per_database: self.mysql.tables_per_database,
            db_prefix: self.mysql.db_prefix.clone(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct MysqlConfig {
    /// Server of `act_meta` and, without `database_urls`, of every `act_n`.
    pub url: String,
    /// One URL per `act_n` when shards live on several servers.
    pub database_urls: Vec<String>,
    /// D.
    pub databases: u32,
    /// T.
    pub tables_per_database: u32,
    /// Prepended to every database name; lets tests and benchmarks share a server.
    pub db_prefix: String,
    /// Connections per server pool.
    pub pool_size: u32,
    /// Seconds to wait for a connection before the server counts as unreachable.
    pub connect_timeout_ms: u64,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        MysqlConfig {
            url: "mysql://root@127.0.0.1:3306".into(),
            database_urls: Vec::new(),
            databases: 2,
            tables_per_database: 4,
            db_prefix: String::new(),
            pool_size: 8,
            connect_timeout_ms: 5000,
        }
    }
}

impl std::fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("url", &super::redact_url(&self.url))
            .field("database_urls", &self.database_urls.iter().map(|u| super::redact_url(u)).collect::<Vec<_>>())
            .field("databases", &self.databases)
            .field("tables_per_database", &self.tables_per_database)
            .field("db_prefix", &self.db_prefix)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RepairConfig {
    /// Truth changed more recently than this: defer, do not repair.
    pub settle_ms: u64,
    /// A run whose drifted goods exceed this share of the goods it checked repairs
    /// nothing and reports (1.0: never stop). A systemic writer bug needs a human.
    pub max_drift_ratio: f64,
    /// The ratio is judged only once the breaker's window holds at least this many
    /// checked goods, so an on-call repair of a handful of drifted goods is not stopped.
    pub min_goods_for_ratio: u64,
    /// Cap on repair writes per second, per process.
    pub max_repairs_per_sec: u32,
    /// Cap on the writes of `sync` (bootstrap and data recovery of a wiped target), per
    /// process: separate from `max_repairs_per_sec`, which limits a wrong repair's damage,
    /// so that restoring an emptied cluster runs at bulk speed (0: unlimited).
    pub bulk_writes_per_sec: u32,
    /// The blast-radius breaker judges `max_drift_ratio` per target over a sliding window
    /// of recent checks: at most the last `breaker_window_goods` goods checked ...
    pub breaker_window_goods: u64,
    /// ... within the last `breaker_window_ms`. After an operator reset the breaker does
    /// not trip again for one window (`breaker_window_ms`).
    pub breaker_window_ms: u64,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig {
            settle_ms: 3000,
            max_drift_ratio: 0.2,
            min_goods_for_ratio: 100,
            max_repairs_per_sec: 1000,
            bulk_writes_per_sec: 100_000,
            breaker_window_goods: 10_000,
            breaker_window_ms: 300_000,
        }
    }
}

/// The one retry policy of the service: how long an outage (a store, the database, the
/// broker) is waited out before work is given up on (dead-lettered or reported).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// First delay after a transient error; doubles per attempt, with jitter.
    pub initial_backoff_ms: u64,
    /// Longest delay between two attempts: how late, at worst, the first attempt after a
    /// store comes back is.
    pub max_backoff_ms: u64,
    /// How long a transient failure is retried before the work is given up on (0: no
    /// time bound).
    pub give_up_after_ms: u64,
    /// Attempts in all (the first included) before the work is given up on (0: no count
    /// bound). At least one of the two bounds is set.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { initial_backoff_ms: 100, max_backoff_ms: 1_000, give_up_after_ms: 120_000, max_attempts: 0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FullConfig {
    /// Goods per check batch (one truth query per shard table per batch).
    pub batch_size: usize,
    /// Rate limit of the keyset scan over the shards, goods per second (0: unlimited).
    pub goods_per_sec: u32,
    /// Batches in flight at once.
    pub concurrency: usize,
    /// A full run's range reads reuse an activity row read less than this many ms ago
    /// (0: every batch reads its activities). Checks of events and the re-read before
    /// any repair always read fresh.
    pub activity_reuse_ms: u64,
}

impl Default for FullConfig {
    fn default() -> Self {
        FullConfig { batch_size: 1000, goods_per_sec: 0, concurrency: 4, activity_reuse_ms: 1_000 }
    }
}

/// A derived store.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetConfig {
    Redis(RedisTarget),
    Hbase(HbaseTarget),
}

impl TargetConfig {
    pub fn name(&self) -> &str {
        match self {
            TargetConfig::Redis(t) => &t.name,
            TargetConfig::Hbase(t) => &t.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Redis(_) => "redis",
            TargetConfig::Hbase(_) => "hbase",
        }
    }
}

/// A Redis target: one server (`url`) or a Redis Cluster (`cluster`, seed node URLs);
/// exactly one of the two is given.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTarget {
    pub name: String,
    /// A single server, `redis://host:port/db` (or `rediss://`).
    #[serde(default)]
    pub url: Option<String>,
    /// Seed nodes of a Redis Cluster; the rest of the topology is learnt from them.
    #[serde(default)]
    pub cluster: Option<Vec<String>>,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Per-command timeout; a target that does not answer in time is unreachable.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("name", &self.name)
            .field("url", &self.url.as_deref().map(super::redact_url))
            .field(
                "cluster",
                &self.cluster.as_ref().map(|c| c.iter().map(|u| super::redact_url(u)).collect::<Vec<_>>()),
            )
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// Where a [`RedisTarget`] lives, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisEndpoint<'a> {
    Single(&'a str),
    Cluster(&'a [String]),
}

impl RedisTarget {
    /// The server or the cluster seeds; `None` unless exactly one of `url` and `cluster`
    /// is given (validation reports that).
    pub fn endpoint(&self) -> Option<RedisEndpoint<'_>> {
        match (&self.url, &self.cluster) {
            (Some(url), None) => Some(RedisEndpoint::Single(url)),
            (None, Some(seeds)) => Some(RedisEndpoint::Cluster(seeds)),
            _ => None,
        }
    }
}

fn default_key_prefix() -> String {
    "act:goods:".into()
}

fn default_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HbaseTarget {
    pub name: String,
    /// `host:port` of the HBase Thrift1 server.
    pub address: String,
    #[serde(default = "default_table")]
    pub table: String,
    #[serde(default = "default_family")]
    pub family: String,
    /// Thrift connections kept open; each blocking call holds one.
    #[serde(default = "default_hbase_pool")]
    pub pool_size: usize,
    /// Socket read/write timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// `buffered` (HBase's default) or `framed`.
    #[serde(default)]
    pub transport: ThriftTransport,
}

fn default_table() -> String {
    "activity_goods".into()
}

fn default_family() -> String {
    "a".into()
}

fn default_hbase_pool() -> usize {
    8
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThriftTransport {
    #[default]
    Buffered,
    Framed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// In-process bounded queue; one process runs triggers and handlers.
    #[default]
    Embedded,
    Kafka,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BusConfig {
    pub kind: BusKind,
    /// Capacity of the embedded queue; producers wait when it is full.
    pub queue_capacity: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig { kind: BusKind::Embedded, queue_capacity: 10_000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    pub brokers: String,
    /// Handlers' consumer group.
    pub group: String,
    pub jobs_topic: String,
    pub dead_letter_topic: String,
    /// Consumer group of the DTS-delay trigger (its offsets are separate from handlers').
    pub trigger_group: String,
    /// Partitions of the topics the service creates (jobs, dead letters, DTS topics when
    /// absent); 0: the broker's default (`num.partitions`).
    pub partitions: i32,
    /// Replication factor of the topics the service creates; 0: the broker's default
    /// (`default.replication.factor`). Existing topics are never changed.
    pub replication_factor: i32,
    /// Consumer session timeout: how soon the group notices a member that died without
    /// leaving (kill -9, crash) and hands its partitions to the others; the heartbeat
    /// goes every third of it. A stock Kafka broker accepts down to 6 s
    /// (`group.min.session.timeout.ms`); see docs/configuration.md for why the default
    /// is 10 s.
    pub session_timeout_ms: u64,
    /// Extra librdkafka settings for the jobs producer (e.g. `"batch.num.messages" =
    /// "1"` against a broker that cannot fetch from inside a record batch).
    pub producer_config: std::collections::BTreeMap<String, String>,
    /// Static group membership (`group.instance.id`, KIP-345): a process restarted with
    /// the same id takes its old place at once instead of waiting for a rebalance.
    /// Set it to something stable per process (pod or host name); absent: dynamic.
    pub instance_id: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group: "reconciler".into(),
            jobs_topic: "reconcile.jobs".into(),
            dead_letter_topic: "reconcile.dlq".into(),
            trigger_group: "reconciler-dts".into(),
            partitions: 0,
            replication_factor: 0,
            session_timeout_ms: 10_000,
            producer_config: Default::default(),
            instance_id: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TriggersConfig {
    pub dts: Vec<DtsConfig>,
    pub scanner: ScannerConfig,
    pub full: FullTriggerConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    Canal,
    Debezium,
    Maxwell,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DtsConfig {
    pub topic: String,
    pub format: EventFormat,
    /// Check each changed goods this long after the event's commit time, once per stage.
    #[serde(default = "default_stages")]
    pub stages_ms: Vec<u64>,
}

fn default_stages() -> Vec<u64> {
    DtsConfig::default_stages()
}

impl DtsConfig {
    /// The stages of a DTS topic that names none.
    pub fn default_stages() -> Vec<u64> {
        vec![3000, 30000, 300000]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ScannerConfig {
    pub enabled: bool,
    pub interval_ms: u64,
    /// Rows read per second, per shard table.
    pub rows_per_sec: u32,
    /// The window ends this long before now, so in-flight sync is not mistaken for drift.
    pub settle_ms: u64,
    /// On first start (no watermark yet), look back this far.
    pub initial_lookback_ms: u64,
    /// Rows per keyset page.
    pub page_size: u32,
    /// Each pass re-reads rows this far behind the watermark (rows already published are
    /// skipped), so a transaction that committed after its rows' `updated_at` fell
    /// behind the watermark is still caught. Longer than your longest transaction.
    pub overlap_ms: u64,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        ScannerConfig {
            enabled: false,
            interval_ms: 10_000,
            rows_per_sec: 5000,
            settle_ms: 3000,
            initial_lookback_ms: 3_600_000,
            page_size: 1000,
            overlap_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FullTriggerConfig {
    /// UTC cron with seconds; absent: no scheduled full run.
    pub cron: Option<String>,
    /// Hive-exported Parquet file or directory; absent: goods ids come from MySQL.
    pub dump: Option<String>,
    /// Name of the goods id column in the dump.
    pub goods_id_column: String,
    /// Distributed runs (`full --via-bus`, scheduled runs on Kafka): goods per batch job
    /// (one keyset page of a shard, or one batch of dump ids).
    pub job_goods: u32,
    /// Distributed runs: the publisher's pace, goods rows per second per shard (0:
    /// unlimited); it protects MySQL from the keyset walk.
    pub rows_per_sec: u32,
    /// Distributed runs: the publisher's lease; a publisher silent this long is taken
    /// over by another instance, which resumes from its checkpoint.
    pub lease_ms: u64,
    /// Distributed runs: HBase orphan-scan jobs per target (row-key prefix ranges of
    /// `0000`..`ffff`); Redis gets one job per node.
    pub orphan_parts: u32,
}

impl Default for FullTriggerConfig {
    fn default() -> Self {
        FullTriggerConfig {
            cron: None,
            dump: None,
            goods_id_column: "goods_id".into(),
            job_goods: 1000,
            rows_per_sec: 20_000,
            lease_ms: 30_000,
            orphan_parts: 16,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HandlerConfig {
    /// Concurrent handler workers in `serve`.
    pub workers: usize,
    /// Jobs gathered into one micro-batch (grouped by shard).
    pub batch_size: usize,
    /// Longest wait to fill a micro-batch.
    pub batch_wait_ms: u64,
    /// A job whose repair the blast-radius breaker halted is checked again this much
    /// later (re-published on the job bus), until the breaker closes or is reset.
    pub halted_recheck_ms: u64,
    /// A job due further in the future than the largest DTS stage plus this margin (a
    /// timestamp in micro- or nanoseconds, a broken producer) is dead-lettered.
    pub not_before_margin_ms: u64,
    /// Re-checks of one job whose repair stays deferred (or whose goods cannot be
    /// checked) before it is dead-lettered.
    pub max_rechecks: u32,
    /// Longest delay between two re-checks of one job (they start at
    /// `repair.settle_ms` and double).
    pub max_recheck_delay_ms: u64,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            workers: 2,
            batch_size: 200,
            batch_wait_ms: 20,
            halted_recheck_ms: 30_000,
            not_before_margin_ms: 600_000,
            max_rechecks: 12,
            max_recheck_delay_ms: 30_000,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    pub listen: String,
    /// When set, POST endpoints require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// `/healthz` reports not ready when the job consumer has not polled its broker for
    /// this long.
    pub consumer_stall_ms: u64,
    /// `POST /repair` of an activity with more goods than this answers at once with 202
    /// and a run id (followed through `GET /runs/{id}`) instead of holding the call.
    pub repair_async_goods: u64,
    /// A `POST /repair` still running after this long answers 202 with its run id and
    /// goes on in the background.
    pub repair_wait_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9100".into(),
            token: None,
            consumer_stall_ms: 60_000,
            repair_async_goods: 10_000,
            repair_wait_ms: 20_000,
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("consumer_stall_ms", &self.consumer_stall_ms)
            .field("repair_async_goods", &self.repair_async_goods)
            .field("repair_wait_ms", &self.repair_wait_ms)
            .finish()
    }
}

/// The price verifier (contract section 10): `serve` consumes pricing samples from
/// `topic` when it is set; `reconciler verify` and the demo use the rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct VerifierConfig {
    /// Kafka topic of pricing samples; absent: no price verification in `serve`. The
    /// verifiers of every instance share the consumer group `kafka.group + ".verifier"`.
    pub topic: Option<String>,
    /// Ascending upper bounds (cents) of the price bands samples are counted by.
    pub price_bands: Vec<i64>,
    /// Activity tags counted under their own label; every other tag is `other`.
    pub tags: Vec<String>,
    /// Business codes counted under their own label, the rest `other`; empty: every code
    /// as it is, up to `max_biz_codes` distinct codes per process.
    pub biz_codes: Vec<String>,
    pub max_biz_codes: usize,
    /// Samples verified per micro-batch (one truth query per shard table per batch).
    pub batch_size: usize,
    /// Longest wait to fill a micro-batch.
    pub batch_wait_ms: u64,
    /// Micro-batches verified at once.
    pub concurrency: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            topic: None,
            price_bands: vec![1000, 5000, 10_000, 50_000, 100_000],
            tags: Vec::new(),
            biz_codes: Vec::new(),
            max_biz_codes: 50,
            batch_size: 500,
            batch_wait_ms: 50,
            concurrency: 4,
        }
    }
}

/// When present, `demo` and `serve` start the in-process HBase Thrift1 emulator here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorConfig {
    pub listen: String,
    /// Worker threads: one per open connection, so above the clients' pool sizes.
    #[serde(default = "default_emulator_workers")]
    pub workers: usize,
}

fn default_emulator_workers() -> usize {
    64
}
