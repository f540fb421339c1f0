//! Admin HTTP: `/healthz`, `/metrics` (Prometheus), `POST /repair` (the on-call path,
//! in `repair.rs`), the run ledger (`GET /runs`, `GET /runs/{id}`) and the blast-radius
//! breaker (`GET /breaker`, `POST /breaker/reset`).
//!
//! `/healthz` answers 503 with the problems while a handler worker is dead (it is being
//! restarted) or the job consumer has not polled its broker for
//! `admin.consumer_stall_ms`. With `admin.token` set, every POST needs
//! `Authorization: Bearer <token>`, compared in constant time; a listener that is not
//! loopback without a token is warned about loudly at start.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use handlers::run::RunOptions;
use handlers::Handler;
use serde::Deserialize;

use metrics_exporter_prometheus::PrometheusHandle;

pub struct AdminState {
    pub handler: Arc<Handler>,
    pub prometheus: PrometheusHandle,
    pub token: Option<String>,
    pub run_options: RunOptions,
    pub health: Arc<super::health::Health>,
    /// The run ledger (`GET /runs`, `GET /runs/{id}`, operator repair runs).
    pub ledger: common::mysql::ledger::Ledger,
    /// This instance, as the lease owner of its operator repair runs.
    pub instance: String,
    /// `admin.repair_async_goods` and `admin.repair_wait_ms`.
    pub repair_async_goods: u64,
    pub repair_wait_ms: u64,
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/repair", post(super::repair::repair))
        .route("/breaker", get(breaker))
        .route("/breaker/reset", post(breaker_reset))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .with_state(state)
}

/// Logs a loud warning when the admin listener is reachable from other hosts and no
/// token protects its POST endpoints. Returns whether it warned.
pub fn warn_if_exposed(admin: &model::config::AdminConfig) -> bool {
    let loopback = admin.listen.parse::<std::net::SocketAddr>().map(|a| a.ip().is_loopback()).unwrap_or(false);
    if loopback || admin.token.is_some() {
        return false;
    }
    tracing::warn!(
        listen = %admin.listen,
        "SECURITY: admin.listen is not a loopback address and admin.token is not set: anyone who can reach it can trigger repairs and reset the blast-radius breaker; set admin.token (or RECONCILER_ADMIN_TOKEN)"
    );
    true
}

/// Equal, in time that depends only on the lengths (the token's length is not secret
/// enough to matter; its bytes are).
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = (given.len() != expected.len()) as u8;
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    diff == 0
}

pub(super) fn authorized(state: &AdminState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.token else { return true };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// `GET /runs`: the recent distributed full runs, newest first (as `runs --json`).
async fn runs(State(state): State<Arc<AdminState>>) -> Response {
    let now = common::clock::now_ms();
    match state.ledger.list(50).await {
        Ok(runs) => Json(serde_json::Value::Array(runs.iter().map(|r| r.to_json(now)).collect())).into_response(),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
    }
}

/// `GET /runs/{id}`: one run with its progress and ETA (as `runs RUN_ID --json`).
async fn run(State(state): State<Arc<AdminState>>, axum::extract::Path(id): axum::extract::Path<String>) -> Response {
    match state.ledger.get(&id).await {
        Ok(Some(r)) => Json(r.to_json(common::clock::now_ms())).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": format!("no run `{id}`") }))).into_response()
        }
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
    }
}

async fn healthz(State(state): State<Arc<AdminState>>) -> Response {
    let readiness = state.health.readiness();
    let status = if readiness.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness)).into_response()
}

async fn breaker(State(state): State<Arc<AdminState>>) -> Response {
    Json(serde_json::json!({"targets": state.handler.breaker().states()})).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    target: Option<String>,
}

async fn breaker_reset(State(state): State<Arc<AdminState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let request: ResetRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResetRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error(StatusCode::BAD_REQUEST, format!("body must be empty or {{\"target\": NAME}}: {e}"))
            }
        }
    };
    if let Some(t) = &request.target {
        if !state.handler.targets().iter().any(|x| x.name() == t) {
            return error(StatusCode::NOT_FOUND, format!("no target named `{t}`"));
        }
    }
    let reset = state.handler.breaker().reset(request.target.as_deref());
    Json(serde_json::json!({"reset": reset, "targets": state.handler.breaker().states()})).into_response()
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.prometheus.render())
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"sekret", b"sekret"));
        for wrong in [&b""[..], b"sekre", b"sekret!", b"Sekret", b"sekreu"] {
            assert!(!constant_time_eq(wrong, b"sekret"), "{wrong:?}");
        }
    }

    #[test]
    fn an_exposed_listener_without_token_is_warned_about() {
        let mut admin = model::config::AdminConfig { listen: "0.0.0.0:9100".into(), ..Default::default() };
        assert!(warn_if_exposed(&admin));
        admin.token = Some("t".into());
        assert!(!warn_if_exposed(&admin));
        admin = model::config::AdminConfig { listen: "127.0.0.1:9100".into(), ..Default::default() };
        assert!(!warn_if_exposed(&admin));
        admin.listen = "[::1]:9100".into();
        assert!(!warn_if_exposed(&admin));
    }
}
