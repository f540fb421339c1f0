//! The recent-change scanner against the real MariaDB: rows changed without any event
//! become jobs, activity rows fan out, the settle window holds back fresh rows, and a new
//! scanner resumes from the persisted watermark.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use model::config::ScannerConfig;
use model::job::{Job, TriggerKind};
use triggers::scanner::Scanner;
use triggers::JobPublisher;

#[derive(Default)]
struct Capture(Mutex<Vec<Job>>);

#[async_trait]
impl JobPublisher for Capture {
    async fn publish(&self, jobs: &[Job]) -> triggers::error::Result<()> {
        self.0.lock().unwrap().extend_from_slice(jobs);
        Ok(())
    }
}

impl Capture {
    fn take_goods(&self) -> BTreeSet<u64> {
        let jobs = std::mem::take(&mut *self.0.lock().unwrap());
        assert!(jobs.iter().all(|j| j.trigger == TriggerKind::Scanner && j.origin_ms > 0));
        jobs.into_iter().map(|j| j.goods_id).collect()
    }
}

/// Without an overlap window: a restarted scanner re-publishes its overlap window once
/// (it does not remember what it published), which the watermark test below leaves out.
fn config() -> ScannerConfig {
    ScannerConfig { overlap_ms: 0, ..overlapping() }
}

fn overlapping() -> ScannerConfig {
    ScannerConfig {
        enabled: true,
        interval_ms: 1000,
        rows_per_sec: 1000,
        settle_ms: 1000,
        initial_lookback_ms: 3_600_000,
        page_size: 2,
        overlap_ms: 30_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_without_events_become_jobs_and_the_watermark_survives_restarts() {
    let truth = Truth::create().await;
    let ago = |s: u32| format!("NOW(3) - INTERVAL {s} SECOND");
    truth.insert_goods(8001, 4001, &ago(10)).await;
    truth.insert_goods(8001, 4002, &ago(9)).await;
    truth.insert_goods(8001, 4005, &ago(9)).await;
    truth.insert_sku(8001, 4003, 77, &ago(8)).await;
    truth.insert_goods(8001, 4099, &ago(7200)).await; // before the first look-back: not seen
    truth.insert_activity(8002, &ago(6)).await; // fans out to its goods, however old
    truth.insert_goods(8002, 4010, &ago(7200)).await;
    truth.insert_goods(8002, 4011, &ago(7200)).await;

    let capture = Arc::new(Capture::default());
    let scanner = Scanner::new(truth.pools(), capture.clone(), config()).await.unwrap();
    let stats = scanner.pass().await.unwrap();
    assert_eq!(stats.rows, 5, "4 shard rows and 1 activity row in the window");
    assert_eq!(capture.take_goods(), BTreeSet::from([4001, 4002, 4003, 4005, 4010, 4011]));

    scanner.pass().await.unwrap();
    assert!(capture.take_goods().is_empty(), "nothing changed since the watermark");

    // A change with no event, and one too fresh to be judged yet (inside settle_ms).
    let route = truth.layout.route(4002);
    exec(
        &truth.pool,
        &format!(
            "UPDATE `{}`.`{}` SET activity_price = 1, updated_at = {} WHERE goods_id = 4002",
            route.database,
            route.goods_table,
            ago(3)
        ),
    )
    .await;
    truth.insert_goods(8001, 4020, "NOW(3)").await;
    drop(scanner);

    // A new scanner (a restart) resumes from the persisted watermarks.
    let restarted = Scanner::new(truth.pools(), capture.clone(), config()).await.unwrap();
    restarted.pass().await.unwrap();
    assert_eq!(
        capture.take_goods(),
        BTreeSet::from([4002]),
        "only the change after the watermark; 4020 is still settling"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    restarted.pass().await.unwrap();
    assert_eq!(capture.take_goods(), BTreeSet::from([4020]));

    let (count,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM `{}`.reconcile_checkpoint WHERE name LIKE 'scanner:%'",
        truth.layout.meta_database()
    ))
    .fetch_one(&truth.pool)
    .await
    .unwrap();
    assert!(count >= 4, "watermarks persisted per table: {count}");
    truth.drop_all().await;
}

/// A transaction that commits after the watermark moved past its rows' `updated_at` is
/// still caught (the code before lost it: rows behind the watermark were never read
/// again), and rows already published are not published twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_behind_the_watermark_is_caught_once() {
    let truth = Truth::create().await;
    let ago = |s: u32| format!("NOW(3) - INTERVAL {s} SECOND");
    truth.insert_goods(8101, 5001, &ago(5)).await;
    // A long transaction in the same shard table: its row says 8 s ago, it commits
    // after the next pass moved the table's watermark past that.
    assert_eq!(truth.layout.route(5001).goods_table, truth.layout.route(5005).goods_table);
    let route = truth.layout.route(5005);
    let mut tx = truth.pool.begin().await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO `{}`.`{}` (activity_id, goods_id, activity_price, status, updated_at) VALUES (8101, 5005, 100, 1, {})",
        route.database,
        route.goods_table,
        ago(8)
    ))
    .execute(&mut *tx)
    .await
    .unwrap();

    let capture = Arc::new(Capture::default());
    let scanner = Scanner::new(truth.pools(), capture.clone(), overlapping()).await.unwrap();
    scanner.pass().await.unwrap();
    assert_eq!(capture.take_goods(), BTreeSet::from([5001]), "the open transaction's row is not visible yet");
    tx.commit().await.unwrap();

    scanner.pass().await.unwrap();
    assert_eq!(capture.take_goods(), BTreeSet::from([5005]), "caught behind the watermark; 5001 not again");
    scanner.pass().await.unwrap();
    assert!(capture.take_goods().is_empty());
    truth.drop_all().await;
}
