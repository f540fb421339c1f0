//! The audit log is exact: the ids MySQL really assigned, writes with an unclear outcome
//! settled by reading the target again, pending rows left by a crash resolved when the
//! next run starts, and undo through the same apply path as repairs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use handlers::audit::AuditLog;
use handlers::run::run_goods;
use handlers::stores::{ApplyOutcome, ScanPage, Target};
use handlers::truth::TruthReader;
use handlers::undo::undo;
use handlers::{Handler, Mode, StoreError};
use model::job::TriggerKind;
use model::repair_plan::CellRepair;
use model::{GoodsId, ObservedGoods};
use sqlx::mysql::MySqlPoolOptions;

use crate::common::{corrupt, mysql_url, synced, TestEnv};

fn handler_with(env: &TestEnv, targets: Vec<Arc<dyn Target>>, audit: AuditLog) -> Arc<Handler> {
    let truth = TruthReader::new(env.app.pools.clone());
    Arc::new(Handler::new(truth, targets, audit, env.config().repair.clone()))
}

fn redis_a(env: &TestEnv) -> Arc<dyn Target> {
    env.app.handler.targets().iter().find(|t| t.name() == "redis-a").unwrap().clone()
}

/// With `auto_increment_increment = 7` (a multi-primary setup), one INSERT of many rows
/// gets ids 7 apart: the code before assumed consecutive ids and reported ids of other
/// rows (or of none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_ids_are_the_ids_mysql_assigned_whatever_the_increment() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 50_000, 30).await;
    let victims = &goods[..8];
    corrupt(&env, "redis-a", victims);
    let pool = MySqlPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                use sqlx::Executor;
                conn.execute("SET SESSION auto_increment_increment = 7, auto_increment_offset = 3").await?;
                Ok(())
            })
        })
        .connect(&mysql_url())
        .await
        .unwrap();
    let audit = AuditLog::new(pool, &env.config().layout().meta_database());
    let handler = handler_with(&env, vec![redis_a(&env)], audit.clone());
    let report =
        run_goods(&handler, victims, &Mode::repair(TriggerKind::Operator, "t-ids".into()), &env.app.run_options(None))
            .await
            .unwrap();
    assert_eq!(report.repairs.len(), victims.len(), "{report:?}");
    let mut ids: Vec<u64> = report.repairs.iter().map(|r| r.repair_id.unwrap()).collect();
    ids.sort_unstable();
    assert!(ids.windows(2).all(|w| w[1] - w[0] == 7), "ids as assigned, 7 apart: {ids:?}");
    for r in &report.repairs {
        let row = audit.get(r.repair_id.unwrap()).await.unwrap().expect("the id names a row");
        assert_eq!((row.goods_id, row.activity_id, row.status.as_str()), (r.goods_id, r.activity_id, "applied"));
        assert_eq!(row.qualifier, r.activity_id.unwrap().to_string().into_bytes());
    }
}

/// A batch that drifted on several targets is audited in one round: its rows of every
/// target are written by one INSERT (one `write_key`) and finished by one UPDATE, and
/// each repair's id still names the row of its own target and goods (the code before
/// made one round, three durable commits, per target).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_audit_round_per_batch_across_targets_with_each_id_on_its_own_row() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 51_000, 20).await;
    let victims = &goods[..6];
    corrupt(&env, "redis-a", victims);
    corrupt(&env, "redis-b", &victims[..3]);
    let mode = Mode::repair(TriggerKind::Operator, "t-one-round".into());
    let report = run_goods(&env.app.handler, victims, &mode, &env.app.run_options(None)).await.unwrap();
    assert_eq!(report.repairs.len(), 9, "{report:?}");
    let audit = env.app.handler.audit();
    for r in &report.repairs {
        let row = audit.get(r.repair_id.unwrap()).await.unwrap().expect("the id names a row");
        assert_eq!(
            (row.target.as_str(), row.goods_id, row.activity_id, row.status.as_str()),
            (r.target.as_str(), r.goods_id, r.activity_id, "applied")
        );
        assert!(row.after_ts.is_some(), "the timestamp written is recorded: {row:?}");
    }
    let keys: Vec<(i64,)> = sqlx::query_as(&format!(
        "SELECT COUNT(DISTINCT write_key) FROM {}.reconcile_repair_log WHERE run_id = 't-one-round'",
        env.db("act_meta")
    ))
    .fetch_all(env.app.pools.meta_pool())
    .await
    .unwrap();
    assert_eq!(keys, vec![(1,)], "one INSERT round for both targets");
}

