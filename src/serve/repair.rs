//! `POST /repair`, the on-call path. Operator repairs run directly on the handler, not
//! through the job bus, so they never wait behind bulk work; each judges its own run's
//! drift ratio.
//!
//! Every request is a run of the ledger (source `repair:activity:ID` or
//! `repair:goods:COUNT`, a *local* run: see `common::mysql::ledger`). A small repair
//! answers its report once done (200, or 503 when a target was unreachable), with its
//! `run_id`. A repair of an activity with more than `admin.repair_async_goods` goods
//! answers 202 at once, and one still running after `admin.repair_wait_ms` answers 202
//! then: `{"run_id", "state": "running", "goods", "follow": "/runs/ID"}`; the run goes
//! on in the background, heartbeating its progress into the ledger, and records its
//! totals there when it ends. A big run keeps only counts (its repairs are in the audit
//! log under its run id); an instance that dies mid-run leaves the run to be failed by
//! the supervisor once its lease expires.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::clock::now_ms;
use common::mysql::ledger::Ledger;
use handlers::jobs::{outcome, BatchResult};
use handlers::run::{run_activity, run_goods, CountOnly, RunError, RunOptions};
use handlers::{Handler, Mode};
use model::job::TriggerKind;
use model::report::Report;
use serde::Deserialize;

use super::admin::{authorized, error, AdminState};

/// A local run renews its ledger lease this often; the lease lasts three beats.
const HEARTBEAT: Duration = Duration::from_secs(2);
const LEASE_MS: i64 = 3 * HEARTBEAT.as_millis() as i64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepairRequest {
    activity_id: Option<u64>,
    goods_ids: Option<Vec<u64>>,
}

enum Target {
    Activity(u64),
    Goods(Vec<u64>),
}

