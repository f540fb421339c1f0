//! `reconciler demo`: the main job on the embedded default, end to end on the real
//! servers. Creates the schema, seeds sample activities (rows dated an hour ago, so the
//! settle window does not hold repairs back; activity windows around now), projects them
//! into every target, injects one drift of every kind into every target, verifies a few
//! hundred pricing samples (`samples.rs`: most right, some answered from the drifted
//! targets, some with planted mistakes), runs a full reconciliation that finds and
//! repairs the drift, re-checks clean and prints the reports.

mod samples;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use handlers::run::{mysql_id_source, run_full};
use handlers::{Mode, Target};
use model::config::TargetConfig;
use model::job::TriggerKind;
use model::repair_plan::{CellRepair, CellWrite};
use model::{DriftKind, Entity, GoodsId, ObservedGoods};

use crate::app::{run_id, App};
use crate::verify::tally::Tally;
use crate::verify::Engine;
use crate::{output, seed};

/// Sample goods ids `FIRST_GOODS..FIRST_GOODS + GOODS`.
pub const FIRST_GOODS: GoodsId = 1001;
pub const GOODS: u64 = 300;
pub const ACTIVITIES: u64 = 12;
/// A goods with no truth rows; orphans are injected under it (+ target index).
pub const ORPHAN_GOODS: GoodsId = 990_001;

