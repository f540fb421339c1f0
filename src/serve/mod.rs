//! `reconciler serve`: the long-running service, a small supervisor of components: the
//! admin HTTP server (its bound address printed on stdout, so `listen = "…:0"` works),
//! the job bus with N handler workers (supervised by `worker.rs`), and the DTS trigger,
//! the scanner, the run publisher (resumes distributed runs whose publisher died),
//! scheduled runs and the price verifier, each restarted with backoff when it fails
//! (`supervisor.rs`). SIGTERM drains in-flight work and commits offsets before exit.

pub mod admin;
mod batch;
pub mod consistency;
pub mod health;
pub mod key;
mod repair;
pub mod supervisor;
pub mod telemetry;
pub mod verifier;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use handlers::run::{mysql_id_source, run_full, RunOptions};
use handlers::{Handler, Mode};
use model::config::{BusKind, Config};
use model::job::TriggerKind;
use tokio::sync::watch;
use triggers::bus::kafka::job_consumer::KafkaJobConsumer;
use triggers::bus::kafka::publisher::KafkaPublisher;
use triggers::bus::kafka::source::SourceOptions;
use triggers::dts::trigger::{DtsOptions, DtsTrigger};
use triggers::full::{FullPublisher, RunSource};
use triggers::scanner::Scanner;
use triggers::schedule::{FullSchedule, FullTrigger};
use triggers::JobPublisher;

use crate::app::{exit, App};
use worker::WorkerSettings;

pub async fn run(app: App) -> i32 {
    match serve(app).await {
        Ok(()) => exit::CLEAN,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::UNREACHABLE
        }
    }
}

