//! `/metrics`: every component records its figures through the `metrics` facade
//! (`handlers::metrics`, `triggers::metrics`, and the service's own below); `serve`
//! installs one Prometheus recorder for the process and renders it in the text
//! exposition format. [`all`] lists every metric the service exports, for the docs and
//! for tests that check dashboards and alert rules against it.

use std::sync::OnceLock;

use common::telemetry::{describe, MetricDef};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const JOBS: &str = "reconciler_jobs_total";
pub const ERRORS: &str = "reconciler_errors_total";
pub const JOB_LAG: &str = "reconciler_job_lag_ms";
pub const JOBS_WAITING: &str = "reconciler_jobs_waiting";
pub const FULL_PROGRESS: &str = "reconciler_full_progress_goods";
pub const CHANGE_TO_REPAIR: &str = "reconciler_change_to_repair_ms";
pub const WORKER_RESTARTS: &str = "reconciler_worker_restarts_total";
pub const TIME_TO_CONSISTENCY: &str = "reconciler_time_to_consistency_ms";
pub const DRIFT_AGE_UNKNOWN: &str = "reconciler_drift_age_unknown_total";

/// Upper bounds (ms) of the time-to-consistency histogram: the "consistent within"
/// thresholds of `model::consistency` (1 s, 10 s, 1 min, 5 min, 10 min) and a few more.
pub const TTC_BUCKETS_MS: [f64; 9] =
    [1000.0, 3000.0, 10_000.0, 30_000.0, 60_000.0, 120_000.0, 300_000.0, 600_000.0, 1_800_000.0];

/// Upper bounds (ms) of the change-to-repair latency histogram.
pub const LATENCY_BUCKETS_MS: [f64; 14] = [
    100.0, 250.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 10_000.0, 30_000.0, 60_000.0, 120_000.0, 300_000.0,
    600_000.0,
];

pub const METRICS: &[MetricDef] = &[
    MetricDef::counter(
        JOBS,
        &["trigger", "outcome"],
        "check jobs handled by this instance, by trigger and outcome (done, rechecked, halted, dead_lettered, redelivered: a batch job the run ledger had counted, acknowledged unchecked)",
    ),
    MetricDef::counter(WORKER_RESTARTS, &[], "handler workers that died and were restarted"),
    MetricDef::counter(ERRORS, &["component"], "errors, by component (bus, handler, schedule, full, verifier)"),
    MetricDef::gauge(JOB_LAG, &[], "how late the last job was handled after its not-before time"),
    MetricDef::gauge(JOBS_WAITING, &[], "jobs received and waiting for their not-before time"),
    MetricDef::gauge(FULL_PROGRESS, &["phase"], "goods checked by the running full reconciliation"),
    MetricDef::histogram(
        CHANGE_TO_REPAIR,
        &["trigger"],
        "time from a change's commit to the end of its check and repair, ms",
    ),
    MetricDef::histogram(
        TIME_TO_CONSISTENCY,
        &["target", "trigger"],
        "time from a change (event commit, scanned row time) until a check found the target equal to truth for that goods or repaired it, ms; each change counted once per target",
    ),
    MetricDef::counter(
        DRIFT_AGE_UNKNOWN,
        &["target", "trigger"],
        "drift found with no known change that caused it (full runs, live sweeps), per goods and target",
    ),
];

/// Every metric the service exports.
pub fn all() -> Vec<MetricDef> {
    [handlers::metrics::METRICS, triggers::metrics::METRICS, METRICS, crate::verify::metrics::METRICS].concat()
}

/// `docs/metrics.md`: every metric the service exports, generated from [`all`]. A unit
/// test keeps the file equal to it; `RECONCILER_WRITE_DOCS=1 cargo test -p reconciler
/// --lib metrics_md` rewrites the file.
pub fn docs_markdown() -> String {
    format!(
        "# Metrics\n\n\
         <!-- Generated from the code (src/serve/telemetry.rs `all()`); do not edit by hand. Regenerate with\n\
         RECONCILER_WRITE_DOCS=1 cargo test -p reconciler --lib metrics_md -->\n\n\
         `reconciler serve` exports these on `GET /metrics` of the admin server (Prometheus text format,\n\
         see [admin-api.md](admin-api.md)). Each component (handlers, triggers, the service, the price\n\
         verifier) records its own figures; label values are bounded sets (target names, drift kinds,\n\
         triggers, topics), never ids. Counters count since the process started. The alert rules and\n\
         the dashboard in `deploy/` use only these names (a test checks it); what to do when an alert\n\
         fires: [runbooks.md](runbooks.md).\n\n{}",
        common::telemetry::markdown(&all())
    )
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's Prometheus recorder (once; later calls return the same
/// handle) and describes every metric.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(CHANGE_TO_REPAIR.into()), &LATENCY_BUCKETS_MS)?
        .set_buckets_for_metric(Matcher::Full(TIME_TO_CONSISTENCY.into()), &TTC_BUCKETS_MS)?
        .install_recorder()?;
    describe(&all());
    Ok(HANDLE.get_or_init(|| handle).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let handle = install().unwrap();
        metrics::counter!(JOBS, "trigger" => "dts", "outcome" => "done").increment(3);
        metrics::gauge!(JOB_LAG).set(42.0);
        metrics::histogram!(CHANGE_TO_REPAIR, "trigger" => "dts").record(3100.0);
        let text = handle.render();
        assert!(text.contains("reconciler_jobs_total{trigger=\"dts\",outcome=\"done\"} 3"), "{text}");
        assert!(text.contains("reconciler_job_lag_ms 42"), "{text}");
        assert!(text.contains("reconciler_change_to_repair_ms_bucket{trigger=\"dts\",le=\"3000\"} 0"), "{text}");
        assert!(text.contains("reconciler_change_to_repair_ms_bucket{trigger=\"dts\",le=\"4000\"} 1"), "{text}");
        assert!(text.contains("reconciler_change_to_repair_ms_count{trigger=\"dts\"} 1"), "{text}");
        assert!(text.contains("# HELP reconciler_jobs_total"), "{text}");
    }

    #[test]
    fn metrics_md_is_generated_from_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md");
        let want = docs_markdown();
        if std::env::var_os("RECONCILER_WRITE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/metrics.md differs from the metrics the code declares; regenerate it with \
             RECONCILER_WRITE_DOCS=1 cargo test -p reconciler --lib metrics_md"
        );
        for d in all() {
            assert!(have.contains(&format!("`{}`", d.name)), "{}", d.name);
        }
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        let all = all();
        let mut names: Vec<&str> = all.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "a metric is declared twice");
        assert!(all.iter().all(|d| d.name.starts_with("reconciler_")));
    }
}