pub async fn repair(State(state): State<Arc<AdminState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let request: RepairRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body must be {{\"activity_id\": N}} or {{\"goods_ids\": [..]}}: {e}"),
            )
        }
    };
    let what = match (request.activity_id, request.goods_ids) {
        (Some(a), None) => Target::Activity(a),
        (None, Some(mut ids)) if !ids.is_empty() && ids.iter().all(|&g| g > 0) => {
            ids.sort_unstable();
            ids.dedup();
            Target::Goods(ids)
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of activity_id or a non-empty goods_ids of positive ids",
            )
        }
    };
    let cap = state.repair_async_goods;
    let (source, goods) = match &what {
        Target::Activity(a) => {
            match state.handler.truth().activity_exists(*a).await {
                Ok(true) => {}
                Ok(false) => return error(StatusCode::NOT_FOUND, RunError::UnknownActivity(*a).to_string()),
                Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            }
            match common::mysql::pager::count_activity_goods(state.handler.truth().pools(), *a, cap).await {
                Ok(n) => (format!("repair:activity:{a}"), n),
                Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("counting the activity's goods: {e}")),
            }
        }
        Target::Goods(ids) => (format!("repair:goods:{}", ids.len()), ids.len() as u64),
    };
    let big = goods > cap;
    let run_id = crate::app::run_id("admin-repair");
    let create = || state.ledger.create_local(&run_id, &source, goods, &state.instance, now_ms(), LEASE_MS);
    if create().await.is_err() {
        // The ledger's tables may not exist yet on a fresh database.
        let again = match Ledger::ensure_tables(state.handler.truth().pools()).await {
            Ok(()) => create().await,
            Err(e) => Err(e),
        };
        if let Err(e) = again {
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("recording the run in the ledger: {e}"));
        }
    }
    // Exact for a list, and for an activity below the threshold; else the run counts.
    let known = (!big || matches!(what, Target::Goods(_))).then_some(goods);
    let mut task = tokio::spawn(local_run(state.clone(), what, run_id.clone(), known, big));
    let wait = Duration::from_millis(state.repair_wait_ms);
    if !big && !wait.is_zero() {
        if let Ok(joined) = tokio::time::timeout(wait, &mut task).await {
            return match joined {
                Ok(Ok(report)) => answer(report, &run_id),
                Ok(Err(e @ RunError::UnknownActivity(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
                Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("the repair task failed: {e}")),
            };
        }
    }
    tracing::info!(run_id, source, goods, "operator repair goes on in the background");
    let mut body = serde_json::json!({
        "run_id": run_id,
        "state": "running",
        "source": source,
        "goods": goods,
        "follow": format!("/runs/{run_id}"),
    });
    if big {
        // Counted only up to the threshold here; the run counts them all and records it.
        body["goods"] = serde_json::Value::Null;
        body["goods_more_than"] = cap.into();
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// The report as the contract's JSON, with the run id.
fn answer(report: Report, run_id: &str) -> Response {
    let status = if report.unreachable.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    body["run_id"] = run_id.into();
    (status, Json(body)).into_response()
}

/// Runs the repair, heartbeating its progress into the ledger, and records its outcome
/// there when it ends. `known`: its goods when counted exactly (else the run counts
/// them); `big`: keep counts, not entries.
async fn local_run(
    state: Arc<AdminState>,
    what: Target,
    run_id: String,
    known: Option<u64>,
    big: bool,
) -> Result<Report, RunError> {
    let checked = Arc::new(AtomicU64::new(0));
    let seen = checked.clone();
    let opts = RunOptions {
        progress: Some(Arc::new(move |p: &handlers::run::Progress| seen.store(p.checked, Ordering::Relaxed))),
        entries: big.then(|| Arc::new(CountOnly) as Arc<dyn handlers::run::EntrySink>),
        ..state.run_options.clone()
    };
    let goods = Arc::new(AtomicU64::new(known.unwrap_or(0)));
    let beat = tokio::spawn(heartbeat(state.clone(), run_id.clone(), goods.clone(), checked.clone()));
    if let (Target::Activity(a), None) = (&what, known) {
        match common::mysql::pager::count_activity_goods(state.handler.truth().pools(), *a, u64::MAX).await {
            Ok(n) => goods.store(n, Ordering::Relaxed),
            Err(e) => tracing::warn!(run_id, error = %e, "counting the activity's goods failed; progress unknown"),
        }
    }
    let result = run(&state.handler, what, &run_id, &opts).await;
    beat.abort();
    let _ = beat.await;
    let ledger = &state.ledger;
    let now = now_ms();
    let recorded = match &result {
        Ok(report) => {
            let at = (goods.load(Ordering::Relaxed), report.checked);
            let _ = ledger.heartbeat_local(&run_id, &state.instance, at, now, LEASE_MS).await;
            let mut batch = BatchResult { report: report.clone(), orphans: 0 };
            ledger.record(&run_id, "local", &outcome(&mut batch, &state.instance), now).await.map(|_| ())
        }
        Err(e) => ledger.fail(&run_id, &e.to_string(), now).await,
    };
    if let Err(e) = recorded {
        tracing::warn!(run_id, error = %e, "the operator repair's outcome could not be recorded in the ledger");
    }
    result
}

async fn run(handler: &Arc<Handler>, what: Target, run_id: &str, opts: &RunOptions) -> Result<Report, RunError> {
    let mode = Mode::repair(TriggerKind::Operator, run_id.to_string());
    match what {
        Target::Activity(a) => run_activity(handler, a, &mode, opts).await,
        Target::Goods(ids) => run_goods(handler, &ids, &mode, opts).await,
    }
}

async fn heartbeat(state: Arc<AdminState>, run_id: String, goods: Arc<AtomicU64>, checked: Arc<AtomicU64>) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let at = (goods.load(Ordering::Relaxed), checked.load(Ordering::Relaxed));
        if let Err(e) = state.ledger.heartbeat_local(&run_id, &state.instance, at, now_ms(), LEASE_MS).await {
            tracing::warn!(run_id, error = %e, "operator repair heartbeat failed");
        }
    }
}
