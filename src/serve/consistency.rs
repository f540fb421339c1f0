//! Time-to-consistency in `serve`: the handler workers hand every checked batch to the
//! [`ConsistencyBook`], which keeps `model::consistency::Tracker`'s figures and exports
//! them (`reconciler_time_to_consistency_ms{target,trigger}`, buckets at 1 s, 10 s,
//! 1 min, 5 min, 10 min, and `reconciler_drift_age_unknown_total{target,trigger}`);
//! `GET /consistency` answers with each target's figures for the last hour and day.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use common::clock::Clock;
use model::consistency::{finding, Tracker};
use model::job::Job;
use model::report::Report;
use serde_json::{json, Value};

use super::telemetry::{DRIFT_AGE_UNKNOWN, TIME_TO_CONSISTENCY};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Debug)]
pub struct ConsistencyBook {
    tracker: Mutex<Tracker>,
    targets: Vec<String>,
    clock: Arc<dyn Clock>,
}

impl ConsistencyBook {
    /// `targets`: the configured target names; changes are remembered for `retain_ms`
    /// (longer than the largest stage plus re-checks) so each is counted once.
    pub fn new(targets: Vec<String>, retain_ms: i64, clock: Arc<dyn Clock>) -> ConsistencyBook {
        ConsistencyBook { tracker: Mutex::new(Tracker::new(retain_ms, 1_000_000)), targets, clock }
    }

    /// Records what one checked batch says about the jobs' goods: every target found
    /// consistent for a job with a known change (`origin_ms`) counts that change's
    /// time-to-consistency (once); drift of a goods whose jobs carry no change counts as
    /// "age unknown".
    pub fn record<'a>(&self, jobs: impl IntoIterator<Item = &'a Job>, report: &Report) {
        let now = self.clock.now_ms();
        let mut tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
        let mut unknown_seen = std::collections::HashSet::new();
        for job in jobs {
            let trigger = job.trigger.as_str();
            for target in &self.targets {
                let f = finding(report, job.goods_id, target);
                if job.origin_ms > 0 {
                    if f.consistent {
                        if let Some(ttc) = tracker.consistent(job.goods_id, job.origin_ms, target, now) {
                            metrics::histogram!(TIME_TO_CONSISTENCY, "target" => target.clone(), "trigger" => trigger)
                                .record(ttc as f64);
                        }
                    }
                } else if f.drifted && unknown_seen.insert((job.goods_id, target.as_str())) {
                    tracker.age_unknown(target, now);
                    metrics::counter!(DRIFT_AGE_UNKNOWN, "target" => target.clone(), "trigger" => trigger).increment(1);
                }
            }
        }
    }

    /// Per target, the last hour's and day's figures.
    pub fn figures(&self) -> Value {
        let now = self.clock.now_ms();
        let tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
        let targets: serde_json::Map<String, Value> = self
            .targets
            .iter()
            .map(|t| (t.clone(), json!({"hour": tracker.window(t, now, HOUR_MS), "day": tracker.window(t, now, DAY_MS)})))
            .collect();
        json!({"now_ms": now, "thresholds": model::consistency::THRESHOLD_LABELS, "targets": targets})
    }
}

/// `GET /consistency`.
pub fn router(book: Arc<ConsistencyBook>) -> Router {
    Router::new().route("/consistency", get(consistency)).with_state(book)
}

async fn consistency(State(book): State<Arc<ConsistencyBook>>) -> Json<Value> {
    Json(book.figures())
}
