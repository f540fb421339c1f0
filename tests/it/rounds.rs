//! A run's repair rounds: the repairs its batches plan are applied several batches at a
//! time (one truth re-read, one audit INSERT and UPDATE per round), never lost when the
//! run fails, and never past a breaker that opened before the round.

use std::time::Duration;

use handlers::run::{run_full, run_goods, Batch, IdBatch, RepairRound, RunError, RunOptions};
use handlers::Mode;
use model::job::TriggerKind;
use model::GoodsId;
use tokio::sync::mpsc;

use crate::common::{corrupt, healed, synced, TestEnv};

/// Batches of five goods, two workers, rounds of `goods` goods (never due by age).
fn small_batches(env: &TestEnv, goods: usize) -> RunOptions {
    let mut opts = env.app.run_options(None);
    opts.batch_size = 5;
    opts.concurrency = 2;
    opts.repair_round = RepairRound { goods, wait: Duration::from_secs(3600) };
    opts
}

/// Audit INSERT rounds of a run (each INSERT has its own `write_key`).
async fn audit_rounds(env: &TestEnv, run_id: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT COUNT(DISTINCT write_key) FROM {}.reconcile_repair_log WHERE run_id = '{run_id}'",
        env.db("act_meta")
    ))
    .fetch_one(env.app.pools.meta_pool())
    .await
    .unwrap()
}

/// Twelve batches with one drifted goods each are repaired in one round (the code before
/// applied each batch's repairs on its own: twelve audit rounds, twelve truth re-reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repairs_of_many_batches_go_out_in_one_round() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 53_000, 60).await;
    let victims: Vec<GoodsId> = goods.iter().step_by(5).copied().collect();
    assert!(victims.len() >= 10, "{victims:?}");
    let fields = corrupt(&env, "redis-a", &victims);
    let mode = Mode::repair(TriggerKind::Operator, "t-rounds-one".into());
    let report = run_goods(&env.app.handler, &goods, &mode, &small_batches(&env, 1000)).await.unwrap();
    assert_eq!(report.checked, goods.len() as u64);
    assert_eq!(report.repairs.len(), victims.len(), "{report:?}");
    assert!(report.deferred.is_empty(), "{report:?}");
    assert!(healed(&env, "redis-a", &victims, &fields));
    assert_eq!(audit_rounds(&env, "t-rounds-one").await, 1);
}

/// A round starts as soon as enough goods wait: twelve drifted goods, one per batch, in
/// rounds of four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_starts_once_enough_goods_wait() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 54_000, 60).await;
    let victims: Vec<GoodsId> = goods.iter().step_by(5).copied().collect();
    let fields = corrupt(&env, "redis-a", &victims);
    let mode = Mode::repair(TriggerKind::Operator, "t-rounds-four".into());
    let report = run_goods(&env.app.handler, &goods, &mode, &small_batches(&env, 4)).await.unwrap();
    assert_eq!(report.repairs.len(), victims.len(), "{report:?}");
    assert!(healed(&env, "redis-a", &victims, &fields));
    assert_eq!(audit_rounds(&env, "t-rounds-four").await, victims.len().div_ceil(4) as i64);
}

/// A full run whose id source fails still applies the repairs its checked batches
/// planned (they would otherwise wait for a round that never comes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_planned_before_the_source_failed_are_applied() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 55_000, 10).await;
    let victims = &goods[..3];
    let fields = corrupt(&env, "redis-a", victims);
    let (tx, rx) = mpsc::channel::<IdBatch>(4);
    tx.send(Ok(Batch::from(goods.clone()))).await.unwrap();
    tx.send(Err("dump file truncated".into())).await.unwrap();
    drop(tx);
    let mut opts = small_batches(&env, 1000);
    opts.concurrency = 1;
    let mode = Mode::repair(TriggerKind::Full, "t-rounds-failed".into());
    match run_full(&env.app.handler, rx, &mode, &opts).await {
        Err(RunError::Source(e)) => assert!(e.contains("truncated"), "{e}"),
        other => panic!("the source's failure is the run's: {other:?}"),
    }
    assert!(healed(&env, "redis-a", victims, &fields));
    assert_eq!(audit_rounds(&env, "t-rounds-failed").await, 1);
}

/// Planned repairs are judged by the breaker again when their round comes: a target
/// whose breaker opened since the check gets none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_open_by_the_round_stops_repairs_checked_before_it_opened() {
    let env = TestEnv::with_repair("settle_ms = 0\nmax_drift_ratio = 0.5\nmin_goods_for_ratio = 10").await;
    let goods = synced(&env, 56_000, 20).await;
    let victims = &goods[..2];
    let fields = corrupt(&env, "redis-a", victims);
    let handler = &env.app.handler;
    let run = handler.run_breaker();
    let mode = Mode::repair(TriggerKind::Full, "t-rounds-breaker".into());
    let checked = handler.check(&goods, &mode, &run).await.unwrap();
    assert_eq!(checked.repairs.goods(), 2, "2 of 20 drifted: under the limit, planned");
    // Another batch of the run finds every goods drifted on redis-a: the breaker opens.
    assert!(run.record("redis-a", 100, 100).is_some());
    let report = handler.finish(checked, &mode, &run).await.unwrap();
    assert!(report.repairs.is_empty(), "{report:?}");
    assert!(report.halted.as_deref().is_some_and(|h| h.contains("redis-a")), "{report:?}");
    assert!(!healed(&env, "redis-a", victims, &fields), "nothing written");
    assert_eq!(audit_rounds(&env, "t-rounds-breaker").await, 0);
}
