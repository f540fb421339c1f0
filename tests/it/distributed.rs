//! Distributed full runs (`full --via-bus`): the run ledger, two `serve` instances sharing
//! a run on the real broker, kill -9 of the publisher and of a handler mid-run, a Hive /
//! Spark dump as the source, and recovery of wiped targets.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::common::mysql::ledger::{JobOutcome, Ledger, RunRecord};
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use model::GoodsId;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::common::{corrupt, data, healed, projected_goods, TestEnv};
use crate::service::{kafka_section, Service};

fn reconciler(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RECONCILER_LOG", "warn")
        .output()
        .expect("runs")
}

/// [`reconciler`], killed after `limit`: `None` when it did not finish in time.
fn reconciler_within(config: &Path, args: &[&str], limit: Duration) -> Option<Output> {
    let child = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RECONCILER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    // The pipes are drained while waiting, so a long report cannot block the child.
    std::thread::spawn(move || tx.send(child.wait_with_output().expect("output")));
    match rx.recv_timeout(limit) {
        Ok(out) => Some(out),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            None
        }
    }
}

/// Service config: Kafka bus, small jobs, a short publisher lease.
fn section(env: &TestEnv, rows_per_sec: u32) -> String {
    format!(
        "{}[triggers.full]\njob_goods = 40\nrows_per_sec = {rows_per_sec}\nlease_ms = 2000\norphan_parts = 4\n",
        kafka_section(env).replace("[kafka]\n", "[kafka]\nsession_timeout_ms = 6000\n")
    )
}

/// Syncs every target from truth, then injects drift on every target: corrupt values on
/// redis-a, missing keys on redis-b, a stale cell on hbase-a, and orphans on both kinds.
/// Returns the corrupted goods and fields (redis-a) and the goods deleted (redis-b).
async fn drift_everywhere(env: &TestEnv, goods: &[GoodsId]) -> (Vec<GoodsId>, Vec<String>, Vec<GoodsId>) {
    let ids: Vec<GoodsId> = goods.to_vec();
    let opts = env.app.run_options(None);
    handlers::run::run_goods(&env.app.handler, &ids, &handlers::Mode::sync("t".into()), &opts).await.unwrap();
    let corrupted: Vec<GoodsId> = goods.iter().step_by(97).copied().collect();
    let fields = corrupt(env, "redis-a", &corrupted);
    let deleted: Vec<GoodsId> = goods.iter().skip(13).step_by(89).copied().collect();
    let mut r = env.redis();
    for g in &deleted {
        let _: () = redis::cmd("DEL").arg(env.redis_key("redis-b", *g)).query(&mut r).unwrap();
    }
    for g in goods.iter().skip(7).step_by(83) {
        let (q, (_, ts)) = env.hbase_row(*g).into_iter().next().unwrap();
        env.hbase_write(*g, &q, Some(b"{\"junk\":1}"), ts);
    }
    let _: () =
        redis::cmd("HSET").arg(env.redis_key("redis-a", 99_999_001)).arg("7001").arg("x").query(&mut r).unwrap();
    env.hbase_write(99_999_002, "7001", Some(b"x"), 1);
    (corrupted, fields, deleted)
}

fn universe(set: &reconciler::seed::DataSet) -> u64 {
    set.goods.iter().map(|g| g.goods_id).collect::<std::collections::BTreeSet<_>>().len() as u64
}

