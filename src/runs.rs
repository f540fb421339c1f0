//! Distributed full runs from the operator's side: `reconciler full --via-bus [--wait]`
//! (create the run, publish its jobs, follow the ledger), `reconciler runs [RUN_ID]`,
//! and the run report printed from the ledger in the shape of an in-process `full`
//! (counts, then the drift, repair and deferral entries the handlers recorded), with the
//! same exit status rules.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::mysql::ledger::{Ledger, RunRecord};
use model::config::{BusKind, Config, TargetConfig};
use triggers::bus::kafka::publisher::KafkaPublisher;
use triggers::full::{FullPublisher, PublishOptions, Published, RunSource};

use crate::app::{exit, App};

/// The publisher options of this instance.
pub fn publish_options(config: &Config, owner: &str) -> PublishOptions {
    let f = &config.triggers.full;
    PublishOptions {
        job_goods: f.job_goods,
        rows_per_sec: f.rows_per_sec,
        lease_ms: f.lease_ms.min(i64::MAX as u64) as i64,
        owner: owner.to_string(),
        orphan_scans: config
            .targets
            .iter()
            .map(|t| match t {
                TargetConfig::Hbase(h) => (h.name.clone(), f.orphan_parts),
                // One node, one part. A Redis Cluster target gets one part per master
                // (handlers::jobs::scan_part).
                TargetConfig::Redis(r) => (r.name.clone(), 1),
            })
            .collect(),
        dump_column: f.goods_id_column.clone(),
    }
}

/// The Kafka job publisher of the configured bus (topics created when absent).
pub async fn kafka_publisher(config: &Config) -> anyhow::Result<KafkaPublisher> {
    let k = &config.kafka;
    triggers::bus::kafka::admin::ensure_topics_for(k, &[&k.jobs_topic, &k.dead_letter_topic]).await?;
    let extra: Vec<(&str, &str)> = k.producer_config.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    Ok(KafkaPublisher::with_config(&k.brokers, &k.jobs_topic, &extra)?)
}

/// `reconciler full [--dump PATH] --via-bus [--wait] [--json]`.
pub async fn full_via_bus(app: &App, dump: Option<&Path>, wait: bool, json: bool) -> i32 {
    if app.config.bus.kind != BusKind::Kafka {
        eprintln!("error: full --via-bus needs bus.kind = \"kafka\" (the embedded bus lives inside one process; run `full` without --via-bus)");
        return exit::USAGE;
    }
    let bus = match kafka_publisher(&app.config).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: kafka: {e:#}");
            return exit::UNREACHABLE;
        }
    };
    let owner = format!("cli-{}", crate::serve::worker::instance_name(&app.config));
    let publisher = FullPublisher::new(
        app.pools.clone(),
        Arc::new(bus),
        publish_options(&app.config, &owner),
        common::clock::system(),
    );
    let source = dump.map(|p| RunSource::Dump(p.to_path_buf())).unwrap_or(RunSource::Mysql);
    let run_id = crate::app::run_id("full");
    if let Err(e) = publisher.create(&run_id, &source, false).await {
        eprintln!("error: {e}");
        return if e.is_retryable() { exit::UNREACHABLE } else { exit::USAGE };
    }
    if !wait {
        if json {
            println!("{}", serde_json::json!({ "run_id": run_id }));
        } else {
            println!("{run_id}");
        }
    } else {
        eprintln!("run {run_id}: publishing");
    }
    match publisher.publish(&run_id).await {
        Ok(Published::All { jobs, goods }) => {
            tracing::info!(run_id = %run_id, jobs, goods, "run published");
        }
        Ok(Published::NotOwner) => tracing::warn!(run_id = %run_id, "another instance took the run's publication over"),
        Err(e) => {
            eprintln!("error: run {run_id}: {e}");
            return if e.is_retryable() { exit::UNREACHABLE } else { exit::USAGE };
        }
    }
    if !wait {
        return exit::CLEAN;
    }
    let ledger = publisher.ledger();
    let record = loop {
        match ledger.get(&run_id).await {
            Ok(Some(r)) if r.is_finished() => break r,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "run ledger not readable, retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    match print_report(ledger, &record, json).await {
        Ok(()) => status(&record),
        Err(e) => {
            eprintln!("error: {e}");
            exit::UNREACHABLE
        }
    }
}

/// The exit status of a finished run, by the rules of an in-process `full`.
pub fn status(r: &RunRecord) -> i32 {
    if r.state == "failed" && r.jobs_failed == 0 {
        return exit::USAGE; // the source failed (a broken dump file)
    }
    if !r.unreachable.is_empty() || r.jobs_failed > 0 {
        return exit::UNREACHABLE;
    }
    if r.errors > 0 || r.state == "cancelled" {
        return exit::DRIFT_LEFT;
    }
    if r.drift == 0 {
        return exit::CLEAN;
    }
    if r.halted || r.dry_run || r.deferred > 0 || r.drift_left > 0 {
        exit::DRIFT_LEFT
    } else {
        exit::CLEAN
    }
}

const LISTS: [&str; 3] = ["drift", "repairs", "deferred"];
/// Entries of each list shown in the human report.
const SHOWN: usize = 20;

