//! Scenarios `redis-down`, `hbase-down`, `mariadb-down`, `broker-down`: one store goes
//! down mid-stream for the outage time and comes back with its data.
//!
//! - Redis: a private `redis-server` (append-only, fsync always) killed with SIGKILL and
//!   started again on the same port and directory.
//! - HBase: the scenario's HBase Thrift server behind a proxy that drops every
//!   connection and refuses new ones (the server holds its cells in memory).
//! - MariaDB: a private server (`common::testenv::mariadb::PrivateMariadb`) stopped
//!   (SIGTERM) and started again on the same data; truth writes are refused meanwhile.
//! - Broker: a private Tansu on S3 storage (a local `moto_server` bucket) killed with
//!   SIGKILL and started again on the same storage; the event producer buffers.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{pause, Outcome, Run};
use crate::env::{Ctx, Env};
use crate::procs::{self, PrivateRedis, PrivateTansu};
use crate::proxy::Proxy;
use common::testenv::mariadb::PrivateMariadb;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Redis,
    Hbase,
    Mariadb,
    Broker,
}

impl Store {
    pub fn name(self) -> &'static str {
        match self {
            Store::Redis => "redis-down",
            Store::Hbase => "hbase-down",
            Store::Mariadb => "mariadb-down",
            Store::Broker => "broker-down",
        }
    }
}

/// The private server a scenario hurts.
enum Victim {
    Redis(PrivateRedis),
    Hbase(Proxy),
    Mariadb(Box<PrivateMariadb>),
    Broker(PrivateTansu),
}

impl Victim {
    async fn down(&mut self) -> Result<()> {
        match self {
            Victim::Redis(r) => r.kill(),
            Victim::Hbase(p) => p.down(),
            Victim::Mariadb(m) => tokio::task::block_in_place(|| m.stop()).context("stopping mariadb")?,
            Victim::Broker(t) => t.kill(),
        }
        Ok(())
    }

    async fn up(&mut self) -> Result<()> {
        match self {
            Victim::Redis(r) => tokio::task::block_in_place(|| r.start_again())?,
            Victim::Hbase(p) => p.up(),
            Victim::Mariadb(m) => tokio::task::block_in_place(|| m.start_again()).context("starting mariadb")?,
            Victim::Broker(t) => tokio::task::block_in_place(|| t.start_again())?,
        }
        Ok(())
    }
}

pub async fn run(ctx: &Ctx, store: Store) -> Result<Outcome> {
    let down_ms: u64 = if ctx.quick { 8_000 } else { 30_000 };
    let dir = ctx.work.join(format!("{}-servers", store.name()));
    std::fs::create_dir_all(&dir)?;
    let (_hbase, emulator) = procs::start_emulator(&ctx.binary, &dir)?;
    let mut mysql = common::testenv::mysql_url();
    let mut redis = format!("{}/0", common::testenv::redis_url().trim_end_matches('/'));
    let mut hbase = emulator.clone();
    let mut brokers = common::testenv::kafka_brokers();
    let (mut victim, what) = match store {
        Store::Redis => {
            let r = PrivateRedis::start(&dir)?;
            redis = r.url();
            (Victim::Redis(r), "Redis (private redis-server, AOF fsync always) SIGKILLed, restarted on the same data")
        }
        Store::Hbase => {
            let p = Proxy::start(emulator).await?;
            hbase = p.addr.clone();
            (Victim::Hbase(p), "HBase Thrift server unreachable (every connection dropped and refused), data kept")
        }
        Store::Mariadb => {
            let m = tokio::task::block_in_place(PrivateMariadb::start).context("starting a private mariadb")?;
            mysql = m.url();
            (Victim::Mariadb(Box::new(m)), "MariaDB (private server) stopped (SIGTERM), started again on the same data")
        }
        Store::Broker => {
            let t = tokio::task::block_in_place(|| PrivateTansu::start(&ctx.root, &dir))?;
            brokers = t.brokers();
            (
                Victim::Broker(t),
                "Tansu broker (private, s3:// storage on a local moto_server) SIGKILLed, restarted on the same storage",
            )
        }
    };
    let env = Env::new(ctx, store.name(), mysql, redis, hbase, brokers)?;
    let mut run = Run::prepare(ctx, env, 1, 1, 0x0D0 + store as u64).await?;
    let mut out = Outcome {
        name: store.name().into(),
        fault: format!("{what}; down {} s mid-stream", down_ms / 1000),
        ..Default::default()
    };
    let rate = if store == Store::Broker { ctx.broker_rate } else { ctx.rate };
    let stream = run.stream_at(0x0D1 + store as u64, rate)?;
    out.notes.push(format!("stream of {rate} changes/s"));
    pause(if ctx.quick { 5_000 } else { 10_000 }).await;
    victim.down().await?;
    let down_at = Instant::now();
    pause(down_ms).await;
    victim.up().await?;
    let fault_end = Instant::now();
    out.notes.push(format!("down for {:.1} s", (fault_end - down_at).as_secs_f64()));
    let recovery = run.watch_recovery(stream.log.clone(), fault_end);
    pause(if ctx.quick { 10_000 } else { 20_000 }).await;
    let log = stream.stop().await?;
    eprintln!("faults: stream stopped, waiting for recovery");
    out.recovery_ms = tokio::time::timeout(run.settle_limit() + Duration::from_secs(30), recovery)
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten();
    let log = std::mem::take(&mut *log.lock().unwrap());
    run.finish(&log, &[], &mut out).await?;
    run.clean_up(ctx).await;
    drop(run);
    drop(victim);
    Ok(out)
}
