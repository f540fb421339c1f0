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
use model::consistency::{Findings, Tracker};
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
        let findings = Findings::of(report);
        for job in jobs {
            let trigger = job.trigger.as_str();
            for target in &self.targets {
                let f = findings.get(job.goods_id, target);
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
            .map(|t| {
                (t.clone(), json!({"hour": tracker.window(t, now, HOUR_MS), "day": tracker.window(t, now, DAY_MS)}))
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use common::clock::TokioClock;
    use model::diff::DriftKind;
    use model::job::TriggerKind;
    use model::report::{DeferredEntry, DriftEntry, RepairEntry};
    use std::time::Duration;

    fn job(goods: u64, origin: i64) -> Job {
        let mut j = Job::new(goods, TriggerKind::Dts, format!("j{goods}"));
        j.origin_ms = origin;
        j
    }

    fn drift(goods: u64, target: &str) -> DriftEntry {
        DriftEntry {
            goods_id: goods,
            target: target.into(),
            activity_id: Some(1),
            kind: DriftKind::Stale,
            fields: None,
        }
    }

    fn repair(goods: u64, target: &str) -> RepairEntry {
        RepairEntry {
            goods_id: goods,
            target: target.into(),
            activity_id: Some(1),
            kind: DriftKind::Stale,
            repair_id: Some(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn counts_each_change_at_its_first_consistent_check_per_target() {
        let base = 1_781_700_000_000;
        let book =
            ConsistencyBook::new(vec!["a".into(), "b".into()], 3_600_000, Arc::new(TokioClock::starting_at(base)));
        // Stage 0, 3 s after the change: `a` repaired, `b` deferred.
        tokio::time::advance(Duration::from_secs(3)).await;
        let first = Report {
            drift: vec![drift(7, "a"), drift(7, "b")],
            repairs: vec![repair(7, "a")],
            deferred: vec![DeferredEntry { goods_id: 7, target: "b".into(), reason: "settle".into() }],
            ..Default::default()
        };
        book.record([&job(7, base)], &first);
        // Stage 1, 30 s after: both equal.
        tokio::time::advance(Duration::from_secs(27)).await;
        book.record([&job(7, base)], &Report::default());
        // A full run's drift: age unknown.
        let full = Report { drift: vec![drift(8, "b")], repairs: vec![repair(8, "b")], ..Default::default() };
        book.record([&job(8, 0)], &full);
        let f = book.figures();
        let (a, b) = (&f["targets"]["a"]["hour"], &f["targets"]["b"]["hour"]);
        assert_eq!(
            (a["changes"].as_u64(), a["within"]["10s"].as_u64(), a["max_ms"].as_i64()),
            (Some(1), Some(1), Some(3000))
        );
        assert_eq!(
            (b["changes"].as_u64(), b["within"]["10s"].as_u64(), b["within"]["1m"].as_u64()),
            (Some(1), Some(0), Some(1))
        );
        assert_eq!(b["max_ms"], 30_000);
        assert_eq!((a["age_unknown"].as_u64(), b["age_unknown"].as_u64()), (Some(0), Some(1)));
        // An hour and a bit later the hour is empty, the day still counts them.
        tokio::time::advance(Duration::from_secs(3700)).await;
        let f = book.figures();
        assert_eq!(f["targets"]["b"]["hour"]["changes"], 0);
        assert_eq!(f["targets"]["b"]["day"]["changes"], 1);
        assert_eq!(f["targets"]["b"]["day"]["age_unknown"], 1);
    }
}
