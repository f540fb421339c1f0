//! `bench`: the reconciler's benchmark suite, one command.
//!
//! Phases, in one run: seed N goods (truth in the MariaDB shards, projection in two
//! Redis targets and one HBase target); full reconciliation clean; the raw read floor;
//! the naive baseline on a sample; drift injection and a full reconciliation that
//! repairs it (accuracy against what was injected) and the floor again beside it; a
//! check that must come back clean;
//! peak RSS of `reconciler full` as a child process at N and (with `--scale4`) at 4N;
//! the price verifier (`verify --samples` on a file, and `serve` on Kafka); the
//! incremental phase; a Redis Cluster target against a single-server one
//! ([`cluster`], also alone with `--cluster-only`). Prints a table and writes
//! BENCHMARKS.md.

mod cluster;
mod cpu;
mod data;
mod distributed;
mod drift;
mod env;
mod floor;
mod hb;
mod incremental;
mod naive;
mod report;
mod rss;
mod seed;
mod verify;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use handlers::run::{mysql_id_source, run_full};
use handlers::Mode;
use model::job::TriggerKind;
use model::report::Report;
use reconciler::app::App;

/// The reconciler binary's allocator, tuned as it tunes it (`reconciler::alloc`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    about = "Benchmark of the reconciler: full reconciliation vs raw read floor and naive baseline, RSS, accuracy"
)]
struct Args {
    /// Goods to seed (N).
    #[arg(long, default_value_t = 1_000_000)]
    goods: u64,
    /// Share of goods given injected drift.
    #[arg(long, default_value_t = 0.01)]
    drift: f64,
    /// Also seed up to 4N and measure the peak RSS (and rate) of a full run there.
    #[arg(long)]
    scale4: bool,
    /// Goods in the naive baseline's sample.
    #[arg(long, default_value_t = 20_000)]
    naive_sample: u64,
    /// Check batch size (`full.batch_size` of the bench config).
    #[arg(long, default_value_t = model::config::FullConfig::default().batch_size)]
    batch_size: usize,
    /// Workers (`full.concurrency` of the bench config).
    #[arg(long, default_value_t = model::config::FullConfig::default().concurrency)]
    concurrency: usize,
    /// InnoDB buffer pool to set before seeding, GB (0: leave the server's setting).
    #[arg(long, default_value_t = 6)]
    buffer_pool_gb: u64,
    /// Reuse the data already seeded by a previous run with the same --goods (skips
    /// seeding; drift left by an interrupted run is repaired by the first full run).
    #[arg(long)]
    reuse: bool,
    /// Keep the bench databases and keys at the end (default: dropped).
    #[arg(long)]
    keep: bool,
    /// Where to write the markdown report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Incremental phase: Canal events offered per second by the first step of the
    /// ceiling search (0: skip the phase). The default starts below what this 2-core
    /// machine holds at N = 1,000,000, so that the search finds a ceiling.
    #[arg(long, default_value_t = 2000)]
    events_per_sec: u64,
    /// Incremental phase: each step offers this factor more than the one before.
    #[arg(long, default_value_t = 1.2)]
    events_factor: f64,
    /// Incremental phase: at most this many steps per search (a search stops at the
    /// first step that does not hold); a search crossing the 10,000 target offers it
    /// exactly, so by default the first search's last step offers 2,000 x 1.2^8 = 8,600
    /// and then 10,000 events/s, and a later search starts where an earlier one held.
    #[arg(long, default_value_t = 10)]
    events_steps: u32,
    /// Incremental phase: seconds of offered load per step.
    #[arg(long, default_value_t = 10)]
    event_seconds: u64,
    /// Incremental phase: the DTS trigger's stage delay, ms (settle_ms is 1000 there).
    #[arg(long, default_value_t = 2000)]
    stage_ms: u64,
    /// Incremental phase: at most this many Canal events per Kafka record batch, as the
    /// upstream producer (Canal's, librdkafka's default) batches them; 1 sends every
    /// event as a batch of its own, as the project's own producers do with Tansu.
    #[arg(long, default_value_t = 10_000)]
    canal_batch: u32,
    /// Incremental phase: one ceiling search per value, the percent of changes the sync
    /// pipeline loses (the bench writes the others into every target, as the pipeline
    /// would): 100 makes every event a repair, 1 makes nearly every event a clean check.
    #[arg(long, value_delimiter = ',', default_value = "100,1")]
    events_lost: Vec<u32>,
    /// Use the HBase Thrift1 server already listening on 127.0.0.1:19090 instead of
    /// starting an emulator (with --keep, the data set then outlives the run, for
    /// profiling `reconciler --config target/bench/bench.toml full` by hand). Its table
    /// is dropped and created again before seeding, as the MariaDB and Redis data are.
    #[arg(long)]
    external_hbase: bool,
    /// Price verifier: samples in the file given to `reconciler verify --samples` (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    verify_samples: u64,
    /// Price verifier: samples consumed by `reconciler serve` from Kafka (0: skip).
    #[arg(long, default_value_t = 200_000)]
    verify_kafka_samples: u64,
    /// Skip `cargo build --release --bin reconciler`.
    #[arg(long)]
    no_build: bool,
    /// Redis Cluster phase: goods checked and repaired on a cluster target and on a
    /// single-server target (0: skip the phase).
    #[arg(long, default_value_t = 20_000)]
    cluster_goods: u64,
    /// Redis Cluster phase: one goods in this many is given drift before the repair run.
    #[arg(long, default_value_t = 100)]
    cluster_drift_every: u64,
    /// Run only the Redis Cluster phase and update its section of the report.
    #[arg(long)]
    cluster_only: bool,
    /// Only the distributed-run phase after seeding (keyset+IN vs range reads, `full
    /// --via-bus` with one and two instances, recovery of wiped targets, publisher RSS at
    /// N and, with --scale4, 4N); prints its figures.
    #[arg(long)]
    distributed: bool,
    /// Skip the distributed-run phase in a full benchmark run.
    #[arg(long)]
    no_distributed: bool,
    /// Seed, inject the drift phase's drifts (--drift) and stop, keeping the data: a
    /// drifted data set for profiling `reconciler --config target/bench/bench.toml full`
    /// by hand (with --external-hbase, whose table outlives the run).
    #[arg(long)]
    inject_only: bool,
}

