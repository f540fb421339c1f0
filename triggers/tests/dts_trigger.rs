//! The DTS-delay trigger end to end: change events in Canal, Debezium and Maxwell format
//! on the real broker, the activity fan-out against the real MariaDB, jobs on the jobs
//! topic, dead letters, and a restart that loses nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use model::config::{DtsConfig, EventFormat, KafkaConfig};
use model::job::{Job, TriggerKind};
use triggers::bus::kafka::{dead_letter::REASON_HEADER, KafkaPublisher};
use triggers::dts::trigger::DtsOptions;
use triggers::dts::{DtsTrigger, StagePlanner};

const T0: i64 = 1_781_700_000_123;

fn kafka(brokers: &str, s: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.into(),
        group: format!("handlers-{s}"),
        jobs_topic: format!("jobs-{s}"),
        dead_letter_topic: format!("dlq-{s}"),
        trigger_group: format!("dts-{s}"),
        partitions: 2,
        ..KafkaConfig::default()
    }
}

fn canal(kind: &str, table: &str, goods: u64, es: i64) -> String {
    format!(
        r#"{{"data":[{{"id":"1","activity_id":"7001","goods_id":"{goods}","activity_price":"250","status":"1"}}],"database":"act_0","es":{es},"id":1,"isDdl":false,"old":null,"pkNames":["id"],"table":"{table}","ts":{},"type":"{kind}"}}"#,
        es + 50
    )
}

fn start(trigger: DtsTrigger) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(trigger.run(async move {
        let _ = stopped.await;
    }));
    (stop, handle)
}

