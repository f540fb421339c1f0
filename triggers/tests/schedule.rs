//! The full-run schedule's MySQL lock: one instance wins each fire time.

mod common;

use common::*;
use triggers::schedule::{FullSchedule, FullTrigger, NamedLock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_instance_fires_each_scheduled_time() {
    let truth = Truth::create().await;
    let pools = truth.pools();
    let a = FullTrigger::new(FullSchedule::parse("0 0 3 * * *").unwrap(), &pools).await.unwrap();
    let b = FullTrigger::new(FullSchedule::parse("0 0 3 * * *").unwrap(), &pools).await.unwrap();
    let fire = 1_781_751_600_000;
    let won = a.try_fire(fire).await.unwrap().expect("first instance wins");
    assert_eq!(won.fire_ms, fire);
    assert!(b.try_fire(fire).await.unwrap().is_none(), "lock held by the running full run");
    assert!(b.try_fire(fire + 86_400_000).await.unwrap().is_none(), "no second full run while one runs");
    won.release().await.unwrap();
    assert!(b.try_fire(fire).await.unwrap().is_none(), "a fire time is taken once, even after release");
    let next = b.try_fire(fire + 86_400_000).await.unwrap().expect("the next fire time is free");
    next.release().await.unwrap();

    let name = format!("{}-lock-test", truth.layout.db_prefix);
    let held = NamedLock::try_acquire(&truth.pool, &name, 0).await.unwrap().unwrap();
    assert!(NamedLock::try_acquire(&truth.pool, &name, 0).await.unwrap().is_none());
    held.release().await.unwrap();
    NamedLock::try_acquire(&truth.pool, &name, 0).await.unwrap().unwrap().release().await.unwrap();
    truth.drop_all().await;
}
