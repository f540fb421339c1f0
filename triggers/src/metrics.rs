//! The triggers' own figures, recorded through the `metrics` facade.

use common::telemetry::MetricDef;

pub const EVENTS: &str = "reconciler_events_total";
pub const JOBS_PUBLISHED: &str = "reconciler_jobs_published_total";
pub const DEAD_LETTERS: &str = "reconciler_dead_letters_total";
pub const SCANNER_LAG: &str = "reconciler_scanner_lag_ms";
pub const SCANNER_ROWS: &str = "reconciler_scanner_rows_total";
pub const CONSUMER_LAG: &str = "reconciler_consumer_lag";
pub const REVOCATIONS: &str = "reconciler_consumer_revocations_total";
pub const RESUBSCRIBES: &str = "reconciler_consumer_resubscribes_total";
pub const KEY_ACTIVITIES: &str = "reconciler_key_activities";
pub const KEY_GOODS: &str = "reconciler_key_goods";
pub const KEY_REFRESH_ERRORS: &str = "reconciler_key_errors_total";
pub const SWEEPS: &str = "reconciler_key_sweeps_total";
pub const SWEEP_GOODS: &str = "reconciler_key_sweep_goods_total";

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
    MetricDef::counter(
        RESUBSCRIBES,
        &[],
        "times a consumer that owned no partition while records waited unconsumed rejoined its group (assignment watchdog)",
    ),
    MetricDef::gauge(KEY_ACTIVITIES, &[], "key activities known (not ended), as of the last refresh"),
    MetricDef::gauge(KEY_GOODS, &[], "goods of key activities, as of the last refresh"),
    MetricDef::counter(KEY_REFRESH_ERRORS, &[], "key-set refreshes and live-sweep passes that failed (retried at the next tick)"),
    MetricDef::counter(SWEEPS, &[], "live sweeps of key activities done by this instance"),
    MetricDef::counter(SWEEP_GOODS, &[], "goods published by live sweeps (one sweep job each)"),
];