/// A store that writes and then fails (a timeout after the write landed), or fails
/// without writing.
struct Flaky {
    inner: Arc<dyn Target>,
    write: bool,
}

#[async_trait]
impl Target for Flaky {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn read(&self, goods: &[GoodsId]) -> Result<Vec<ObservedGoods>, StoreError> {
        self.inner.read(goods).await
    }
    async fn apply(&self, repairs: &[CellRepair]) -> Result<Vec<ApplyOutcome>, StoreError> {
        if self.write {
            self.inner.apply(repairs).await?;
        }
        Err(StoreError::unreachable(self.name(), "command timed out"))
    }
    async fn scan(&self, cursor: Option<Vec<u8>>, limit: usize) -> Result<ScanPage, StoreError> {
        self.inner.scan(cursor, limit).await
    }
}

/// An error after the write is settled by reading the target: the rows say `applied`
/// when it landed and `failed` when it did not (the code before marked every row
/// `failed` and reported the target unreachable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_an_unclear_outcome_is_settled_by_reading_the_target() {
    let env = TestEnv::with_repair("settle_ms = 0\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 100000").await;
    let goods = synced(&env, 51_000, 20).await;
    let mode = Mode::repair(TriggerKind::Operator, "t-unclear".into());
    for (write, victims) in [(true, &goods[..3]), (false, &goods[3..6])] {
        let fields = corrupt(&env, "redis-a", victims);
        let flaky: Arc<dyn Target> = Arc::new(Flaky { inner: redis_a(&env), write });
        let handler = handler_with(&env, vec![flaky], env.app.handler.audit().clone());
        let report = run_goods(&handler, victims, &mode, &env.app.run_options(None)).await.unwrap();
        assert!(report.unreachable.is_empty(), "the store answered the re-read: {report:?}");
        let rows: Vec<u64> = sqlx::query_scalar(&format!(
            "SELECT id FROM {}.reconcile_repair_log WHERE run_id = 't-unclear' AND goods_id IN ({})",
            env.db("act_meta"),
            victims.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        ))
        .fetch_all(env.app.pools.meta_pool())
        .await
        .unwrap();
        assert_eq!(rows.len(), 3);
        for id in rows {
            let row = env.app.handler.audit().get(id).await.unwrap().unwrap();
            assert_eq!(row.status, if write { "applied" } else { "failed" }, "{row:?}");
        }
        if write {
            assert_eq!(report.repairs.len(), 3, "{report:?}");
            assert!(crate::common::healed(&env, "redis-a", victims, &fields));
        } else {
            assert!(report.repairs.is_empty());
            assert_eq!(report.deferred.len(), 3, "left for the next check: {report:?}");
            assert!(report.deferred[0].reason.contains("did not land"), "{:?}", report.deferred);
        }
    }
}