/// Unique jobs by id, grouped by goods.
fn unique(jobs: Vec<Job>) -> BTreeMap<u64, BTreeMap<u32, Job>> {
    let mut out: BTreeMap<u64, BTreeMap<u32, Job>> = BTreeMap::new();
    for job in jobs {
        out.entry(job.goods_id).or_default().insert(job.stage, job);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_events_of_every_format_become_staged_jobs() {
    let brokers = ensure_broker();
    let s = suffix();
    let cfg = kafka(&brokers, &s);
    let (t_canal, t_dbz, t_mxw) = (format!("canal-{s}"), format!("debezium-{s}"), format!("maxwell-{s}"));
    create_topics(&brokers, &[&t_canal, &t_dbz, &t_mxw, &cfg.jobs_topic, &cfg.dead_letter_topic], 1).await;
    let truth = Truth::create().await;
    truth.insert_activity(7001, "NOW(3)").await;
    for goods in [2001, 2002, 2003, 2004, 2005] {
        truth.insert_goods(7001, goods, "NOW(3)").await;
    }
    truth.insert_goods(7002, 2099, "NOW(3)").await; // another activity: not fanned out

    let p = producer(&brokers);
    // Canal: goods update, sku insert, goods delete, DDL, garbage, activity offline.
    produce(&p, &t_canal, "1001", canal("UPDATE", "activity_goods_0001", 1001, T0).as_bytes()).await;
    // The same goods again within both stage windows: no new jobs.
    produce(&p, &t_canal, "1001", canal("UPDATE", "activity_goods_0001", 1001, T0 + 50).as_bytes()).await;
    produce(&p, &t_canal, "1002", canal("INSERT", "activity_sku_0002", 1002, T0 + 1000).as_bytes()).await;
    produce(&p, &t_canal, "1003", canal("DELETE", "activity_goods_0003", 1003, T0 + 2000).as_bytes()).await;
    produce(&p, &t_canal, "ddl", br#"{"data":null,"database":"act_0","es":1,"isDdl":true,"sql":"ALTER TABLE activity_goods_0001 ADD x INT","table":"activity_goods_0001","ts":2,"type":"ALTER"}"#).await;
    produce(&p, &t_canal, "bad", b"{garbage").await;
    let offline = format!(
        r#"{{"data":[{{"activity_id":"7001","status":"2"}}],"database":"act_meta","es":{},"isDdl":false,"old":[{{"status":"1"}}],"table":"activity","ts":1,"type":"UPDATE"}}"#,
        T0 + 3000
    );
    produce(&p, &t_canal, "7001", offline.as_bytes()).await;
    // Debezium: a goods moved from 1102 to 1101, a heartbeat, a transaction marker, an sku delete.
    let src = |table: &str| format!(r#"{{"connector":"mysql","db":"act_0","table":"{table}","ts_ms":{}}}"#, T0 + 4000);
    let moved = format!(
        r#"{{"schema":{{"type":"struct"}},"payload":{{"before":{{"id":5,"goods_id":1102}},"after":{{"id":5,"goods_id":1101}},"source":{},"op":"u","ts_ms":1}}}}"#,
        src("activity_goods_0005")
    );
    produce(&p, &t_dbz, "1101", moved.as_bytes()).await;
    produce(&p, &t_dbz, "hb", br#"{"ts_ms":1781700000000}"#).await;
    produce(
        &p,
        &t_dbz,
        "tx",
        br#"{"status":"BEGIN","id":"571:1","ts_ms":1,"event_count":null,"data_collections":null}"#,
    )
    .await;
    let sku_delete = format!(
        r#"{{"before":{{"id":9,"goods_id":1103,"sku_id":88}},"after":null,"source":{},"op":"d"}}"#,
        src("activity_sku_0007")
    );
    produce(&p, &t_dbz, "1103", sku_delete.as_bytes()).await;
    // Maxwell: an insert (ts in seconds) and a bootstrap marker.
    produce(&p, &t_mxw, "1201", br#"{"database":"act_1","table":"activity_goods_0001","type":"insert","ts":1781700005,"xid":1,"commit":true,"data":{"id":3,"activity_id":7001,"goods_id":1201,"status":1}}"#).await;
    produce(
        &p,
        &t_mxw,
        "boot",
        br#"{"database":"act_1","table":"activity_goods_0001","type":"bootstrap-start","ts":1781700005,"data":{}}"#,
    )
    .await;

    let stages = vec![3000, 30000];
    let dts = vec![
        DtsConfig { topic: t_canal.clone(), format: EventFormat::Canal, stages_ms: stages.clone() },
        DtsConfig { topic: t_dbz.clone(), format: EventFormat::Debezium, stages_ms: stages.clone() },
        DtsConfig { topic: t_mxw.clone(), format: EventFormat::Maxwell, stages_ms: stages.clone() },
    ];
    let publisher = Arc::new(KafkaPublisher::new(&brokers, &cfg.jobs_topic).unwrap());
    let trigger = DtsTrigger::new(&cfg, &dts, publisher, truth.pools(), DtsOptions::default()).unwrap();
    let (stop, handle) = start(trigger);

    let expected_commit: BTreeMap<u64, i64> = [
        (1001, T0),
        (1002, T0 + 1000),
        (1003, T0 + 2000),
        (2001, T0 + 3000),
        (2002, T0 + 3000),
        (2003, T0 + 3000),
        (2004, T0 + 3000),
        (2005, T0 + 3000),
        (1101, T0 + 4000),
        (1102, T0 + 4000),
        (1103, T0 + 4000),
        (1201, 1_781_700_005_000),
    ]
    .into();
    let jobs = read_jobs(&brokers, &cfg.jobs_topic, expected_commit.len() * 2, Duration::from_secs(60)).await;
    assert_eq!(jobs.len(), expected_commit.len() * 2);
    // Nothing more comes: the repeated change of 1001 was deduplicated.
    let all = read_jobs(&brokers, &cfg.jobs_topic, expected_commit.len() * 2 + 1, Duration::from_secs(8)).await;
    assert_eq!(all.len(), expected_commit.len() * 2, "one job per goods and stage");
    let got = unique(jobs);
    assert_eq!(
        got.keys().copied().collect::<BTreeSet<_>>(),
        expected_commit.keys().copied().collect(),
        "goods with jobs"
    );
    for (goods, commit) in &expected_commit {
        let per_stage = &got[goods];
        assert_eq!(per_stage.keys().copied().collect::<Vec<_>>(), vec![0, 1], "goods {goods}: one job per stage");
        for (stage, job) in per_stage {
            let stage_ms = stages[*stage as usize];
            assert_eq!(job.trigger, TriggerKind::Dts);
            // Goods 1001 changed twice within one dedup window (T0 and T0 + 50); the
            // events are processed concurrently, so either may publish the one job.
            let commits: &[i64] = if *goods == 1001 { &[T0, T0 + 50] } else { std::slice::from_ref(commit) };
            assert!(commits.contains(&job.origin_ms), "goods {goods}: origin {}", job.origin_ms);
            assert_eq!(job.not_before_ms, StagePlanner::due_ms(job.origin_ms, stage_ms), "goods {goods} stage {stage}");
            assert_eq!(
                StagePlanner::due_ms(T0, stage_ms),
                StagePlanner::due_ms(T0 + 50, stage_ms),
                "both changes of 1001 fall in one window"
            );
            assert!(job.not_before_ms >= commit + stage_ms as i64);
        }
    }

    let dead = read_records(&brokers, &cfg.dead_letter_topic, 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1, "exactly the garbage message is dead-lettered");
    assert_eq!(dead[0].payload.as_deref(), Some(&b"{garbage"[..]));
    let reason = String::from_utf8_lossy(dead[0].header(REASON_HEADER).unwrap()).into_owned();
    assert!(
        reason.contains(&t_canal)
            && reason.contains("partition 0")
            && reason.contains("offset 5")
            && reason.contains("not JSON"),
        "{reason}"
    );

    stop.send(()).unwrap();
    handle.await.unwrap();
    truth.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_killed_mid_stream_loses_no_change_event() {
    let brokers = ensure_broker();
    let s = suffix();
    let cfg = kafka(&brokers, &s);
    let topic = format!("canal-{s}");
    create_topics(&brokers, &[&topic], 2).await;
    create_topics(&brokers, &[&cfg.jobs_topic, &cfg.dead_letter_topic], 1).await;
    let truth = Truth::create().await;
    let p = producer(&brokers);
    // One record per produce call (one batch each): see scripts/kafka.sh about Tansu.
    for goods in 3001..=3030u64 {
        produce(
            &p,
            &topic,
            &goods.to_string(),
            canal("UPDATE", "activity_goods_0001", goods, T0 + goods as i64).as_bytes(),
        )
        .await;
    }
    let dts = vec![DtsConfig { topic: topic.clone(), format: EventFormat::Canal, stages_ms: vec![3000] }];
    let publisher = Arc::new(KafkaPublisher::new(&brokers, &cfg.jobs_topic).unwrap());
    let options = DtsOptions { max_in_flight: 4, ..DtsOptions::default() };
    let first = DtsTrigger::new(&cfg, &dts, publisher.clone(), truth.pools(), options.clone()).unwrap();
    let (_stop, handle) = start(first);
    // Kill it as soon as some jobs are out: whatever was in flight is simply dropped.
    let some = read_jobs(&brokers, &cfg.jobs_topic, 5, Duration::from_secs(60)).await;
    assert!(some.len() >= 5, "the first trigger published jobs");
    handle.abort();
    let _ = handle.await;

    for goods in 3031..=3060u64 {
        produce(
            &p,
            &topic,
            &goods.to_string(),
            canal("UPDATE", "activity_goods_0001", goods, T0 + goods as i64).as_bytes(),
        )
        .await;
    }
    let second = DtsTrigger::new(&cfg, &dts, publisher, truth.pools(), options).unwrap();
    let (stop, handle) = start(second);
    let want: BTreeSet<u64> = (3001..=3060).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut got = BTreeSet::new();
    while got != want && tokio::time::Instant::now() < deadline {
        let jobs = read_jobs(&brokers, &cfg.jobs_topic, usize::MAX, Duration::from_secs(10)).await;
        got = jobs.iter().map(|j| j.goods_id).collect();
    }
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(missing.is_empty(), "change events lost across the restart: {missing:?}");
    stop.send(()).unwrap();
    handle.await.unwrap();
    truth.drop_all().await;
}
