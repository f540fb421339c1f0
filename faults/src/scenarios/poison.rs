//! Scenario `poison`: bad input mid-stream.
//!
//! - Malformed change events on each format's topic (Canal, Debezium, Maxwell): not
//!   JSON, binary, empty, a JSON array, fields missing, keys of the wrong type (text,
//!   negative, fractional, object, past u64), and a ~900 KB message. Each must come out
//!   on the dead-letter topic (matched by payload) while consumption goes on. A DDL
//!   message of each format, and a Debezium tombstone (an empty message), are also
//!   sent: they must be skipped, not dead-lettered.
//! - Poisoned targets on goods the stream does not otherwise owe anything: Redis keys of
//!   the wrong type (string, list), junk fields, a 4 MB value, undecodable bytes; HBase
//!   junk qualifiers, a 3 MB cell newer than the entity, undecodable bytes. A valid Canal
//!   event then names each poisoned goods; each must end consistent (repaired) on every
//!   target.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use model::{hbase_row_key, GoodsId};
use rdkafka::producer::FutureRecord;
use serde_json::json;

use super::{pause, Outcome, Run};
use crate::env::{Ctx, Env};
use crate::{hb, procs, stream};

/// Messages of `format` that are not changes of the goods tables and must be skipped,
/// not dead-lettered: a DDL message, and for Debezium a tombstone (an empty message, as
/// Debezium writes after a delete for log compaction).
fn skipped(format: &str) -> Vec<Vec<u8>> {
    let mut v = vec![ddl(format)];
    if format == "debezium" {
        v.push(Vec::new());
    }
    v
}

fn malformed(format: &str) -> Vec<Vec<u8>> {
    let huge = "x".repeat(900 * 1024);
    let mut v: Vec<Vec<u8>> =
        vec![b"not json at all".to_vec(), vec![0xff, 0xfe, 0x00, 0x01, 0x80], b"[1,2,3]".to_vec()];
    // An empty message is a tombstone to Debezium (skipped, see `skipped`), junk to the others.
    if format != "debezium" {
        v.push(Vec::new());
    }
    let t = "activity_goods_0001";
    let bad_ids = [json!("x1"), json!(-5), json!(1.5), json!({"id": 1}), json!("18446744073709551616")];
    match format {
        "canal" => {
            v.push(json!({"type": "UPDATE", "data": [{"goods_id": "1"}]}).to_string().into());
            v.push(json!({"type": "UPDATE", "table": t, "data": [{"id": "1"}]}).to_string().into());
            v.push(json!({"type": "UPDATE", "table": t, "data": []}).to_string().into());
            for id in &bad_ids {
                v.push(
                    json!({"type": "UPDATE", "database": "act_0", "table": t, "data": [{"goods_id": id}]})
                        .to_string()
                        .into(),
                );
            }
            v.push(json!({"type": "UPDATE", "table": t, "data": [{"junk": huge}]}).to_string().into());
        }
        "debezium" => {
            v.push(json!({"after": {"goods_id": 1}}).to_string().into());
            v.push(json!({"before": null, "after": {"goods_id": 1}, "op": "c"}).to_string().into());
            v.push(
                json!({"before": null, "after": {"id": 1}, "op": "c", "source": {"db": "act_0", "table": t}})
                    .to_string()
                    .into(),
            );
            for id in &bad_ids {
                v.push(
                    json!({"before": null, "after": {"goods_id": id, "activity_id": 9001}, "op": "u",
                              "source": {"db": "act_0", "table": t}, "ts_ms": 1})
                    .to_string()
                    .into(),
                );
            }
            v.push(
                json!({"op": "c", "source": {"db": "act_0", "table": t}, "after": {"junk": huge}}).to_string().into(),
            );
        }
        _ => {
            v.push(json!({"table": t, "data": {}}).to_string().into());
            v.push(json!({"type": "insert", "table": t}).to_string().into());
            v.push(json!({"type": "insert", "table": t, "data": [1]}).to_string().into());
            for id in &bad_ids {
                v.push(
                    json!({"database": "act_0", "table": t, "type": "update", "ts": 1, "data": {"goods_id": id}})
                        .to_string()
                        .into(),
                );
            }
            v.push(
                json!({"database": "act_0", "table": t, "type": "insert", "data": {"junk": huge}}).to_string().into(),
            );
        }
    }
    v
}

