//! One function per command; each returns the process exit status.

use std::sync::Arc;

use handlers::run::{mysql_id_source, run_activity, run_full, run_goods, RunError};
use handlers::undo::{undo, UndoError};
use handlers::{Mode, StoreError};
use model::config::Config;
use model::ids::parse_id_list;
use model::job::TriggerKind;
use model::report::{Outcome, Report};

use crate::app::{exit, run_id, App};
use crate::cli::{Cli, Command, EmulatorArgs, Selection};
use crate::{output, progress};

pub async fn run(cli: Cli) -> i32 {
    if let Command::HbaseEmulator(args) = &cli.command {
        return hbase_emulator(args).await;
    }
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let app = match App::new(config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::USAGE;
        }
    };
    match cli.command {
        Command::Demo => demo(&app).await,
        Command::Schema => match common::mysql::schema::create(&app.pools).await {
            Ok(n) => {
                println!("schema ready: {n} statements applied (idempotent)");
                exit::CLEAN
            }
            Err(e) => store_failure(&StoreError::unreachable("mysql", e)),
        },
        Command::Sync(args) => {
            let mode = Mode::sync(run_id("sync"));
            let selection = Selection { goods: args.goods, activity: args.activity };
            if args.all {
                let (opts, spool) = spooled(&app, &mode, args.json);
                let r = run_full(&app.handler, mysql_id_source(&app.handler, opts.batch_size), &mode, &opts).await;
                finish_spooled(r, args.json, &spool)
            } else if selection.goods.is_none() && selection.activity.is_none() {
                eprintln!("error: sync needs one of --goods IDS, --activity ID or --all");
                exit::USAGE
            } else {
                selected(&app, &selection, &mode, args.json).await
            }
        }
        Command::Check(args) => selected(&app, &args.selection, &Mode::check(run_id("check")), args.json).await,
        Command::Repair(args) => {
            let mut mode = Mode::repair(TriggerKind::Operator, run_id("repair"));
            mode.dry_run = args.dry_run;
            selected(&app, &args.selection, &mode, args.json).await
        }
        Command::Undo(args) => {
            resolve_pending(&app).await;
            match undo(&app.handler, args.repair_id, &Mode::repair(TriggerKind::Operator, run_id("undo"))).await {
                Ok(report) => print_report(&report, args.json),
                Err(UndoError::Store(e)) => store_failure(&e),
                Err(e) => {
                    eprintln!("error: {e}");
                    exit::USAGE
                }
            }
        }
        Command::Full(args) if args.via_bus => {
            crate::runs::full_via_bus(&app, args.dump.as_deref(), args.wait, args.json).await
        }
        Command::Runs(args) => crate::runs::show(&app, args.run_id.as_deref(), args.json).await,
        Command::Full(args) => {
            let mut mode = Mode::repair(TriggerKind::Full, run_id("full"));
            mode.dry_run = args.dry_run;
            if !mode.dry_run {
                resolve_pending(&app).await;
            }
            let (opts, spool) = spooled(&app, &mode, args.json);
            let source = match &args.dump {
                None => mysql_id_source(&app.handler, opts.batch_size),
                Some(path) => match crate::dump::source(path, &app.config, opts.batch_size) {
                    Ok(rx) => rx,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return exit::USAGE;
                    }
                },
            };
            finish_spooled(run_full(&app.handler, source, &mode, &opts).await, args.json, &spool)
        }
        Command::Verify(args) => crate::verify::file::run(&app, &args.samples, args.json).await,
        Command::Serve => crate::serve::run(app).await,
        Command::Breaker(args) => crate::admin_client::breaker(&app.config, &args).await,
        Command::HbaseEmulator(_) => unreachable!("handled above"),
    }
}

async fn selected(app: &App, selection: &Selection, mode: &Mode, json: bool) -> i32 {
    if mode.repair && !mode.dry_run && !mode.bootstrap {
        resolve_pending(app).await;
    }
    let (opts, spool) = spooled(app, mode, json);
    let result = match (&selection.goods, selection.activity) {
        (Some(ids), _) => match parse_id_list(ids) {
            Ok(ids) => run_goods(&app.handler, &ids, mode, &opts).await,
            Err(e) => {
                eprintln!("error: --goods: {e}");
                return exit::USAGE;
            }
        },
        (None, Some(activity)) => {
            key_status(app, activity).await;
            run_activity(&app.handler, activity, mode, &opts).await
        }
        (None, None) => {
            eprintln!("error: give --goods IDS or --activity ID");
            return exit::USAGE;
        }
    };
    finish_spooled(result, json, &spool)
}

