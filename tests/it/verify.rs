//! The price verifier (contract section 10) end to end: `reconciler verify --samples` over
//! a file with every verdict and cause, and `serve` consuming samples from the broker,
//! counting them, repairing a stale-source goods and dead-lettering a malformed sample.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use model::GoodsId;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use reconciler::seed::{ActivitySeed, DataSet, GoodsSeed};
use serde_json::{json, Value};

use crate::common::TestEnv;
use crate::service::{brokers, eventually, http, kafka_section, Service};

const HOUR: i64 = 3_600_000;

fn now_ms() -> i64 {
    common::clock::now_ms()
}

fn activity(id: u64, kind: i8, prio: i32, start_ms: i64, end_ms: i64) -> ActivitySeed {
    ActivitySeed {
        activity_id: id,
        name: format!("a{id}"),
        kind,
        biz_code: if id.is_multiple_of(2) { "brand".into() } else { "main".into() },
        tags: "618,hot".into(),
        status: 1,
        priority: prio,
        start_ms,
        end_ms,
    }
}

fn row(goods_id: GoodsId, activity_id: u64, price: i64, skus: Vec<(u64, i64, i8)>) -> GoodsSeed {
    GoodsSeed { goods_id, activity_id, price, limit: 0, status: 1, skus }
}

/// Goods `base+1..=base+8`, each with a known winner (non-member, goods level):
/// +1: 7001 at 500 (7002 at 300 loses on priority); +2: 7001 with SKU (base+2)*10 at 700;
/// +3: 7002 at 300 (7004 ended); +4: 7003 member price 200 for members, else 7002 at 300;
/// +5: 7001 at 500 (made stale in redis-a by the tests); +6: 7001 at 500 (changed after
/// the samples' time by the tests); +7: 7001 at 500; +8: only 7004, ended.
fn dataset(base: GoodsId) -> DataSet {
    let now = now_ms();
    let (start, end) = (now - 24 * HOUR, now + 24 * HOUR);
    DataSet {
        activities: vec![
            activity(7001, 2, 10, start, end),
            activity(7002, 1, 5, start, end),
            activity(7003, 4, 20, start, end),
            activity(7004, 3, 30, start, now - HOUR),
        ],
        goods: vec![
            row(base + 1, 7001, 500, vec![]),
            row(base + 1, 7002, 300, vec![]),
            row(base + 2, 7001, 800, vec![((base + 2) * 10, 700, 1)]),
            row(base + 3, 7002, 300, vec![]),
            row(base + 3, 7004, 100, vec![]),
            row(base + 4, 7003, 200, vec![]),
            row(base + 4, 7002, 300, vec![]),
            row(base + 5, 7001, 500, vec![]),
            row(base + 6, 7001, 500, vec![]),
            row(base + 7, 7001, 500, vec![]),
            row(base + 8, 7004, 100, vec![]),
        ],
    }
}

/// Seeds the data set an hour ago and projects it into every target.
async fn seeded(env: &TestEnv, base: GoodsId) -> Vec<GoodsId> {
    env.seed(&dataset(base), HOUR as u64).await;
    let ids: Vec<GoodsId> = (base + 1..=base + 8).collect();
    handlers::run::run_goods(&env.app.handler, &ids, &handlers::Mode::sync("t".into()), &env.app.run_options(None))
        .await
        .unwrap();
    ids
}

/// Makes redis-a hold price 450 for activity 7001 of `goods` (a lost sync).
fn make_stale(env: &TestEnv, goods: GoodsId) {
    let key = env.redis_key("redis-a", goods);
    let held = env.redis_hash("redis-a", goods);
    let mut e = crate::common::decode(&held["7001"]);
    e.price = 450;
    let _: () = redis::cmd("HSET").arg(&key).arg("7001").arg(e.encode()).query(&mut env.redis()).unwrap();
}

#[allow(clippy::too_many_arguments)]
fn sample(
    id: &str,
    scene: &str,
    goods: GoodsId,
    sku: Option<u64>,
    member: bool,
    answer: Option<(u64, i64)>,
    source: &str,
    at_ms: i64,
) -> Value {
    let (aid, price) = answer.map_or((Value::Null, Value::Null), |(a, p)| (json!(a), json!(p)));
    json!({"v": 1, "sample_id": id, "scene": scene, "goods_id": goods, "sku_id": sku, "at_ms": at_ms,
           "user": {"member": member}, "result": {"activity_id": aid, "price": price},
           "context": {"source": source, "candidates": [], "dropped": []}})
}

