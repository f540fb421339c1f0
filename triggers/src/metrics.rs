//! The triggers' own figures, recorded through the `metrics` facade.

use common::telemetry::MetricDef;

pub const EVENTS: &str = "reconciler_events_total";
pub const JOBS_PUBLISHED: &str = "reconciler_jobs_published_total";
pub const DEAD_LETTERS: &str = "reconciler_dead_letters_total";
pub const SCANNER_LAG: &str = "reconciler_scanner_lag_ms";
pub const SCANNER_ROWS: &str = "reconciler_scanner_rows_total";
pub const CONSUMER_LAG: &str = "reconciler_consumer_lag";
pub const REVOCATIONS: &str = "reconciler_consumer_revocations_total";

pub const METRICS: &[MetricDef] = &[
    MetricDef::counter(
        EVENTS,
        &["topic", "format", "outcome"],
        "change events read by the DTS-delay trigger: outcome parsed, skipped (DDL, heartbeats, other tables) or dead_lettered",
    ),
    MetricDef::counter(JOBS_PUBLISHED, &["trigger", "stage"], "check jobs published to the job bus, by trigger and stage"),
    MetricDef::counter(DEAD_LETTERS, &["source"], "messages sent to the dead-letter topic, by what could not handle them"),
    MetricDef::gauge(
        SCANNER_LAG,
        &["table"],
        "how far the recent-change scanner's watermark is behind the database clock, per scanned table",
    ),
    MetricDef::counter(SCANNER_ROWS, &["table"], "rows read by the recent-change scanner, per table"),
    MetricDef::gauge(CONSUMER_LAG, &["topic", "partition"], "Kafka consumer lag in messages, per assigned partition"),
    MetricDef::counter(REVOCATIONS, &["topic"], "partitions revoked from this process's consumers (rebalances)"),
];