/// Rows a crash left `pending` are resolved by reading the target when the next run
/// starts (the code before left them pending forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_rows_left_by_a_crash_are_resolved_when_the_next_run_starts() {
    let env = TestEnv::new().await;
    let goods = synced(&env, 52_000, 20).await;
    let (landed, lost) = (goods[0], goods[1]);
    corrupt(&env, "redis-a", &[landed, lost]);
    // A run checks both, records its repairs pending, writes one, and dies.
    let target = redis_a(&env);
    let observed = target.read(&[landed, lost]).await.unwrap();
    let mut plan = Vec::new();
    for (g, held) in [landed, lost].iter().zip(&observed) {
        let truth = env.truth(*g).await;
        let drift = model::diff::diff_goods(*g, &truth, held);
        plan.extend(model::repair_plan::plan_repairs(&truth, held, &drift));
    }
    let audit_log = env.app.handler.audit();
    let ids = audit_log.record_pending("t-crashed", TriggerKind::Full, &[("redis-a", &plan[..])], None).await.unwrap();
    let ids = &ids[0];
    target.apply(&plan[..1]).await.unwrap();
    env.sql(&format!(
        "UPDATE {}.reconcile_repair_log SET created_at = NOW(3) - INTERVAL 10 MINUTE WHERE run_id = 't-crashed'",
        env.db("act_meta")
    ))
    .await;

    // The next run (any goods) starts by resolving them.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--config", env.config_path.to_str().unwrap(), "repair", "--goods", &goods[5].to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let audit = env.app.handler.audit();
    assert_eq!(audit.get(ids[0]).await.unwrap().unwrap().status, "applied", "the write had landed");
    let lost = audit.get(ids[1]).await.unwrap().unwrap();
    assert_eq!(lost.status, "failed", "the write never happened: the cell holds the before image");
}

/// `undo` takes tokens from the repair rate cap like any repair (the code before wrote
/// without asking the limiter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_goes_through_the_rate_cap_and_records_its_outcome() {
    let env = TestEnv::with_repair("settle_ms = 0\nmax_drift_ratio = 1.0\nmax_repairs_per_sec = 1").await;
    let goods = synced(&env, 53_000, 10).await;
    corrupt(&env, "redis-a", &goods[..1]);
    let mode = Mode::repair(TriggerKind::Operator, "t-undo-cap".into());
    let report = run_goods(&env.app.handler, &goods[..1], &mode, &env.app.run_options(None)).await.unwrap();
    assert_eq!(report.repairs.len(), 1, "{report:?}");
    // The bucket (one token a second) is empty now: the undo waits for its token.
    let started = Instant::now();
    let undone = undo(&env.app.handler, report.repairs[0].repair_id.unwrap(), &mode).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500), "{:?}", started.elapsed());
    let id = undone.repairs[0].repair_id.unwrap();
    let row = env.app.handler.audit().get(id).await.unwrap().unwrap();
    assert_eq!((row.kind.as_str(), row.status.as_str()), ("undo", "applied"));
}

/// Finishing a batch gives each row its own outcome and written timestamp, and leaves
/// `after_ts` alone where none is given, whatever the order (the first row without one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_a_batch_gives_each_row_its_own_outcome() {
    use handlers::audit::Finished;
    use model::diff::DriftKind;
    use model::repair_plan::CellWrite;
    let env = TestEnv::new().await;
    let audit = AuditLog::new(env.app.pools.meta_pool().clone(), &env.config().layout().meta_database());
    let repairs: Vec<CellRepair> = (0..5u64)
        .map(|i| CellRepair {
            goods_id: 70_000 + i,
            activity_id: Some(i + 1),
            qualifier: (i + 1).to_string().into_bytes(),
            kind: DriftKind::Stale,
            expected: None,
            write: CellWrite::Put { value: b"{}".to_vec(), ver: 1_000 + i as i64 },
        })
        .collect();
    let ids = audit.record_pending("t-finish", TriggerKind::Operator, &[("redis-a", &repairs)], None).await.unwrap();
    let ids = &ids[0];
    let outcomes =
        [("conflict", None), ("applied", Some(2_001)), ("failed", None), ("applied", Some(2_003)), ("applied", None)];
    let finished: Vec<Finished> =
        ids.iter().zip(outcomes).map(|(&id, (status, after_ts))| Finished { id, status, after_ts }).collect();
    audit.finish(&finished).await.unwrap();
    for (i, (&id, (status, after_ts))) in ids.iter().zip(outcomes).enumerate() {
        let row = audit.get(id).await.unwrap().expect("the row");
        assert_eq!(row.status, status, "row {i}");
        assert_eq!(row.after_ts, Some(after_ts.unwrap_or(1_000 + i as i64)), "row {i}");
    }
    // A usual batch (every row applied as planned) and one of conflicts only: each row
    // of this batch only, the other batch's rows untouched.
    let second =
        audit.record_pending("t-finish-2", TriggerKind::Operator, &[("redis-a", &repairs)], None).await.unwrap();
    let third =
        audit.record_pending("t-finish-3", TriggerKind::Operator, &[("redis-a", &repairs)], None).await.unwrap();
    let all = |ids: &[u64], status| ids.iter().map(|&id| Finished { id, status, after_ts: None }).collect::<Vec<_>>();
    audit.finish(&all(&second[0], "applied")).await.unwrap();
    for (i, &id) in second[0].iter().enumerate() {
        let row = audit.get(id).await.unwrap().expect("the row");
        assert_eq!((row.status.as_str(), row.after_ts), ("applied", Some(1_000 + i as i64)), "row {i}");
    }
    for &id in &third[0] {
        assert_eq!(audit.get(id).await.unwrap().expect("the row").status, "pending");
    }
    audit.finish(&all(&third[0], "conflict")).await.unwrap();
    for &id in &third[0] {
        assert_eq!(audit.get(id).await.unwrap().expect("the row").status, "conflict");
    }
}

