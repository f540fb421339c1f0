//! Command-line definition (contract section 7).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "reconciler",
    version,
    about = "Finds and repairs drift between MySQL pricing truth and its Redis and HBase projections"
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, default_value = "config/reconciler.toml")]
    pub config: PathBuf,
    /// Log format on stderr: `text` (for people) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "RECONCILER_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The main job on the embedded default: schema, seed, project, inject drift, full
    /// reconciliation with repair, clean re-check, report.
    Demo,
    /// Create the databases and tables for the configured D and T (idempotent).
    Schema,
    /// Project truth into the targets (bootstrap, recovery).
    Sync(SyncArgs),
    /// Compare and report; changes nothing.
    Check(SelectArgs),
    /// Compare and repair; the on-call command.
    Repair(RepairArgs),
    /// Restore the before image of one audited repair.
    Undo(UndoArgs),
    /// Full reconciliation and repair, with an orphan scan of every target.
    Full(FullArgs),
    /// The recorded distributed full runs, or one run in detail.
    Runs(RunsArgs),
    /// Verify a file of pricing samples (JSON lines) against truth.
    Verify(VerifyArgs),
    /// The long-running service: triggers, handlers, admin HTTP.
    Serve,
    /// A standalone HBase Thrift1 server for tests and the embedded default.
    HbaseEmulator(EmulatorArgs),
    /// The running service's blast-radius breaker (through its admin HTTP).
    Breaker(BreakerArgs),
}

#[derive(Debug, Args)]
pub struct BreakerArgs {
    /// `status` (default) or `reset`.
    #[arg(value_enum, default_value_t = BreakerAction::Status)]
    pub action: BreakerAction,
    /// Reset only this target (default: every target).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Admin address of the service (default: `admin.listen` of the config).
    #[arg(long, value_name = "HOST:PORT")]
    pub admin: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BreakerAction {
    Status,
    Reset,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Selection {
    /// Comma-separated goods ids.
    #[arg(long, value_name = "IDS")]
    pub goods: Option<String>,
    /// Every goods of this activity.
    #[arg(long, value_name = "ID")]
    pub activity: Option<u64>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[arg(long, value_name = "IDS", conflicts_with_all = ["activity", "all"])]
    pub goods: Option<String>,
    #[arg(long, value_name = "ID", conflicts_with = "all")]
    pub activity: Option<u64>,
    /// Every goods in every shard.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SelectArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// One JSON document instead of the readable report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Plan repairs, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The `repair_id` of a report or audit row.
    pub repair_id: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FullArgs {
    /// Goods ids from a Hive-exported Parquet file or directory instead of MySQL.
    #[arg(long, value_name = "PATH")]
    pub dump: Option<PathBuf>,
    #[arg(long, conflicts_with = "via_bus")]
    pub dry_run: bool,
    /// Publish the run's check jobs to the job bus for the whole handler group instead
    /// of checking in this process; prints the run id.
    #[arg(long)]
    pub via_bus: bool,
    /// With `--via-bus`: wait until every job is done and print the run's report.
    #[arg(long, requires = "via_bus")]
    pub wait: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// One run in detail (default: the recent runs).
    pub run_id: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// JSON-lines file of pricing samples, `-` for stdin.
    #[arg(long, value_name = "PATH")]
    pub samples: PathBuf,
    /// One JSON document: counts and every mismatch.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on (`host:port`; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: String,
    /// Framed transport instead of HBase's default buffered transport.
    #[arg(long)]
    pub framed: bool,
    /// Compact protocol instead of binary.
    #[arg(long)]
    pub compact: bool,
    /// Worker threads (one per open connection).
    #[arg(long, default_value_t = 64)]
    pub workers: usize,
}
