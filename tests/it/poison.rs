//! Poison data is drift (or an error of its goods), never an outage: a key of the wrong
//! type, junk qualifiers of any length, values of any size, a zero DATETIME in truth.
//! The other goods of the batch are checked and repaired as usual, and a target is
//! `unreachable` only when the store does not answer.

use std::process::Command;

use handlers::run::run_goods;
use handlers::Mode;
use model::job::TriggerKind;
use model::report::Outcome;
use model::{DriftKind, GoodsId};

use crate::common::{data, projected_goods, TestEnv};

async fn synced(env: &TestEnv, first: GoodsId, n: u64) -> Vec<GoodsId> {
    let set = data(first, n);
    env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (first..first + n).collect();
    let mut opts = env.app.run_options(None);
    opts.batch_size = 1000;
    run_goods(&env.app.handler, &ids, &Mode::sync("t-sync".into()), &opts).await.unwrap();
    projected_goods(env, &set).await
}

fn one_batch(env: &TestEnv) -> handlers::run::RunOptions {
    let mut opts = env.app.run_options(None);
    opts.batch_size = 1000;
    opts
}

/// One Redis key of another type among 1000 goods (the code before failed the whole
/// pipelined read: every goods of the batch unchecked, the target `unreachable`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_type_key_among_a_thousand_goods_is_drift_repaired_with_the_rest() {
    let env = TestEnv::with_repair("settle_ms = 0\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
    let goods = synced(&env, 40_000, 1000).await;
    let ids: Vec<GoodsId> = (40_000..41_000).collect();
    let bad = goods[7];
    let other = goods[20];
    let mut r = env.redis();
    let _: () = redis::cmd("DEL").arg(env.redis_key("redis-a", bad)).query(&mut r).unwrap();
    let _: () = redis::cmd("SET").arg(env.redis_key("redis-a", bad)).arg("garbage").query(&mut r).unwrap();
    let field = env.redis_hash("redis-a", other).into_keys().next().unwrap();
    let _: () = redis::cmd("HSET").arg(env.redis_key("redis-a", other)).arg(&field).arg("{x").query(&mut r).unwrap();

    let check = run_goods(&env.app.handler, &ids, &Mode::check("t-check".into()), &one_batch(&env)).await.unwrap();
    assert!(check.unreachable.is_empty(), "{:?}", check.unreachable);
    assert_eq!(check.checked, 1000);
    assert!(check.errors.is_empty(), "{:?}", check.errors);
    let kinds: Vec<_> =
        check.drift.iter().filter(|d| d.goods_id == bad).map(|d| (d.target.as_str(), d.kind, d.activity_id)).collect();
    assert_eq!(kinds[0], ("redis-a", DriftKind::Corrupt, None), "{kinds:?}");
    assert!(kinds[1..].iter().all(|k| k.1 == DriftKind::Missing), "{kinds:?}");
    assert_eq!(check.drifted_goods, 2, "the wrong-type key and the corrupt field, nothing else");

    // The CLI of the issue: `check` exits 1 (drift), not 3 (unreachable).
    let out = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--config", env.config_path.to_str().unwrap(), "check", "--goods", &format!("{bad},{other}"), "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["unreachable"], serde_json::json!([]));

    let mode = Mode::repair(TriggerKind::Operator, "t-poison".into());
    let report = run_goods(&env.app.handler, &ids, &mode, &one_batch(&env)).await.unwrap();
    assert_eq!(report.checked, 1000);
    assert!(report.unreachable.is_empty() && report.deferred.is_empty(), "{report:?}");
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    let truth = env.truth(bad).await;
    let held = env.redis_hash("redis-a", bad);
    assert_eq!(held.len(), truth.entities.len(), "the key is a hash of the projection again");
    for (aid, e) in &truth.entities {
        assert_eq!(held[&aid.to_string()], e.encode());
    }
    // The removal of the key is audited with the key's DUMP as the before image.
    let whole = report.repairs.iter().find(|r| r.goods_id == bad && r.activity_id.is_none()).expect("audited");
    let row = env.app.handler.audit().get(whole.repair_id.unwrap()).await.unwrap().unwrap();
    assert!(row.whole && row.status == "applied" && row.qualifier.is_empty(), "{row:?}");
    assert!(row.before_value.unwrap().starts_with(&[0]), "a DUMP of a string starts with its type byte 0");
    let recheck = run_goods(&env.app.handler, &ids, &Mode::check("t-clean".into()), &one_batch(&env)).await.unwrap();
    assert!(recheck.drift.is_empty(), "{:?}", recheck.drift);
}