/// Whatever bytes a target held and whatever a run is called, the log keeps them
/// exactly: quotes, backslashes, NUL, bytes that are not UTF-8, non-ASCII text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_keeps_any_bytes_and_text_exactly() {
    use model::diff::DriftKind;
    use model::repair_plan::CellWrite;
    use model::ObservedCell;
    let env = TestEnv::new().await;
    let audit = AuditLog::new(env.app.pools.meta_pool().clone(), &env.config().layout().meta_database());
    let odd: Vec<u8> = b"a'b\"c\\d\0e\xff\xfe%_\n".to_vec();
    let repairs = vec![
        CellRepair {
            goods_id: 71_000,
            activity_id: Some(7),
            qualifier: odd.clone(),
            kind: DriftKind::Corrupt,
            expected: Some(ObservedCell { value: odd.clone(), timestamp: Some(-5) }),
            write: CellWrite::Put { value: "价格 'x' \\ y".as_bytes().to_vec(), ver: 42 },
        },
        CellRepair {
            goods_id: 71_001,
            activity_id: None,
            qualifier: Vec::new(),
            kind: DriftKind::Extra,
            expected: None,
            write: CellWrite::DeleteWhole,
        },
    ];
    let run_id = "run 'quoted' \\ 价";
    let ids = audit.record_pending(run_id, TriggerKind::Operator, &[("redis-'a'", &repairs)], None).await.unwrap();
    let a = audit.get(ids[0][0]).await.unwrap().expect("first row");
    assert_eq!(
        (a.target.as_str(), a.goods_id, a.activity_id, a.kind.as_str()),
        ("redis-'a'", 71_000, Some(7), "corrupt")
    );
    assert_eq!(a.qualifier, odd);
    assert_eq!((a.before_value.as_deref(), a.before_ts), (Some(&odd[..]), Some(-5)));
    assert_eq!((a.after_value, a.after_ts), (Some("价格 'x' \\ y".as_bytes().to_vec()), Some(42)));
    assert_eq!((a.status.as_str(), a.truncated, a.whole), ("pending", false, false));
    let b = audit.get(ids[0][1]).await.unwrap().expect("second row");
    assert_eq!((b.activity_id, b.qualifier.len(), b.before_value, b.after_value, b.whole), (None, 0, None, None, true));
    let (stored_run,): (String,) = sqlx::query_as(&format!(
        "SELECT run_id FROM `{}`.reconcile_repair_log WHERE id = ?",
        env.config().layout().meta_database()
    ))
    .bind(ids[0][0])
    .fetch_one(env.app.pools.meta_pool())
    .await
    .unwrap();
    assert_eq!(stored_run, run_id);
}
