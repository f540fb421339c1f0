//! From a changed goods and its commit time to one check job per stage, with dedup.
//!
//! Stage `i` of a change committed at `c` is due at `c + stage_i`, rounded *up* to a
//! multiple of the stage's window (a tenth of the stage, between 100 ms and 60 s): the
//! check never happens before the stage delay, and at most one window later. Every change
//! of one goods whose due time rounds to the same instant yields the same job (same
//! `not_before_ms`, same job id), so it is published once. Planned jobs are reserved at
//! once and released if their publish fails; the memory is pruned once due times are past.
//!
//! Goods of a key activity are planned with the key stage list instead
//! ([`with_key_stages`](StagePlanner::with_key_stages), `[key_activities] stages_ms`):
//! their jobs carry `key = true` (the priority lane) and ids of their own (`dts-key-…`).

use std::collections::HashMap;

use model::job::{Job, TriggerKind};
use model::GoodsId;

#[derive(Debug)]
pub struct StagePlanner {
    stages_ms: Vec<u64>,
    /// Stages of key goods; empty: key goods get `stages_ms` too.
    key_stages_ms: Vec<u64>,
    /// (goods, key lane, stage) -> last published due time.
    published: HashMap<(GoodsId, bool, u32), i64>,
    /// Prune the map when it grows past this many entries.
    prune_at: usize,
}

impl StagePlanner {
    pub fn new(stages_ms: Vec<u64>) -> StagePlanner {
        StagePlanner { stages_ms, key_stages_ms: Vec::new(), published: HashMap::new(), prune_at: 100_000 }
    }

    /// Goods planned with `key = true` get these stages.
    pub fn with_key_stages(mut self, key_stages_ms: Vec<u64>) -> StagePlanner {
        self.key_stages_ms = key_stages_ms;
        self
    }

    pub fn stages_ms(&self) -> &[u64] {
        &self.stages_ms
    }

    /// Dedup window of a stage.
    pub fn window_ms(stage_ms: u64) -> i64 {
        (stage_ms / 10).clamp(100, 60_000) as i64
    }