async fn serve(app: App) -> anyhow::Result<()> {
    let _emulator = crate::commands::start_configured_emulator(&app.config)?;
    let prometheus = telemetry::install()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let config = &app.config;
    let mut settings = WorkerSettings::from_config(config);
    let book = Arc::new(consistency::ConsistencyBook::new(
        config.targets.iter().map(|t| t.name().to_string()).collect(),
        settings.horizon_ms.saturating_add(3_600_000),
        common::clock::system(),
    ));
    settings.consistency = Some(book.clone());
    let key_settings = settings.clone();
    let health =
        Arc::new(health::Health::new(settings.workers, config.admin.consumer_stall_ms, common::clock::system()));
    admin::warn_if_exposed(&config.admin);

    let listener = tokio::net::TcpListener::bind(&config.admin.listen)
        .await
        .map_err(|e| anyhow::anyhow!("admin.listen {}: {e}", config.admin.listen))?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, "admin http listening");
    // On stdout, so a caller that asked for port 0 learns the port.
    println!("admin listening on {bound}");
    let state = Arc::new(admin::AdminState {
        handler: app.handler.clone(),
        prometheus,
        token: config.admin.token.clone(),
        run_options: app.run_options(None),
        health: health.clone(),
        ledger: common::mysql::ledger::Ledger::new(&app.pools),
        instance: settings.instance.clone(),
        repair_async_goods: config.admin.repair_async_goods,
        repair_wait_ms: config.admin.repair_wait_ms,
    });
    let key_handler = config.key_activities.enabled().then(|| Arc::new(key::key_handler(&app.handler, config)));
    let admin_router = admin::router(state).merge(consistency::router(book)).merge(key::router(
        app.pools.clone(),
        Arc::new(config.clone()),
        key_handler.clone(),
    ));
    let mut admin_shutdown = shutdown_rx.clone();
    let admin = tokio::spawn(async move {
        axum::serve(listener, admin_router)
            .with_graceful_shutdown(async move {
                let _ = admin_shutdown.changed().await;
            })
            .await
    });

    let handler = app.handler.clone();
    let worker_health = health.clone();
    let kafka_jobs: Option<KafkaPublisher>;
    let (publisher, workers): (Arc<dyn JobPublisher>, tokio::task::JoinHandle<()>) = match config.bus.kind {
        BusKind::Embedded => {
            let (publisher, consumer) = triggers::bus::embedded::channel(config.bus.queue_capacity);
            let rx = shutdown_rx.clone();
            let task = tokio::spawn(async move {
                worker::run(handler, consumer, settings, rx, worker_health).await;
            });
            kafka_jobs = None;
            (Arc::new(publisher), task)
        }
        BusKind::Kafka => {
            let k = &config.kafka;
            triggers::bus::kafka::admin::ensure_topics_for(k, &[&k.jobs_topic, &k.dead_letter_topic]).await?;
            let extra: Vec<(&str, &str)> = k.producer_config.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let jobs = KafkaPublisher::with_config(&k.brokers, &k.jobs_topic, &extra)?;
            kafka_jobs = Some(jobs.clone());
            let consumer = KafkaJobConsumer::new(
                &k.brokers,
                &k.group,
                &k.jobs_topic,
                &k.dead_letter_topic,
                source_options(config),
            )?
            .with_recheck_publisher(jobs.clone());
            let rx = shutdown_rx.clone();
            let task = tokio::spawn(async move {
                let consumer = worker::run(handler, consumer, settings, rx, worker_health).await;
                consumer.shutdown().await;
            });
            (Arc::new(jobs), task)
        }
    };

    let pools = app.pools.clone();
    let mut trigger_tasks = Vec::new();
    let key_lane = match key_handler {
        Some(h) => key::start(config, h, &pools, publisher.clone(), &key_settings, shutdown_rx.clone()).await?,
        None => None,
    };
    let (publisher, key_workers) = match key_lane {
        Some(lane) => {
            trigger_tasks.extend(lane.triggers);
            (lane.publisher, Some((lane.workers, lane.keys)))
        }
        None => (publisher, None),
    };
    let policy = common::RetryPolicy::from_config(&config.retry);
    if !config.triggers.dts.is_empty() {
        let topics: Vec<&str> = config.triggers.dts.iter().map(|d| d.topic.as_str()).collect();
        triggers::bus::kafka::admin::ensure_topics_for(&config.kafka, &topics).await?;
        let build = {
            let (config, publisher, pools) = (config.clone(), publisher.clone(), pools.clone());
            let keys = key_workers.as_ref().map(|(_, keys)| keys.clone());
            move || {
                let options = DtsOptions {
                    source: source_options(&config),
                    retry: common::RetryPolicy::from_config(&config.retry),
                    ..Default::default()
                };
                let dts =
                    DtsTrigger::new(&config.kafka, &config.triggers.dts, publisher.clone(), pools.clone(), options)?;
                Ok::<_, triggers::TriggerError>(match &keys {
                    Some(keys) => dts.with_key_activities(keys.clone(), &config.key_activities.stages_ms),
                    None => dts,
                })
            }
        };
        // Built once here so a configuration error stops the start; rebuilt on restarts.
        let first = std::sync::Mutex::new(Some(build()?));
        tracing::info!(topics = ?topics, "dts-delay trigger started");
        let rx = shutdown_rx.clone();
        trigger_tasks.push(supervisor::spawn("dts", health.clone(), rx.clone(), policy.clone(), move || {
            let first = first.lock().unwrap_or_else(|p| p.into_inner()).take();
            let (dts, rx) = (first.map(Ok).unwrap_or_else(&build), rx.clone());
            async move {
                dts?.run(stopped(rx)).await;
                Ok(())
            }
        }));
    }
    if config.triggers.scanner.enabled {
        let first = Scanner::new(pools.clone(), publisher.clone(), config.triggers.scanner.clone()).await?;
        let first = Arc::new(std::sync::Mutex::new(Some(first)));
        tracing::info!(interval_ms = config.triggers.scanner.interval_ms, "recent-change scanner started");
        let (scanner_config, publisher, pools, rx) =
            (config.triggers.scanner.clone(), publisher.clone(), pools.clone(), shutdown_rx.clone());
        trigger_tasks.push(supervisor::spawn("scanner", health.clone(), rx.clone(), policy.clone(), move || {
            let first = first.lock().unwrap_or_else(|p| p.into_inner()).take();
            let (c, publisher, pools, rx) = (scanner_config.clone(), publisher.clone(), pools.clone(), rx.clone());
            async move {
                let scanner = match first {
                    Some(s) => s,
                    None => Scanner::new(pools, publisher, c).await?,
                };
                scanner.run(stopped(rx)).await;
                Ok(())
            }
        }));
    }
    // Distributed full runs: every instance resumes the publication of a run whose
    // publisher died; scheduled runs go through the bus.
    let run_publisher = kafka_jobs.map(|jobs| {
        let owner = worker::instance_name(config);
        Arc::new(FullPublisher::new(
            pools.clone(),
            Arc::new(jobs),
            crate::runs::publish_options(config, &owner),
            common::clock::system(),
        ))
    });
    {
        // Operator repair runs of an instance that died fail once their lease expired.
        let (ledger, rx) = (common::mysql::ledger::Ledger::new(&pools), shutdown_rx.clone());
        let pools = pools.clone();
        trigger_tasks.push(supervisor::spawn("repair runs", health.clone(), rx.clone(), policy.clone(), move || {
            fail_abandoned_runs(pools.clone(), ledger.clone(), rx.clone())
        }));
    }
    if let Some(p) = &run_publisher {
        let every = Duration::from_millis((config.triggers.full.lease_ms / 2).max(500));
        let (p, rx) = (p.clone(), shutdown_rx.clone());
        trigger_tasks.push(supervisor::spawn("run publisher", health.clone(), rx.clone(), policy.clone(), move || {
            resume_runs(p.clone(), every, rx.clone())
        }));
    }
    if let (Some(cron), Some(p)) = (&config.triggers.full.cron, &run_publisher) {
        let schedule = FullSchedule::parse(cron)?;
        tracing::info!(cron = %cron, "scheduled full reconciliation armed (through the job bus)");
        let source = config.triggers.full.dump.as_ref().map(|d| RunSource::Dump(d.into())).unwrap_or(RunSource::Mysql);
        let (p, rx, pools) = (p.clone(), shutdown_rx.clone(), pools.clone());
        trigger_tasks.push(supervisor::spawn(
            "scheduled runs",
            health.clone(),
            rx.clone(),
            policy.clone(),
            move || {
                let (p, rx, pools, source, schedule) =
                    (p.clone(), rx.clone(), pools.clone(), source.clone(), schedule.clone());
                async move {
                    let full = FullTrigger::new(schedule, &pools).await?;
                    tokio::select! {
                        _ = stopped(rx) => {}
                        _ = scheduled_via_bus(full, p, source) => {}
                    }
                    Ok(())
                }
            },
        ));
    } else if let Some(cron) = &config.triggers.full.cron {
        let full = FullTrigger::new(FullSchedule::parse(cron)?, &pools).await?;
        tracing::info!(cron = %cron, "scheduled full reconciliation armed");
        let app_handler = app.handler.clone();
        let (mut opts, dump, config) = (app.run_options(None), config.triggers.full.dump.clone(), app.config.clone());
        // Judged by the service's breaker, like every other batch of the process; entries
        // are counted, not kept (the log and metrics carry the figures).
        opts.breaker = Some(app.handler.breaker().clone());
        opts.entries = Some(Arc::new(handlers::run::CountOnly));
        let rx = shutdown_rx.clone();
        trigger_tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = stopped(rx) => {}
                _ = scheduled_full(full, app_handler, opts, dump, config) => {}
            }
        }));
    }

    if let Some(task) = verifier::spawn(&app, publisher.clone(), shutdown_rx.clone()).await? {
        trigger_tasks.push(task);
    }

    crate::commands::wait_for_shutdown().await;
    tracing::info!("shutdown requested, draining in-flight work");
    let _ = shutdown_tx.send(true);
    // Triggers first: they finish publishing and commit their sources; then the
    // handlers finish their batches and commit theirs.
    // A trigger waiting on a broker or database that is down would wait forever; its
    // uncommitted events are read again after the restart, so stopping it is safe.
    for t in trigger_tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout(Duration::from_secs(30), t).await.is_err() {
            tracing::warn!(
                "a trigger did not stop within 30 s, abandoning it (its uncommitted events will be re-read)"
            );
            abort.abort();
        }
    }
    drop(publisher);
    let _ = workers.await;
    if let Some((key_workers, _)) = key_workers {
        let _ = key_workers.await;
    }
    let _ = admin.await;
    tracing::info!("stopped");
    Ok(())
}