fn ddl(format: &str) -> Vec<u8> {
    match format {
        "canal" => json!({"data": null, "database": "act_0", "es": 1, "id": 9, "isDdl": true, "old": null,
                          "sql": "ALTER TABLE activity_goods_0001 ADD COLUMN x INT", "table": "activity_goods_0001", "ts": 2, "type": "ALTER"}),
        "debezium" => json!({"source": {"db": "act_0", "table": "activity_goods_0001"}, "ddl": "ALTER TABLE activity_goods_0001 ADD COLUMN x INT",
                             "databaseName": "act_0", "tableChanges": []}),
        _ => json!({"type": "table-alter", "database": "act_0", "table": "activity_goods_0001", "sql": "ALTER TABLE activity_goods_0001 ADD COLUMN x INT"}),
    }
    .to_string()
    .into_bytes()
}

pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let (_hbase, hbase_addr) = procs::start_emulator(&ctx.binary, &ctx.work)?;
    let env = Env::new(
        ctx,
        "poison",
        common::testenv::mysql_url(),
        format!("{}/0", common::testenv::redis_url().trim_end_matches('/')),
        hbase_addr,
        common::testenv::kafka_brokers(),
    )?;
    let mut run = Run::prepare(ctx, env, 1, 1, 0x9015).await?;
    let mut out = Outcome {
        name: "poison".into(),
        fault: "malformed Canal/Debezium/Maxwell events (wrong-type keys, missing fields, binary, 900 KB), DDL; Redis keys of the wrong type, junk fields, 4 MB values, undecodable bytes; HBase junk qualifiers, a 3 MB newer cell, undecodable bytes".into(),
        ..Default::default()
    };
    // Poisoned goods: the last 40 of the universe (the stream changes only the others).
    let universe = run.universe.as_mut().expect("seeded");
    let victims: Vec<GoodsId> = universe.goods.keys().rev().take(40).copied().collect();
    let slots: Vec<u64> = victims.iter().map(|g| universe.goods[g][0].aid).collect();
    for g in &victims {
        universe.goods.remove(g);
    }
    let stream = run.stream(ctx, 0x9016)?;
    pause(5_000).await;

    // Malformed events, every format.
    let producer = stream::producer(&run.env.brokers)?;
    let mut sent: Vec<(String, Vec<u8>)> = Vec::new();
    let mut ddls = Vec::new();
    for f in crate::env::FORMATS {
        let topic = run.env.topic(f);
        for payload in malformed(f) {
            producer
                .send(FutureRecord::to(&topic).key("poison").payload(&payload), Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)?;
            sent.push((f.to_string(), payload));
        }
        for d in skipped(f) {
            producer
                .send(FutureRecord::to(&topic).key("ddl").payload(&d), Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)?;
            ddls.push((topic.clone(), d));
        }
    }

    // Poisoned targets.
    let mut redis = redis::Client::open(run.env.redis_url.as_str())?.get_multiplexed_async_connection().await?;
    let kp = run.env.key_prefix.clone();
    let mut kinds: Vec<String> = Vec::new();
    let (addr, table) = (run.env.hbase_addr.clone(), run.env.hbase_table.clone());
    let mut hbase = hb::connect(&addr)?;
    let now = common::clock::now_ms();
    for (i, (&g, &aid)) in victims.iter().zip(&slots).enumerate() {
        let key = format!("{kp}{g}");
        let row = hbase_row_key(g);
        let q = aid.to_string();
        let kind = match i % 10 {
            0 => {
                redis::cmd("DEL").arg(&key).query_async::<()>(&mut redis).await?;
                redis::cmd("SET").arg(&key).arg("junk").query_async::<()>(&mut redis).await?;
                "redis key of type string"
            }
            1 => {
                redis::cmd("DEL").arg(&key).query_async::<()>(&mut redis).await?;
                redis::cmd("RPUSH").arg(&key).arg("a").arg("b").query_async::<()>(&mut redis).await?;
                "redis key of type list"
            }
            2 => {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg("junk")
                    .arg("{}")
                    .arg("-1")
                    .arg("x")
                    .query_async::<()>(&mut redis)
                    .await?;
                "redis junk fields"
            }
            3 => {
                redis::cmd("HSET").arg(&key).arg(&q).arg("y".repeat(4 << 20)).query_async::<()>(&mut redis).await?;
                "redis 4 MB value"
            }
            4 => {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg(&q)
                    .arg(vec![0xffu8, 0xfe, 0x00])
                    .query_async::<()>(&mut redis)
                    .await?;
                "redis undecodable value"
            }
            5 | 6 => {
                hb::put(&mut hbase, &table, &row, b"junk", b"zzz".to_vec(), now)?;
                hb::put(&mut hbase, &table, &row, b"", b"empty qualifier".to_vec(), now)?;
                "hbase junk qualifiers"
            }
            7 => {
                hb::put(&mut hbase, &table, &row, q.as_bytes(), vec![b'z'; 3 << 20], now)?;
                "hbase 3 MB cell newer than the entity"
            }
            _ => {
                hb::put(&mut hbase, &table, &row, q.as_bytes(), vec![0xff, 0x00, 0x7b], now)?;
                "hbase undecodable cell"
            }
        };
        kinds.push(kind.into());
        let sh = run.env.layout.route(g);
        let event = stream::canal(
            &sh.database,
            &sh.goods_table,
            "UPDATE",
            json!({"goods_id": g.to_string(), "activity_id": aid.to_string()}),
        );
        producer
            .send(
                FutureRecord::to(&run.env.topic("canal")).key(&g.to_string()).payload(&event),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)?;
        out.events += 1;
    }
    let poisoned_at = Instant::now();
    let recovery = {
        let checker = run.checker.clone();
        let victims = victims.clone();
        tokio::spawn(async move {
            while poisoned_at.elapsed() < Duration::from_secs(600) {
                if checker.check(&victims).await.is_ok_and(|b| b.is_empty()) {
                    return Some(poisoned_at.elapsed().as_millis() as u64);
                }
                pause(500).await;
            }
            None
        })
    };
    pause(15_000).await;
    let log = stream.stop().await?;
    eprintln!("faults: stream stopped, waiting for recovery");
    out.recovery_ms = tokio::time::timeout(run.settle_limit() + Duration::from_secs(30), recovery)
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten();
    let log = std::mem::take(&mut *log.lock().unwrap());
    let letters = run.finish(&log, &victims, &mut out).await?;

    let lettered: BTreeSet<(&str, &[u8])> =
        letters.iter().map(|l| (l.source_topic.as_str(), l.payload.as_slice())).collect();
    let missed: Vec<String> = sent
        .iter()
        .filter(|(f, p)| !lettered.contains(&(run.env.topic(f).as_str(), p.as_slice())))
        .map(|(f, p)| format!("{f}: {:?}", String::from_utf8_lossy(&p[..p.len().min(60)])))
        .collect();
    let ddl_lettered = letters.iter().filter(|l| ddls.contains(&(l.source_topic.clone(), l.payload.clone()))).count();
    out.notes.push(format!(
        "malformed events: {} sent, {} dead-lettered, {} not; DDL messages and tombstones (to be skipped): {} sent, {} dead-lettered",
        sent.len(),
        sent.len() - missed.len(),
        missed.len(),
        ddls.len(),
        ddl_lettered
    ));
    out.notes.extend(missed.into_iter().take(5).map(|m| format!("not dead-lettered: {m}")));
    let bad = run.settle(&victims, Duration::from_secs(5)).await;
    let mut by_kind: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for (g, k) in victims.iter().zip(&kinds) {
        let e = by_kind.entry(k.as_str()).or_default();
        e.0 += 1;
        if !bad.contains_key(g) {
            e.1 += 1;
        }
    }
    out.notes.push(format!(
        "poisoned targets, consistent at the end / poisoned: {}",
        by_kind.iter().map(|(k, (n, ok))| format!("{k} {ok}/{n}")).collect::<Vec<_>>().join(", ")
    ));
    out.notes.extend(bad.iter().take(5).map(|(g, w)| format!("poisoned goods {g} left: {w}")));
    run.clean_up(ctx).await;
    Ok(out)
}