fn reconciler(env: &TestEnv, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--config", env.config_path.to_str().unwrap()])
        .args(args)
        .env("RECONCILER_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn write_lines(env: &TestEnv, name: &str, lines: &[String]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}{name}.jsonl", env.prefix));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_samples_file_gives_every_verdict_and_cause() {
    let env = TestEnv::new().await;
    let b: GoodsId = 21_000;
    seeded(&env, b).await;
    make_stale(&env, b + 5);
    let at = now_ms() - 60_000;
    let mut wrong_drop = sample("wrong-activity-drop", "detail", b + 1, None, false, Some((7002, 300)), "redis-a", at);
    wrong_drop["context"]["dropped"] = json!([{"aid": 7001, "reason": "lower_priority"}]);
    let mut member_only = sample("member-only-ignored", "order", b + 4, None, false, Some((7003, 200)), "redis-b", at);
    member_only["context"]["dropped"] = json!([{"aid": 7002, "reason": "cheaper elsewhere"}]);
    let lines: Vec<Value> = vec![
        sample("match", "detail", b + 1, None, false, Some((7001, 500)), "redis-a", at),
        sample("match-sku", "list", b + 2, Some((b + 2) * 10), false, Some((7001, 700)), "hbase-a", at),
        sample("match-member", "order_page", b + 4, None, true, Some((7003, 200)), "redis-b", at),
        sample("wrong-price-logic", "detail", b + 1, None, false, Some((7001, 450)), "redis-a", at),
        sample("wrong-price-stale", "detail", b + 5, None, false, Some((7001, 450)), "redis-a", at),
        wrong_drop,
        member_only,
        sample("missed", "detail", b + 3, None, false, None, "redis-b", at),
        sample("phantom", "list", b + 8, None, false, Some((7004, 100)), "hbase-a", at),
        sample("unknown-source", "detail", b + 7, None, false, Some((7001, 1)), "redis-z", at),
        sample("zero-price", "order", b + 7, None, false, Some((7001, 0)), "redis-a", at),
        sample("truth-changed", "detail", b + 6, None, false, Some((7001, 500)), "redis-a", at),
        sample("row-removed", "detail", b + 7, None, false, Some((7009, 10)), "redis-a", at),
    ];
    // Truth of goods +6 changes now, after the samples' time.
    let shard = env.config().layout().shard(env.config().layout().shard_of(b + 6));
    env.sql(&format!(
        "UPDATE `{}`.{} SET activity_price = 510 WHERE goods_id = {}",
        shard.database,
        shard.goods_table,
        b + 6
    ))
    .await;
    let path = write_lines(&env, "samples", &lines.iter().map(Value::to_string).collect::<Vec<_>>());

    let o = reconciler(&env, &["verify", "--samples", path.to_str().unwrap(), "--json"], None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "mismatches: exit 1\n{stderr}");
    let doc: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(doc["samples"], 13);
    assert_eq!(
        doc["verdicts"],
        json!({"match": 3, "wrong_price": 4, "wrong_activity": 2, "missed_activity": 1, "phantom_activity": 1, "inconclusive": 2}),
        "{doc:#}"
    );
    assert_eq!(doc["causes"], json!({"logic": 7, "stale_source": 1}));
    assert_eq!(doc["inconclusive"], json!({"truth_changed": 1, "row_removed": 1}));
    let mismatches: BTreeMap<String, Value> = doc["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["sample_id"].as_str().unwrap().to_string(), m.clone()))
        .collect();
    assert_eq!(mismatches.len(), 8, "every mismatch listed: {:?}", mismatches.keys());
    let m = &mismatches["wrong-price-stale"];
    assert_eq!(
        (m["goods_id"].as_u64(), &m["verdict"], &m["cause"]),
        (Some(b + 5), &json!("wrong_price"), &json!("stale_source"))
    );
    assert_eq!(m["expected"], json!({"activity_id": 7001, "price": 500}));
    assert_eq!(mismatches["wrong-price-logic"]["cause"], "logic");
    assert_eq!(mismatches["wrong-activity-drop"]["wrong_drops"], json!([{"aid": 7001, "reason": "lower_priority"}]));
    assert_eq!(mismatches["member-only-ignored"]["expected"], json!({"activity_id": 7002, "price": 300}));
    assert_eq!(mismatches["missed"]["expected"], json!({"activity_id": 7002, "price": 300}));
    assert_eq!(mismatches["phantom"]["expected"], Value::Null);
    assert!(mismatches["unknown-source"]["note"].as_str().unwrap().contains("redis-z"));
    assert!(!mismatches.contains_key("truth-changed") && !mismatches.contains_key("row-removed"));
    assert_eq!(doc["nonpositive_prices"], 1);
    assert_eq!(doc["check_goods"], json!([b + 5]));
    assert_eq!(
        doc["dimensions"]["scene"]["order"],
        json!({"samples": 2, "mismatches": 2, "logic": 2, "stale_source": 0, "inconclusive": 0})
    );
    assert_eq!(doc["dimensions"]["source"]["unknown"]["samples"], 1);
    assert_eq!(doc["dimensions"]["condition"]["member_goods"]["samples"], 1);
    assert_eq!(doc["dimensions"]["type"]["member_price"]["samples"], 1, "match-member counted under 7003");
    assert_eq!(doc["dimensions"]["band"]["0-1000"]["samples"], 13);
    let drops = json!([
        {"scene": "detail", "reason": "lower_priority", "type": "seckill", "count": 1},
        {"scene": "order", "reason": "other", "type": "discount", "count": 1}
    ]);
    assert_eq!(doc["wrong_drops"], drops, "both dropped winners are wrong drops, free-text reasons are `other`");
    assert_eq!(doc["dropped"], drops);

    // The readable summary, from stdin.
    let text = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    let o = reconciler(&env, &["verify", "--samples", "-"], Some(&text));
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "verified 13 samples",
        "verdicts: match 3, wrong_price 4, wrong_activity 2, missed_activity 1, phantom_activity 1, inconclusive 2",
        "causes: logic 7, stale_source 1",
        "by dimension:",
        "scene      order",
        "first 8 mismatches:",
        "sample wrong-price-stale goods 21005",
        "WRONG DROPS (the rule's winner was dropped) by reason and scene:",
        "  lower_priority            0          1          0          0",
        "PRICES <= 0 answered by the service: 1",
        "reconciler repair --goods 21005",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }

    // Only matches and inconclusive samples: exit 0.
    let clean = write_lines(&env, "clean", &[lines[0].to_string(), String::new(), lines[11].to_string()]);
    let o = reconciler(&env, &["verify", "--samples", clean.to_str().unwrap(), "--json"], None);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((doc["samples"].as_u64(), doc["mismatches"].as_array().unwrap().len()), (Some(2), 0));

    // Bad lines are named by number, the rest is still verified, exit 2.
    let bad = write_lines(
        &env,
        "bad",
        &[
            lines[0].to_string(),
            "{\"v\":1,\"sample_id\":\"x\"".into(),
            lines[1].to_string().replace("\"list\"", "\"home\""),
        ],
    );
    let o = reconciler(&env, &["verify", "--samples", bad.to_str().unwrap(), "--json"], None);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("line 2: not a JSON object"), "{stderr}");
    assert!(stderr.contains("line 3: field `scene`: unknown variant `home`"), "{stderr}");
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((doc["samples"].as_u64(), doc["bad_lines"].as_u64()), (Some(1), Some(2)));
    assert_eq!(doc["bad_line_errors"][1]["line"], 3);

    let o = reconciler(&env, &["verify", "--samples", "/nonexistent/samples.jsonl"], None);
    assert_eq!(o.status.code(), Some(2));
    for p in [path, clean, bad] {
        let _ = std::fs::remove_file(p);
    }
}

