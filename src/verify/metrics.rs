//! The price verifier's metrics, recorded through the `metrics` facade (the service's
//! Prometheus exporter renders them on `/metrics`). Every name is declared in
//! [`METRICS`] with its labels (part of `serve::telemetry::all`), so the dashboard and the
//! alert rules are checked against them (`tests/deploy.rs`). Label values are bounded
//! (see `model::pricing::dimensions`).

use common::telemetry::MetricDef;
use model::pricing::dimensions::{kind_label, reason_label};
use model::pricing::{Scene, Verdict};

use super::Verified;

/// Samples verified, by `verdict` and `cause` (`none` unless a mismatch).
pub const SAMPLES: &str = "reconciler_verify_samples_total";
/// Samples by one dimension: `dimension`, `value`, `verdict`, `cause`. One series set per
/// dimension (a sample counts once per dimension, once per tag label for `tag`).
pub const DIMENSION_SAMPLES: &str = "reconciler_verify_dimension_samples_total";
/// Inconclusive samples by `reason` (`truth_changed`, `row_removed`).
pub const INCONCLUSIVE: &str = "reconciler_verify_inconclusive_total";
/// Activities the service dropped, by `scene`, `reason` and `type` (process monitoring).
pub const DROPPED: &str = "reconciler_verify_dropped_total";
/// Dropped activities the rule says win, by `scene`, `reason` and `type`.
pub const WRONG_DROPS: &str = "reconciler_verify_wrong_drops_total";
/// Samples whose answered price was <= 0, by `scene` and `source`.
pub const NONPOSITIVE_PRICES: &str = "reconciler_verify_nonpositive_prices_total";
/// Check jobs published for goods whose source target drifted.
pub const CHECK_JOBS: &str = "reconciler_verify_check_jobs_total";
/// Samples that could not be decoded and went to the dead-letter topic.
pub const MALFORMED: &str = "reconciler_verify_malformed_total";
/// Batches that failed (a store could not be read) and were retried.
pub const BATCH_RETRIES: &str = "reconciler_verify_batch_retries_total";
/// Seconds from a sample's `at_ms` to its verdict (how far behind the verifier runs).
pub const LAG_SECONDS: &str = "reconciler_verify_lag_seconds";

pub const METRICS: &[MetricDef] = &[
    MetricDef::counter(SAMPLES, &["verdict", "cause"], "pricing samples verified, by verdict and cause"),
    MetricDef::counter(
        DIMENSION_SAMPLES,
        &["dimension", "value", "verdict", "cause"],
        "pricing samples verified, by dimension, value, verdict and cause",
    ),
    MetricDef::counter(INCONCLUSIVE, &["reason"], "inconclusive pricing samples, by reason"),
    MetricDef::counter(DROPPED, &["scene", "reason", "type"], "activities the pricing service dropped"),
    MetricDef::counter(WRONG_DROPS, &["scene", "reason", "type"], "dropped activities the price rule says win"),
    MetricDef::counter(NONPOSITIVE_PRICES, &["scene", "source"], "pricing samples answering a price <= 0"),
    MetricDef::counter(CHECK_JOBS, &[], "check jobs published for goods whose source target drifted"),
    MetricDef::counter(MALFORMED, &[], "pricing samples dead-lettered as malformed"),
    MetricDef::counter(BATCH_RETRIES, &[], "sample batches retried because a store could not be read"),
    MetricDef::gauge(LAG_SECONDS, &[], "seconds from the last verified sample's time to its verdict"),
];

/// Creates the series the hard alerts watch at 0, so that the first logic mismatch on
/// an order scene and the first price <= 0 are an increase Prometheus can see.
pub fn register_zero(sources: impl IntoIterator<Item = String>) {
    for value in ["order", "order_page"] {
        for verdict in Verdict::ALL.iter().filter(|v| v.is_mismatch()) {
            metrics::counter!(DIMENSION_SAMPLES, "dimension" => "scene", "value" => value, "verdict" => verdict.as_str(), "cause" => "logic")
                .increment(0);
        }
    }
    let sources: Vec<String> = sources.into_iter().chain(["unknown".to_string(), "none".to_string()]).collect();
    for scene in Scene::ALL {
        for source in &sources {
            metrics::counter!(NONPOSITIVE_PRICES, "scene" => scene.as_str(), "source" => source.clone()).increment(0);
        }
    }
}

/// Counts one verified sample.
pub fn record(v: &Verified) {
    let (s, j) = (&v.sample, &v.judgement);
    let verdict = j.verdict.as_str();
    let cause = j.cause.map(|c| c.as_str()).unwrap_or("none");
    metrics::counter!(SAMPLES, "verdict" => verdict, "cause" => cause).increment(1);
    for (dimension, value) in v.labels.pairs() {
        metrics::counter!(DIMENSION_SAMPLES, "dimension" => dimension, "value" => value.to_string(), "verdict" => verdict, "cause" => cause)
            .increment(1);
    }
    if let Some(i) = j.inconclusive {
        metrics::counter!(INCONCLUSIVE, "reason" => i.as_str()).increment(1);
    }
    let scene = s.scene.as_str();
    if let Some(ctx) = &s.context {
        for (d, kind) in ctx.dropped.iter().zip(&j.dropped_kinds) {
            metrics::counter!(DROPPED, "scene" => scene, "reason" => reason_label(&d.reason), "type" => kind_label(*kind))
                .increment(1);
        }
        for d in &j.wrong_drops {
            let kind = ctx.dropped.iter().position(|x| x.aid == d.aid).and_then(|i| j.dropped_kinds[i]);
            metrics::counter!(WRONG_DROPS, "scene" => scene, "reason" => reason_label(&d.reason), "type" => kind_label(kind))
                .increment(1);
        }
    }
    if s.answer.is_some_and(|a| a.price <= 0) {
        metrics::counter!(NONPOSITIVE_PRICES, "scene" => scene, "source" => v.labels.source.clone()).increment(1);
    }
}
