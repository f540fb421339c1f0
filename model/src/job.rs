//! The check-job message that triggers publish and handlers consume (versions 1 and 2).
//!
//! Wire form: one compact JSON object per Kafka message, or a bundle of version 1 jobs (a
//! JSON array: see [`encode_bundle`]).
//!
//! **Version 1** checks one goods, keyed by the goods' bucket `b<goods_id % 1024>` so one
//! goods is always handled by one consumer at a time:
//!
//! ```json
//! {"v":1,"job_id":"dts-canal.activity-3-1042-0","goods_id":1001,"trigger":"dts",
//!  "stage":0,"not_before_ms":1781700003123,"origin_ms":1781700000123}
//! ```
//!
//! **Version 2** is a batch job of a distributed full run (`reconciler full --via-bus`,
//! scheduled runs in `serve`): the `batch` object names the run and one piece of work.
//! `goods_id` is 0 and `trigger` is `full`; the job id is deterministic (the same piece of
//! the same run always has the same id), so the run ledger counts each piece once however
//! often it is published or delivered.
//!
//! ```json
//! {"v":2,"job_id":"run-1-r3-1000","goods_id":0,"trigger":"full",
//!  "batch":{"run_id":"run-1","kind":"range","shard":3,"lo":1000,"hi":1999}}
//! {"v":2,"job_id":"run-1-i17","goods_id":0,"trigger":"full",
//!  "batch":{"run_id":"run-1","kind":"ids","seq":17,"ids":[1001,1002]}}
//! {"v":2,"job_id":"run-1-o-hbase-a-5","goods_id":0,"trigger":"full",
//!  "batch":{"run_id":"run-1","kind":"orphan_scan","target":"hbase-a","part":5,"parts":16}}
//! ```
//!
//! - `range`: every goods of shard `shard` with `lo <= goods_id <= hi` (the publisher's
//!   keyset page); the handler lists them again when it takes the job.
//! - `ids`: a batch of goods ids from a dump (`seq` = the batch's index in the dump).
//! - `orphan_scan`: part `part` of `parts` of a target's keys: on HBase the row-key prefix
//!   range `[part * 65536 / parts, (part + 1) * 65536 / parts)` of `0000`..`ffff` (the md5
//!   prefix spreads rows evenly); on Redis one part per node. Goods found there without
//!   truth are checked (orphans).
//!
//! A consumer rejects (dead-letters) a message whose `v` it does not know (a version 1
//! consumer dead-letters batch jobs); fields may be added within a version and unknown
//! fields are ignored, so producers can roll first.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::GoodsId;

/// Version of single-goods jobs.
pub const JOB_VERSION: u32 = 1;
/// Version of batch jobs (a piece of a distributed full run).
pub const BATCH_JOB_VERSION: u32 = 2;

/// One piece of a distributed full run (version 2 jobs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchJob {
    pub run_id: String,
    #[serde(flatten)]
    pub work: Work,
}

/// What a batch job checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// Goods of one shard with `lo <= goods_id <= hi`.
    Range { shard: u32, lo: GoodsId, hi: GoodsId },
    /// Goods ids of a dump; `seq` is the batch's index in the dump.
    Ids { seq: u64, ids: Vec<GoodsId> },
    /// Part `part` of `parts` of a target's keys, for goods without truth.
    OrphanScan { target: String, part: u32, parts: u32 },
}

/// The row-key prefix range `[lo, hi)` (of `0x0000..0x10000`) of HBase orphan-scan part
/// `part` of `parts`.
pub fn prefix_range(part: u32, parts: u32) -> (u32, u32) {
    let parts = parts.clamp(1, 65536) as u64;
    let part = (part as u64).min(parts - 1);
    ((part * 65536 / parts) as u32, ((part + 1) * 65536 / parts) as u32)
}

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
    /// Version 2 only: the piece of a full run this job checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchJob>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Error)]
