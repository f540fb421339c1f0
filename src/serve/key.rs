//! Key activities in `serve` (`[key_activities]`): the refresher and the live sweeper,
//! the priority lane (its own topic or queue, its own handler workers, a handler with the
//! key lane's breaker threshold and write cap), `GET /activities/{id}`: whether an
//! activity is key and when it was last swept (the CLI's `check|repair --activity` says
//! the same through [`activity_status`]), and the key lane's breaker: `GET
//! /breaker/key`, `POST /breaker/key/reset` (body empty or `{"target": NAME}`; with
//! `admin.token`, the bearer token as for every POST).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::mysql::MysqlPools;
use handlers::Handler;
use model::config::{BusKind, Config, RepairConfig};
use model::key::KeyRules;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use triggers::bus::kafka::job_consumer::KafkaJobConsumer;
use triggers::bus::kafka::publisher::KafkaPublisher;
use triggers::key::{LanePublisher, Refresher, SharedKeySet, Sweeper};
use triggers::JobPublisher;

use super::health::Health;
use super::worker::{self, WorkerSettings};

/// Whether an activity is key, and its sweeps.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ActivityKeyStatus {
    pub activity_id: u64,
    pub exists: bool,
    pub key: bool,
    /// `key_activities.rules[i]` that makes it key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// Online and within `[start - sweep.lead_secs, end]`.
    pub in_sweep_window: bool,
    /// When its last live sweep started (epoch ms).
    pub last_swept_ms: Option<i64>,
}

/// Reads the activity and its last sweep now (not from the refreshed set: an operator
/// sees a tag set a second ago).
pub async fn activity_status(
    pools: &MysqlPools,
    config: &Config,
    activity_id: u64,
) -> anyhow::Result<ActivityKeyStatus> {
    let row = triggers::key::refresh::read_activity(pools, activity_id).await.context("reading the activity")?;
    let rules = KeyRules::from_config(&config.key_activities);
    let rule = row.as_ref().filter(|a| a.status != 3).and_then(|a| rules.matched_by(a));
    let lead_ms = (config.key_activities.sweep.lead_secs as i64).saturating_mul(1000);
    let in_sweep_window = match (&row, rule) {
        (Some(meta), Some(rule)) => {
            model::key::KeyActivity { meta: meta.clone(), rule }.in_sweep_window(common::clock::now_ms(), lead_ms)
        }
        _ => false,
    };
    Ok(ActivityKeyStatus {
        activity_id,
        exists: row.is_some(),
        key: rule.is_some(),
        rule,
        in_sweep_window,
        last_swept_ms: triggers::key::last_swept(pools, activity_id).await.context("reading the last sweep")?,
    })
}

/// One line for an operator.
pub fn describe(s: &ActivityKeyStatus) -> String {
    let swept = match s.last_swept_ms {
        Some(ms) => {
            format!("last swept at {ms} (epoch ms, {} s ago)", common::clock::now_ms().saturating_sub(ms).max(0) / 1000)
        }
        None => "never swept".into(),
    };
    match (s.exists, s.rule) {
        (false, _) => format!("activity {}: no such activity", s.activity_id),
        (true, Some(rule)) => format!(
            "activity {}: key activity (key_activities.rules[{rule}]){}, {swept}",
            s.activity_id,
            if s.in_sweep_window { ", in its live-sweep window" } else { "" }
        ),
        (true, None) => format!("activity {}: not a key activity, {swept}", s.activity_id),
    }
}

/// The key lane's handler: the same truth, targets and audit log, its own breaker and
/// write cap (`key_activities.max_drift_ratio`, `max_repairs_per_sec`).
pub fn key_handler(handler: &Handler, config: &Config) -> Handler {
    let repair = RepairConfig {
        max_drift_ratio: config.key_activities.max_drift_ratio,
        max_repairs_per_sec: config.key_activities.max_repairs_per_sec,
        ..config.repair.clone()
    };
    Handler::new(handler.truth().clone(), handler.targets().to_vec(), handler.audit().clone(), repair)
}

/// The running key machinery.
pub struct KeyLane {
    /// Publish through this: key jobs take the priority lane.
    pub publisher: Arc<dyn JobPublisher>,
    pub keys: SharedKeySet,
    /// Refresher and sweeper.
    pub triggers: Vec<JoinHandle<()>>,
    /// The priority lane's handler workers.
    pub workers: JoinHandle<()>,
}