async fn wait_finished(ledger: &Ledger, run_id: &str, timeout: Duration) -> RunRecord {
    let start = Instant::now();
    loop {
        if let Some(r) = ledger.get(run_id).await.unwrap() {
            if r.is_finished() {
                return r;
            }
            assert!(start.elapsed() < timeout, "run did not finish: {r:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_run_via_the_bus_and_repair_every_drift() {
    let env = TestEnv::new().await;
    let set = data(40_000, 2_000);
    env.seed(&set, 3_600_000).await;
    let goods = projected_goods(&env, &set).await;
    let (corrupted, fields, deleted) = drift_everywhere(&env, &goods).await;

    let extra = section(&env, 400);
    let a = Service::start(&env, &extra);
    let b = Service::start(&env, &extra);
    let config = a.config_path.clone();
    let out = tokio::task::spawn_blocking(move || reconciler(&config, &["full", "--via-bus", "--wait", "--json"]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let drift = report["drift"].as_array().unwrap();
    let repairs = report["repairs"].as_array().unwrap();
    assert!(drift.len() >= corrupted.len() + deleted.len() + 2, "{report}");
    assert_eq!(drift.len(), repairs.len(), "every drift repaired: {report}");
    for kind in ["corrupt", "missing", "orphan"] {
        assert!(drift.iter().any(|d| d["kind"] == kind), "{kind} found: {report}");
    }

    let run_id = report["run_id"].as_str().unwrap().to_string();
    let ledger = Ledger::new(&env.app.pools);
    let run = ledger.get(&run_id).await.unwrap().unwrap();
    assert_eq!(run.state, "done");
    assert_eq!(run.checked, universe(&set), "the ledger counted every goods once: {run:?}");
    assert_eq!(run.published, universe(&set));
    assert_eq!(run.jobs_done, run.jobs_published);
    assert_eq!(run.orphans_checked, 2, "{run:?}");
    let shares = ledger.handled_by(&run_id).await.unwrap();
    assert_eq!(shares.len(), 2, "each instance handled a share: {shares:?}");

    assert!(healed(&env, "redis-a", &corrupted, &fields));
    assert!(deleted.iter().all(|g| !env.redis_hash("redis-b", *g).is_empty()));
    assert!(env.redis_hash("redis-a", 99_999_001).is_empty(), "orphan removed");
    assert!(env.hbase_row(99_999_002).is_empty(), "orphan row removed");

    // The operator surface: runs, runs RUN_ID, the admin API.
    let listed = reconciler(&a.config_path, &["runs", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["run_id"], run_id.as_str());
    let one = reconciler(&a.config_path, &["runs", &run_id, "--json"]);
    let one: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(one["checked"], universe(&set));
    assert_eq!(one["progress"], 1.0);
    let (status, body) = crate::service::http(&b.admin, "GET", &format!("/runs/{run_id}"), None, None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"state\":\"done\""), "{body}");
    let (status, _) = crate::service::http(&b.admin, "GET", "/runs/nope", None, None).unwrap();
    assert_eq!(status, 404);
    let (status, body) = crate::service::http(&b.admin, "GET", "/runs", None, None).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(&run_id));
}

fn spawn_cli(config: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RECONCILER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// kill -9 of the publishing process mid-publication: a `serve` instance takes the
/// publication over from the checkpoint once the lease expired; nothing is skipped and
/// nothing counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_survives_kill_9_of_its_publisher() {
    let env = TestEnv::new().await;
    let set = data(60_000, 2_000);
    env.seed(&set, 3_600_000).await;
    let goods = projected_goods(&env, &set).await;
    let (corrupted, fields, deleted) = drift_everywhere(&env, &goods).await;

    // A slow pace: 2,000 goods take ~10 s to publish, so the kill lands mid-publication.
    let extra = section(&env, 200);
    let a = Service::start(&env, &extra);
    let b = Service::start(&env, &extra);
    let mut publisher = spawn_cli(&a.config_path, &["full", "--via-bus", "--json"]);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(publisher.stdout.take().unwrap()), &mut line).unwrap();
    let run_id = serde_json::from_str::<serde_json::Value>(&line).unwrap()["run_id"].as_str().unwrap().to_string();

    let ledger = Ledger::new(&env.app.pools);
    let start = Instant::now();
    loop {
        let r = ledger.get(&run_id).await.unwrap().unwrap();
        if r.published >= 200 {
            assert_eq!(r.state, "publishing", "killed mid-publication");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "publication did not start: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.kill().unwrap();
    publisher.wait().unwrap();

    let run = match tokio::time::timeout(Duration::from_secs(150), wait_finished(&ledger, &run_id, Duration::MAX)).await
    {
        Ok(run) => run,
        Err(_) => {
            let run = ledger.get(&run_id).await.unwrap();
            let (_, a_log) = a.terminate();
            let (_, b_log) = b.terminate();
            panic!("run did not finish: {run:?}\n--- a ---\n{a_log}\n--- b ---\n{b_log}");
        }
    };
    assert_eq!(run.state, "done", "{run:?}");
    assert_eq!(run.checked, universe(&set), "nothing skipped, nothing counted twice: {run:?}");
    assert_eq!(run.published, universe(&set), "{run:?}");
    assert_eq!(run.drift, run.repaired, "{run:?}");
    assert!(healed(&env, "redis-a", &corrupted, &fields));
    assert!(deleted.iter().all(|g| !env.redis_hash("redis-b", *g).is_empty()));
}

/// kill -9 of a handler instance mid-run: its partitions go to the surviving instance
/// (by the group's rebalance, or by the assignment watchdog where the coordinator does
/// not rebalance, as Tansu 0.6 did not) and the run finishes with nothing skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_survives_kill_9_of_a_handler_instance() {
    let env = TestEnv::new().await;
    let set = data(70_000, 2_000);
    env.seed(&set, 3_600_000).await;
    let goods = projected_goods(&env, &set).await;
    let (corrupted, fields, deleted) = drift_everywhere(&env, &goods).await;

    let extra = section(&env, 200);
    let a = Service::start(&env, &extra);
    let mut b = Service::start(&env, &extra);
    // The waiting CLI writes its report to a file (a pipe could fill up and block it).
    let report_path = std::env::temp_dir().join(format!("{}kill-handler-report.json", env.prefix));
    let mut waiting = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .arg("--config")
        .arg(&a.config_path)
        .args(["full", "--via-bus", "--wait", "--json"])
        .env("RECONCILER_LOG", "warn")
        .stdout(std::fs::File::create(&report_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Kill b once it has handled some jobs of the run (publication goes on meanwhile).
    let ledger = Ledger::new(&env.app.pools);
    let start = Instant::now();
    let run_id = loop {
        let runs = ledger.list(1).await.unwrap_or_default();
        if let Some(r) = runs.first().filter(|r| !r.is_finished()) {
            let shares = ledger.handled_by(&r.run_id).await.unwrap();
            if shares.len() == 2 && shares.iter().all(|(_, jobs)| *jobs >= 2) {
                break r.run_id.clone();
            }
        }
        assert!(start.elapsed() < Duration::from_secs(90), "both instances never handled jobs: {runs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    b.child.kill().unwrap();
    b.child.wait().unwrap();

    let start = Instant::now();
    let status = loop {
        if let Some(status) = waiting.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(240) {
            let _ = waiting.kill();
            let _ = waiting.wait();
            let run = ledger.get(&run_id).await.unwrap();
            let (_, a_log) = a.terminate();
            panic!("run did not finish: {run:?}\n--- a ---\n{a_log}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let report = std::fs::read_to_string(&report_path).unwrap();
    let _ = std::fs::remove_file(&report_path);
    assert_eq!(status.code(), Some(0), "{report}");
    let run = ledger.get(&run_id).await.unwrap().unwrap();
    assert_eq!(run.state, "done", "{run:?}");
    assert_eq!(run.checked, universe(&set), "nothing skipped, nothing counted twice: {run:?}");
    assert_eq!(run.drift, run.repaired, "{run:?}");
    assert!(healed(&env, "redis-a", &corrupted, &fields));
    assert!(deleted.iter().all(|g| !env.redis_hash("redis-b", *g).is_empty()));
    let (code, log) = a.terminate();
    assert_eq!(code, 0, "{log}");
}

fn write_part(path: &Path, ids: &[i64], codec: Compression) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let batch =
        RecordBatch::try_from_iter(vec![("goods_id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef)]).unwrap();
    let props = WriterProperties::builder().set_compression(codec).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hive_dump_of_partition_folders_and_codecs_drives_a_run() {
    let env = TestEnv::new().await;
    let set = data(70_000, 600);
    env.seed(&set, 3_600_000).await;
    let goods = projected_goods(&env, &set).await;
    let (corrupted, fields, _) = drift_everywhere(&env, &goods).await;

    let ids: Vec<i64> =
        set.goods.iter().map(|g| g.goods_id as i64).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let dir = std::env::temp_dir().join(format!("{}dump", env.prefix));
    let third = ids.len() / 3;
    write_part(&dir.join("dt=2026-11-23/region=eu/000000_0"), &ids[..third], Compression::ZSTD(ZstdLevel::default()));
    write_part(
        &dir.join("dt=2026-11-23/region=us/000000_0"),
        &ids[third..2 * third],
        Compression::GZIP(GzipLevel::default()),
    );
    write_part(&dir.join("dt=2026-11-24/part-00000-1.snappy.parquet"), &ids[2 * third..], Compression::SNAPPY);
    std::fs::write(dir.join("_SUCCESS"), b"").unwrap();
    std::fs::write(dir.join("dt=2026-11-24/.part-00000-1.snappy.parquet.crc"), b"crc").unwrap();

    let service = Service::start(&env, &section(&env, 0));
    let out = {
        let (config, dir) = (service.config_path.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            reconciler(&config, &["full", "--dump", dir.to_str().unwrap(), "--via-bus", "--wait", "--json"])
        })
        .await
        .unwrap()
    };
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = Ledger::new(&env.app.pools).get(report["run_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(run.checked, ids.len() as u64, "{run:?}");
    assert!(run.source.starts_with("dump:"), "{run:?}");
    assert!(healed(&env, "redis-a", &corrupted, &fields));

    // A broken part file fails the run with its path named, exit 2.
    let broken = dir.join("dt=2026-11-24/000009_0");
    std::fs::write(&broken, b"PAR1 not parquet").unwrap();
    let config = service.config_path.clone();
    let d = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        reconciler(&config, &["full", "--dump", d.to_str().unwrap(), "--via-bus", "--wait"])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("000009_0"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Recovery writes under the bulk cap, not the repair cap: with repairs capped at one
/// write per second the ~2,000 writes below (500 goods, two wiped targets) would
/// take over half an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_all_restores_a_wiped_redis_target_and_a_wiped_hbase_table() {
    let env = TestEnv::with_repair(
        "settle_ms = 3000\nmax_drift_ratio = 0.5\nmax_repairs_per_sec = 1\nbulk_writes_per_sec = 0",
    )
    .await;
    let set = data(80_000, 500);
    env.seed(&set, 3_600_000).await;
    let goods = projected_goods(&env, &set).await;
    let opts = env.app.run_options(None);
    handlers::run::run_goods(&env.app.handler, &goods, &handlers::Mode::sync("t".into()), &opts).await.unwrap();

    // Wipe redis-a entirely and every row of the HBase table.
    let mut r = env.redis();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}a:*", env.prefix)).query(&mut r).unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL").arg(keys).query(&mut r).unwrap();
    let mut thrift = env.thrift();
    for g in &goods {
        hbase_thrift::hbase::THbaseSyncClient::delete_all_row(
            &mut thrift,
            env.hbase_table().into_bytes(),
            model::hbase_row_key(*g).into_bytes(),
            Default::default(),
        )
        .unwrap();
    }
    assert!(env.hbase_row(goods[0]).is_empty() && env.redis_hash("redis-a", goods[0]).is_empty());

    let out = reconciler_within(&env.config_path, &["sync", "--all", "--json"], Duration::from_secs(180))
        .expect("sync --all is not held to repair.max_repairs_per_sec");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let check = reconciler(&env.config_path, &["full", "--dry-run", "--json"]);
    assert_eq!(check.status.code(), Some(0), "clean after recovery: {}", String::from_utf8_lossy(&check.stdout));
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["drift"].as_array().unwrap().len(), 0);
    assert!(goods.iter().all(|g| !env.redis_hash("redis-a", *g).is_empty() && !env.hbase_row(*g).is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_counts_each_job_once_under_redelivery() {
    let env = TestEnv::new().await;
    Ledger::ensure_tables(&env.app.pools).await.unwrap();
    let ledger = Ledger::new(&env.app.pools);
    ledger.create("run-x", "mysql", false, "p1", 1000, 10_000).await.unwrap();
    assert!(ledger.claim("run-x", "p2", 2000, 10_000).await.unwrap().is_none(), "lease held by p1");
    assert!(ledger.checkpoint("run-x", "p1", ("s0:10", 2, 20), 3000, 10_000).await.unwrap());
    // The lease expired: p2 takes over from the checkpoint; p1 can no longer move it.
    let taken = ledger.claim("run-x", "p2", 20_000, 10_000).await.unwrap().unwrap();
    assert_eq!((taken.checkpoint.as_str(), taken.jobs_published), ("s0:10", 2));
    assert!(!ledger.checkpoint("run-x", "p1", ("s0:99", 3, 30), 20_001, 10_000).await.unwrap());

    let outcome = |checked| JobOutcome { checked, drift: 1, repaired: 1, handled_by: "h".into(), ..Default::default() };
    // The same job delivered to eight handlers at once, and again later: counted once.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (ledger, o) = (ledger.clone(), outcome(10));
            tokio::spawn(async move { ledger.record("run-x", "run-x-r0-0", &o, 21_000).await.unwrap() })
        })
        .collect();
    let mut counted = 0;
    for t in tasks {
        counted += t.await.unwrap() as u32;
    }
    assert_eq!(counted, 1);
    assert!(!ledger.record("run-x", "run-x-r0-0", &outcome(10), 22_000).await.unwrap());
    assert!(ledger.published_all("run-x", "p2", 2, 20, 23_000).await.unwrap());
    let r = ledger.get("run-x").await.unwrap().unwrap();
    assert_eq!((r.state.as_str(), r.checked, r.jobs_done), ("running", 10, 1));
    assert!(ledger.record("run-x", "run-x-r0-11", &outcome(10), 24_000).await.unwrap());
    let r = ledger.get("run-x").await.unwrap().unwrap();
    assert_eq!((r.state.as_str(), r.checked, r.drift, r.repaired, r.finished_ms), ("done", 20, 2, 2, Some(24_000)));
}
