//! One scenario's world: its own databases (prefix `flt_<tag>_`), Redis keys (prefix
//! `flt:<tag>:goods:`), HBase table, topics and consumer groups, and the reconciler config
//! that points at them (contract sections 8-9 plus documented keys with defaults).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use model::ShardLayout;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::Executor;

/// Suite-wide settings.
pub struct Ctx {
    pub root: PathBuf,
    pub binary: PathBuf,
    pub work: PathBuf,
    pub quick: bool,
    /// Truth changes per second of the stream.
    pub rate: u64,
    /// Truth changes per second of the stream in the broker-down scenario.
    pub broker_rate: u64,
    /// Goods in each scenario's universe.
    pub goods: u64,
    /// The DTS trigger's first stage delay.
    pub stage_ms: u64,
    pub keep: bool,
    /// Give each serve a static group membership id (`RECONCILER_KAFKA_INSTANCE_ID`).
    pub static_membership: bool,
}

pub struct Env {
    pub name: String,
    pub tag: String,
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub mysql_url: String,
    pub layout: ShardLayout,
    pub redis_url: String,
    pub key_prefix: String,
    pub hbase_addr: String,
    pub hbase_table: String,
    pub brokers: String,
    pub settle_ms: u64,
    pub stages_ms: Vec<u64>,
    pub config: PathBuf,
}

pub const FORMATS: [&str; 3] = ["canal", "debezium", "maxwell"];

impl Env {
    pub fn new(
        ctx: &Ctx,
        name: &str,
        mysql_url: String,
        redis_url: String,
        hbase_addr: String,
        brokers: String,
    ) -> Result<Env> {
        let tag = format!(
            "{}{:x}",
            name.chars().filter(char::is_ascii_alphanumeric).take(6).collect::<String>(),
            common::clock::now_ms() % 0xffffff
        );
        let dir = ctx.work.join(&tag);
        std::fs::create_dir_all(&dir)?;
        let layout = ShardLayout { databases: 2, tables_per_database: 4, db_prefix: format!("flt_{tag}_") };
        Ok(Env {
            name: name.into(),
            key_prefix: format!("flt:{tag}:goods:"),
            hbase_table: format!("flt_{tag}"),
            config: dir.join("reconciler.toml"),
            tag,
            dir,
            binary: ctx.binary.clone(),
            mysql_url,
            layout,
            redis_url,
            hbase_addr,
            brokers,
            settle_ms: 1000,
            stages_ms: vec![ctx.stage_ms, ctx.stage_ms * 10],
        })
    }

    pub fn topic(&self, what: &str) -> String {
        format!("flt-{}-{what}", self.tag)
    }

    pub fn config_text(&self) -> String {
        let t = &self.tag;
        let stages = self.stages_ms.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        let mut s = format!(
            r#"# Written by the fault suite (faults/src/env.rs) for scenario `{name}`.
[mysql]
url = "{mysql}"
databases = 2
tables_per_database = 4
db_prefix = "{prefix}"
connect_timeout_ms = 3000

[repair]
settle_ms = {settle}
max_drift_ratio = 1.0          # every change of the stream is drift (a lost sync)
max_repairs_per_sec = 100000

[[targets]]
name = "redis-a"
kind = "redis"
url = "{redis}"
key_prefix = "{kp}"
timeout_ms = 3000

[[targets]]
name = "hbase-a"
kind = "hbase"
address = "{hbase}"
table = "{table}"
timeout_ms = 3000

[bus]
kind = "kafka"

[kafka]
brokers = "{brokers}"
group = "flt-{t}-handlers"
jobs_topic = "flt-{t}-jobs"
dead_letter_topic = "flt-{t}-dlq"
trigger_group = "flt-{t}-dts"
partitions = 4
producer_config = {{ "batch.num.messages" = "1" }}

[handler]
workers = 2

[triggers.scanner]
enabled = false

[admin]
listen = "127.0.0.1:0"
"#,
            name = self.name,
            mysql = self.mysql_url,
            prefix = self.layout.db_prefix,
            settle = self.settle_ms,
            redis = self.redis_url,
            kp = self.key_prefix,
            hbase = self.hbase_addr,
            table = self.hbase_table,
            brokers = self.brokers,
        );
        for f in FORMATS {
            s.push_str(&format!(
                "\n[[triggers.dts]]\ntopic = \"{}\"\nformat = \"{f}\"\nstages_ms = [{stages}]\n",
                self.topic(f)
            ));
        }
        s
    }

    pub fn write_config(&self) -> Result<()> {
        std::fs::write(&self.config, self.config_text())?;
        Ok(())
    }

    /// A pool on the scenario's MySQL server, sessions in UTC (truth times are UTC).
    pub async fn pool(&self) -> Result<sqlx::MySqlPool> {
        Ok(MySqlPoolOptions::new()
            .max_connections(12)
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(|c, _| {
                Box::pin(async move {
                    c.execute("SET time_zone = '+00:00'").await?;
                    Ok(())
                })
            })
            .connect_lazy(&self.mysql_url)?)
    }

    /// The change-event topics (4 partitions each), created before the service starts.
    pub async fn create_topics(&self) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.brokers).create()?;
        let names: Vec<String> = FORMATS.iter().map(|f| self.topic(f)).collect();
        let topics: Vec<NewTopic> = names.iter().map(|n| NewTopic::new(n, 4, TopicReplication::Fixed(1))).collect();
        admin.create_topics(&topics, &AdminOptions::new()).await.context("creating the change-event topics")?;
        Ok(())
    }

    /// Runs `reconciler --config <scenario config> ARGS`; its stdout, or an error with
    /// its stderr.
    pub fn reconciler(&self, args: &[&str]) -> Result<String> {
        run_reconciler(&self.binary, &self.config, args)
    }

    /// Drops the scenario's databases and Redis keys (the HBase server and topics are the
    /// scenario's own and go with it).
    pub async fn clean_up(&self, pool: &sqlx::MySqlPool) -> Result<()> {
        let mut dbs = vec![self.layout.meta_database()];
        dbs.extend((0..self.layout.databases).map(|d| self.layout.database(d)));
        for db in dbs {
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{db}`")).execute(pool).await?;
        }
        let mut c = redis::Client::open(self.redis_url.as_str())?.get_multiplexed_async_connection().await?;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.key_prefix))
                .arg("COUNT")
                .arg(2000)
                .query_async(&mut c)
                .await?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(&keys).query_async::<()>(&mut c).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

pub fn run_reconciler(binary: &Path, config: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RECONCILER_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running reconciler {}", args.join(" ")))?;
    if !out.status.success() && out.status.code() != Some(1) {
        bail!(
            "reconciler {} exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
