//! Admin HTTP: `/healthz`, `/metrics` (Prometheus) and `POST /repair`, the on-call path.
//! Operator repairs run directly on the handler, not through the job bus, so they never
//! wait behind bulk work (the priority lane).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use handlers::run::{run_activity, run_goods, RunError, RunOptions};
use handlers::{Handler, Mode};
use model::job::TriggerKind;
use serde::Deserialize;

use metrics_exporter_prometheus::PrometheusHandle;

pub struct AdminState {
    pub handler: Arc<Handler>,
    pub prometheus: PrometheusHandle,
    pub token: Option<String>,
    pub run_options: RunOptions,
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/repair", post(repair))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.prometheus.render())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepairRequest {
    activity_id: Option<u64>,
    goods_ids: Option<Vec<u64>>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

async fn repair(State(state): State<Arc<AdminState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(token) = &state.token {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
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
    let mode = Mode::repair(TriggerKind::Operator, crate::app::run_id("admin-repair"));
    let result = match (request.activity_id, request.goods_ids) {
        (Some(a), None) => run_activity(&state.handler, a, &mode, &state.run_options).await,
        (None, Some(ids)) if !ids.is_empty() && ids.iter().all(|&g| g > 0) => {
            let mut ids = ids;
            ids.sort_unstable();
            ids.dedup();
            run_goods(&state.handler, &ids, &mode, &state.run_options).await
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of activity_id or a non-empty goods_ids of positive ids",
            )
        }
    };
    match result {
        Ok(report) => {
            let status = if report.unreachable.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            (status, Json(report)).into_response()
        }
        Err(e @ RunError::UnknownActivity(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
