//! The handler's figures, recorded through the `metrics` facade (a no-op unless the
//! process installed a recorder, as `serve` does). Every batch a handler checks is
//! counted here, whoever asked for it (job, operator, full run).

use common::telemetry::MetricDef;
use model::job::TriggerKind;
use model::report::Report;

pub const CHECKS: &str = "reconciler_checks_total";
pub const DRIFT: &str = "reconciler_drift_total";
pub const REPAIRS: &str = "reconciler_repairs_total";
pub const DEFERRED: &str = "reconciler_deferred_total";
pub const UNREACHABLE: &str = "reconciler_unreachable_total";
pub const HALTED: &str = "reconciler_halted_total";
pub const GOODS_ERRORS: &str = "reconciler_goods_errors_total";
pub const BREAKER_OPEN: &str = "reconciler_breaker_open";
pub const BREAKER_TRIPS: &str = "reconciler_breaker_trips_total";
pub const BREAKER_RATIO: &str = "reconciler_breaker_drift_ratio";
pub const UNKNOWN_OUTCOMES: &str = "reconciler_repair_outcomes_resolved_total";

pub const METRICS: &[MetricDef] = &[
    MetricDef::counter(CHECKS, &["trigger"], "goods checked, by trigger"),
    MetricDef::counter(DRIFT, &["target", "kind", "trigger"], "drift entries found, by target, drift kind and trigger"),
    MetricDef::counter(REPAIRS, &["target", "kind", "trigger"], "repairs applied, by target, drift kind and trigger"),
    MetricDef::counter(
        DEFERRED,
        &["target", "trigger"],
        "repairs deferred (settle window, conflict), by target and trigger",
    ),
    MetricDef::counter(UNREACHABLE, &["target"], "batches in which a target could not be reached"),
    MetricDef::counter(HALTED, &["trigger"], "batches whose repairs the blast-radius limit stopped"),
    MetricDef::counter(
        GOODS_ERRORS,
        &["target"],
        "goods that could not be checked (unusable truth row: target \"truth\"; an error reply for one key), by target",
    ),
    MetricDef::gauge(BREAKER_OPEN, &["target"], "1 while the blast-radius breaker stops repairs on the target"),
    MetricDef::counter(BREAKER_TRIPS, &["target"], "times the blast-radius breaker tripped, by target"),
    MetricDef::gauge(BREAKER_RATIO, &["target"], "drifted/checked goods in the breaker's window, by target"),
    MetricDef::counter(
        UNKNOWN_OUTCOMES,
        &["target", "status"],
        "repair writes whose outcome was unknown (error after the write, crash) resolved by re-reading the target",
    ),
];

/// Counts what one batch report says.
pub fn record_report(trigger: TriggerKind, report: &Report) {
    let t = trigger.as_str();
    metrics::counter!(CHECKS, "trigger" => t).increment(report.checked);
    for d in &report.drift {
        metrics::counter!(DRIFT, "target" => d.target.clone(), "kind" => d.kind.as_str(), "trigger" => t).increment(1);
    }
    for r in &report.repairs {
        metrics::counter!(REPAIRS, "target" => r.target.clone(), "kind" => r.kind.as_str(), "trigger" => t)
            .increment(1);
    }
    for d in &report.deferred {
        metrics::counter!(DEFERRED, "target" => d.target.clone(), "trigger" => t).increment(1);
    }
    for u in &report.unreachable {
        metrics::counter!(UNREACHABLE, "target" => u.clone()).increment(1);
    }
    if report.halted.is_some() {
        metrics::counter!(HALTED, "trigger" => t).increment(1);
    }
    for e in &report.errors {
        metrics::counter!(GOODS_ERRORS, "target" => e.target.clone().unwrap_or_else(|| "truth".into())).increment(1);
    }
}
