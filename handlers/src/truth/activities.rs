//! Activity rows a full run's range reads may reuse for a short while.
//!
//! A full run reads truth batch after batch, and every batch names most of the same few
//! thousand activities: read fresh per batch, the activity SELECT returned about as many
//! rows as the goods and SKU SELECTs together (BENCHMARKS.md). Range reads therefore reuse
//! an activity row read less than `max_age` ago. What that may cost is bounded and
//! safe: a check can see an activity up to `max_age` old, so a change younger than that
//! is either seen as drift that the re-read before any repair (always fresh) holds back
//! as "truth changed since the check", or not seen in this pass; a changed activity is
//! checked by the DTS trigger's activity fan-out anyway. Event-driven checks and every
//! re-read before a repair never use this cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::projection::ActivityRow;
use model::ActivityId;
use tokio::time::Instant;

/// Above this many rows, expired ones are dropped when new ones come in.
const PRUNE_ABOVE: usize = 50_000;

#[derive(Debug, Default)]
pub struct ActivityCache {
    max_age: Duration,
    rows: Mutex<HashMap<ActivityId, (Instant, Arc<ActivityRow>)>>,
}

/// Activity rows by id, shared (a batch takes the cache's rows without copying them)
/// and hashed with foldhash (ids are not attacker-chosen keys; SipHash was a few percent
/// of a full run's instructions).
pub type ActivityMap = HashMap<ActivityId, Arc<ActivityRow>, foldhash::fast::RandomState>;

impl ActivityCache {
    /// `max_age` zero: nothing is reused.
    pub fn new(max_age: Duration) -> ActivityCache {
        ActivityCache { max_age, rows: Mutex::default() }
    }

    pub fn enabled(&self) -> bool {
        !self.max_age.is_zero()
    }

    /// The rows of `ids` read less than `max_age` before `now`, and the ids to read.
    pub fn lookup(&self, ids: &[ActivityId], now: Instant) -> (ActivityMap, Vec<ActivityId>) {
        let rows = self.rows.lock().expect("activity cache lock");
        let (mut hits, mut missing) =
            (ActivityMap::with_capacity_and_hasher(ids.len(), Default::default()), Vec::new());
        for &id in ids {
            match rows.get(&id) {
                Some((read_at, row)) if now.saturating_duration_since(*read_at) < self.max_age => {
                    hits.insert(id, row.clone());
                }
                _ => missing.push(id),
            }
        }
        (hits, missing)
    }

    /// Keeps rows read at `read_at` (rows that could not be used are never kept).
    pub fn store<'a>(&self, rows: impl IntoIterator<Item = &'a Arc<ActivityRow>>, read_at: Instant) {
        let mut kept = self.rows.lock().expect("activity cache lock");
        for row in rows {
            kept.insert(row.activity_id, (read_at, row.clone()));
        }
        if kept.len() > PRUNE_ABOVE {
            let max_age = self.max_age;
            kept.retain(|_, (at, _)| read_at.saturating_duration_since(*at) < max_age);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: ActivityId, priority: i32) -> ActivityRow {
        ActivityRow {
            activity_id: id,
            kind: 1,
            biz_code: "b".into(),
            tags: [].into(),
            status: 1,
            start_ms: 0,
            end_ms: 1,
            priority,
            updated_ms: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rows_are_reused_until_they_are_max_age_old() {
        let cache = ActivityCache::new(Duration::from_millis(1_000));
        let t0 = Instant::now();
        cache.store(&[row(1, 10), row(2, 20)].map(Arc::new), t0);
        let (hits, missing) = cache.lookup(&[1, 2, 3], t0 + Duration::from_millis(999));
        assert_eq!((hits.len(), missing), (2, vec![3]));
        assert_eq!(hits[&2].priority, 20);
        let (hits, missing) = cache.lookup(&[1, 2], t0 + Duration::from_millis(1_000));
        assert!(hits.is_empty());
        assert_eq!(missing, vec![1, 2]);
        // A fresher read replaces the row.
        cache.store(&[Arc::new(row(1, 11))], t0 + Duration::from_millis(1_500));
        let (hits, _) = cache.lookup(&[1], t0 + Duration::from_millis(2_000));
        assert_eq!(hits[&1].priority, 11);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_max_age_reuses_nothing() {
        let cache = ActivityCache::new(Duration::ZERO);
        assert!(!cache.enabled());
        let now = Instant::now();
        cache.store(&[Arc::new(row(1, 10))], now);
        assert_eq!(cache.lookup(&[1], now).1, vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_rows_are_dropped_once_the_cache_is_large() {
        let cache = ActivityCache::new(Duration::from_millis(10));
        let t0 = Instant::now();
        let old: Vec<Arc<ActivityRow>> = (0..PRUNE_ABOVE as u64).map(|i| Arc::new(row(i, 0))).collect();
        cache.store(&old, t0);
        cache.store(&[Arc::new(row(u64::MAX, 1))], t0 + Duration::from_millis(10));
        assert_eq!(cache.rows.lock().unwrap().len(), 1);
    }
}
