//! Safe repair: compare-and-set against concurrent writers, the settle window, the
//! blast-radius limit, and undo.

use handlers::run::{mysql_id_source, run_full, run_goods, RunOptions};
use handlers::undo::{undo, UndoError};
use handlers::Mode;
use model::diff::diff_goods;
use model::job::TriggerKind;
use model::repair_plan::plan_repairs;
use model::report::Outcome;
use model::GoodsId;

use crate::common::{decode, synced, TestEnv};

fn opts(env: &TestEnv) -> RunOptions {
    env.app.run_options(None)
}

/// The check sees one value; before the repair lands, the sync pipeline writes a newer
/// one. The repair must not overwrite it, on either kind of store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_changed_between_check_and_repair_is_not_overwritten() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 3000, 10).await;
    let g = goods[0];
    let field = env.redis_hash("redis-a", g).into_keys().next().unwrap();
    let mut r = env.redis();
    let _: () = redis::cmd("HSET").arg(env.redis_key("redis-a", g)).arg(&field).arg("{stale").query(&mut r).unwrap();
    let (q, (_, ts)) = env.hbase_row(g).into_iter().next().unwrap();
    env.hbase_write(g, &q, Some(b"{stale"), ts + 1);

    let handler = &env.app.handler;
    let truth = env.truth(g).await;
    let mode = Mode::repair(TriggerKind::Operator, "t-cas".into());
    for target in handler.targets().iter().filter(|t| t.name() != "redis-b") {
        let observed = target.read(&[g]).await.unwrap().remove(0);
        let drift = diff_goods(g, &truth, &observed);
        assert_eq!(drift.len(), 1, "{}", target.name());
        let plan = plan_repairs(&truth, &observed, &drift);

        // Meanwhile the sync pipeline writes the next version.
        let newer = b"{\"written\":\"by the pipeline\"}";
        if target.kind() == "redis" {
            let _: () =
                redis::cmd("HSET").arg(env.redis_key("redis-a", g)).arg(&field).arg(&newer[..]).query(&mut r).unwrap();
        } else {
            env.hbase_write(g, &q, Some(newer), ts + 2);
        }

        let report = handler.apply(target.as_ref(), plan, &mode).await.unwrap();
        assert!(report.repairs.is_empty(), "{}: {report:?}", target.name());
        assert_eq!(report.deferred.len(), 1);
        assert!(report.deferred[0].reason.contains("changed since the check"));
        let now = if target.kind() == "redis" {
            env.redis_hash("redis-a", g)[&field].clone()
        } else {
            env.hbase_row(g)[&q].0.clone()
        };
        assert_eq!(now, newer, "{}: the newer value survives", target.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truth_changed_within_settle_window_is_deferred() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 4000, 10).await;
    let g = goods[0];
    let shard = env.config().layout().route(g);
    env.sql(&format!(
        "UPDATE `{}`.{} SET activity_price = activity_price + 7, updated_at = NOW(3) WHERE goods_id = {g}",
        shard.database, shard.goods_table
    ))
    .await;
    let before_a = env.redis_hash("redis-a", g);
    let report =
        run_goods(&env.app.handler, &[g], &Mode::repair(TriggerKind::Dts, "t".into()), &opts(&env)).await.unwrap();
    assert!(!report.drift.is_empty());
    assert!(report.repairs.is_empty(), "{report:?}");
    assert_eq!(report.deferred.len(), 3, "one per target: {:?}", report.deferred);
    assert!(
        report.deferred.iter().all(|d| d.reason.starts_with("truth changed") && d.reason.ends_with("ms ago")),
        "{:?}",
        report.deferred
    );
    assert_eq!(report.outcome(), Outcome::DriftLeft);
    assert_eq!(env.redis_hash("redis-a", g), before_a, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_above_the_ratio_stops_repairs() {
    let env = TestEnv::with_repair("settle_ms = 0\nmax_drift_ratio = 0.1\nmin_goods_for_ratio = 10").await;
    let goods = synced(&env, 5000, 40).await;
    let mut r = env.redis();
    for g in &goods[..10] {
        let field = env.redis_hash("redis-a", *g).into_keys().next().unwrap();
        let _: () = redis::cmd("HSET").arg(env.redis_key("redis-a", *g)).arg(field).arg("x").query(&mut r).unwrap();
    }
    let ids: Vec<GoodsId> = (5000..5040).collect();
    let mut o = opts(&env);
    o.batch_size = 40;
    let report = run_goods(&env.app.handler, &ids, &Mode::repair(TriggerKind::Full, "t".into()), &o).await.unwrap();
    assert_eq!(report.drifted_goods, 10);
    assert!(report.halted.as_deref().unwrap_or("").contains("max_drift_ratio"), "{:?}", report.halted);
    assert!(report.repairs.is_empty());
    assert_eq!(report.outcome(), Outcome::DriftLeft);
    for g in &goods[..10] {
        assert!(env.redis_hash("redis-a", *g).values().any(|v| v == b"x"), "left for a human");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_restores_the_before_image() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 6000, 10).await;
    let g = goods[0];
    let field = env.redis_hash("redis-a", g).into_keys().next().unwrap();
    let mut e = decode(&env.redis_hash("redis-a", g)[&field]);
    e.price = 1;
    let tampered = e.encode();
    let mut r = env.redis();
    let _: () = redis::cmd("HSET").arg(env.redis_key("redis-a", g)).arg(&field).arg(&tampered).query(&mut r).unwrap();
    let (q, (_, ts)) = env.hbase_row(g).into_iter().next().unwrap();
    env.hbase_write(g, &q, Some(&tampered), ts + 1);

    let report =
        run_goods(&env.app.handler, &[g], &Mode::repair(TriggerKind::Operator, "t".into()), &opts(&env)).await.unwrap();
    assert_eq!(report.repairs.len(), 2, "{report:?}");
    assert_ne!(env.redis_hash("redis-a", g)[&field], tampered);
    let mode = Mode::repair(TriggerKind::Operator, "t-undo".into());
    for repair in &report.repairs {
        let id = repair.repair_id.expect("audited");
        let undone = undo(&env.app.handler, id, &mode).await.unwrap();
        assert_eq!(undone.repairs.len(), 1, "{undone:?}");
        match undo(&env.app.handler, id, &mode).await {
            Err(UndoError::NotApplied { status, .. }) => assert_eq!(status, "undone"),
            other => panic!("second undo: {other:?}"),
        }
    }
    assert_eq!(env.redis_hash("redis-a", g)[&field], tampered, "redis before image restored");
    assert_eq!(env.hbase_row(g)[&q].0, tampered, "hbase before image restored");
    assert!(matches!(undo(&env.app.handler, 987_654_321, &mode).await, Err(UndoError::NotFound(987_654_321))));
}

/// A full run's range reads may reuse an activity row (`full.activity_reuse_ms`). A check
/// that projected an activity row since changed never repairs from it: the re-read before
/// the repair is fresh and holds the repair back. Reads by id never reuse a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_activity_row_is_never_repaired_from() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 6000, 20).await;
    let g = goods[0];
    let before = env.truth(g).await;
    let (&aid, entity) = before.entities.iter().next().expect("an entity");

    // An instance whose range reads reuse activity rows for a minute reads every shard once.
    let mut config = env.config().clone();
    config.full.activity_reuse_ms = 60_000;
    let app = reconciler::app::App::new(config).unwrap();
    let truth = app.handler.truth();
    for shard in 0..env.config().layout().total_shards() {
        truth.read_range(shard, 0, u64::MAX).await.unwrap();
    }

    // The activity changes (an hour ago as far as the settle window is concerned) and the
    // sync pipeline brings every target up to date.
    env.sql(&format!(
        "UPDATE {}.activity SET priority = priority + 5, updated_at = NOW(3) - INTERVAL 1 HOUR WHERE activity_id = {aid}",
        env.db("act_meta")
    ))
    .await;
    let fresh =
        run_goods(&env.app.handler, &goods, &Mode::repair(TriggerKind::Operator, "t-pipeline".into()), &opts(&env))
            .await
            .unwrap();
    assert!(!fresh.repairs.is_empty(), "the new priority reached the targets: {fresh:?}");
    let synced_a = env.redis_hash("redis-a", g);
    assert_eq!(decode(&synced_a[&aid.to_string()]).prio, entity.prio + 5);

    // Read by id: fresh. Read by range: the reused row.
    assert_eq!(truth.read(&[g]).await.unwrap()[&g].entities[&aid].prio, entity.prio + 5);
    let shard = env.config().layout().route(g).index;
    let (_, by_range) = truth.read_range(shard, g, g).await.unwrap();
    assert_eq!(by_range.truth[&g].entities[&aid].prio, entity.prio, "the range read reused the row");

    // A full run of that instance sees drift against the old row, and repairs nothing.
    let mode = Mode::repair(TriggerKind::Full, "t-reuse".into());
    let report =
        run_full(&app.handler, mysql_id_source(&app.handler, 50), &mode, &app.run_options(None)).await.unwrap();
    assert!(report.drift.iter().any(|d| d.goods_id == g), "{report:?}");
    assert!(report.repairs.is_empty(), "nothing repaired from the old row: {:?}", report.repairs);
    assert!(
        report.deferred.iter().any(|d| d.goods_id == g && d.reason == "truth changed since the check"),
        "{:?}",
        report.deferred
    );
    assert_eq!(env.redis_hash("redis-a", g), synced_a, "the pipeline's value stays");
}