/// Junk qualifiers longer than any audit column, values of megabytes and bytes of any
/// kind are extra drift, removed and audited (the code before failed the whole batch on
/// the audit INSERT: `Data too long for column 'qualifier'`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_qualifiers_and_values_of_any_size_are_repaired_and_audited() {
    let env = TestEnv::with_repair("settle_ms = 0\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
    let goods = synced(&env, 42_000, 30).await;
    let ids: Vec<GoodsId> = (42_000..42_030).collect();
    let (g, other) = (goods[0], goods[1]);
    let long_field = format!("{}\u{0}\u{ff}junk", "9".repeat(300));
    let huge_value = vec![0xffu8; 2 * 1024 * 1024];
    let mut r = env.redis();
    let _: () = redis::cmd("HSET")
        .arg(env.redis_key("redis-a", g))
        .arg(long_field.as_bytes())
        .arg(&huge_value)
        .query(&mut r)
        .unwrap();
    let long_qualifier = "7".repeat(400);
    env.hbase_write(g, &long_qualifier, Some(&huge_value[..300_000]), 5);
    // An ordinary drift in the same batch.
    let field = env.redis_hash("redis-b", other).into_keys().next().unwrap();
    let _: () = redis::cmd("HSET").arg(env.redis_key("redis-b", other)).arg(&field).arg("{x").query(&mut r).unwrap();

    let mode = Mode::repair(TriggerKind::Operator, "t-junk".into());
    let report = run_goods(&env.app.handler, &ids, &mode, &one_batch(&env)).await.unwrap();
    assert!(report.unreachable.is_empty() && report.errors.is_empty(), "{report:?}");
    let extras: Vec<_> = report.repairs.iter().filter(|r| r.kind == DriftKind::Extra).collect();
    assert_eq!(extras.len(), 2, "{report:?}");
    assert!(report.repairs.iter().any(|r| r.goods_id == other && r.target == "redis-b"));
    assert_eq!(report.outcome(), Outcome::Clean, "{report:?}");
    assert!(!env.redis_hash("redis-a", g).keys().any(|k| k.len() > 300), "junk field removed");
    assert!(!env.hbase_row(g).contains_key(&long_qualifier), "junk qualifier removed");
    for e in extras {
        let row = env.app.handler.audit().get(e.repair_id.unwrap()).await.unwrap().unwrap();
        assert_eq!(row.status, "applied");
        assert!(row.qualifier.len() >= 300, "the qualifier is kept whole: {}", row.qualifier.len());
        assert!(row.truncated, "an image above the audit cap is kept as a prefix, flagged");
    }
}

