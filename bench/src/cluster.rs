//! Phase "Redis Cluster vs one server": the same goods, the same truth, one Redis target
//! on the single server and one on the local Redis Cluster (`scripts/redis-cluster.sh`,
//! seeds from `RECONCILER_TEST_REDIS_CLUSTER`), each measured alone in one run: a full
//! check (clean), then drift injected into the same goods of both, a full repair, and a
//! re-check that must be clean. Full runs include each target's orphan scan (every
//! master's `SCAN` on the cluster). Truth lives in its own databases (`bench_cl_*`), keys
//! under their own prefix, all removed at the end.
//!
//! Writes its figures between two markers in BENCHMARKS.md (below the hand-written
//! analysis, so the main phases' rewrite of the file keeps them).

use std::time::Instant;

use anyhow::{Context, Result};
use handlers::run::{mysql_id_source, run_full, run_goods};
use handlers::Mode;
use model::config::Config;
use model::job::TriggerKind;
use model::report::Report;
use reconciler::app::App;

const DB_PREFIX: &str = "bench_cl_";
const KEY_PREFIX: &str = "bench:cl:";
/// The single-server target's Redis db (the main phases use 2 and 3).
const SINGLE_URL: &str = "redis://127.0.0.1:6379/4";
pub const BEGIN: &str = "<!-- cluster phase: rewritten by `bench --cluster-only` and by full runs -->";
pub const END: &str = "<!-- cluster phase end -->";

/// Figures of one target.
pub struct Side {
    pub label: &'static str,
    pub check_rate: f64,
    pub repair_rate: f64,
    pub drift: usize,
    pub repairs: usize,
    pub recheck_drift: usize,
}

