//! An idle producer costs (almost) no CPU. Regression test: rdkafka's `FutureProducer`,
//! which the job publisher and the dead-letter publisher used, polls its delivery queue
//! with a zero timeout in a tight loop for the last fraction of a millisecond of every
//! 100 ms, about 9 ms of CPU per second per producer, busy or idle.
//!
//! Alone in its test binary: the CPU of the whole process is this test's.

mod common;

use std::time::Duration;

use common::*;
use model::job::{Job, TriggerKind};
use triggers::bus::kafka::{DeadLetterPublisher, KafkaPublisher, RawRecord};
use triggers::JobPublisher;

/// CPU time every thread of this process has had so far (`/proc/self/task/*/schedstat`,
/// nanoseconds: precise, where `/proc/self/stat` counts 10 ms ticks).
fn process_cpu() -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("a task").path().join("schedstat");
        // A thread that ended between the listing and the read has nothing to add.
        if let Ok(text) = std::fs::read_to_string(path) {
            ns += text.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_publishers_do_not_spin() {
    let brokers = ensure_broker();
    let s = suffix();
    let (topic, dlq) = (format!("idle-jobs-{s}"), format!("idle-dlq-{s}"));
    create_topics(&brokers, &[&topic, &dlq], 2).await;
    // Four of each, every one having delivered a message (connected, metadata known).
    let mut publishers = Vec::new();
    let mut dead_letters = Vec::new();
    for i in 0..4u64 {
        let p = KafkaPublisher::new(&brokers, &topic).unwrap();
        p.publish(&[Job::new(i + 1, TriggerKind::Scanner, format!("idle-{i}"))]).await.unwrap();
        publishers.push(p);
        let d = DeadLetterPublisher::new(&brokers, &dlq).unwrap();
        let record = RawRecord {
            topic: topic.as_str().into(),
            partition: 0,
            offset: i as i64,
            key: None,
            payload: Some(b"not a job".to_vec()),
            timestamp_ms: None,
            headers: Vec::new(),
        };
        d.send(&record, "idle test").await.unwrap();
        dead_letters.push(d);
    }
    // Let the last acknowledgements settle, then measure one idle second.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = process_cpu();
    std::thread::sleep(Duration::from_secs(1));
    let spent = process_cpu() - before;
    // rdkafka's polling threads: ~9 ms per producer per second, ~70 ms for these eight.
    assert!(
        spent < Duration::from_millis(25),
        "eight idle producers used {spent:?} of CPU in one second (a polling thread spins)"
    );
    drop((publishers, dead_letters));
}