/// A zero DATETIME in a goods row or an activity row makes those goods an error of the
/// report; the rest of the batch is checked and repaired (the code before failed the
/// whole batch on the NULL the conversion yields).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_datetime_in_truth_is_an_error_of_its_goods_only() {
    let env = TestEnv::with_repair("settle_ms = 0\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
    let goods = synced(&env, 43_000, 40).await;
    let ids: Vec<GoodsId> = (43_000..43_040).collect();
    let (zero, other) = (goods[0], goods[1]);
    let shard = env.config().layout().route(zero);
    env.sql(&format!(
        "SET SESSION sql_mode = ''; UPDATE `{}`.{} SET updated_at = '0000-00-00 00:00:00' WHERE goods_id = {zero}",
        shard.database, shard.goods_table
    ))
    .await;
    let field = env.redis_hash("redis-a", other).into_keys().next().unwrap();
    let mut r = env.redis();
    let _: () = redis::cmd("HSET").arg(env.redis_key("redis-a", other)).arg(&field).arg("{x").query(&mut r).unwrap();

    let mode = Mode::repair(TriggerKind::Operator, "t-zero".into());
    let report = run_goods(&env.app.handler, &ids, &mode, &one_batch(&env)).await.unwrap();
    assert!(report.unreachable.is_empty(), "{report:?}");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let e = &report.errors[0];
    assert_eq!((e.goods_id, e.target.as_deref()), (zero, None));
    assert!(e.reason.contains(&shard.goods_table) && e.reason.contains("updated_at"), "{}", e.reason);
    assert!(e.reason.contains(&format!("row (goods_id {zero}, activity_id ")), "the row by its key: {}", e.reason);
    assert!(report.repairs.iter().any(|r| r.goods_id == other), "the rest of the batch is repaired: {report:?}");
    assert!(!report.drift.iter().any(|d| d.goods_id == zero), "a goods whose truth is unusable is not judged");
    assert_eq!(report.outcome(), Outcome::DriftLeft, "a goods left unchecked is not clean");

    // An activity with a zero start time: every goods carrying it.
    let activity = env.truth(other).await.entities.into_keys().next().unwrap();
    env.sql(&format!(
        "SET SESSION sql_mode = ''; UPDATE {}.activity SET start_time = '0000-00-00' WHERE activity_id = {activity}",
        env.db("act_meta")
    ))
    .await;
    let report = run_goods(&env.app.handler, &ids, &Mode::check("t".into()), &one_batch(&env)).await.unwrap();
    assert!(report.unreachable.is_empty());
    let errs: Vec<_> = report.errors.iter().filter(|e| e.reason.contains("start_time")).collect();
    assert!(!errs.is_empty() && errs.iter().all(|e| e.reason.contains(&format!("row {activity}"))), "{errs:?}");
    assert!(errs.len() < 40, "only the goods of that activity");
}

/// Reads of truth by goods id go through the contract's unique keys whatever the
/// optimizer's statistics say. The pools set `eq_range_index_dive_limit = 1` (no index
/// dives for long `IN` lists), so MariaDB estimates an `IN` list from the key's
/// statistics; a table whose statistics were taken before its rows arrived (a bulk load
/// before the background recount) has no distinct-value counts, every key is estimated
/// at the whole table, and the benchmark's micro-batches read whole SKU tables for 26
/// goods. Regression test: with such statistics, every part of the reader's statement
/// must still be an index range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_truth_go_through_the_unique_keys_whatever_the_statistics_say() {
    use handlers::truth::{shard_rows_sql, Goods, Select, Table};
    use sqlx::Row;

    let env = TestEnv::new().await;
    let layout = env.config().layout();
    let shard = layout.shard(layout.shard_of(50_000));
    let ids: Vec<GoodsId> = (50_000..54_000).filter(|g| layout.shard_of(*g) == shard.index).take(30).collect();
    // Statistics of the empty tables, kept through the load; new handles then read them.
    for table in [&shard.goods_table, &shard.sku_table] {
        env.sql(&format!("ALTER TABLE `{}`.{table} STATS_AUTO_RECALC = 0", shard.database)).await;
        env.sql(&format!("ANALYZE TABLE `{}`.{table}", shard.database)).await;
    }
    env.seed(&data(50_000, 4_000), 3_600_000).await;
    for table in [&shard.goods_table, &shard.sku_table] {
        env.sql(&format!("FLUSH TABLE `{}`.{table}", shard.database)).await;
    }
    let pool = env.app.pools.shard_pool(shard.database_index);
    assert_eq!(ids.len(), 30);
    for which in [Goods::Ids(&ids), Goods::Range(ids[0], ids[29])] {
        let parts =
            [Select { shard: &shard, table: Table::Goods, which }, Select { shard: &shard, table: Table::Sku, which }];
        let sql = shard_rows_sql(&parts);
        // A range's bounds are parameters of a prepared statement, as the reader sends it.
        let explain = format!("EXPLAIN {sql}");
        let plan = match which {
            Goods::Ids(_) => sqlx::raw_sql(&explain).fetch_all(pool).await.unwrap(),
            Goods::Range(lo, hi) => {
                sqlx::query(&explain).bind(lo).bind(hi).bind(lo).bind(hi).fetch_all(pool).await.unwrap()
            }
        };
        assert_eq!(plan.len(), 2, "{sql}");
        for row in &plan {
            let (kind, key): (Option<String>, Option<String>) =
                (row.try_get("type").unwrap(), row.try_get("key").unwrap());
            let table: Option<String> = row.try_get("table").unwrap();
            assert_eq!(kind.as_deref(), Some("range"), "{table:?} read by {key:?} in {sql}");
            assert!(
                key.as_deref() == Some(model::schema::GOODS_KEY) || key.as_deref() == Some(model::schema::SKU_KEY),
                "{table:?} read by {key:?}"
            );
        }
    }
    // And the reader still reads the truth the data set has.
    let batch = env.app.handler.truth().read_checked(&ids).await.unwrap();
    assert!(batch.unusable.is_empty(), "{:?}", batch.unusable);
    assert!(ids.iter().filter(|g| !batch.truth[g].entities.is_empty()).count() > 20);
}