/// `(name, labels) -> value` of a Prometheus text exposition.
fn scrape(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let labels = rest
                    .trim_end_matches('}')
                    .split("\",")
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        if let Ok(v) = value.parse() {
            out.insert((name, labels), v);
        }
    }
    out
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    scrape(text)
        .into_iter()
        .filter(|((n, l), _)| n == name && want.iter().all(|(k, v)| l.get(k) == Some(v)))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_verifies_samples_from_kafka_repairs_stale_sources_and_dead_letters_bad_ones() {
    let env = TestEnv::new().await;
    let b: GoodsId = 22_000;
    seeded(&env, b).await;
    make_stale(&env, b + 5);
    let topic = format!("{}samples", env.prefix);
    let extra = format!(
        "{}[verifier]\ntopic = \"{topic}\"\nbatch_size = 20\nbatch_wait_ms = 20\ntags = [\"618\"]\n",
        kafka_section(&env)
    );
    let service = Service::start(&env, &extra);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.timeout.ms", "10000")
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let at = now_ms();
    let mut payloads: Vec<String> = (0..30)
        .map(|i| sample(&format!("ok-{i}"), "detail", b + 1, None, false, Some((7001, 500)), "redis-a", at).to_string())
        .collect();
    payloads.push(sample("stale", "order", b + 5, None, false, Some((7001, 450)), "redis-a", at).to_string());
    payloads.push(sample("logic", "order", b + 7, None, false, Some((7001, 499)), "redis-b", at).to_string());
    payloads.push("{\"v\":1,\"sample_id\":\"broken\",\"scene\":\"detail\"}".into());
    for p in &payloads {
        producer
            .send(FutureRecord::to(&topic).key("k").payload(p), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    // The stale source is repaired by the data path (check job, trigger verifier).
    let healed = eventually(Duration::from_secs(60), || {
        env.redis_hash("redis-a", b + 5).get("7001").is_some_and(|v| crate::common::decode(v).price == 500)
    })
    .await;
    assert!(healed, "redis-a of the stale-source goods repaired");

    let mut text = String::new();
    let counted = eventually(Duration::from_secs(30), || {
        text = http(&service.admin, "GET", "/metrics", None, None).map(|(_, b)| b).unwrap_or_default();
        metric(&text, "reconciler_verify_samples_total", &[]) >= 32.0
            && metric(&text, "reconciler_verify_malformed_total", &[]) >= 1.0
            && metric(&text, "reconciler_repairs_total", &[("trigger", "verifier")]) >= 1.0
    })
    .await;
    assert!(counted, "samples counted and the stale source's repair recorded (trigger verifier):\n{text}");
    assert_eq!(metric(&text, "reconciler_verify_samples_total", &[("verdict", "match")]), 30.0, "{text}");
    assert_eq!(
        metric(&text, "reconciler_verify_samples_total", &[("verdict", "wrong_price"), ("cause", "stale_source")]),
        1.0
    );
    assert_eq!(
        metric(&text, "reconciler_verify_samples_total", &[("verdict", "wrong_price"), ("cause", "logic")]),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "reconciler_verify_dimension_samples_total",
            &[("dimension", "scene"), ("value", "order"), ("cause", "logic")]
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "reconciler_verify_dimension_samples_total", &[("dimension", "tag"), ("value", "618")]),
        32.0
    );
    assert_eq!(
        metric(&text, "reconciler_verify_dimension_samples_total", &[("dimension", "tag"), ("value", "other")]),
        32.0
    );
    assert!(metric(&text, "reconciler_verify_check_jobs_total", &[]) >= 1.0);

    // The malformed sample is in the dead-letter topic with its reason.
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}dlq-reader", env.prefix))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&format!("{}dlq", env.prefix)]).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(20), dlq.recv()).await.expect("a dead letter arrives").unwrap();
    assert!(msg.payload().unwrap().starts_with(b"{\"v\":1,\"sample_id\":\"broken\""));
    let reason = {
        use rdkafka::message::Headers;
        let h = msg.headers().expect("headers");
        h.iter().find(|x| x.key == "dlq.reason").map(|x| String::from_utf8_lossy(x.value.unwrap()).into_owned())
    };
    let reason = reason.expect("dlq.reason header");
    assert!(reason.contains("pricing sample") && reason.contains("missing field `goods_id`"), "{reason}");

    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}
