//! The check-job message that triggers publish and handlers consume (version 1).
//!
//! Wire form: one compact JSON object per Kafka message, keyed by the decimal goods id so
//! one goods is always handled by one consumer at a time:
//!
//! ```json
//! {"v":1,"job_id":"dts-canal.activity-3-1042-0","goods_id":1001,"trigger":"dts",
//!  "stage":0,"not_before_ms":1781700003123,"origin_ms":1781700000123}
//! ```
//!
//! A consumer rejects (dead-letters) a message whose `v` it does not know; fields may be
//! added within a version and unknown fields are ignored, so producers can roll first.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::GoodsId;

pub const JOB_VERSION: u32 = 1;

/// Which part of the system asked for the check, for metrics and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    /// A MySQL change event, checked after a stage delay.
    Dts,
    /// The recent-change scanner.
    Scanner,
    /// A scheduled or operator-started full reconciliation.
    Full,
    /// An operator (CLI `repair`, admin `POST /repair`).
    Operator,
    /// The price verifier: a pricing sample was wrong because its source target drifted.
    Verifier,
    /// A live sweep of a key activity (`triggers::key::sweep`).
    Sweep,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Dts => "dts",
            TriggerKind::Scanner => "scanner",
            TriggerKind::Full => "full",
            TriggerKind::Operator => "operator",
            TriggerKind::Verifier => "verifier",
            TriggerKind::Sweep => "sweep",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Message version, [`JOB_VERSION`].
    pub v: u32,
    /// Unique per job; repeated deliveries of one job carry the same id.
    pub job_id: String,
    pub goods_id: GoodsId,
    pub trigger: TriggerKind,
    /// Index into the trigger's stage list (0 for triggers without stages).
    #[serde(default)]
    pub stage: u32,
    /// Do not check before this time (epoch ms): the stage delay after the change.
    #[serde(default)]
    pub not_before_ms: i64,
    /// When the change that caused the job happened (epoch ms), for change-to-repair
    /// latency; 0 when unknown.
    #[serde(default)]
    pub origin_ms: i64,
    /// How many times this check was already put back on the bus because its repair was
    /// deferred (settle window, compare-and-set conflict) or its goods could not be
    /// checked; past the retry bound the job is dead-lettered. Absent: 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rechecks: u32,
    /// The goods belongs to a key activity: the job travels the priority lane and is
    /// handled under the key lane's breaker and write cap. Absent: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Error)]
pub enum JobDecodeError {
    #[error("job message is not valid JSON of the job shape: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("job message version {0} is not supported (this build reads version {JOB_VERSION})")]
    UnsupportedVersion(u32),
}

impl Job {
    pub fn new(goods_id: GoodsId, trigger: TriggerKind, job_id: String) -> Job {
        Job {
            v: JOB_VERSION,
            job_id,
            goods_id,
            trigger,
            stage: 0,
            not_before_ms: 0,
            origin_ms: 0,
            rechecks: 0,
            key: false,
        }
    }

    pub fn key(&self) -> String {
        self.goods_id.to_string()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("job serialization cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Job, JobDecodeError> {
        let job: Job = serde_json::from_slice(bytes)?;
        if job.v != JOB_VERSION {
            return Err(JobDecodeError::UnsupportedVersion(job.v));
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_unknown_fields() {
        let mut job = Job::new(1001, TriggerKind::Dts, "j1".into());
        job.stage = 2;
        job.not_before_ms = 5;
        assert_eq!(Job::decode(&job.encode()).unwrap(), job);
        let newer = br#"{"v":1,"job_id":"j","goods_id":7,"trigger":"scanner","future":true}"#;
        assert_eq!(Job::decode(newer).unwrap().goods_id, 7);
    }

    #[test]
    fn rechecks_are_on_the_wire_only_when_set() {
        let mut job = Job::new(7, TriggerKind::Dts, "j".into());
        assert!(!String::from_utf8(job.encode()).unwrap().contains("rechecks"), "older consumers see the same JSON");
        job.rechecks = 3;
        assert_eq!(Job::decode(&job.encode()).unwrap().rechecks, 3);
        assert_eq!(Job::decode(br#"{"v":1,"job_id":"j","goods_id":7,"trigger":"dts"}"#).unwrap().rechecks, 0);
    }

    #[test]
    fn the_key_lane_is_on_the_wire_only_when_set() {
        let mut job = Job::new(7, TriggerKind::Sweep, "j".into());
        assert!(!String::from_utf8(job.encode()).unwrap().contains("key"));
        job.key = true;
        assert!(Job::decode(&job.encode()).unwrap().key);
        assert!(String::from_utf8(job.encode()).unwrap().contains(r#""trigger":"sweep""#));
    }

    #[test]
    fn rejects_other_versions_and_garbage() {
        assert!(matches!(
            Job::decode(br#"{"v":2,"job_id":"j","goods_id":7,"trigger":"dts"}"#),
            Err(JobDecodeError::UnsupportedVersion(2))
        ));
        assert!(matches!(Job::decode(b"{"), Err(JobDecodeError::Malformed(_))));
    }
}