pub struct DemoOutcome {
    pub injected: Vec<(String, DriftKind, GoodsId)>,
    pub first: model::report::Report,
    pub recheck: model::report::Report,
    /// The verification of the demo's pricing samples.
    pub verification: Tally,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

pub async fn run(app: &App, print: bool) -> anyhow::Result<DemoOutcome> {
    let layout = app.config.layout();
    let say = |s: String| {
        if print {
            println!("{s}");
        }
    };
    let n = common::mysql::schema::create(&app.pools).await.context("creating the schema")?;
    say(format!(
        "schema: {n} statements applied for {} databases x {} tables",
        layout.databases, layout.tables_per_database
    ));
    for t in &app.config.targets {
        if let TargetConfig::Hbase(h) = t {
            let h = h.clone();
            let created = tokio::task::spawn_blocking(move || crate::hbase_admin::ensure_table(&h)).await??;
            if created {
                say(format!("hbase: created table on {}", t.name()));
            }
        }
    }
    seed::truncate(&app.pools, &layout).await.context("clearing demo truth")?;
    let mut data = seed::generate(42, ACTIVITIES, FIRST_GOODS, GOODS);
    // Activity windows around now, so the pricing samples below see every case: most
    // running, one in six not started yet, one in six ended.
    let now = common::clock::now_ms();
    for (i, a) in data.activities.iter_mut().enumerate() {
        (a.start_ms, a.end_ms) = match i % 6 {
            4 => (now + DAY_MS, now + 2 * DAY_MS),
            5 => (now - 2 * DAY_MS, now - HOUR_MS),
            _ => (now - DAY_MS, now + DAY_MS),
        };
    }
    seed::insert(&app.pools, &layout, &data, 3_600_000).await.context("seeding truth")?;
    let skus: usize = data.goods.iter().map(|g| g.skus.len()).sum();
    say(format!(
        "seeded: {} activities, {} goods, {} activity_goods rows, {} activity_sku rows over {} shards",
        data.activities.len(),
        GOODS,
        data.goods.len(),
        skus,
        layout.total_shards()
    ));

    clear_targets(app).await?;
    let opts = app.run_options(None);
    let synced =
        run_full(&app.handler, mysql_id_source(&app.handler, opts.batch_size), &Mode::sync(run_id("demo-sync")), &opts)
            .await?;
    say(format!("projected: {} entities written into {} targets", synced.repairs.len(), app.handler.targets().len()));

    let injected = inject(app.handler.targets()).await?;
    say(format!("injected {} drifts:", injected.len()));
    for (t, k, g) in &injected {
        say(format!("  {t:<10} {:<8} goods {g}", k.as_str()));
    }

    say("\nprice verification of sampled pricing requests (some answered from the drifted targets):".into());
    let samples = samples::generate(app, common::clock::now_ms(), &injected).await?;
    let engine = Engine::new(app);
    let mut verification = Tally::default();
    let started = Instant::now();
    for chunk in samples.chunks(app.config.verifier.batch_size) {
        for v in engine.verify(chunk.to_vec()).await? {
            verification.add(&v);
        }
    }
    say(verification.human(started.elapsed().as_millis() as u64));

    say("\nfull reconciliation (repair):".into());
    let first = run_full(
        &app.handler,
        mysql_id_source(&app.handler, opts.batch_size),
        &Mode::repair(TriggerKind::Full, run_id("demo-full")),
        &opts,
    )
    .await?;
    say(output::human(&first));
    say("re-check (no repair):".into());
    let recheck = run_full(
        &app.handler,
        mysql_id_source(&app.handler, opts.batch_size),
        &Mode::check(run_id("demo-check")),
        &opts,
    )
    .await?;
    say(output::human(&recheck));
    say(if recheck.drift.is_empty() { "clean: every target equals truth".into() } else { "NOT CLEAN".into() });
    Ok(DemoOutcome { injected, first, recheck, verification })
}

/// Removes everything the targets hold (the embedded default's stores belong to the
/// demo), through the targets' own scan and compare-and-set delete.
async fn clear_targets(app: &App) -> anyhow::Result<()> {
    for t in app.handler.targets() {
        let mut cursor = None;
        loop {
            let page = t.scan(cursor.take(), 500).await?;
            let held = t.read(&page.goods).await?;
            let deletes: Vec<CellRepair> = page.goods.iter().zip(held).flat_map(|(g, o)| delete_all(*g, o)).collect();
            t.apply(&deletes).await?;
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    Ok(())
}

fn delete_all(goods: GoodsId, observed: ObservedGoods) -> Vec<CellRepair> {
    observed
        .cells
        .into_iter()
        .map(|(q, cell)| CellRepair {
            goods_id: goods,
            activity_id: None,
            qualifier: q,
            kind: DriftKind::Orphan,
            expected: Some(cell),
            write: CellWrite::Delete,
        })
        .collect()
}

/// One drift of every kind into every target, on different goods per target.
async fn inject(targets: &[Arc<dyn Target>]) -> anyhow::Result<Vec<(String, DriftKind, GoodsId)>> {
    let mut injected = Vec::new();
    for (ti, t) in targets.iter().enumerate() {
        let base = FIRST_GOODS + 1 + ti as u64 * 7;
        let goods: Vec<GoodsId> = (base..base + 4).collect();
        let held = t.read(&goods).await?;
        let mut writes = Vec::new();
        for (k, (g, o)) in goods.iter().zip(&held).enumerate() {
            let Some((q, cell)) = o.cells.iter().next() else { continue };
            let entity = Entity::decode(&cell.value).context("demo data decodes")?;
            let (kind, write) = match k {
                0 => (DriftKind::Missing, CellWrite::Delete),
                1 => {
                    // A lost price update: same version, other price (written over the
                    // cell at its own timestamp).
                    let mut e = entity.clone();
                    e.price += 100;
                    (DriftKind::Stale, CellWrite::Put { value: e.encode(), ver: e.ver })
                }
                2 => (DriftKind::Corrupt, CellWrite::Put { value: b"{\"aid\":7".to_vec(), ver: entity.ver + 1 }),
                _ => {
                    let mut e = entity.clone();
                    e.aid = 7000;
                    (DriftKind::Extra, CellWrite::Put { value: e.encode(), ver: e.ver })
                }
            };
            let qualifier = if kind == DriftKind::Extra { b"7000".to_vec() } else { q.clone() };
            let expected = if kind == DriftKind::Extra { None } else { Some(cell.clone()) };
            writes.push(CellRepair { goods_id: *g, activity_id: None, qualifier, kind, expected, write });
            injected.push((t.name().to_string(), kind, *g));
        }
        let orphan_goods = ORPHAN_GOODS + ti as u64;
        let orphan = held[0].cells.values().next().map(|c| c.value.clone()).unwrap_or_else(|| b"{}".to_vec());
        writes.push(CellRepair {
            goods_id: orphan_goods,
            activity_id: None,
            qualifier: b"7001".to_vec(),
            kind: DriftKind::Orphan,
            expected: None,
            write: CellWrite::Put { value: orphan, ver: 1 },
        });
        injected.push((t.name().to_string(), DriftKind::Orphan, orphan_goods));
        t.apply(&writes).await?;
    }
    Ok(injected)
}
