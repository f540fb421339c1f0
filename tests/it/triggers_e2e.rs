//! The other triggers end to end: the recent-change scanner and the cron full run inside
//! `serve`, a target going away and coming back, and `full --dump` over a Hive-style
//! Parquet directory.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use model::GoodsId;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::common::{corrupt, data, healed, projected_goods, TestEnv};
use crate::service::{eventually, http, kafka_section, Service};

async fn synced(env: &TestEnv, first: GoodsId, n: u64) -> Vec<GoodsId> {
    let set = data(first, n);
    env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (first..first + n).collect();
    handlers::run::run_goods(&env.app.handler, &ids, &handlers::Mode::sync("t".into()), &env.app.run_options(None))
        .await
        .unwrap();
    projected_goods(env, &set).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scanner_repairs_a_change_that_produced_no_event() {
    let env = TestEnv::with_repair("settle_ms = 300\nmax_drift_ratio = 1.0").await;
    let goods = synced(&env, 30_000, 20).await;
    let service = Service::start(
        &env,
        "[triggers.scanner]\nenabled = true\ninterval_ms = 300\nsettle_ms = 300\nrows_per_sec = 10000\ninitial_lookback_ms = 600000\n",
    );
    // Truth changes; the sync pipeline loses it and no change event exists.
    let g = goods[3];
    let shard = env.config().layout().route(g);
    env.sql(&format!(
        "UPDATE `{}`.{} SET activity_price = activity_price + 5 WHERE goods_id = {g}",
        shard.database, shard.goods_table
    ))
    .await;
    let truth = env.truth(g).await;
    let want: Vec<Vec<u8>> = truth.entities.values().map(|e| e.encode()).collect();
    let ok = eventually(Duration::from_secs(20), || {
        let held = env.redis_hash("redis-a", g);
        want.iter().all(|w| held.values().any(|v| v == w))
    })
    .await;
    assert!(ok, "the scanner found the change and the handler repaired it");
    let (_, metrics) = http(&service.admin, "GET", "/metrics", None, None).unwrap();
    assert!(metrics.contains("reconciler_checks_total{trigger=\"scanner\"}"), "{metrics}");
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_full_run_repairs_drift() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 31_000, 20).await;
    let fields = corrupt(&env, "redis-b", &goods[..3]);
    let service = Service::start(&env, "[triggers.full]\ncron = \"*/2 * * * * *\"\n");
    assert!(eventually(Duration::from_secs(20), || healed(&env, "redis-b", &goods[..3], &fields)).await);
    let (_, metrics) = http(&service.admin, "GET", "/metrics", None, None).unwrap();
    assert!(
        metrics.contains("reconciler_repairs_total{target=\"redis-b\",kind=\"corrupt\",trigger=\"full\"} 3"),
        "{metrics}"
    );
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

/// A target goes away: jobs touching it are kept (not acknowledged), retried with
/// backoff, and repaired once it is back. Nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_goes_away_is_retried_until_it_is_back() {
    let mut env = TestEnv::new().await;
    let goods = synced(&env, 32_000, 10).await;
    let g = goods[0];
    let (q, (v, ts)) = env.hbase_row(g).into_iter().next().unwrap();
    let mut stale = crate::common::decode(&v);
    stale.price += 1;
    env.hbase_write(g, &q, Some(&stale.encode()), ts + 1);
    let service = Service::start(&env, &kafka_section(&env));
    env.stop_hbase();

    let publisher = triggers::bus::kafka::publisher::KafkaPublisher::with_config(
        &crate::service::brokers(),
        &format!("{}jobs", env.prefix),
        &[("batch.num.messages", "1")],
    )
    .unwrap();
    triggers::JobPublisher::publish(
        &publisher,
        &[model::job::Job::new(g, model::job::TriggerKind::Dts, "t-down".into())],
    )
    .await
    .unwrap();
    let admin = service.admin.clone();
    assert!(
        eventually(Duration::from_secs(20), || http(&admin, "GET", "/metrics", None, None)
            .is_ok_and(|(_, m)| m.contains("reconciler_unreachable_total{target=\"hbase-a\"}")))
        .await,
        "the outage is reported"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.start_hbase();
    let truth = env.truth(g).await.entities[&q.parse::<u64>().unwrap()].clone();
    assert!(
        eventually(Duration::from_secs(40), || crate::common::decode(&env.hbase_row(g)[&q].0) == truth).await,
        "repaired once hbase is back"
    );
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

fn write_parquet(path: &std::path::Path, column: &str, ids: &[i64], rows_per_group: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new(column, DataType::Int64, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    let file = std::fs::File::create(path).unwrap();
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(rows_per_group)).build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    for chunk in ids.chunks(rows_per_group) {
        let notes: Vec<String> = chunk.iter().map(|i| format!("row {i}")).collect();
        let cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(chunk.to_vec())), Arc::new(StringArray::from(notes))];
        writer.write(&RecordBatch::try_new(schema.clone(), cols).unwrap()).unwrap();
    }
    writer.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_dump_drives_a_full_run_and_a_broken_file_fails_clearly() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 33_000, 40).await;
    let fields = corrupt(&env, "redis-a", &goods[..4]);
    let dir = std::env::temp_dir().join(format!("{}dump", env.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let ids: Vec<i64> = (33_000..33_040).collect();
    // Two part files of several row groups each, a duplicate, and Hive's marker files.
    write_parquet(&dir.join("part-00000.parquet"), "goods_id", &ids[..25], 7);
    let mut second = ids[25..].to_vec();
    second.push(33_000);
    write_parquet(&dir.join("part-00001.parquet"), "goods_id", &second, 4);
    std::fs::write(dir.join("_SUCCESS"), b"").unwrap();
    std::fs::write(dir.join(".part-00000.parquet.crc"), b"junk").unwrap();

    let bin = env!("CARGO_BIN_EXE_reconciler");
    let cfg = env.config_path.to_str().unwrap();
    let o =
        Command::new(bin).args(["--config", cfg, "full", "--dump", dir.to_str().unwrap(), "--json"]).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["checked"], 40, "every goods of the dump once: {report}");
    assert_eq!(report["repairs"].as_array().unwrap().len(), 4, "{report}");
    assert!(healed(&env, "redis-a", &goods[..4], &fields));

    // A truncated part file: exit 2 naming the file.
    let bytes = std::fs::read(dir.join("part-00001.parquet")).unwrap();
    std::fs::write(dir.join("part-00002.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let o = Command::new(bin).args(["--config", cfg, "full", "--dump", dir.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("part-00002.parquet"), "{err}");
    std::fs::remove_file(dir.join("part-00002.parquet")).unwrap();

    // A dump without the configured column: exit 2 naming file and column.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    write_parquet(&other.join("part-0.parquet"), "item_id", &[1, 2, 3], 2);
    let o = Command::new(bin).args(["--config", cfg, "full", "--dump", other.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("part-0.parquet") && err.contains("goods_id"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