fn main() -> Result<()> {
    reconciler::alloc::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BENCH_LOG").unwrap_or_else(|_| "warn,sqlx=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

/// The drift phase's injection seed (`--inject-only` injects the same drifts).
const DRIFT_SEED: u64 = 0xD21F7;

fn say(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

/// Waits until the servers are quiet before a measured full phase, so its rate and CPU
/// rows carry none of what an earlier phase left them (MariaDB still flushing the pages a
/// seed dirtied would be charged to the clean run that follows it, and not to the floor,
/// which follows a read-only phase). A long wait is noted in the report.
async fn quiet(fig: &mut report::Figures, phase: &str) {
    fig.notes.extend(cpu::quiet_before(phase).await);
}

fn full_mode(repair: bool) -> Mode {
    let id = reconciler::app::run_id("bench-full");
    if repair {
        Mode::repair(TriggerKind::Full, id)
    } else {
        Mode::check(id)
    }
}

async fn timed_full(app: &App, repair: bool) -> Result<(Report, f64)> {
    let opts = app.run_options(None);
    let started = Instant::now();
    let report = run_full(&app.handler, mysql_id_source(&app.handler, opts.batch_size), &full_mode(repair), &opts)
        .await
        .map_err(|e| anyhow::anyhow!("full run: {e}"))?;
    Ok((report, started.elapsed().as_secs_f64()))
}

/// One raw read floor pass once the servers are quiet: the pass, goods/s, CPU per goods.
async fn timed_floor(
    app: &App,
    args: &Args,
    reuse: Duration,
    fig: &mut report::Figures,
    phase: &str,
) -> Result<(floor::Floor, f64, cpu::CpuUse)> {
    quiet(fig, phase).await;
    let meter = cpu::CpuMeter::start(&[(report::FLOOR_PROCESS, std::process::id())]);
    let f = floor::run(&app.handler, &app.pools, args.batch_size, args.concurrency, reuse).await?;
    let (rate, cpu) = (f.goods as f64 / f.elapsed.as_secs_f64(), meter.per_item(f.goods));
    Ok((f, rate, cpu))
}

/// The Redis Cluster phase; its section of the report (an error is reported there).
async fn cluster_phase(args: &Args, command: &str) -> String {
    say(format!("redis cluster vs one server: {} goods", args.cluster_goods));
    match cluster::run(args.cluster_goods, args.cluster_drift_every.max(1), args.batch_size, args.concurrency).await {
        Ok(sides) => {
            for s in &sides {
                say(format!(
                    "{}: full check {:.0} goods/s, full repair {:.0} goods/s, drift {}, repairs {}, after {}",
                    s.label, s.check_rate, s.repair_rate, s.drift, s.repairs, s.recheck_drift
                ));
            }
            cluster::markdown(&sides, args.cluster_goods, args.cluster_drift_every.max(1), command)
        }
        Err(e) => {
            say(format!("redis cluster phase not measured: {e:#}"));
            format!(
                "{}\n## Redis Cluster target vs one server\n\nnot measured: {e:#}\n\n{}\n",
                cluster::BEGIN,
                cluster::END
            )
        }
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The distributed-run figures (see `distributed.rs`) as rows of the report's table:
/// (figure, value, target). The publisher at 4N is measured later, after `--scale4`
/// seeding ([`publisher_at_4n`]).
async fn distributed_phase(
    root: &std::path::Path,
    config_path: &std::path::Path,
    app: &App,
    config: &model::config::Config,
    n: u64,
    concurrency: usize,
) -> Result<Vec<(String, String, String)>> {
    let mut rows = Vec::new();
    let mut row = |figure: String, value: String, target: &str| {
        say(format!("{figure}: {value}"));
        rows.push((figure, value, target.to_string()));
    };
    // A first pass warms the buffer pool; then the two read paths back to back, twice.
    let page = config.triggers.full.job_goods;
    distributed::keyset_vs_range(&app.handler, page, concurrency, true).await?;
    for round in 1..=2 {
        let keyset = distributed::keyset_vs_range(&app.handler, page, concurrency, false).await?;
        let range = distributed::keyset_vs_range(&app.handler, page, concurrency, true).await?;
        row(
            format!("clean check pass, keyset page + `IN` list vs range read (round {round})"),
            format!("{keyset:.0} vs {range:.0} goods/s (x{:.2}); load {}", range / keyset, load()),
            "",
        );
    }
    let binary = env::reconciler_binary(root);
    let tag = format!("{}", common::clock::now_ms());
    let bus = distributed::config_with(
        config_path,
        "bench-bus.toml",
        &distributed::bus_section(&tag, &format!("bench-{tag}-jobs")),
    )?;
    let (one, r1) = distributed::via_bus(&binary, &bus, 1, n)?;
    let (two, r2) = distributed::via_bus(&binary, &bus, 2, n)?;
    row(
        "`full --via-bus --wait`, clean: 1 instance, 2 instances in one group".into(),
        format!(
            "{one:.0} goods/s (checked {}), {two:.0} goods/s (checked {}): x{:.2}; load {}",
            r1["checked"],
            r2["checked"],
            two / one,
            load()
        ),
        "",
    );

    let client = redis::Client::open(env::REDIS_A)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    redis::cmd("FLUSHDB").query_async::<()>(&mut c).await?;
    let redis_rate = distributed::sync_all(&binary, config_path, n)?;
    row(
        "recovery of a wiped Redis target (`sync --all`)".into(),
        format!("{redis_rate:.0} goods/s; load {}", load()),
        &format!("≥ 20000 goods/s: {}", report::verdict(redis_rate >= 20_000.0)),
    );
    let htarget = env::hbase_target(config);
    distributed::wipe_hbase(&mut hb::connect(&htarget.address)?, &htarget)?;
    let hbase_rate = distributed::sync_all(&binary, config_path, n)?;
    row(
        "recovery of a wiped HBase table (`sync --all`)".into(),
        format!("{hbase_rate:.0} goods/s; load {}", load()),
        &format!("≥ 20000 goods/s: {}", report::verdict(hbase_rate >= 20_000.0)),
    );

    let (kb, secs) = distributed::publisher_rss(&binary, &publisher_config(config_path, &tag)?)?;
    row(
        "publisher (`full --via-bus`, no consumers) at N: peak RSS".into(),
        format!("{:.1} MB ({:.0} goods/s published)", kb as f64 / 1024.0, n as f64 / secs),
        "",
    );
    Ok(rows)
}

/// A config whose jobs topic nobody consumes (the publisher alone).
fn publisher_config(config_path: &std::path::Path, tag: &str) -> Result<PathBuf> {
    distributed::config_with(
        config_path,
        "bench-publisher.toml",
        &distributed::bus_section(&format!("{tag}-p"), &format!("bench-{tag}-publisher")),
    )
}

/// The publisher's peak RSS on the universe as it is now (4N after `--scale4` seeding).
fn publisher_at_4n(
    root: &std::path::Path,
    config_path: &std::path::Path,
    goods: u64,
) -> Result<(String, String, String)> {
    let tag = format!("{}", common::clock::now_ms());
    let (kb, secs) = distributed::publisher_rss(&env::reconciler_binary(root), &publisher_config(config_path, &tag)?)?;
    let value = format!("{:.1} MB ({:.0} goods/s published)", kb as f64 / 1024.0, goods as f64 / secs);
    say(format!("publisher at 4N: {value}"));
    Ok(("publisher (`full --via-bus`, no consumers) at 4N: peak RSS".into(), value, "flat from N to 4N".into()))
}

async fn run(args: Args) -> Result<()> {
    let root = std::env::current_dir()?;
    let command = std::iter::once("cargo run --release -p bench --".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    if args.cluster_only {
        let section = cluster_phase(&args, &command).await;
        let old = std::fs::read_to_string(&args.out).unwrap_or_default();
        std::fs::write(&args.out, cluster::splice(&old, &section))?;
        say(format!("wrote {}", args.out.display()));
        return Ok(());
    }
    if !args.no_build {
        say("building the release reconciler binary");
        env::build_reconciler(&root)?;
    }
    let settings = env::Settings { batch_size: args.batch_size, concurrency: args.concurrency };
    let (config_path, config) = env::write_config(&root, &settings)?;
    let mut fig =
        report::Figures { command: command.clone(), goods: args.goods, drift_rate: args.drift, ..Default::default() };
    let app = App::new(config.clone())?;
    let layout = config.layout();
    let meta_pool = app.pools.meta_pool().clone();
    let load_before = env::load_average();

    let emulator = if args.external_hbase { None } else { Some(env::Emulator::start(&root)?) };
    if let Some(e) = &emulator {
        say(format!("hbase emulator pid {} on {}", e.pid(), env::HBASE_LISTEN));
    }
    let htarget = env::hbase_target(&config);
    if emulator.is_none() && hb::drop_table(&mut hb::connect(&htarget.address)?, &htarget.table)? {
        say(format!("dropped table {} of the external HBase server (an earlier run's cells)", htarget.table));
    }
    reconciler::hbase_admin::ensure_table(&htarget)?;

    // The HBase emulator holds data in memory only, so a fresh emulator means reseeding.
    if args.reuse {
        say("--reuse ignored: the HBase emulator starts empty, so the data set is seeded again");
    }
    say(format!("preparing servers (buffer pool {} GB), dropping earlier bench data", args.buffer_pool_gb));
    env::clean_up(&meta_pool).await?;
    env::prepare_servers(&meta_pool, args.buffer_pool_gb).await?;
    let machine = env::machine(load_before, env::mariadb(&meta_pool).await);
    common::mysql::schema::create(&app.pools).await.context("schema")?;

    let clock = data::Clock::now_minus_hour();
    let act_rows = data::activities(clock);
    let acts = Arc::new(data::activity_map(&act_rows));
    let mut redis = Vec::new();
    for url in [env::REDIS_A, env::REDIS_B] {
        redis.push(redis::Client::open(url)?.get_multiplexed_async_connection().await?);
    }
    let hbase = Arc::new(Mutex::new(hb::connect(&htarget.address)?));
    let targets = seed::Targets {
        redis: redis.clone(),
        hbase: hbase.clone(),
        hbase_table: htarget.table.clone(),
        hbase_family: htarget.family.clone(),
    };
    let seeder = seed::Seeder { pools: app.pools.clone(), layout: layout.clone(), clock, acts: acts.clone(), targets };

    // 1. Seed.
    say(format!("seeding {} goods", args.goods));
    seeder.activities(&act_rows).await?;
    let stats = seeder.goods(1, args.goods, true).await?;
    seeder.analyze().await?;
    fig.seed.push(format!(
        "{} activities (types 1-4, 6 business codes, 6 tag sets, 2% offline and 2% draft); {} goods, {} activity_goods rows, {} activity_sku rows (1-5 activities per goods, 0-3 SKUs per entity, ~5% / ~10% removed); {} entities projected into each target; D = 2, T = 4",
        data::ACTIVITIES, args.goods, stats.goods_rows, stats.sku_rows, stats.entities
    ));
    fig.seed.push(format!(
        "seeding (truth + 3 targets, in parallel): {:.1} s, {:.0} goods/s",
        stats.seconds,
        args.goods as f64 / stats.seconds
    ));
    say(format!("seeded in {:.1} s", stats.seconds));
    let injector = drift::Injector {
        clock,
        acts: &acts,
        redis: redis.clone(),
        hbase: hbase.clone(),
        hbase_table: htarget.table.clone(),
        hbase_family: htarget.family.clone(),
    };
    let drift_count = ((args.goods as f64) * args.drift).round() as u64;
    if args.inject_only {
        let injected = injector.inject(args.goods, drift_count, DRIFT_SEED).await?;
        say(format!("injected {} drifts; data kept", injected.len()));
        return Ok(());
    }
    if args.distributed {
        let rows = distributed_phase(&root, &config_path, &app, &config, args.goods, args.concurrency).await?;
        fig.extra.extend(rows);
        if args.scale4 {
            seeder.goods(args.goods + 1, args.goods * 4, true).await?;
            fig.extra.push(publisher_at_4n(&root, &config_path, args.goods * 4)?);
        }
        println!("| figure | value | target |\n|---|---|---|");
        for (figure, value, target) in &fig.extra {
            println!("| {figure} | {value} | {target} |");
        }
        if !args.keep {
            env::clean_up(app.pools.meta_pool()).await?;
        }
        return Ok(());
    }

    // 2. Full reconciliation, clean. The bench process is the reconciler in the full
    // runs and the floor (both in-process): its CPU is theirs.
    let me = [(report::RUN_PROCESS, std::process::id())];
    quiet(&mut fig, "the clean full run").await;
    let meter = cpu::CpuMeter::start(&me);
    let (clean, secs) = timed_full(&app, true).await?;
    fig.full_clean = Some(args.goods as f64 / secs);
    fig.cpu_clean = Some(meter.per_item(args.goods));
    say(format!("full clean: {:.1} s, {:.0} goods/s, drift {}", secs, args.goods as f64 / secs, clean.drift.len()));
    if !clean.drift.is_empty() {
        fig.notes.push(format!("the clean run reported {} drift entries (expected none)", clean.drift.len()));
    }

    // 3. Raw read floor.
    let reuse = Duration::from_millis(app.config.full.activity_reuse_ms);
    let (f, rate, cpu) = timed_floor(&app, &args, reuse, &mut fig, "the raw read floor").await?;
    (fig.floor, fig.cpu_floor) = (Some(rate), Some(cpu));
    say(format!(
        "raw read floor: {:.1} s (of which orphan-scan paging {:.1} s), {:.0} goods/s ({} rows and cells)",
        f.elapsed.as_secs_f64(),
        f.scan.as_secs_f64(),
        rate,
        f.items
    ));
    fig.notes.push(format!(
        "raw read floor: {:.1} s in all, of which {:.1} s paging through the three targets (the orphan scan's reads)",
        f.elapsed.as_secs_f64(),
        f.scan.as_secs_f64()
    ));

    // 4. Naive baseline on a sample spread over the id range.
    let n = args.naive_sample.min(args.goods).max(1);
    let step = (args.goods / n).max(1);
    let sample: Vec<u64> = (0..n).map(|i| 1 + i * step).collect();
    // Literally one goods at a time (one worker), and with the full run's worker count.
    let (elapsed, count, naive_drift) = naive::run(&app.handler, sample[..sample.len() / 4].to_vec(), 1).await?;
    fig.naive = Some((count as f64 / elapsed.as_secs_f64(), count));
    say(format!(
        "naive, 1 worker: {count} goods in {:.1} s, {:.0} goods/s (drift {naive_drift})",
        elapsed.as_secs_f64(),
        fig.naive.unwrap().0
    ));
    let (elapsed, count, naive_drift) = naive::run(&app.handler, sample, args.concurrency).await?;
    fig.naive_concurrent = Some((count as f64 / elapsed.as_secs_f64(), count));
    say(format!(
        "naive, {} workers: {count} goods in {:.1} s, {:.0} goods/s (drift {naive_drift})",
        args.concurrency,
        elapsed.as_secs_f64(),
        fig.naive_concurrent.unwrap().0
    ));

    // 5. Drift, full reconciliation with repairs, accuracy, clean re-check.
    let injected = injector.inject(args.goods, drift_count, DRIFT_SEED).await?;
    fig.injected = injected.len() as u64;
    say(format!("injected {} drifts", injected.len()));
    quiet(&mut fig, "the full run with drift").await;
    let meter = cpu::CpuMeter::start(&me);
    let (drifted, secs) = timed_full(&app, true).await?;
    fig.full_drift = Some(args.goods as f64 / secs);
    fig.cpu_drift = Some(meter.per_item(args.goods));
    say(format!(
        "full with drift: {:.1} s, {:.0} goods/s, drift {}, repairs {}, deferred {}",
        secs,
        args.goods as f64 / secs,
        drifted.drift.len(),
        drifted.repairs.len(),
        drifted.deferred.len()
    ));
    fig.accuracy = Some(drift::accuracy(&injected, &drifted));
    // The floor again, beside the drift run: on these shared cores the same work runs
    // slower later in one bench run (a run with no drift injected: the "drift" phase 4%
    // and the check after it 11% slower than the first clean run), so the ratio's target
    // is judged against the floor measured next to the run it divides.
    let (f, rate, cpu) = timed_floor(&app, &args, reuse, &mut fig, "the raw read floor after the drift run").await?;
    (fig.floor_beside, fig.cpu_floor_beside) = (Some(rate), Some(cpu));
    say(format!("raw read floor after the drift run: {:.1} s, {:.0} goods/s", f.elapsed.as_secs_f64(), rate));
    let (recheck, secs) = timed_full(&app, false).await?;
    fig.full_recheck = Some(args.goods as f64 / secs);
    fig.recheck_drift = Some(recheck.drift.len() as u64);
    say(format!("check after repair: {:.1} s, drift {}", secs, recheck.drift.len()));

    // 6. Peak RSS of the release binary's full run at N (and 4N).
    let binary = env::reconciler_binary(&root);
    let c = rss::full(&binary, &config_path)?;
    say(format!(
        "child full at N: {:.1} s, max RSS {} kB, exit {}, checked {}",
        c.elapsed.as_secs_f64(),
        c.max_rss_kb,
        c.exit,
        c.checked
    ));
    fig.rss_n = Some((c.max_rss_kb, c.checked as f64 / c.elapsed.as_secs_f64()));
    fig.processes.push(("`reconciler full --json` at N".into(), c.max_rss_kb));
    fig.notes
        .push(format!("child `reconciler full` at N: exit {}, {} goods checked, {} drift", c.exit, c.checked, c.drift));
    // 7. The price verifier, on the clean data set.
    if args.verify_samples > 0 {
        say(format!("verify: reconciler verify --samples on {} samples", args.verify_samples));
        match verify::file(&root, &config_path, clock, &acts, args.goods, args.verify_samples) {
            Ok(v) => {
                say(format!(
                    "verify --samples: {:.0} samples/s, max RSS {} kB, exit {}: {}",
                    v.rate, v.max_rss_kb, v.exit, v.summary
                ));
                fig.verify_file = Some((v.rate, v.max_rss_kb, v.samples));
                fig.processes.push(("`reconciler verify --samples`".into(), v.max_rss_kb));
                fig.notes.push(format!(
                    "`reconciler verify --samples` ({} samples, exit {}): {}",
                    v.samples, v.exit, v.summary
                ));
            }
            Err(e) => fig.notes.push(format!("verify --samples not measured: {e:#}")),
        }
    }
    if args.verify_kafka_samples > 0 {
        say(format!("verify: reconciler serve consuming {} samples from Kafka", args.verify_kafka_samples));
        match verify::kafka(&root, &env::config_text(&settings), clock, &acts, args.goods, args.verify_kafka_samples)
            .await
        {
            Ok(v) => {
                say(format!("verify through Kafka: {:.0} samples/s", v.rate));
                fig.verify_kafka = Some((v.rate, v.samples));
            }
            Err(e) => {
                say(format!("verify through Kafka not measured: {e:#}"));
                fig.notes.push(format!("verify through Kafka not measured: {e:#}"));
            }
        }
    }

    // 8. Incremental, on the data set of N goods: the ceiling search.
    if args.events_per_sec > 0 {
        say(format!(
            "incremental: ceiling search from {} events/s (x{} per step, at most {} steps of {} s) through Kafka, stage delay {} ms, up to {} Canal events per record batch, one ladder per share of changes lost: {:?}%",
            args.events_per_sec, args.events_factor, args.events_steps, args.event_seconds, args.stage_ms, args.canal_batch, args.events_lost
        ));
        let opts = incremental::Options {
            start_rate: args.events_per_sec,
            factor: args.events_factor,
            max_steps: args.events_steps,
            seconds: args.event_seconds,
            stage_ms: args.stage_ms,
            canal_batch: args.canal_batch,
            lost_percents: args.events_lost.iter().map(|&p| p.min(100)).collect(),
        };
        let stage_ms = args.stage_ms;
        // The incremental phase's own HBase connection (the seeder's stays with it).
        let sync =
            seed::Targets { hbase: Arc::new(Mutex::new(hb::connect(&htarget.address)?)), ..seeder.targets.clone() };
        match incremental::run(
            &root,
            &env::config_text(&settings),
            &app.pools,
            &layout,
            clock,
            &acts,
            args.goods,
            &opts,
            sync,
            |s| say(format!("incremental step: {}", s.summary(stage_ms))),
        )
        .await
        {
            Ok(c) => {
                fig.incremental = c
                    .ladders
                    .iter()
                    .map(|l| report::Ladder {
                        lost_percent: l.lost_percent,
                        best: l.figure(),
                        met: l.best().is_some_and(|b| b.offered >= incremental::TARGET_EVENTS_PER_SEC),
                        beyond_machine: l.beyond_machine(),
                        steps: l.steps.iter().map(|s| s.summary(l.stage_ms)).collect(),
                    })
                    .collect();
                if let Some(kb) = c.serve_rss_kb {
                    fig.processes.push(("`reconciler serve` (incremental phase)".into(), kb));
                }
            }
            Err(e) => {
                say(format!("incremental phase not measured: {e:#}"));
                fig.notes.push(format!("incremental phase not measured: {e:#}"));
            }
        }
    }

    // 9. Distributed runs: keyset vs range reads, one vs two instances through the bus,
    // recovery of wiped targets, the publisher's RSS.
    if !args.no_distributed {
        match distributed_phase(&root, &config_path, &app, &config, args.goods, args.concurrency).await {
            Ok(rows) => fig.extra.extend(rows),
            Err(e) => {
                say(format!("distributed phase not measured: {e:#}"));
                fig.notes.push(format!("distributed phase not measured: {e:#}"));
            }
        }
    }

    if args.scale4 {
        say(format!("seeding goods {}..={}", args.goods + 1, args.goods * 4));
        let more = seeder.goods(args.goods + 1, args.goods * 4, true).await?;
        fig.seed.push(format!("--scale4: {} more goods seeded in {:.1} s", args.goods * 3, more.seconds));
        let c = rss::full(&binary, &config_path)?;
        say(format!(
            "child full at 4N: {:.1} s, max RSS {} kB, exit {}, checked {}",
            c.elapsed.as_secs_f64(),
            c.max_rss_kb,
            c.exit,
            c.checked
        ));
        fig.rss_4n = Some((c.max_rss_kb, c.checked as f64 / c.elapsed.as_secs_f64()));
        fig.processes.push(("`reconciler full --json` at 4N".into(), c.max_rss_kb));
        if !args.no_distributed {
            match publisher_at_4n(&root, &config_path, args.goods * 4) {
                Ok(row) => fig.extra.push(row),
                Err(e) => fig.notes.push(format!("publisher at 4N not measured: {e:#}")),
            }
        }
        fig.notes.push(format!(
            "child `reconciler full` at 4N: exit {}, {} goods checked, {} drift",
            c.exit, c.checked, c.drift
        ));
    }

    if let Some(kb) = emulator.as_ref().and_then(|e| env::vm_hwm_kb(e.pid())) {
        fig.processes.push(("HBase Thrift1 emulator (`reconciler hbase-emulator`)".into(), kb));
    }
    for (name, kb) in env::server_peaks() {
        fig.processes.push((name, kb));
    }
    if let Some(kb) = env::vm_hwm_kb(std::process::id()) {
        fig.processes.push(("the bench itself (seeder, injector, in-process full runs)".into(), kb));
    }

    println!("{}", fig.table());
    println!("{}", fig.accuracy_table());
    // Hand-written analysis below the marker survives reruns.
    let mut md = fig.markdown(&machine);
    if let Ok(old) = std::fs::read_to_string(&args.out) {
        if let Some(i) = old.find(report::ANALYSIS_MARKER) {
            md.push('\n');
            md.push_str(&old[i..]);
        }
    }
    if args.cluster_goods > 0 {
        md = cluster::splice(&md, &cluster_phase(&args, &command).await);
    }
    std::fs::write(&args.out, md)?;
    say(format!("wrote {}", args.out.display()));
    if !args.keep {
        env::clean_up(&meta_pool).await?;
    }
    Ok(())
}