/// Every 5 s, fails the operator repair runs whose instance stopped heartbeating.
async fn fail_abandoned_runs(
    pools: common::mysql::MysqlPools,
    ledger: common::mysql::ledger::Ledger,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    common::mysql::ledger::Ledger::ensure_tables(&pools).await?;
    loop {
        match ledger.fail_abandoned(common::clock::now_ms()).await {
            Ok(runs) if !runs.is_empty() => {
                tracing::warn!(runs = ?runs, "operator repair runs failed: their instance stopped before they finished")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping abandoned repair runs failed, trying again later"),
        }
        let rx = shutdown.clone();
        tokio::select! {
            _ = stopped(rx) => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Every `every`, takes over and finishes the publication of runs whose publisher died.
async fn resume_runs(
    publisher: Arc<FullPublisher>,
    every: Duration,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let rx = shutdown.clone();
        tokio::select! {
            _ = stopped(rx) => return Ok(()),
            r = publisher.resume_orphaned() => match r {
                Ok(runs) if !runs.is_empty() => tracing::info!(runs = ?runs, "resumed the publication of full runs"),
                Ok(_) => {}
                Err(e) => {
                    metrics::counter!(telemetry::ERRORS, "component" => "publisher").increment(1);
                    tracing::warn!(error = %e, "resuming full runs failed, trying again later");
                }
            },
        }
        let rx = shutdown.clone();
        tokio::select! {
            _ = stopped(rx) => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Waits for the next fire time this instance wins (a failing schedule is counted, logged
/// and retried every 60 s); `None` when the schedule has no further fire time.
async fn next_fire(full: &mut FullTrigger) -> Option<triggers::schedule::FireGuard> {
    loop {
        match full.wait_due().await {
            Ok(guard) => return guard,
            Err(e) => {
                metrics::counter!(telemetry::ERRORS, "component" => "schedule").increment(1);
                tracing::warn!(error = %e, "full run schedule failed, retrying in 60 s");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }
}

/// Scheduled full runs on a Kafka bus: the instance holding the lock creates the run
/// and publishes it; every instance's handlers check it.
async fn scheduled_via_bus(mut full: FullTrigger, publisher: Arc<FullPublisher>, source: RunSource) {
    loop {
        let Some(guard) = next_fire(&mut full).await else { return };
        let run_id = crate::app::run_id("scheduled-full");
        let published = match publisher.create(&run_id, &source, false).await {
            Ok(()) => publisher.publish(&run_id).await,
            Err(e) => Err(e),
        };
        match published {
            Ok(p) => tracing::info!(run_id = %run_id, outcome = ?p, "scheduled full run published"),
            Err(e) => {
                metrics::counter!(telemetry::ERRORS, "component" => "full").increment(1);
                tracing::error!(run_id = %run_id, error = %e, "scheduled full run not published");
            }
        }
        let _ = guard.release().await;
    }
}

fn source_options(config: &Config) -> SourceOptions {
    let session = config.kafka.session_timeout_ms;
    let mut options = SourceOptions::for_kafka(&config.kafka);
    // Records handed over before partitions are paused. Jobs wait here and in the
    // workers' not-before queue; a small buffer paused and resumed partitions all the
    // time, which capped the DTS path at ~400 events/s (BENCHMARKS.md); 8192 keeps the
    // stream flowing at a few MB of memory.
    options.buffer = 8192;
    options.extra.push(("heartbeat.interval.ms".into(), (session / 3).max(100).to_string()));
    if let Some(id) = &config.kafka.instance_id {
        options.extra.push(("group.instance.id".into(), id.clone()));
    }
    options
}

/// Resolves once shutdown is requested.
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Fires full reconciliations on the cron schedule; only the instance holding the MySQL
/// lock runs a given fire time.
async fn scheduled_full(
    mut full: FullTrigger,
    handler: Arc<Handler>,
    mut opts: RunOptions,
    dump: Option<String>,
    config: Config,
) {
    opts.progress = Some(Arc::new(move |p: &handlers::run::Progress| {
        metrics::gauge!(telemetry::FULL_PROGRESS, "phase" => p.phase).set(p.checked as f64);
    }));
    loop {
        let Some(guard) = next_fire(&mut full).await else { return };
        tracing::info!("scheduled full reconciliation started");
        let source = match &dump {
            None => mysql_id_source(&handler, opts.batch_size),
            Some(path) => match crate::dump::source(std::path::Path::new(path), &config, opts.batch_size) {
                Ok(rx) => rx,
                Err(e) => {
                    metrics::counter!(telemetry::ERRORS, "component" => "full").increment(1);
                    tracing::error!(error = %e, "full run dump unreadable");
                    let _ = guard.release().await;
                    continue;
                }
            },
        };
        let mode = Mode::repair(TriggerKind::Full, crate::app::run_id("scheduled-full"));
        match run_full(&handler, source, &mode, &opts).await {
            Ok(report) => {
                tracing::info!(
                    checked = report.checked,
                    drift = report.drift_count(),
                    repairs = report.repair_count(),
                    "scheduled full reconciliation done"
                );
            }
            Err(e) => {
                metrics::counter!(telemetry::ERRORS, "component" => "full").increment(1);
                tracing::error!(error = %e, "scheduled full reconciliation failed");
            }
        }
        let _ = guard.release().await;
    }
}