/// Starts the priority lane on `key_handler` (see [`key_handler`]), the refresher and the
/// sweeper; `None` without key rules.
pub async fn start(
    config: &Config,
    key_handler: Arc<Handler>,
    pools: &MysqlPools,
    bulk: Arc<dyn JobPublisher>,
    settings: &WorkerSettings,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<KeyLane>> {
    let k = &config.key_activities;
    if !k.enabled() {
        return Ok(None);
    }
    let settings = WorkerSettings { workers: k.workers, ..settings.clone() };
    let health = Arc::new(Health::new(k.workers, config.admin.consumer_stall_ms, common::clock::system()));
    let rx = shutdown.clone();
    let (lane, workers): (Arc<dyn JobPublisher>, JoinHandle<()>) = match config.bus.kind {
        BusKind::Embedded => {
            let (publisher, consumer) = triggers::bus::embedded::channel(config.bus.queue_capacity);
            let task = tokio::spawn(async move {
                worker::run(key_handler, consumer, settings, rx, health).await;
            });
            (Arc::new(publisher), task)
        }
        BusKind::Kafka => {
            let kc = &config.kafka;
            triggers::bus::kafka::admin::ensure_topics_for(kc, &[&k.priority_topic]).await?;
            let extra: Vec<(&str, &str)> = kc.producer_config.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let publisher = KafkaPublisher::with_config(&kc.brokers, &k.priority_topic, &extra)?;
            let consumer = KafkaJobConsumer::new(
                &kc.brokers,
                &k.priority_group_or(&kc.group),
                &k.priority_topic,
                &kc.dead_letter_topic,
                super::source_options(config),
            )?
            .with_recheck_publisher(publisher.clone());
            let task = tokio::spawn(async move {
                let consumer = worker::run(key_handler, consumer, settings, rx, health).await;
                consumer.shutdown().await;
            });
            (Arc::new(publisher), task)
        }
    };
    let publisher: Arc<dyn JobPublisher> = Arc::new(LanePublisher::new(bulk, lane));
    let refresher = Refresher::new(pools.clone(), k);
    let keys = refresher.keys();
    if let Err(e) = refresher.refresh(common::clock::now_ms()).await {
        tracing::warn!(error = %e, "key activities not read at start; retrying every refresh_secs");
    }
    let mut triggers = vec![tokio::spawn(refresher.run(super::stopped(shutdown.clone())))];
    if k.sweep.enabled {
        let sweeper = Sweeper::new(pools.clone(), keys.clone(), publisher.clone(), k.sweep.clone()).await?;
        triggers.push(tokio::spawn(sweeper.run(Duration::from_secs(5), super::stopped(shutdown))));
    }
    tracing::info!(rules = k.rules.len(), topic = %k.priority_topic, "key activities: priority lane, refresher and sweeper started");
    Ok(Some(KeyLane { publisher, keys, triggers, workers }))
}

#[derive(Clone)]
struct AdminKeyState {
    pools: MysqlPools,
    config: Arc<Config>,
    key_handler: Option<Arc<Handler>>,
}

/// `GET /activities/{id}`, and with a key lane (`key_handler`) its breaker.
pub fn router(pools: MysqlPools, config: Arc<Config>, key_handler: Option<Arc<Handler>>) -> Router {
    Router::new()
        .route("/activities/{id}", get(activity))
        .route("/breaker/key", get(breaker))
        .route("/breaker/key/reset", post(breaker_reset))
        .with_state(AdminKeyState { pools, config, key_handler })
}

async fn breaker(State(state): State<AdminKeyState>) -> Response {
    match &state.key_handler {
        Some(h) => Json(serde_json::json!({"targets": h.breaker().states()})).into_response(),
        None => (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no [key_activities] rule: no key lane"})))
            .into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    target: Option<String>,
}

async fn breaker_reset(State(state): State<AdminKeyState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let fail = |code: StatusCode, why: String| (code, Json(serde_json::json!({"error": why}))).into_response();
    if let Some(token) = &state.config.admin.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !super::admin::constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return fail(StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into());
        }
    }
    let Some(h) = &state.key_handler else {
        return fail(StatusCode::NOT_FOUND, "no [key_activities] rule: no key lane".into());
    };
    let request: ResetRequest = match body.iter().all(u8::is_ascii_whitespace) {
        true => ResetRequest::default(),
        false => match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return fail(StatusCode::BAD_REQUEST, format!("body must be empty or {{\"target\": NAME}}: {e}")),
        },
    };
    if let Some(t) = &request.target {
        if !h.targets().iter().any(|x| x.name() == t) {
            return fail(StatusCode::NOT_FOUND, format!("no target named `{t}`"));
        }
    }
    let reset = h.breaker().reset(request.target.as_deref());
    Json(serde_json::json!({"reset": reset, "targets": h.breaker().states()})).into_response()
}

async fn activity(State(AdminKeyState { pools, config, .. }): State<AdminKeyState>, Path(id): Path<u64>) -> Response {
    match activity_status(&pools, &config, id).await {
        Ok(s) if !s.exists => (StatusCode::NOT_FOUND, Json(s)).into_response(),
        Ok(s) => Json(s).into_response(),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"error": format!("{e:#}")}))).into_response()
        }
    }
}