/// Prints the run's report: JSON (the contract's keys, every entry, streamed from the
/// ledger page by page) or text (counts and the first entries of each list).
async fn print_report(ledger: &Ledger, r: &RunRecord, json: bool) -> Result<(), sqlx::Error> {
    let mut out = std::io::stdout().lock();
    let elapsed = r.finished_ms.unwrap_or(r.started_ms).saturating_sub(r.started_ms).max(0);
    if json {
        let _ = write!(out, "{{\"run_id\":{},\"state\":{},", serde_json::json!(r.run_id), serde_json::json!(r.state));
        let _ = write!(
            out,
            "\"checked\":{},\"orphans_checked\":{},\"drifted_goods\":{},\"published\":{},\"elapsed_ms\":{elapsed},\"halted\":{},\"unreachable\":{}",
            r.checked + r.orphans_checked,
            r.orphans_checked,
            r.drifted,
            r.published,
            r.halted,
            serde_json::json!(r.unreachable)
        );
        for list in LISTS {
            let _ = write!(out, ",\"{list}\":[");
            let mut first = true;
            let mut after = String::new();
            loop {
                let page = ledger.entries(&r.run_id, &after, 200).await?;
                let Some(last) = page.last() else { break };
                after = last.0.clone();
                for (_, entries) in &page {
                    let v: serde_json::Value = serde_json::from_str(entries).unwrap_or_default();
                    for e in v[list].as_array().into_iter().flatten() {
                        let _ = write!(out, "{}{e}", if first { "" } else { "," });
                        first = false;
                    }
                }
            }
            let _ = write!(out, "]");
        }
        let _ = writeln!(out, "}}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "run {} ({}, {}): checked {} goods ({} orphans) in {:.2} s: {} drifted goods, {} drift entries, {} repaired, {} deferred{}",
        r.run_id,
        r.source,
        r.state,
        r.checked + r.orphans_checked,
        r.orphans_checked,
        elapsed as f64 / 1000.0,
        r.drifted,
        r.drift,
        r.repaired,
        r.deferred,
        if r.unreachable.is_empty() { String::new() } else { format!(", unreachable: {}", r.unreachable.join(", ")) }
    );
    if let Some(e) = &r.error {
        let _ = writeln!(out, "error: {e}");
    }
    if r.halted {
        let _ = writeln!(out, "repairs halted by the blast-radius breaker on some targets");
    }
    let mut shown = [0usize; 3];
    let mut after = String::new();
    while shown.iter().any(|n| *n < SHOWN) {
        let page = ledger.entries(&r.run_id, &after, 200).await?;
        let Some(last) = page.last() else { break };
        after = last.0.clone();
        for (_, entries) in &page {
            let v: serde_json::Value = serde_json::from_str(entries).unwrap_or_default();
            for (i, list) in LISTS.iter().enumerate() {
                for e in v[*list].as_array().into_iter().flatten() {
                    if shown[i] < SHOWN {
                        let _ = writeln!(out, "  {list}: {e}");
                        shown[i] += 1;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `reconciler runs [RUN_ID] [--json]`.
pub async fn show(app: &App, run_id: Option<&str>, json: bool) -> i32 {
    let ledger = Ledger::new(&app.pools);
    if let Err(e) = Ledger::ensure_tables(&app.pools).await {
        eprintln!("error: mysql: {e}");
        return exit::UNREACHABLE;
    }
    let now = common::clock::now_ms();
    match run_id {
        Some(id) => match ledger.get(id).await {
            Ok(Some(r)) => {
                if json {
                    println!("{}", r.to_json(now));
                } else {
                    print!("{}", describe(&r, now));
                    if let Ok(by) = ledger.handled_by(id).await {
                        for (instance, jobs) in by {
                            println!("  handled by {instance}: {jobs} jobs");
                        }
                    }
                }
                exit::CLEAN
            }
            Ok(None) => {
                eprintln!("error: no run `{id}` in the run ledger");
                exit::USAGE
            }
            Err(e) => {
                eprintln!("error: mysql: {e}");
                exit::UNREACHABLE
            }
        },
        None => match ledger.list(50).await {
            Ok(runs) => {
                if json {
                    println!("{}", serde_json::Value::Array(runs.iter().map(|r| r.to_json(now)).collect()));
                } else if runs.is_empty() {
                    println!("no runs recorded");
                } else {
                    println!(
                        "{:<40} {:<10} {:>10} {:>10} {:>8} {:>8}  source",
                        "run", "state", "published", "checked", "drifted", "repaired"
                    );
                    for r in &runs {
                        println!(
                            "{:<40} {:<10} {:>10} {:>10} {:>8} {:>8}  {}",
                            r.run_id, r.state, r.published, r.checked, r.drifted, r.repaired, r.source
                        );
                    }
                }
                exit::CLEAN
            }
            Err(e) => {
                eprintln!("error: mysql: {e}");
                exit::UNREACHABLE
            }
        },
    }
}

/// One run in detail, for people.
pub fn describe(r: &RunRecord, now_ms: i64) -> String {
    let progress = r.progress().map(|p| format!("{:.1}%", p * 100.0)).unwrap_or_else(|| "publishing".into());
    let eta = r.eta_ms(now_ms).map(|ms| format!(", about {} s left", ms / 1000)).unwrap_or_default();
    let mut s = format!(
        "run {}\n  source: {}\n  state: {} ({progress}{eta})\n  jobs: {} published, {} done, {} failed\n  goods: {} published, {} checked, {} orphans checked\n  drift: {} drifted goods, {} entries, {} repaired, {} deferred, {} errors\n  started_ms: {}\n",
        r.run_id,
        r.source,
        r.state,
        r.jobs_published,
        r.jobs_done,
        r.jobs_failed,
        r.published,
        r.checked,
        r.orphans_checked,
        r.drifted,
        r.drift,
        r.repaired,
        r.deferred,
        r.errors,
        r.started_ms,
    );
    if let Some(f) = r.finished_ms {
        s.push_str(&format!("  finished_ms: {f}\n"));
    }
    if r.state == "publishing" {
        s.push_str(&format!("  publisher: {} at checkpoint `{}`\n", r.lease_owner, r.checkpoint));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("  error: {e}\n"));
    }
    s
}