fn config(target: &str, batch_size: usize, concurrency: usize) -> Result<Config> {
    let text = format!(
        r#"
[mysql]
url = "{mysql}"
databases = 2
tables_per_database = 4
db_prefix = "{DB_PREFIX}"

[repair]
settle_ms = 3000
max_drift_ratio = 1.0
max_repairs_per_sec = 1000000

[full]
batch_size = {batch_size}
concurrency = {concurrency}

[[targets]]
name = "redis"
kind = "redis"
key_prefix = "{KEY_PREFIX}"
{target}
"#,
        mysql = common::testenv::mysql_url(),
    );
    Config::parse(&text, "bench cluster phase", &|_| None).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn full(app: &App, mode: Mode) -> Result<(Report, f64)> {
    let opts = app.run_options(None);
    let started = Instant::now();
    let report = run_full(&app.handler, mysql_id_source(&app.handler, opts.batch_size), &mode, &opts)
        .await
        .map_err(|e| anyhow::anyhow!("full run: {e}"))?;
    Ok((report, started.elapsed().as_secs_f64()))
}

/// Deletes the first field of every `every`-th goods held by the target, through the
/// store's own connection kind (a raw client of the server or of the cluster).
async fn inject(app: &App, goods: u64, every: u64) -> Result<()> {
    let target = app.handler.targets()[0].clone();
    let ids: Vec<u64> = (1..=goods).step_by(every as usize).collect();
    let held = target.read(&ids).await?;
    let mut repairs = Vec::new();
    for (g, observed) in ids.iter().zip(held) {
        if let Some((field, cell)) = observed.cells.into_iter().next() {
            repairs.push(model::repair_plan::CellRepair {
                goods_id: *g,
                qualifier: field,
                expected: Some(cell),
                write: model::repair_plan::CellWrite::Delete,
                kind: model::DriftKind::Missing,
                activity_id: None,
            });
        }
    }
    target.apply(&repairs).await?;
    Ok(())
}

/// Removes every key of the phase from the target, through the reconciler's own scan.
async fn wipe(app: &App) -> Result<()> {
    let target = app.handler.targets()[0].clone();
    let mut cursor = None;
    let mut ids = Vec::new();
    loop {
        let page = target.scan(cursor.take(), 1000).await?;
        ids.extend(page.goods);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let held = target.read(&ids).await?;
    let deletes: Vec<_> = ids
        .iter()
        .zip(held)
        .flat_map(|(g, o)| {
            o.cells.into_iter().map(move |(field, cell)| model::repair_plan::CellRepair {
                goods_id: *g,
                qualifier: field,
                expected: Some(cell),
                write: model::repair_plan::CellWrite::Delete,
                kind: model::DriftKind::Orphan,
                activity_id: None,
            })
        })
        .collect();
    for chunk in deletes.chunks(5000) {
        target.apply(chunk).await?;
    }
    Ok(())
}

async fn measure(label: &'static str, app: &App, goods: u64, every: u64) -> Result<Side> {
    let ids: Vec<u64> = (1..=goods).collect();
    run_goods(&app.handler, &ids, &Mode::sync("bench-cluster-sync".into()), &app.run_options(None))
        .await
        .map_err(|e| anyhow::anyhow!("{label} sync: {e}"))?;
    let (clean, check_secs) = full(app, Mode::check("bench-cluster-check".into())).await?;
    anyhow::ensure!(clean.drift.is_empty() && clean.unreachable.is_empty(), "{label}: clean run drifted: {clean:?}");
    inject(app, goods, every).await?;
    let (repaired, repair_secs) = full(app, Mode::repair(TriggerKind::Full, "bench-cluster-repair".into())).await?;
    let (recheck, _) = full(app, Mode::check("bench-cluster-recheck".into())).await?;
    Ok(Side {
        label,
        check_rate: goods as f64 / check_secs,
        repair_rate: goods as f64 / repair_secs,
        drift: repaired.drift.len(),
        repairs: repaired.repairs.len(),
        recheck_drift: recheck.drift.len(),
    })
}

/// Runs the phase on `goods` goods, one goods in `every` drifted; returns both sides.
pub async fn run(goods: u64, every: u64, batch_size: usize, concurrency: usize) -> Result<Vec<Side>> {
    let seeds = common::testenv::redis_cluster_nodes();
    let cluster = seeds.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let single = App::new(config(&format!("url = \"{SINGLE_URL}\""), batch_size, concurrency)?)?;
    let clustered = App::new(config(&format!("cluster = [{cluster}]"), batch_size, concurrency)?)?;
    clean_up(&single).await?;
    wipe(&single).await?;
    wipe(&clustered).await.context("the Redis Cluster (scripts/redis-cluster.sh)")?;
    common::mysql::schema::create(&single.pools).await.context("schema")?;
    let set = reconciler::seed::generate(11, 20, 1, goods);
    reconciler::seed::insert(&single.pools, &single.config.layout(), &set, 3_600_000).await?;
    let mut sides = Vec::new();
    for (label, app) in [("one server", &single), ("Redis Cluster, 3 masters", &clustered)] {
        let side = measure(label, app, goods, every).await;
        wipe(app).await?;
        sides.push(side?);
    }
    clean_up(&single).await?;
    Ok(sides)
}

async fn clean_up(app: &App) -> Result<()> {
    for db in ["act_meta", "act_0", "act_1"] {
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{DB_PREFIX}{db}`")).execute(app.pools.meta_pool()).await?;
    }
    Ok(())
}

/// The markdown section of the phase.
pub fn markdown(sides: &[Side], goods: u64, every: u64, command: &str) -> String {
    let mut md = format!(
        "{BEGIN}\n## Redis Cluster target vs one server\n\n`{command}`: {goods} goods (small N on this shared \
         2-core machine), one Redis target at a time on the same truth; full check of clean data, then one goods in \
         {every} given a missing field and a full repair run. Rates are goods per second of the whole full run \
         (keyset scan of truth, reads, diff, the target's orphan scan, repairs with audit rows).\n\n\
         | target | full check, goods/s | full repair, goods/s | drift found | repairs | drift after |\n\
         |---|---|---|---|---|---|\n"
    );
    for s in sides {
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} | {} | {} | {} |\n",
            s.label, s.check_rate, s.repair_rate, s.drift, s.repairs, s.recheck_drift
        ));
    }
    md.push_str(&format!("\n{END}\n"));
    md
}

/// Replaces the phase's section of `text` (or appends it).
pub fn splice(text: &str, section: &str) -> String {
    match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{}{}", &text[..b], section, &text[e + END.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{}", text.trim_end_matches('\n').to_string() + "\n", section),
    }
}
