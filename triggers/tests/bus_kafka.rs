//! The Kafka job bus against the real broker: delivery, out-of-order acks committing only
//! the done prefix, dead letters for invalid jobs, and consumers of one group sharing the
//! partitions.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use model::job::{Job, TriggerKind};
use triggers::bus::kafka::{dead_letter::REASON_HEADER, KafkaJobConsumer, KafkaPublisher, SourceOptions};
use triggers::{JobConsumer, JobPublisher};

fn jobs(ids: std::ops::Range<u64>) -> Vec<Job> {
    ids.map(|id| Job::new(id, TriggerKind::Scanner, format!("j{id}"))).collect()
}

/// A jobs topic and a dead-letter topic of `partitions` partitions, and a consumer group,
/// all fresh, on the test broker.
struct Bus {
    brokers: String,
    topic: String,
    dlq: String,
    group: String,
}

async fn bus(partitions: i32) -> Bus {
    let brokers = ensure_broker();
    let s = suffix();
    let (topic, dlq, group) = (format!("jobs-{s}"), format!("dlq-{s}"), format!("handlers-{s}"));
    create_topics(&brokers, &[&topic, &dlq], partitions).await;
    Bus { brokers, topic, dlq, group }
}

async fn next(consumer: &mut KafkaJobConsumer) -> triggers::Delivery {
    tokio::time::timeout(Duration::from_secs(30), consumer.next()).await.expect("a job within 30 s").unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_jobs_are_redelivered_to_the_next_consumer_of_the_group() {
    let Bus { brokers, topic, dlq, group } = bus(1).await;
    // One record per batch: Tansu can not fetch from inside a multi-record batch, which a
    // restart from a committed mid-batch offset needs (see scripts/kafka.sh).
    let publisher = KafkaPublisher::with_config(&brokers, &topic, &[("batch.num.messages", "1")]).unwrap();
    // One publish after another: each job in a record of its own (jobs published
    // together would share a bundle record, redelivered whole).
    for job in jobs(1..11) {
        publisher.publish(&[job]).await.unwrap();
    }

    let mut first = KafkaJobConsumer::new(&brokers, &group, &topic, &dlq, SourceOptions::default()).unwrap();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(next(&mut first).await);
    }
    assert_eq!(
        held.iter().map(|d| d.job.goods_id).collect::<Vec<_>>(),
        (1..11).collect::<Vec<_>>(),
        "one partition keeps order"
    );
    // Jobs finish out of order: 1-3 and 6-10 are done, 4 and 5 are not.
    let mut held: Vec<_> = held.into_iter().rev().collect();
    let mut unfinished = Vec::new();
    while let Some(d) = held.pop() {
        if d.job.goods_id == 4 || d.job.goods_id == 5 {
            unfinished.push(d);
        } else {
            d.ack.ack();
        }
    }
    first.shutdown().await;
    drop(unfinished);

    // The committed position is just past the done prefix (1-3): 4 onwards comes again.
    let mut second = KafkaJobConsumer::new(&brokers, &group, &topic, &dlq, SourceOptions::default()).unwrap();
    let again = next(&mut second).await;
    assert_eq!(again.job.goods_id, 4, "redelivery starts at the first unfinished job");
    let mut seen = vec![again.job.goods_id];
    again.ack.ack();
    for _ in 5..11 {
        let d = next(&mut second).await;
        seen.push(d.job.goods_id);
        d.ack.ack();
    }
    assert_eq!(seen, (4..11).collect::<Vec<_>>());
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_jobs_are_dead_lettered_and_consumption_goes_on() {
    let Bus { brokers, topic, dlq, group } = bus(1).await;
    let producer = producer(&brokers);
    produce(&producer, &topic, "1", &jobs(1..2)[0].encode()).await;
    produce(&producer, &topic, "x", b"{not a job").await;
    produce(&producer, &topic, "2", br#"{"v":9,"job_id":"j","goods_id":2,"trigger":"dts"}"#).await;
    produce(&producer, &topic, "3", &jobs(3..4)[0].encode()).await;

    let mut consumer = KafkaJobConsumer::new(&brokers, &group, &topic, &dlq, SourceOptions::default()).unwrap();
    let a = next(&mut consumer).await;
    let b = next(&mut consumer).await;
    assert_eq!((a.job.goods_id, b.job.goods_id), (1, 3));
    a.ack.ack();
    b.ack.ack();
    consumer.shutdown().await;

    let dead = read_records(&brokers, &dlq, 2, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].payload.as_deref(), Some(&b"{not a job"[..]), "original bytes are kept");
    let reasons: Vec<String> =
        dead.iter().map(|r| String::from_utf8_lossy(r.header(REASON_HEADER).unwrap()).into_owned()).collect();
    assert!(
        reasons[0].contains(&topic) && reasons[0].contains("offset 1") && reasons[0].contains("not valid JSON"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("version 9"), "{}", reasons[1]);
    assert_eq!(dead[1].header("dlq.source.offset"), Some(&b"2"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_of_one_group_share_the_partitions() {
    let Bus { brokers, topic, dlq, group } = bus(4).await;
    let publisher = KafkaPublisher::new(&brokers, &topic).unwrap();
    let mut a = KafkaJobConsumer::new(&brokers, &group, &topic, &dlq, SourceOptions::default()).unwrap();
    let mut b = KafkaJobConsumer::new(&brokers, &group, &topic, &dlq, SourceOptions::default()).unwrap();
    // Let both join before publishing, so the work is split.
    tokio::time::sleep(Duration::from_secs(8)).await;
    publisher.publish(&jobs(1..41)).await.unwrap();
    let mut from_a = BTreeSet::new();
    let mut from_b = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while from_a.len() + from_b.len() < 40 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            d = a.next() => { let d = d.unwrap().unwrap(); from_a.insert(d.job.goods_id); d.ack.ack(); }
            d = b.next() => { let d = d.unwrap().unwrap(); from_b.insert(d.job.goods_id); d.ack.ack(); }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    assert_eq!(from_a.len() + from_b.len(), 40, "every job delivered once: a={from_a:?} b={from_b:?}");
    assert!(from_a.is_disjoint(&from_b));
    assert!(!from_a.is_empty() && !from_b.is_empty(), "both consumers got partitions: a={from_a:?} b={from_b:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_caller_does_not_get_the_consumer_thrown_out_of_its_group() {
    use triggers::bus::kafka::KafkaSource;
    let brokers = ensure_broker();
    let s = suffix();
    let (topic, group) = (format!("jobs-{s}"), format!("handlers-{s}"));
    create_topics(&brokers, &[&topic], 1).await;
    let publisher = KafkaPublisher::new(&brokers, &topic).unwrap();
    for job in jobs(1..21) {
        publisher.publish(&[job]).await.unwrap();
    }
    let options = SourceOptions {
        buffer: 2,
        extra: vec![("session.timeout.ms".into(), "6000".into()), ("max.poll.interval.ms".into(), "7000".into())],
        ..SourceOptions::default()
    };
    let mut source = KafkaSource::subscribe(&brokers, &group, &[&topic], options).unwrap();
    let (first, ack) = tokio::time::timeout(Duration::from_secs(30), source.next()).await.unwrap().unwrap();
    assert_eq!(first.offset, 0);
    // The caller is stuck on one job for twice max.poll.interval.ms, taking nothing.
    tokio::time::sleep(Duration::from_secs(15)).await;
    ack.ack();
    let mut offsets = vec![first.offset];
    while offsets.len() < 20 {
        let (record, ack) = tokio::time::timeout(Duration::from_secs(30), source.next()).await.unwrap().unwrap();
        offsets.push(record.offset);
        ack.ack();
    }
    assert_eq!(offsets, (0..20).collect::<Vec<i64>>(), "no redelivery: the consumer kept its partition");
    assert_eq!(source.revocations(), 0, "the consumer was never thrown out of its group");
    source.shutdown().await;
}

/// Partitions and replication factor of created topics are configuration, 0 being the
/// broker's default (the code before created every topic with one replica, whatever the
/// cluster: the jobs of a failed broker were lost with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_topics_follow_the_configured_partitions_and_replication() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use triggers::bus::kafka::{create_topics, TopicSettings};
    let brokers = ensure_broker();
    let s = suffix();
    let (three, default, replicated) = (format!("three-{s}"), format!("default-{s}"), format!("repl-{s}"));
    create_topics(&brokers, &[&three], TopicSettings { partitions: 3, replication_factor: 0 }).await.unwrap();
    create_topics(&brokers, &[&default], TopicSettings { partitions: 0, replication_factor: 0 }).await.unwrap();
    create_topics(&brokers, &[&replicated], TopicSettings { partitions: 2, replication_factor: 3 }).await.unwrap();
    let client: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    // (partitions, replicas of partition 0) as the broker reports them.
    let shape = |topic: &str| {
        let md = client.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
        let t = &md.topics()[0];
        (t.partitions().len(), t.partitions()[0].replicas().len())
    };
    assert_eq!(shape(&three).0, 3);
    let (partitions, replicas) = shape(&default);
    assert!(partitions >= 1 && replicas >= 1, "the broker's defaults: {partitions} {replicas}");
    assert_eq!(shape(&replicated), (2, 3), "three replicas as configured (Tansu records them on one broker)");
    // Existing topics are left as they are.
    create_topics(&brokers, &[&three], TopicSettings { partitions: 5, replication_factor: 2 }).await.unwrap();
    assert_eq!(shape(&three).0, 3);
}

/// Records in `topic` (the sum of its partitions' high watermarks).
fn records_in(brokers: &str, topic: &str, partitions: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    (0..partitions).map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap().1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_published_together_travel_in_bundles_and_a_bundle_is_redelivered_until_all_its_jobs_are_acked() {
    let Bus { brokers, topic, dlq, group } = bus(2).await;
    let publisher = KafkaPublisher::with_config(&brokers, &topic, &[("batch.num.messages", "1")]).unwrap();
    // 300 callers at once, one job each, on goods of three key buckets.
    let buckets = [3u64, 4, 5];
    let all: Vec<Job> = (0..300u64)
        .map(|i| {
            let goods = buckets[(i % 3) as usize] + (i / 3) * model::job::KEY_BUCKETS;
            Job::new(goods, TriggerKind::Dts, format!("j{i}"))
        })
        .collect();
    futures::future::try_join_all(all.iter().map(|j| publisher.publish(std::slice::from_ref(j)))).await.unwrap();
    let records = records_in(&brokers, &topic, 2);
    assert!(records < 300 / 4, "300 jobs of 3 buckets published at once should need far fewer records, got {records}");

    let mut first = KafkaJobConsumer::new(&brokers, &group, &topic, &dlq, SourceOptions::default()).unwrap();
    let mut got = Vec::new();
    for _ in 0..300 {
        got.push(next(&mut first).await);
    }
    let ids: BTreeSet<u64> = got.iter().map(|d| d.job.goods_id).collect();
    assert_eq!(ids, all.iter().map(|j| j.goods_id).collect::<BTreeSet<_>>(), "every job delivered once");
    // Every job but the last of the first bundle's partition is done: that bundle (and
    // what follows it in its partition) must come again; the other partition is done.
    let held = got.pop().unwrap();
    let (held_partition, held_offset) = held.ack.position().map(|(_, p, o)| (p, o)).unwrap();
    let siblings: BTreeSet<u64> = got
        .iter()
        .filter(|d| d.ack.position().map(|(_, p, o)| (p, o)) == Some((held_partition, held_offset)))
        .map(|d| d.job.goods_id)
        .chain([held.job.goods_id])
        .collect();
    assert!(siblings.len() > 1, "the held job was bundled with others");
    for d in got {
        d.ack.ack();
    }
    first.shutdown().await;
    drop(held);

    let mut second = KafkaJobConsumer::new(&brokers, &group, &topic, &dlq, SourceOptions::default()).unwrap();
    let mut again = BTreeSet::new();
    while again.len() < siblings.len() {
        let d = next(&mut second).await;
        assert_eq!(d.ack.position().map(|(_, p, _)| p), Some(held_partition), "the done partition is not redelivered");
        again.insert(d.job.goods_id);
        d.ack.ack();
    }
    assert!(siblings.is_subset(&again), "the whole unfinished bundle comes again");
    second.shutdown().await;
}

/// The bundler puts a bucket's jobs on the partition Kafka's default partitioner gives
/// the bucket key: checked against librdkafka itself, keyed records without a partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buckets_partition_is_the_one_the_default_partitioner_gives_its_key() {
    use rdkafka::producer::FutureRecord;
    let brokers = ensure_broker();
    let topic = format!("partitioner-{}", suffix());
    create_topics(&brokers, &[&topic], 16).await;
    let producer = producer(&brokers);
    for goods in 0..64u64 {
        let key = model::job::bucket_key(goods);
        let partition = producer
            .send(FutureRecord::to(&topic).key(&key).payload("x"), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap()
            .partition;
        assert_eq!(partition, triggers::bus::kafka::publisher::partition_of(&key, 16), "key {key}");
    }
}

/// Jobs of many buckets published together share one record per partition, each on its
/// bucket's partition (one job per bucket: bundling by bucket would need 300 records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_many_buckets_are_bundled_per_partition_each_on_its_buckets_partition() {
    let Bus { brokers, topic, dlq, group } = bus(2).await;
    let publisher = KafkaPublisher::with_config(&brokers, &topic, &[("batch.num.messages", "1")]).unwrap();
    let all: Vec<Job> = (0..300u64).map(|g| Job::new(g, TriggerKind::Dts, format!("j{g}"))).collect();
    futures::future::try_join_all(all.iter().map(|j| publisher.publish(std::slice::from_ref(j)))).await.unwrap();
    let records = records_in(&brokers, &topic, 2);
    assert!(records <= 10, "300 jobs of 300 buckets published at once: {records} records");

    let mut consumer = KafkaJobConsumer::new(&brokers, &group, &topic, &dlq, SourceOptions::default()).unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..300 {
        let d = next(&mut consumer).await;
        let partition = d.ack.position().map(|(_, p, _)| p).unwrap();
        let bucket = model::job::bucket_key(d.job.goods_id);
        assert_eq!(partition, triggers::bus::kafka::publisher::partition_of(&bucket, 2), "goods {}", d.job.goods_id);
        seen.insert(d.job.goods_id);
        d.ack.ack();
    }
    assert_eq!(seen.len(), 300, "every job delivered once");
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_says_where_each_record_went_and_why_one_did_not() {
    use triggers::bus::kafka::producer::{Producer, Record};
    let Bus { brokers, topic, .. } = bus(2).await;
    let producer =
        Producer::new(rdkafka::ClientConfig::new().set("bootstrap.servers", &brokers).set("acks", "all")).unwrap();
    let mut offsets = Vec::new();
    for i in 0..3 {
        let payload = format!("m{i}");
        let (partition, offset) = producer
            .send(Record::to(&topic).key("k").payload(&payload).partition(1), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(partition, 1);
        offsets.push(offset);
    }
    assert_eq!(offsets, vec![offsets[0], offsets[0] + 1, offsets[0] + 2], "one after another on one partition");
    // Concurrent sends each get their own report.
    let sends = (0..20).map(|i| {
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
            let payload = format!("c{i}");
            producer.send(Record::to(&topic).payload(&payload).partition(0), Duration::from_secs(30)).await
        }
    });
    let mut got: Vec<i64> =
        futures::future::join_all(sends).await.into_iter().map(|r| r.expect("delivered").1).collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 20, "twenty distinct offsets");
    // A partition the topic does not have: an error, not a hang.
    let err = producer
        .send(Record::to(&topic).payload("x").partition(7), Duration::from_secs(30))
        .await
        .expect_err("partition 7 of a 2-partition topic");
    assert!(err.to_string().to_lowercase().contains("partition"), "{err}");
}