pub enum JobDecodeError {
    #[error("job message is not valid JSON of the job shape: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(
        "job message version {0} is not supported (this build reads versions {JOB_VERSION} and {BATCH_JOB_VERSION})"
    )]
    UnsupportedVersion(u32),
    #[error("job message version {0} {1}")]
    Inconsistent(u32, &'static str),
    #[error("job bundle is empty")]
    EmptyBundle,
    #[error("a job bundle may not hold another bundle")]
    NestedBundle,
    #[error("job {0} of the bundle: {1}")]
    InBundle(usize, Box<JobDecodeError>),
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
            batch: None,
        }
    }

    /// A version 2 job: one piece of full run `run_id`, with its deterministic id.
    pub fn batch(run_id: &str, work: Work) -> Job {
        let job_id = match &work {
            Work::Range { shard, lo, .. } => format!("{run_id}-r{shard}-{lo}"),
            Work::Ids { seq, .. } => format!("{run_id}-i{seq}"),
            Work::OrphanScan { target, part, .. } => format!("{run_id}-o-{target}-{part}"),
        };
        Job {
            v: BATCH_JOB_VERSION,
            job_id,
            goods_id: 0,
            trigger: TriggerKind::Full,
            stage: 0,
            not_before_ms: 0,
            origin_ms: 0,
            rechecks: 0,
            key: false,
            batch: Some(BatchJob { run_id: run_id.to_string(), work }),
        }
    }

    /// The message key: the goods' bucket ([`bucket_key`]), so every job of one goods,
    /// single or bundled, lands on one partition; for a batch job its id, so the pieces
    /// of a run hash over every partition of the topic.
    pub fn key(&self) -> String {
        match &self.batch {
            Some(_) => self.job_id.clone(),
            None => bucket_key(self.goods_id),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("job serialization cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Job, JobDecodeError> {
        let job: Job = serde_json::from_slice(bytes)?;
        match (job.v, job.batch.is_some()) {
            (JOB_VERSION, false) | (BATCH_JOB_VERSION, true) => Ok(job),
            (JOB_VERSION, true) => Err(JobDecodeError::Inconsistent(job.v, "carries a `batch` (a version 2 field)")),
            (BATCH_JOB_VERSION, false) => Err(JobDecodeError::Inconsistent(job.v, "has no `batch`")),
            (v, _) => Err(JobDecodeError::UnsupportedVersion(v)),
        }
    }
}

/// Jobs in one bundle record at most (see [`encode_bundle`]).
pub const BUNDLE_MAX: usize = 256;

/// Partition-key buckets of single-goods jobs: a goods always falls in the same bucket,
/// so all its jobs (single or bundled) go to one partition.
pub const KEY_BUCKETS: u64 = 1024;

/// The Kafka key of a single-goods job or of a bundle of goods of one bucket:
/// `b<goods_id % KEY_BUCKETS>`.
pub fn bucket_key(goods_id: GoodsId) -> String {
    format!("b{}", goods_id % KEY_BUCKETS)
}

/// A bundle: several jobs in one Kafka record, as a JSON array of job objects. The
/// publisher bundles the single-goods jobs it is given within a few milliseconds whose
/// buckets go to one partition, so a stream of changes costs the broker one record per
/// bundle instead of one per goods.
pub fn encode_bundle(jobs: &[Job]) -> Vec<u8> {
    serde_json::to_vec(jobs).expect("job serialization cannot fail")
}

/// Decodes one record of the jobs topic: a job object, or a bundle (a JSON array of job
/// objects, none of them itself an array). Every job of a bundle must decode, else the
/// record is rejected whole (naming the position of the bad job).
pub fn decode_record(bytes: &[u8]) -> Result<Vec<Job>, JobDecodeError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'[') {
        return Job::decode(bytes).map(|j| vec![j]);
    }
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(bytes)?;
    if items.is_empty() {
        return Err(JobDecodeError::EmptyBundle);
    }
    items
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            if raw.get().trim_start().starts_with('[') {
                return Err(JobDecodeError::InBundle(i, Box::new(JobDecodeError::NestedBundle)));
            }
            Job::decode(raw.get().as_bytes()).map_err(|e| JobDecodeError::InBundle(i, Box::new(e)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_round_trip_and_singles_still_decode() {
        let jobs: Vec<Job> = (0..3).map(|i| Job::new(7 + i * KEY_BUCKETS, TriggerKind::Dts, format!("j{i}"))).collect();
        assert_eq!(decode_record(&encode_bundle(&jobs)).unwrap(), jobs);
        assert_eq!(decode_record(&jobs[0].encode()).unwrap(), vec![jobs[0].clone()]);
        assert_eq!(bucket_key(7), bucket_key(7 + 5 * KEY_BUCKETS));
        assert_ne!(bucket_key(7), bucket_key(8));
    }

    #[test]
    fn bad_bundles_name_the_bad_job() {
        assert!(matches!(decode_record(b"[]"), Err(JobDecodeError::EmptyBundle)));
        let bad =
            br#"[{"v":1,"job_id":"a","goods_id":1,"trigger":"dts"},{"v":9,"job_id":"b","goods_id":2,"trigger":"dts"}]"#;
        let err = decode_record(bad).unwrap_err();
        assert!(err.to_string().contains("job 1 of the bundle"), "{err}");
        assert!(matches!(decode_record(b"[[]]"), Err(JobDecodeError::InBundle(0, _))));
        assert!(matches!(decode_record(b"[1,"), Err(JobDecodeError::Malformed(_))));
    }

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
            Job::decode(br#"{"v":3,"job_id":"j","goods_id":7,"trigger":"dts"}"#),
            Err(JobDecodeError::UnsupportedVersion(3))
        ));
        assert!(matches!(
            Job::decode(br#"{"v":2,"job_id":"j","goods_id":7,"trigger":"dts"}"#),
            Err(JobDecodeError::Inconsistent(2, _))
        ));
        assert!(matches!(Job::decode(b"{"), Err(JobDecodeError::Malformed(_))));
    }

    #[test]
    fn batch_jobs_round_trip_with_deterministic_ids_and_spread_keys() {
        let range = Job::batch("run-1", Work::Range { shard: 3, lo: 1000, hi: 1999 });
        assert_eq!(range.job_id, "run-1-r3-1000");
        assert_eq!(range, Job::batch("run-1", Work::Range { shard: 3, lo: 1000, hi: 1999 }));
        assert_eq!(Job::decode(&range.encode()).unwrap(), range);
        let wire: serde_json::Value = serde_json::from_slice(&range.encode()).unwrap();
        assert_eq!(wire["v"], 2);
        assert_eq!(wire["batch"]["kind"], "range");
        assert_eq!(wire["batch"]["lo"], 1000);
        let ids = Job::batch("run-1", Work::Ids { seq: 17, ids: vec![1, 2] });
        assert_eq!(Job::decode(&ids.encode()).unwrap(), ids);
        let orphan = Job::batch("run-1", Work::OrphanScan { target: "hbase-a".into(), part: 5, parts: 16 });
        assert_eq!(orphan.job_id, "run-1-o-hbase-a-5");
        assert_eq!(Job::decode(&orphan.encode()).unwrap(), orphan);
        assert_ne!(range.key(), ids.key());
        assert_eq!(Job::new(7, TriggerKind::Dts, "j".into()).key(), bucket_key(7));
    }

    #[test]
    fn prefix_ranges_cover_every_prefix_once() {
        for parts in [1u32, 3, 16, 1000, 65536] {
            let mut next = 0;
            for part in 0..parts {
                let (lo, hi) = prefix_range(part, parts);
                assert_eq!(lo, next);
                assert!(hi > lo);
                next = hi;
            }
            assert_eq!(next, 65536);
        }
    }
}
