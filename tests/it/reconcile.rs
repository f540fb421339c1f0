//! Finding and repairing every drift kind on every target kind, shard routing, and
//! activity-wide repair.

use std::collections::BTreeSet;

use handlers::run::{mysql_id_source, run_activity, run_full, run_goods};
use handlers::Mode;
use model::job::TriggerKind;
use model::{DriftKind, GoodsId};

use crate::common::{data, decode, projected_goods, TestEnv};

async fn sync_all(env: &TestEnv) {
    let opts = env.app.run_options(None);
    let r = run_full(&env.app.handler, mysql_id_source(&env.app.handler, 50), &Mode::sync("t-sync".into()), &opts)
        .await
        .unwrap();
    assert!(r.unreachable.is_empty(), "{:?}", r.unreachable);
}

async fn full(env: &TestEnv, mode: Mode) -> model::report::Report {
    let opts = env.app.run_options(None);
    run_full(&env.app.handler, mysql_id_source(&env.app.handler, 50), &mode, &opts).await.unwrap()
}

/// Asserts every target holds exactly the projection of truth for `goods`, read raw.
async fn assert_equal_to_truth(env: &TestEnv, goods: &[GoodsId]) {
    for &g in goods {
        let truth = env.truth(g).await;
        for target in ["redis-a", "redis-b"] {
            let held = env.redis_hash(target, g);
            let want: Vec<String> = truth.entities.keys().map(u64::to_string).collect();
            assert_eq!(held.keys().cloned().collect::<Vec<_>>(), want, "{target} goods {g} fields");
            for (aid, e) in &truth.entities {
                assert_eq!(held[&aid.to_string()], e.encode(), "{target} goods {g} activity {aid} canonical bytes");
            }
        }
        let row = env.hbase_row(g);
        assert_eq!(row.len(), truth.entities.len(), "hbase goods {g}: {row:?}");
        for (aid, e) in &truth.entities {
            let (value, _) = &row[&aid.to_string()];
            assert_eq!(&decode(value), e, "hbase goods {g} activity {aid}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_drift_kind_on_every_target_is_found_and_repaired() {
    let env = TestEnv::new().await;
    let set = data(1000, 40);
    env.seed(&set, 3_600_000).await;
    sync_all(&env).await;
    let goods = projected_goods(&env, &set).await;
    assert!(goods.len() >= 15);
    assert!(full(&env, Mode::check("t-check".into())).await.drift.is_empty(), "clean after sync");

    let mut expected: BTreeSet<(String, GoodsId, DriftKind)> = BTreeSet::new();
    let mut r = env.redis();
    for (ti, target) in ["redis-a", "redis-b"].iter().enumerate() {
        let g = &goods[ti * 5..ti * 5 + 5];
        let key = |g| env.redis_key(target, g);
        let first_field = |g| env.redis_hash(target, g).into_iter().next().unwrap();
        let (f0, _) = first_field(g[0]);
        let _: () = redis::cmd("HDEL").arg(key(g[0])).arg(&f0).query(&mut r).unwrap();
        let (f1, v1) = first_field(g[1]);
        let mut e = decode(&v1);
        e.price += 1;
        let _: () = redis::cmd("HSET").arg(key(g[1])).arg(&f1).arg(e.encode()).query(&mut r).unwrap();
        let (f2, _) = first_field(g[2]);
        let _: () = redis::cmd("HSET").arg(key(g[2])).arg(&f2).arg("{not json").query(&mut r).unwrap();
        let _: () = redis::cmd("HSET").arg(key(g[3])).arg("6999").arg(&v1).query(&mut r).unwrap();
        let _: () = redis::cmd("HSET").arg(key(900_000 + ti as u64)).arg("7001").arg(&v1).query(&mut r).unwrap();
        for (gid, kind) in [
            (g[0], DriftKind::Missing),
            (g[1], DriftKind::Stale),
            (g[2], DriftKind::Corrupt),
            (g[3], DriftKind::Extra),
            (900_000 + ti as u64, DriftKind::Orphan),
        ] {
            expected.insert((target.to_string(), gid, kind));
        }
    }
    let g = &goods[10..15];
    let row = |g| env.hbase_row(g).into_iter().next().unwrap();
    let (q0, (_, ts0)) = row(g[0]);
    env.hbase_write(g[0], &q0, None, ts0);
    let (q1, (v1, ts1)) = row(g[1]);
    let mut e = decode(&v1);
    e.tags = e.tags.iter().cloned().chain(["drift".to_string()]).collect();
    env.hbase_write(g[1], &q1, Some(&e.encode()), ts1 + 1);
    let (q2, (_, ts2)) = row(g[2]);
    env.hbase_write(g[2], &q2, Some(b"\xff\xfe"), ts2 + 1);
    env.hbase_write(g[3], "6999", Some(&v1), 5);
    env.hbase_write(900_009, "7001", Some(&v1), 5);
    for (gid, kind) in [
        (g[0], DriftKind::Missing),
        (g[1], DriftKind::Stale),
        (g[2], DriftKind::Corrupt),
        (g[3], DriftKind::Extra),
        (900_009, DriftKind::Orphan),
    ] {
        expected.insert(("hbase-a".to_string(), gid, kind));
    }

    let report = full(&env, Mode::repair(TriggerKind::Full, "t-full".into())).await;
    let found: BTreeSet<(String, GoodsId, DriftKind)> =
        report.drift.iter().map(|d| (d.target.clone(), d.goods_id, d.kind)).collect();
    assert_eq!(found, expected, "exactly the injected drift is found");
    let stale = report.drift.iter().find(|d| d.kind == DriftKind::Stale && d.target == "redis-a").unwrap();
    assert_eq!(stale.fields.as_deref(), Some(&["price"][..]));
    let stale = report.drift.iter().find(|d| d.kind == DriftKind::Stale && d.target == "hbase-a").unwrap();
    assert_eq!(stale.fields.as_deref(), Some(&["tags"][..]));
    let repaired: BTreeSet<(String, GoodsId, DriftKind)> =
        report.repairs.iter().map(|d| (d.target.clone(), d.goods_id, d.kind)).collect();
    assert_eq!(repaired, expected, "every drift is repaired");
    assert!(report.deferred.is_empty() && report.unreachable.is_empty() && report.halted.is_none(), "{report:?}");
    assert_eq!(report.outcome(), model::report::Outcome::Clean);

    assert_equal_to_truth(&env, &goods).await;
    for orphan in [900_000, 900_001] {
        assert!(env.redis_hash(if orphan == 900_000 { "redis-a" } else { "redis-b" }, orphan).is_empty());
    }
    assert!(env.hbase_row(900_009).is_empty());
    let recheck = full(&env, Mode::check("t-recheck".into())).await;
    assert!(recheck.drift.is_empty(), "{:?}", recheck.drift);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goods_in_every_shard_are_routed_right() {
    let env = TestEnv::new().await;
    env.sql(&format!(
        "INSERT INTO {}.activity (activity_id, name, type, biz_code, tags, status, start_time, end_time, priority, updated_at) VALUES (7001, 'a', 1, 'main', 'x', 1, '2026-01-01', '2026-12-31', 1, '2026-01-01 00:00:00.123')",
        env.db("act_meta")
    ))
    .await;
    // By hand, from the contract: s = goods mod 8, act_{s div 4}, activity_goods_{s:04}.
    for goods in 1u64..=16 {
        let s = goods % 8;
        env.sql(&format!(
            "INSERT INTO {}.activity_goods_{s:04} (activity_id, goods_id, activity_price, status, updated_at) VALUES (7001, {goods}, {}, 1, '2026-01-01')",
            env.db(&format!("act_{}", s / 4)),
            goods * 100
        ))
        .await;
    }
    // A row in the wrong shard table is not this goods' truth.
    env.sql(&format!(
        "INSERT INTO {}.activity_goods_0004 (activity_id, goods_id, activity_price, status) VALUES (7001, 3, 1, 1)",
        env.db("act_1")
    ))
    .await;
    let ids: Vec<GoodsId> = (1..=16).chain([17]).collect();
    let truth = env.app.handler.truth().read(&ids).await.unwrap();
    for goods in 1u64..=16 {
        let e = &truth[&goods].entities[&7001];
        assert_eq!(e.price, goods as i64 * 100, "goods {goods}");
        assert_eq!(e.ver, 1767225600123, "ver is the activity's updated_at");
    }
    assert!(truth[&17].entities.is_empty());

    let report = run_goods(&env.app.handler, &ids, &Mode::sync("t".into()), &env.app.run_options(None)).await.unwrap();
    assert_eq!(report.repairs.len(), 16 * 3);
    for goods in 1u64..=16 {
        assert_eq!(decode(&env.redis_hash("redis-a", goods)["7001"]).price, goods as i64 * 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_wide_repair_reaches_all_its_goods() {
    let env = TestEnv::new().await;
    let set = data(2000, 60);
    env.seed(&set, 3_600_000).await;
    sync_all(&env).await;
    let activity = 7002;
    let members: Vec<GoodsId> =
        set.goods.iter().filter(|g| g.activity_id == activity && g.status == 1).map(|g| g.goods_id).collect();
    let shards: BTreeSet<u32> = members.iter().map(|g| env.config().layout().shard_of(*g)).collect();
    assert!(shards.len() >= 4, "activity spans shards: {shards:?}");
    let outsider = set
        .goods
        .iter()
        .find(|g| !set.goods.iter().any(|o| o.goods_id == g.goods_id && o.activity_id == activity))
        .unwrap()
        .goods_id;
    let mut r = env.redis();
    for g in members.iter().chain([&outsider]) {
        let field = if *g == outsider {
            env.redis_hash("redis-b", *g).into_keys().next().unwrap()
        } else {
            activity.to_string()
        };
        let _: () =
            redis::cmd("HSET").arg(env.redis_key("redis-b", *g)).arg(field).arg("garbage").query(&mut r).unwrap();
    }
    // The activity goes offline in truth, an hour ago: its entities must disappear.
    env.sql(&format!(
        "UPDATE {}.activity SET status = 2, updated_at = NOW(3) - INTERVAL 1 HOUR WHERE activity_id = {activity}",
        env.db("act_meta")
    ))
    .await;

    let report = run_activity(
        &env.app.handler,
        activity,
        &Mode::repair(TriggerKind::Operator, "t".into()),
        &env.app.run_options(None),
    )
    .await
    .unwrap();
    assert!(report.checked as usize >= members.len());
    for g in &members {
        for target in ["redis-a", "redis-b"] {
            assert!(!env.redis_hash(target, *g).contains_key(&activity.to_string()), "{target} goods {g}");
        }
        assert!(!env.hbase_row(*g).contains_key(&activity.to_string()), "hbase goods {g}");
    }
    assert!(report.repairs.iter().all(|r| members.contains(&r.goods_id)));
    for g in &members {
        for t in ["redis-a", "redis-b", "hbase-a"] {
            assert!(report.repairs.iter().any(|r| r.goods_id == *g && r.target == t), "{t} goods {g} repaired");
        }
    }
    assert_eq!(
        env.redis_hash("redis-b", outsider).values().filter(|v| v.as_slice() == b"garbage").count(),
        1,
        "outside the activity: untouched"
    );
}

/// Dumps and job batches may name a goods twice; that is never drift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_goods_in_one_batch_are_not_drift() {
    let env = TestEnv::new().await;
    let set = data(2500, 10);
    env.seed(&set, 3_600_000).await;
    sync_all(&env).await;
    let g = projected_goods(&env, &set).await[0];
    let ids = vec![g, g + 1, g, g];
    let report = run_goods(&env.app.handler, &ids, &Mode::check("t".into()), &env.app.run_options(None)).await.unwrap();
    assert!(report.drift.is_empty(), "{:?}", report.drift);
    assert_eq!(report.checked, 2);
    let held = env.app.handler.targets().iter().find(|t| t.kind() == "hbase").unwrap().read(&[g, g]).await.unwrap();
    assert_eq!(held[0], held[1]);
    assert!(!held[1].cells.is_empty());
}

/// Regression (issue 8, item 10): the keyset walk started at `goods_id > 0`, so goods 0
/// was never reached by a full run. Fails on the code before the fix: goods 0 stays
/// missing on every target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goods_zero_is_reached_by_full_and_activity_runs() {
    let env = TestEnv::new().await;
    let (meta, shard) = (env.db("act_meta"), env.db("act_0"));
    env.sql(&format!(
        "INSERT INTO {meta}.activity (activity_id, name, type, biz_code, status, start_time, end_time, updated_at)
         VALUES (7777, 'zero', 1, 'main', 1, '2026-01-01', '2027-01-01', NOW(3) - INTERVAL 1 HOUR)"
    ))
    .await;
    env.sql(&format!(
        "INSERT INTO {shard}.activity_goods_0000 (activity_id, goods_id, activity_price, status, updated_at)
         VALUES (7777, 0, 990, 1, NOW(3) - INTERVAL 1 HOUR)"
    ))
    .await;
    let report = full(&env, Mode::repair(TriggerKind::Full, "t-zero".into())).await;
    let missing: Vec<_> = report.drift.iter().filter(|d| d.goods_id == 0).map(|d| d.target.as_str()).collect();
    assert_eq!(missing, ["hbase-a", "redis-a", "redis-b"], "goods 0 found missing everywhere: {report:?}");
    assert_equal_to_truth(&env, &[0]).await;

    let _: () = redis::cmd("DEL").arg(env.redis_key("redis-a", 0)).query(&mut env.redis()).unwrap();
    let opts = env.app.run_options(None);
    let mode = Mode::repair(TriggerKind::Operator, "t-zero-activity".into());
    let report = run_activity(&env.app.handler, 7777, &mode, &opts).await.unwrap();
    assert_eq!(report.checked, 1, "{report:?}");
    assert_eq!(report.repairs.len(), 1, "{report:?}");
    assert_equal_to_truth(&env, &[0]).await;
}

/// Truth sessions estimate `goods_id IN (..)` lists from index statistics instead of an
/// index dive per id (`common::mysql`): a batch would otherwise descend the index twice
/// per goods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truth_sessions_do_not_dive_into_the_index_per_listed_id() {
    let env = TestEnv::new().await;
    let (limit,): (u64,) = sqlx::query_as("SELECT @@SESSION.eq_range_index_dive_limit")
        .fetch_one(env.app.pools.shard_pool(0))
        .await
        .unwrap();
    assert_eq!(limit, 1);
}
