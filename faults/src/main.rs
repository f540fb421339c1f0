//! `faults`: the reconciler's fault-injection suite, one command (`scripts/faults.sh`).
//!
//! Scenarios, each in its own databases, keys, topics and ports: `kill` (`kill -9` of
//! `serve`), `redis-down`, `hbase-down`, `mariadb-down`, `broker-down` (a store down
//! mid-stream and back), `race` (a sync writer racing checks and repairs), `poison` (bad
//! events and bad target data). Prints a table and writes the `## Fault injection`
//! section of RELIABILITY.md.

mod check;
mod env;
mod hb;
mod observe;
mod procs;
mod proxy;
mod report;
mod scenarios;
mod stream;
mod universe;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;

use env::Ctx;
use scenarios::outage::Store;
use scenarios::Outcome;

const ALL: [&str; 7] = ["kill", "redis-down", "hbase-down", "mariadb-down", "broker-down", "race", "poison"];

#[derive(Parser, Debug)]
#[command(about = "Fault-injection suite of the reconciler: kills, store outages, a racing sync writer, poison input")]
struct Args {
    /// Fewer kills (6), shorter outages (8 s), fewer races (1,000).
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (comma-separated; default all): kill, redis-down, hbase-down,
    /// mariadb-down, broker-down, race, poison.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// Truth changes per second of the stream.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Truth changes per second of the stream in the broker-down scenario: its Tansu
    /// stores on `moto_server`, which serves ~100 S3 requests/s on one core, and Tansu
    /// makes about six per record (a Canal event and a job bundle per change).
    #[arg(long, default_value_t = 10)]
    broker_rate: u64,
    /// Goods in each scenario's universe.
    #[arg(long, default_value_t = 3000)]
    goods: u64,
    /// First stage delay of the DTS trigger, ms (the second is 10 times it).
    #[arg(long, default_value_t = 3000)]
    stage_ms: u64,
    /// The reconciler binary to run (default: release build under CARGO_TARGET_DIR).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Where to write the fault section (default RELIABILITY.md; `-`: do not write).
    #[arg(long, default_value = "RELIABILITY.md")]
    out: String,
    /// Keep each scenario's databases and Redis keys.
    #[arg(long)]
    keep: bool,
    /// Give each `serve` a static group membership id kept across its restarts (as a
    /// StatefulSet pod keeps its name). Off by default: on Tansu 0.6 a restarted static
    /// member got back an empty assignment, rebalance or not.
    #[arg(long)]
    static_membership: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let root = std::env::current_dir()?;
    let selected: Vec<String> =
        if args.scenario.is_empty() { ALL.iter().map(|s| s.to_string()).collect() } else { args.scenario.clone() };
    for s in &selected {
        if !ALL.contains(&s.as_str()) {
            bail!("unknown scenario `{s}` (one of {})", ALL.join(", "));
        }
    }
    let binary = args.binary.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), PathBuf::from)
            .join("release/reconciler")
    });
    if !binary.exists() {
        bail!("no reconciler binary at {} (cargo build --release --bin reconciler)", binary.display());
    }
    let work = root.join("target/faults");
    std::fs::create_dir_all(&work)?;
    let ctx = Ctx {
        root,
        binary,
        work,
        quick: args.quick,
        rate: args.rate,
        broker_rate: args.broker_rate,
        goods: args.goods,
        stage_ms: args.stage_ms,
        keep: args.keep,
        static_membership: args.static_membership,
    };
    let machine = report::machine();
    let date = String::from_utf8_lossy(
        &std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output()?.stdout,
    )
    .trim()
    .to_string();
    let mut outcomes = Vec::new();
    for name in &selected {
        eprintln!("faults: scenario {name} ...");
        let result = match name.as_str() {
            "kill" => scenarios::kill::run(&ctx).await,
            "redis-down" => scenarios::outage::run(&ctx, Store::Redis).await,
            "hbase-down" => scenarios::outage::run(&ctx, Store::Hbase).await,
            "mariadb-down" => scenarios::outage::run(&ctx, Store::Mariadb).await,
            "broker-down" => scenarios::outage::run(&ctx, Store::Broker).await,
            "race" => scenarios::race::run(&ctx).await,
            _ => scenarios::poison::run(&ctx).await,
        };
        let outcome = result.unwrap_or_else(|e| Outcome::failed(name, "", &e));
        eprintln!("faults: {}", report::table(std::slice::from_ref(&outcome)).lines().last().unwrap_or(""));
        outcomes.push(outcome);
    }
    println!("{}", report::table(&outcomes));
    println!("{}", report::details(&outcomes));
    if args.out != "-" {
        let command = std::iter::once("scripts/faults.sh".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        report::write_section(std::path::Path::new(&args.out), &report::section(&command, &outcomes, &machine, &date))?;
        eprintln!("faults: wrote the fault section of {}", args.out);
    }
    let failed =
        outcomes.iter().any(|o| o.error.is_some() || o.lost_count() > 0 || o.stale_overwrites.unwrap_or(0) > 0);
    std::process::exit(if failed { 1 } else { 0 });
}