/// With `[key_activities]` configured: whether the activity is key and when it was last
/// swept, one line on stderr (stdout keeps the report alone).
async fn key_status(app: &App, activity: u64) {
    if !app.config.key_activities.enabled() {
        return;
    }
    match crate::serve::key::activity_status(&app.pools, &app.config, activity).await {
        Ok(s) => eprintln!("{}", crate::serve::key::describe(&s)),
        Err(e) => eprintln!("warning: key activity status of {activity} not read: {e:#}"),
    }
}

/// Run options whose entries stream into a spool (memory flat whatever the drift).
fn spooled(app: &App, mode: &Mode, json: bool) -> (handlers::run::RunOptions, Arc<output::Spool>) {
    let spool = output::Spool::new(&mode.run_id);
    let mut opts = app.run_options(progress::reporter(json));
    opts.entries = Some(spool.clone());
    (opts, spool)
}

/// Audit rows left `pending` by an earlier crash are settled before a run repairs.
async fn resolve_pending(app: &App) {
    if let Err(e) = app.handler.resolve_pending(handlers::audit::PENDING_MIN_AGE_MS).await {
        tracing::warn!(error = %e, "pending audit rows not resolved");
    }
}

fn finish_spooled(result: Result<Report, RunError>, json: bool, spool: &output::Spool) -> i32 {
    let report = match result {
        Ok(report) => report,
        Err(e) => return finish(Err(e), json),
    };
    let outcome = report.outcome();
    if let Err(e) = spool.print(report, json) {
        eprintln!("error: {e}");
        return exit::USAGE;
    }
    exit_status(outcome)
}

fn finish(result: Result<Report, RunError>, json: bool) -> i32 {
    match result {
        Ok(report) => print_report(&report, json),
        Err(RunError::Store(e)) => store_failure(&e),
        Err(e @ RunError::UnknownActivity(_)) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
        Err(RunError::Source(e)) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}

fn print_report(report: &Report, json: bool) -> i32 {
    if json {
        println!("{}", output::json(report));
    } else {
        print!("{}", output::human(report));
    }
    exit_status(report.outcome())
}

fn exit_status(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Clean => exit::CLEAN,
        Outcome::DriftLeft => exit::DRIFT_LEFT,
        Outcome::Usage => exit::USAGE,
        Outcome::Unreachable => exit::UNREACHABLE,
    }
}

fn store_failure(e: &StoreError) -> i32 {
    eprintln!("error: {e}");
    exit::UNREACHABLE
}

async fn demo(app: &App) -> i32 {
    let _emulator = match start_configured_emulator(&app.config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::UNREACHABLE;
        }
    };
    match crate::demo::run(app, true).await {
        Ok(outcome) if outcome.recheck.drift.is_empty() && outcome.recheck.unreachable.is_empty() => exit::CLEAN,
        Ok(_) => exit::DRIFT_LEFT,
        Err(e) => {
            // The demo only fails when a store (MySQL, Redis, HBase) cannot be used.
            eprintln!("error: {e:#}");
            exit::UNREACHABLE
        }
    }
}

/// Starts the in-process HBase emulator when `[hbase_emulator]` is configured; when its
/// address is already taken, the server already listening there is used.
pub fn start_configured_emulator(config: &Config) -> anyhow::Result<Option<Arc<hbase_emulator::EmulatorHandle>>> {
    let Some(e) = &config.hbase_emulator else { return Ok(None) };
    let opts = hbase_emulator::EmulatorOptions { workers: e.workers, ..Default::default() };
    match hbase_emulator::start(&e.listen, opts) {
        Ok(handle) => {
            tracing::info!(listen = %handle.local_addr(), "hbase emulator started in-process");
            Ok(Some(Arc::new(handle)))
        }
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::info!(listen = %e.listen, "hbase emulator address in use, using the server already listening there");
            Ok(None)
        }
        Err(err) => Err(anyhow::anyhow!("starting the hbase emulator on {}: {err}", e.listen)),
    }
}

async fn hbase_emulator(args: &EmulatorArgs) -> i32 {
    let opts = hbase_emulator::EmulatorOptions {
        workers: args.workers,
        transport: if args.framed { hbase_emulator::Transport::Framed } else { hbase_emulator::Transport::Buffered },
        protocol: if args.compact { hbase_emulator::Protocol::Compact } else { hbase_emulator::Protocol::Binary },
    };
    let handle = match hbase_emulator::start(&args.listen, opts) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return exit::USAGE;
        }
    };
    println!("hbase thrift1 emulator listening on {}", handle.local_addr());
    wait_for_shutdown().await;
    tracing::info!("shutting down");
    tokio::task::spawn_blocking(move || handle.shutdown()).await.ok();
    exit::CLEAN
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
