//! `reconciler serve`: the long-running service. Starts the configured triggers, the job
//! bus, N handler workers and the admin HTTP server; SIGTERM drains in-flight work and
//! commits offsets before exit.

pub mod admin;
pub mod metrics;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use model::config::BusKind;
use tokio::sync::watch;

use crate::app::{exit, App};
use metrics::Metrics;
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
    let metrics = Arc::new(Metrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let config = &app.config;
    let settings = WorkerSettings {
        workers: config.handler.workers,
        batch_size: config.handler.batch_size,
        batch_wait: Duration::from_millis(config.handler.batch_wait_ms),
        max_waiting: 200_000,
    };

    let listener = tokio::net::TcpListener::bind(&config.admin.listen)
        .await
        .map_err(|e| anyhow::anyhow!("admin.listen {}: {e}", config.admin.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "admin http listening");
    let state = Arc::new(admin::AdminState {
        handler: app.handler.clone(),
        metrics: metrics.clone(),
        token: config.admin.token.clone(),
        run_options: app.run_options(None),
    });
    let mut admin_shutdown = shutdown_rx.clone();
    let admin = tokio::spawn(async move {
        axum::serve(listener, admin::router(state))
            .with_graceful_shutdown(async move {
                let _ = admin_shutdown.changed().await;
            })
            .await
    });

    let handler = app.handler.clone();
    let workers = match config.bus.kind {
        BusKind::Embedded => {
            let (publisher, consumer) = triggers::bus::embedded::channel(config.bus.queue_capacity);
            let _publisher = Arc::new(publisher);
            let m = metrics.clone();
            let rx = shutdown_rx.clone();
            tokio::spawn(async move {
                worker::run(handler, consumer, settings, m, rx).await;
            })
        }
        BusKind::Kafka => {
            let k = &config.kafka;
            triggers::bus::kafka::admin::ensure_topics(&k.brokers, &[&k.jobs_topic, &k.dead_letter_topic], k.partitions).await?;
            let consumer = triggers::bus::kafka::job_consumer::KafkaJobConsumer::new(
                &k.brokers,
                &k.group,
                &k.jobs_topic,
                &k.dead_letter_topic,
                Default::default(),
            )?;
            let m = metrics.clone();
            let rx = shutdown_rx.clone();
            tokio::spawn(async move {
                let consumer = worker::run(handler, consumer, settings, m, rx).await;
                consumer.shutdown().await;
            })
        }
    };

    crate::commands::wait_for_shutdown().await;
    tracing::info!("shutdown requested, draining in-flight work");
    let _ = shutdown_tx.send(true);
    let _ = workers.await;
    let _ = admin.await;
    tracing::info!("stopped");
    Ok(())
}