/// A batch of goods spread over every shard of both databases is read in one statement
/// per database (the shard tables joined by `UNION ALL`): its truth is the truth the
/// range reads give shard by shard (a statement per table), and a zero DATETIME in one
/// SKU row is an error of that goods alone, naming the SKU table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_every_shard_reads_the_truth_of_each_table_and_names_a_bad_sku_row() {
    let env = TestEnv::new().await;
    let set = data(44_000, 160);
    env.seed(&set, 3_600_000).await;
    let ids: Vec<GoodsId> = (44_000..44_160).collect();
    let layout = env.config().layout();
    let reader = env.app.handler.truth();
    let shards: std::collections::BTreeSet<u32> = ids.iter().map(|g| layout.shard_of(*g)).collect();
    assert_eq!(shards.len() as u32, layout.total_shards(), "the batch touches every shard");

    let batch = reader.read_checked(&ids).await.unwrap();
    assert!(batch.unusable.is_empty(), "{:?}", batch.unusable);
    let mut by_range = std::collections::HashMap::new();
    for s in shards {
        let (_, part) = reader.read_range(s, 0, u64::MAX).await.unwrap();
        by_range.extend(part.truth);
    }
    let with_skus = ids.iter().filter(|g| batch.truth[g].entities.values().any(|e| !e.skus.is_empty())).count();
    assert!(with_skus > 20, "SKU rows are read: {with_skus} goods with SKU prices");
    for g in &ids {
        let empty = model::GoodsTruth::default();
        assert_eq!(&batch.truth[g], by_range.get(g).unwrap_or(&empty), "goods {g}");
    }

    // A zero DATETIME in one SKU row.
    let bad = set.goods.iter().find(|g| !g.skus.is_empty()).unwrap();
    let shard = layout.route(bad.goods_id);
    env.sql(&format!(
        "SET SESSION sql_mode = ''; UPDATE `{}`.{} SET updated_at = '0000-00-00 00:00:00' WHERE goods_id = {} AND sku_id = {}",
        shard.database, shard.sku_table, bad.goods_id, bad.skus[0].0
    ))
    .await;
    let batch = reader.read_checked(&ids).await.unwrap();
    assert_eq!(batch.unusable.keys().copied().collect::<Vec<_>>(), vec![bad.goods_id]);
    let why = &batch.unusable[&bad.goods_id];
    assert!(why.contains(&format!("`{}`.{}", shard.database, shard.sku_table)) && why.contains("updated_at"), "{why}");
    assert!(
        why.contains(&format!("goods_id {}, ", bad.goods_id)) && why.contains(&format!("sku_id {})", bad.skus[0].0)),
        "{why}"
    );
    for g in ids.iter().filter(|g| **g != bad.goods_id) {
        assert_eq!(batch.truth[g], by_range.get(g).cloned().unwrap_or_default(), "goods {g}");
    }
}
