//! The distributed-run phase (`--distributed`): on the seeded data set of N goods,
//! - a clean full pass read truth by keyset page + `IN` list (the in-process path) and
//!   by range (the range jobs' path), back to back, in check mode;
//! - `full --via-bus --wait` with one `reconciler serve` instance and with two in the
//!   same consumer group (goods/s and the ratio);
//! - recovery: `sync --all` after wiping redis-a, then after wiping the HBase table;
//! - the peak RSS of the publisher (`full --via-bus` without `--wait`, publishing into a
//!   topic nobody consumes) at N, and at 4N with `--scale4`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use handlers::{Handler, Mode};
use hbase_thrift::hbase::THbaseSyncClient;
use tokio::sync::Semaphore;

use crate::say;

/// `[bus]`/`[kafka]`/`[triggers.full]` of the distributed phase, appended to the bench
/// config; `topic` names the jobs topic.
pub fn bus_section(tag: &str, topic: &str) -> String {
    format!(
        "\n[bus]\nkind = \"kafka\"\n[kafka]\nbrokers = \"{}\"\ngroup = \"bench-{tag}\"\njobs_topic = \"{topic}\"\ndead_letter_topic = \"bench-{tag}-dlq\"\ntrigger_group = \"bench-{tag}-dts\"\npartitions = 4\n[admin]\nlisten = \"127.0.0.1:0\"\n[handler]\nworkers = 4\n[triggers.full]\njob_goods = 1000\nrows_per_sec = 0\nlease_ms = 30000\n",
        common::testenv::kafka_brokers()
    )
}

/// A clean full pass over every shard in check mode, `concurrency` pages at a time:
/// keyset page, then truth by `IN` list (`by_range = false`) or by range; goods/s.
pub async fn keyset_vs_range(handler: &Arc<Handler>, page: u32, concurrency: usize, by_range: bool) -> Result<f64> {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut goods = 0u64;
    let run = Arc::new(handler.run_breaker());
    for shard in 0..handler.truth().layout().total_shards() {
        let mut after = None;
        loop {
            let ids = handler.truth().goods_page(shard, after, page).await?;
            let Some(&hi) = ids.last() else { break };
            let lo = after.map(|a| a + 1).unwrap_or(0);
            after = Some(hi);
            goods += ids.len() as u64;
            let full = ids.len() == page as usize;
            let permit = permits.clone().acquire_owned().await?;
            let (handler, run) = (handler.clone(), run.clone());
            tasks.spawn(async move {
                let mode = Mode::check("bench-range".into());
                let r = if by_range {
                    handler.process_range(shard, lo, hi, &mode, &run).await
                } else {
                    handler.process(&ids, &mode, &run).await
                };
                drop(permit);
                r.map(|r| r.checked)
            });
            if !full {
                break;
            }
        }
    }
    let mut checked = 0;
    while let Some(r) = tasks.join_next().await {
        checked += r??;
    }
    if checked != goods {
        bail!("checked {checked} of {goods} goods");
    }
    Ok(goods as f64 / started.elapsed().as_secs_f64())
}

/// `reconciler serve` on the bench config, killed on drop.
pub struct Serve(Child);

impl Serve {
    /// Starts `reconciler serve`, its log filter from `BENCH_SERVE_LOG` (default `warn`;
    /// e.g. `warn,triggers::bus::kafka=info,reconciler::serve::batch=debug` shows
    /// rebalances and each batch job's duration).
    pub fn start(binary: &Path, config: &Path) -> Result<Serve> {
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("RECONCILER_LOG", std::env::var("BENCH_SERVE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting reconciler serve")?;
        // It prints its admin address once the listener is bound.
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)?;
        if !line.contains("admin listening") {
            bail!("serve did not start: {line}");
        }
        Ok(Serve(child))
    }
}

impl Drop for Serve {
    /// SIGTERM, as an orchestrator stops it: the instance drains and commits its
    /// consumers' offsets. Killed outright (as before) it left its last second of
    /// offsets uncommitted, and the next phase's instances ran the previous run's
    /// tail again (its 17 s orphan-scan parts), which cost the two-instance figure half
    /// its rate. SIGKILL only if it has not exited after 30 s.
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child's pid; no memory is involved.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `base` plus `extra` as a config file next to the bench config.
pub fn config_with(base: &Path, name: &str, extra: &str) -> Result<PathBuf> {
    let path = base.with_file_name(name);
    std::fs::write(&path, format!("{}{extra}", std::fs::read_to_string(base)?))?;
    Ok(path)
}

/// `full --via-bus --wait --json` timed with `instances` serve instances; goods/s of
/// the universe and the run's report.
pub fn via_bus(binary: &Path, config: &Path, instances: usize, goods: u64) -> Result<(f64, serde_json::Value)> {
    let serves: Vec<Serve> = (0..instances).map(|_| Serve::start(binary, config)).collect::<Result<_>>()?;
    // Let the group settle so each instance holds partitions before the run starts.
    std::thread::sleep(Duration::from_secs(8));
    let started = Instant::now();
    let out = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(["full", "--via-bus", "--wait", "--json"])
        .env("RECONCILER_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    drop(serves);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("report of full --via-bus (exit {:?})", out.status.code()))?;
    say(format!("full --via-bus, {instances} instance(s): {secs:.1} s, exit {:?}", out.status.code()));
    Ok((goods as f64 / secs, report))
}

/// `sync --all` timed; goods/s.
pub fn sync_all(binary: &Path, config: &Path, goods: u64) -> Result<f64> {
    let started = Instant::now();
    let out = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(["sync", "--all", "--json"])
        .env("RECONCILER_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    if out.status.code() != Some(0) {
        bail!("sync --all exit {:?}", out.status.code());
    }
    Ok(goods as f64 / secs)
}

/// Drops and recreates the HBase table (a wiped target).
pub fn wipe_hbase(client: &mut crate::hb::Client, target: &model::config::HbaseTarget) -> Result<()> {
    let name = target.table.clone().into_bytes();
    let _ = client.disable_table(name.clone());
    client.delete_table(name).context("deleting the hbase table")?;
    reconciler::hbase_admin::ensure_table(target)?;
    Ok(())
}

/// Peak RSS (kB) of the publisher publishing a run of the universe, and its seconds.
pub fn publisher_rss(binary: &Path, config: &Path) -> Result<(u64, f64)> {
    let c = crate::rss::child(binary, config, &["full", "--via-bus", "--json"])?;
    if c.exit != 0 {
        bail!("full --via-bus exit {}", c.exit);
    }
    Ok((c.max_rss_kb, c.elapsed.as_secs_f64()))
}
