//! `[key_activities]`: which activities get extra protection (denser DTS stages, the
//! priority lane, their own breaker and write cap, live sweeps) and how. Absent or with
//! no rule: no activity is key and nothing of this runs.
//!
//! ```toml
//! [key_activities]
//! refresh_secs = 30
//! stages_ms = [1000, 5000, 30000, 120000, 600000]
//! [[key_activities.rules]]          # key when every field given matches (any value of a list)
//! types = ["seckill"]
//! tags = ["618"]
//! [[key_activities.rules]]          # rules are alternatives
//! ids = [7001, 7002]
//! ```

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct KeyActivitiesConfig {
    /// An activity is key when any rule matches it.
    pub rules: Vec<KeyRuleConfig>,
    /// How often the activity table is re-read, so an activity created or tagged becomes
    /// key (and its goods are known) without a restart.
    pub refresh_secs: u64,
    /// Activities that ended longer ago than this are not read any more.
    pub ended_grace_secs: u64,
    /// DTS stages of a change touching a key activity's goods (instead of the topic's).
    pub stages_ms: Vec<u64>,
    /// Kafka topic of the priority lane: key jobs go here and are consumed ahead of bulk.
    pub priority_topic: String,
    /// Consumer group of the priority lane; empty: `kafka.group` + ".key".
    pub priority_group: String,
    /// The key lane's own blast-radius breaker threshold (share of drifted goods per
    /// target in the window) and write cap (repair writes per second, per process).
    pub max_drift_ratio: f64,
    pub max_repairs_per_sec: u32,
    /// Handler workers of the priority lane (besides `handler.workers`): key jobs never
    /// queue behind bulk work.
    pub workers: usize,
    pub sweep: SweepConfig,
}

impl Default for KeyActivitiesConfig {
    fn default() -> Self {
        KeyActivitiesConfig {
            rules: Vec::new(),
            refresh_secs: 30,
            ended_grace_secs: 3600,
            stages_ms: vec![1000, 5000, 30_000, 120_000, 600_000],
            priority_topic: "reconcile.jobs.key".into(),
            priority_group: String::new(),
            max_drift_ratio: 0.5,
            max_repairs_per_sec: 2000,
            workers: 2,
            sweep: SweepConfig::default(),
        }
    }
}

impl KeyActivitiesConfig {
    /// True when some rule is configured (the key machinery runs).
    pub fn enabled(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The priority lane's consumer group.
    pub fn priority_group_or(&self, kafka_group: &str) -> String {
        match self.priority_group.is_empty() {
            true => format!("{kafka_group}.key"),
            false => self.priority_group.clone(),
        }
    }
}

/// One rule: every non-empty field must match (an activity id in `ids`, its type in
/// `types`, one of its tags in `tags`, its business code in `biz_codes`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRuleConfig {
    #[serde(default)]
    pub ids: Vec<u64>,
    /// Type codes (2) or names (`discount`, `seckill`, `subsidy`, `member_price`).
    #[serde(default)]
    pub types: Vec<ActivityTypeRef>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub biz_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ActivityTypeRef {
    Code(i64),
    Name(String),
}

impl ActivityTypeRef {
    /// The `activity.type` code, or `None` for an unknown name.
    pub fn code(&self) -> Option<i64> {
        match self {
            ActivityTypeRef::Code(c) => Some(*c),
            ActivityTypeRef::Name(n) => crate::key::type_code(n),
        }
    }
}

/// Live sweeps: from `lead_secs` before a key activity starts until it ends, every goods
/// of the activity is re-checked every `interval_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SweepConfig {
    pub enabled: bool,
    pub lead_secs: u64,
    pub interval_secs: u64,
    /// Goods published per second, per shard table.
    pub goods_per_sec: u32,
    /// Goods per page (one query per shard table per page, one publish per page).
    pub page_size: u32,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig { enabled: true, lead_secs: 600, interval_secs: 60, goods_per_sec: 2000, page_size: 500 }
    }
}

pub(super) fn validate(k: &KeyActivitiesConfig, p: &mut Vec<String>) {
    for (i, r) in k.rules.iter().enumerate() {
        if r.ids.is_empty() && r.types.is_empty() && r.tags.is_empty() && r.biz_codes.is_empty() {
            p.push(format!("`key_activities.rules[{i}]`: give at least one of ids, types, tags, biz_codes"));
        }
        for t in &r.types {
            if let (ActivityTypeRef::Name(n), None) = (t, t.code()) {
                p.push(format!(
                    "`key_activities.rules[{i}].types`: `{n}` is not a type code or one of discount, seckill, subsidy, member_price"
                ));
            }
        }
        if r.tags.iter().chain(&r.biz_codes).any(|s| s.trim().is_empty() || s.contains(',')) {
            p.push(format!("`key_activities.rules[{i}]`: tags and biz_codes must be non-empty, without `,`"));
        }
    }
    if k.refresh_secs == 0 {
        p.push("`key_activities.refresh_secs`: must be at least 1".into());
    }
    if k.stages_ms.is_empty() || k.stages_ms.windows(2).any(|w| w[0] >= w[1]) {
        p.push("`key_activities.stages_ms`: at least one stage, increasing".into());
    }
    if k.priority_topic.trim().is_empty() {
        p.push("`key_activities.priority_topic`: must not be empty".into());
    }
    if !(k.max_drift_ratio > 0.0 && k.max_drift_ratio <= 1.0) {
        p.push(format!("`key_activities.max_drift_ratio`: {} is not in (0, 1]", k.max_drift_ratio));
    }
    if k.workers == 0 {
        p.push("`key_activities.workers`: must be at least 1".into());
    }
    if k.max_repairs_per_sec == 0 {
        p.push("`key_activities.max_repairs_per_sec`: must be at least 1".into());
    }
    let s = &k.sweep;
    if s.interval_secs == 0 || s.goods_per_sec == 0 || s.page_size == 0 {
        p.push("`key_activities.sweep`: interval_secs, goods_per_sec and page_size must be at least 1".into());
    }
}