    /// Due time of stage `stage_ms` for a change committed at `commit_ms`.
    pub fn due_ms(commit_ms: i64, stage_ms: u64) -> i64 {
        // In i128: a commit time from a broken producer must not overflow.
        let raw = commit_ms as i128 + stage_ms as i128;
        let w = Self::window_ms(stage_ms) as i128;
        let due = raw.div_euclid(w) * w + if raw.rem_euclid(w) == 0 { 0 } else { w };
        due.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Jobs not yet published (nor being published) for `goods` changed at `commit_ms`,
    /// reserved at once so concurrent events of the same goods do not publish twice. When
    /// the publish fails, [`release`](Self::release) the jobs before retrying. A change
    /// skipped because of another event's reservation is safe: that event is acked only
    /// once its jobs (the same goods, stage and due time) are published.
    pub fn plan(&mut self, goods: &[GoodsId], commit_ms: i64, now_ms: i64) -> Vec<Job> {
        self.plan_lane(goods, commit_ms, now_ms, false)
    }

    /// [`plan`](Self::plan) for goods of a key activity (`key`): the key stages, jobs on
    /// the priority lane.
    pub fn plan_lane(&mut self, goods: &[GoodsId], commit_ms: i64, now_ms: i64, key: bool) -> Vec<Job> {
        if self.published.len() > self.prune_at {
            self.published.retain(|_, due| *due >= now_ms);
            if self.published.len() > self.prune_at / 2 {
                self.published.clear();
            }
        }
        let stages = match key && !self.key_stages_ms.is_empty() {
            true => &self.key_stages_ms,
            false => &self.stages_ms,
        };
        let lane = if key { "key-" } else { "" };
        let mut jobs = Vec::with_capacity(goods.len() * stages.len());
        for &goods_id in goods {
            for (i, &stage_ms) in stages.iter().enumerate() {
                let stage = i as u32;
                let due = Self::due_ms(commit_ms, stage_ms);
                if self.published.insert((goods_id, key, stage), due) == Some(due) {
                    continue;
                }
                let mut job = Job::new(goods_id, TriggerKind::Dts, format!("dts-{lane}{goods_id}-{stage}-{due}"));
                job.key = key;
                job.stage = stage;
                job.not_before_ms = due;
                job.origin_ms = commit_ms;
                jobs.push(job);
            }
        }
        jobs
    }

    /// Forgets the reservations of jobs whose publish failed, so they are planned again.
    pub fn release(&mut self, jobs: &[Job]) {
        for job in jobs {
            let key = (job.goods_id, job.key, job.stage);
            if self.published.get(&key) == Some(&job.not_before_ms) {
                self.published.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_per_stage_due_after_the_stage_delay() {
        let mut planner = StagePlanner::new(vec![3000, 30000, 300000]);
        let jobs = planner.plan(&[1001], 1_781_700_000_123, 0);
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs.iter().map(|j| j.stage).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(jobs[0].not_before_ms, 1_781_700_003_300); // window 300 ms
        assert_eq!(jobs[1].not_before_ms, 1_781_700_033_000); // window 3 s
        assert_eq!(jobs[2].not_before_ms, 1_781_700_330_000); // window 30 s
        for (job, stage) in jobs.iter().zip([3000, 30000, 300000]) {
            assert!(job.not_before_ms >= job.origin_ms + stage);
            assert!(job.not_before_ms < job.origin_ms + stage + StagePlanner::window_ms(stage as u64));
            assert_eq!(job.origin_ms, 1_781_700_000_123);
            assert_eq!(job.trigger, TriggerKind::Dts);
        }
        assert_eq!(StagePlanner::due_ms(900, 3000), 3900, "exact multiples are not pushed a window later");
    }

    #[test]
    fn same_goods_in_one_window_is_published_once() {
        let mut planner = StagePlanner::new(vec![3000]);
        let first = planner.plan(&[7, 8], 10_000, 0);
        assert_eq!(first.len(), 2);
        assert!(planner.plan(&[7, 8], 10_150, 0).is_empty(), "same 300 ms window");
        assert_eq!(planner.plan(&[7], 10_250, 0).len(), 1, "next window");
    }

    #[test]
    fn a_failed_publish_is_planned_again() {
        let mut planner = StagePlanner::new(vec![3000]);
        let first = planner.plan(&[7], 10_000, 0);
        assert!(planner.plan(&[7], 10_050, 0).is_empty(), "reserved while in flight");
        planner.release(&first);
        assert_eq!(planner.plan(&[7], 10_050, 0)[0].job_id, first[0].job_id);
    }

    #[test]
    fn absurd_commit_times_do_not_overflow() {
        for commit in [i64::MAX, i64::MAX - 1, i64::MIN] {
            let jobs = StagePlanner::new(vec![0, 3000, 300_000]).plan(&[7], commit, 0);
            assert_eq!(jobs.len(), 3);
        }
    }

    #[test]
    fn key_goods_get_the_key_stages_on_the_priority_lane() {
        let mut planner = StagePlanner::new(vec![3000, 30000]).with_key_stages(vec![1000, 5000, 30000, 120_000]);
        let key = planner.plan_lane(&[7], 10_000, 0, true);
        assert_eq!(key.iter().map(|j| j.not_before_ms).collect::<Vec<_>>(), vec![11_000, 15_000, 42_000, 132_000]);
        assert!(key.iter().all(|j| j.key && j.job_id.starts_with("dts-key-7-")));
        let bulk = planner.plan(&[7], 10_000, 0);
        assert_eq!(bulk.len(), 2, "the bulk plan of the same goods is separate");
        assert!(bulk.iter().all(|j| !j.key));
        assert!(planner.plan_lane(&[7], 9_950, 0, true).is_empty(), "deduplicated within the lane");
        planner.release(&key);
        assert_eq!(planner.plan_lane(&[7], 9_950, 0, true).len(), 4);
        let plain = StagePlanner::new(vec![3000]).plan_lane(&[7], 10_000, 0, true);
        assert_eq!((plain.len(), plain[0].key), (1, true), "no key stages: the topic's, still on the lane");
    }

    #[test]
    fn job_ids_are_stable_across_restarts() {
        let a = StagePlanner::new(vec![3000]).plan(&[7], 10_000, 0);
        let b = StagePlanner::new(vec![3000]).plan(&[7], 10_100, 0);
        assert_eq!(a[0].job_id, b[0].job_id);
        assert_eq!(a[0].job_id, "dts-7-0-13200");
    }
}
