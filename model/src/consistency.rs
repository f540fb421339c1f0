//! Time-to-consistency: for every change a trigger learned of (its `origin_ms`: an
//! event's commit time, a scanned row's `updated_at`), the time until a check found a
//! target equal to truth for that goods, or repaired it. Pure bookkeeping on times the
//! caller passes in; `serve` feeds it from the handler workers and exports it.
//!
//! Each (goods, change, target) is counted once, at the first check that found the target
//! consistent: later stages of the same change are not counted again. Drift found with no
//! known change (a full run, a live sweep) is counted apart, as "age unknown". Figures
//! are kept per target in one-minute buckets for the last day, so the share of changes
//! consistent within 1 s, 10 s, 1 min, 5 min and 10 min can be given for any window up to
//! a day.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::ids::GoodsId;
use crate::report::Report;

/// The "consistent within" thresholds, ms, and their labels.
pub const THRESHOLDS_MS: [i64; 5] = [1000, 10_000, 60_000, 300_000, 600_000];
pub const THRESHOLD_LABELS: [&str; 5] = ["1s", "10s", "1m", "5m", "10m"];

const MINUTE_MS: i64 = 60_000;
/// Buckets kept per target: one day of minutes.
const BUCKETS: usize = 1440;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    minute: i64,
    changes: u64,
    within: [u64; 5],
    age_unknown: u64,
    max_ms: i64,
}

/// One target's figures over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WindowFigures {
    /// Changes found consistent in the window.
    pub changes: u64,
    /// Of those, how many within each threshold (`"1s"` .. `"10m"`).
    pub within: BTreeMap<&'static str, u64>,
    /// `within` as shares of `changes` (1.0 when there was no change).
    pub share_within: BTreeMap<&'static str, f64>,
    /// The longest time-to-consistency seen, ms.
    pub max_ms: i64,
    /// Drift found with no known change (full runs, sweeps).
    pub age_unknown: u64,
}

/// What one check (its report) says of one goods on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// The target holds truth now: it was equal, or every drift of the goods on it was
    /// repaired (not deferred, not halted, no error).
    pub consistent: bool,
    /// The check found drift of the goods on the target.
    pub drifted: bool,
}

/// The finding of `report` for `goods` on `target` (a target the report says is
/// unreachable is neither consistent nor drifted). For many goods of one report, index
/// it once with [`Findings`].
pub fn finding(report: &Report, goods: GoodsId, target: &str) -> Finding {
    Findings::of(report).get(goods, target)
}

/// A report indexed by (goods, target), so that judging every job of a batch on every
/// target costs one pass over the report rather than one per job and target.
#[derive(Debug)]
pub struct Findings<'a> {
    unreachable: &'a [String],
    /// (goods, target) -> what the report holds about them.
    seen: HashMap<(GoodsId, &'a str), Seen>,
    /// Goods with an error that names no target (every target is affected).
    errors_everywhere: std::collections::HashSet<GoodsId>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    drift: bool,
    repaired: bool,
    deferred: bool,
    error: bool,
}

impl<'a> Findings<'a> {
    pub fn of(report: &'a Report) -> Findings<'a> {
        let mut seen: HashMap<(GoodsId, &'a str), Seen> = HashMap::new();
        for d in &report.drift {
            seen.entry((d.goods_id, d.target.as_str())).or_default().drift = true;
        }
        for r in &report.repairs {
            seen.entry((r.goods_id, r.target.as_str())).or_default().repaired = true;
        }
        for d in &report.deferred {
            seen.entry((d.goods_id, d.target.as_str())).or_default().deferred = true;
        }
        let mut errors_everywhere = std::collections::HashSet::new();
        for e in &report.errors {
            match e.target.as_deref() {
                Some(t) => seen.entry((e.goods_id, t)).or_default().error = true,
                None => {
                    errors_everywhere.insert(e.goods_id);
                }
            }
        }
        Findings { unreachable: &report.unreachable, seen, errors_everywhere }
    }

    /// What the report says of `goods` on `target`.
    pub fn get(&self, goods: GoodsId, target: &str) -> Finding {
        if self.unreachable.iter().any(|t| t == target) {
            return Finding { consistent: false, drifted: false };
        }
        let s = self.seen.get(&(goods, target)).copied().unwrap_or_default();
        let error = s.error || self.errors_everywhere.contains(&goods);
        // As the handler workers judge it: drift of a (goods, target) without any repair
        // there was halted (or not repaired at all: a check).
        let unrepaired = s.drift && !s.repaired;
        Finding { consistent: !error && !s.deferred && !unrepaired, drifted: s.drift }
    }
}

#[derive(Debug)]
pub struct Tracker {
    buckets: HashMap<String, VecDeque<Bucket>>,
    /// (goods, origin) -> targets already counted, and when the entry was made.
    counted: HashMap<(GoodsId, i64), (Vec<String>, i64)>,
    /// Entries of `counted` are forgotten after this long (longer than the largest stage
    /// plus re-checks), and the map is pruned when it grows past `max_entries`.
    retain_ms: i64,
    max_entries: usize,
}

impl Tracker {
    pub fn new(retain_ms: i64, max_entries: usize) -> Tracker {
        Tracker { buckets: HashMap::new(), counted: HashMap::new(), retain_ms, max_entries: max_entries.max(1) }
    }

    /// A check at `now_ms` found `target` consistent for `goods` (equal, or repaired),
    /// for the change made at `origin_ms`. Returns the time-to-consistency when this is
    /// the first such finding for (goods, change, target); `None` when it was counted
    /// already.
    pub fn consistent(&mut self, goods: GoodsId, origin_ms: i64, target: &str, now_ms: i64) -> Option<i64> {
        if self.counted.len() >= self.max_entries {
            let oldest = now_ms.saturating_sub(self.retain_ms);
            self.counted.retain(|_, (_, at)| *at >= oldest);
            if self.counted.len() >= self.max_entries {
                self.counted.clear();
            }
        }
        let (targets, _) = self.counted.entry((goods, origin_ms)).or_insert_with(|| (Vec::new(), now_ms));
        if targets.iter().any(|t| t == target) {
            return None;
        }
        targets.push(target.to_string());
        let ttc = now_ms.saturating_sub(origin_ms).max(0);
        let b = self.bucket(target, now_ms);
        b.changes += 1;
        for (i, limit) in THRESHOLDS_MS.iter().enumerate() {
            if ttc <= *limit {
                b.within[i] += 1;
            }
        }
        b.max_ms = b.max_ms.max(ttc);
        Some(ttc)
    }

    /// Drift with no known change was found on `target` at `now_ms`.
    pub fn age_unknown(&mut self, target: &str, now_ms: i64) {
        self.bucket(target, now_ms).age_unknown += 1;
    }

    /// The targets seen so far.
    pub fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = self.buckets.keys().cloned().collect();
        t.sort();
        t
    }

    /// `target`'s figures over the `window_ms` up to `now_ms` (minute granularity).
    pub fn window(&self, target: &str, now_ms: i64, window_ms: i64) -> WindowFigures {
        let now_min = now_ms.div_euclid(MINUTE_MS);
        let first = now_min - (window_ms / MINUTE_MS).max(1) + 1;
        let mut f = WindowFigures::default();
        let mut within = [0u64; 5];
        for b in self.buckets.get(target).into_iter().flatten() {
            if b.minute < first || b.minute > now_min {
                continue;
            }
            f.changes += b.changes;
            f.age_unknown += b.age_unknown;
            f.max_ms = f.max_ms.max(b.max_ms);
            for (w, n) in within.iter_mut().zip(b.within) {
                *w += n;
            }
        }
        for (i, label) in THRESHOLD_LABELS.iter().enumerate() {
            f.within.insert(*label, within[i]);
            let share = if f.changes == 0 { 1.0 } else { within[i] as f64 / f.changes as f64 };
            f.share_within.insert(*label, share);
        }
        f
    }

    fn bucket(&mut self, target: &str, now_ms: i64) -> &mut Bucket {
        let minute = now_ms.div_euclid(MINUTE_MS);
        let ring = self.buckets.entry(target.to_string()).or_default();
        if ring.back().is_none_or(|b| b.minute < minute) {
            ring.push_back(Bucket { minute, ..Default::default() });
            while ring.front().is_some_and(|b| b.minute <= minute - BUCKETS as i64) {
                ring.pop_front();
            }
        }
        // A time earlier than the newest bucket (clocks of other instances) goes into the
        // bucket of its minute when still kept, else into the newest.
        let idx = ring.iter().rposition(|b| b.minute <= minute).unwrap_or(ring.len() - 1);
        &mut ring[idx]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn counts_each_change_once_per_target_at_its_first_consistent_check() {
        let mut t = Tracker::new(HOUR, 1000);
        let origin = 1_000_000;
        assert_eq!(t.consistent(7, origin, "redis-a", origin + 800), Some(800));
        assert_eq!(t.consistent(7, origin, "redis-a", origin + 30_000), None, "a later stage is not counted again");
        assert_eq!(t.consistent(7, origin, "hbase-a", origin + 45_000), Some(45_000), "other target");
        assert_eq!(t.consistent(7, origin + 5, "redis-a", origin + 700_000), Some(699_995), "another change");
        let f = t.window("redis-a", origin + 700_000, HOUR);
        assert_eq!(f.changes, 2);
        assert_eq!(f.within["1s"], 1);
        assert_eq!(f.within["10m"], 1);
        assert_eq!(f.share_within["1s"], 0.5);
        assert_eq!(f.max_ms, 699_995);
        let h = t.window("hbase-a", origin + 700_000, HOUR);
        assert_eq!((h.changes, h.within["10s"], h.within["1m"]), (1, 0, 1));
        assert_eq!(t.targets(), vec!["hbase-a".to_string(), "redis-a".to_string()]);
    }

    #[test]
    fn thresholds_are_inclusive_and_clock_skew_is_zero() {
        let mut t = Tracker::new(HOUR, 1000);
        t.consistent(1, 10_000, "r", 11_000);
        t.consistent(2, 10_000, "r", 9_000);
        let f = t.window("r", 11_000, HOUR);
        assert_eq!((f.changes, f.within["1s"], f.max_ms), (2, 2, 1000));
    }

    #[test]
    fn windows_cover_the_last_hour_and_day() {
        let mut t = Tracker::new(HOUR, 1000);
        let start = 10 * DAY;
        t.consistent(1, start - 1000, "r", start);
        t.age_unknown("r", start);
        t.consistent(2, start + 2 * HOUR - 1000, "r", start + 2 * HOUR);
        let now = start + 2 * HOUR + 5000;
        let (hour, day) = (t.window("r", now, HOUR), t.window("r", now, DAY));
        assert_eq!((hour.changes, hour.age_unknown), (1, 0));
        assert_eq!((day.changes, day.age_unknown), (2, 1));
        assert_eq!(t.window("r", now + DAY, DAY).changes, 0, "a day later both are gone");
        assert_eq!(t.window("other", now, DAY).share_within["1m"], 1.0, "no change: nothing inconsistent");
    }

    #[test]
    fn a_target_is_consistent_when_equal_or_repaired() {
        use crate::diff::DriftKind;
        use crate::report::{DeferredEntry, DriftEntry, GoodsError, RepairEntry};
        let drift = |g: GoodsId, t: &str| DriftEntry {
            goods_id: g,
            target: t.into(),
            activity_id: Some(1),
            kind: DriftKind::Missing,
            fields: None,
        };
        let r = Report {
            drift: vec![drift(1, "a"), drift(2, "a"), drift(3, "a")],
            repairs: vec![RepairEntry {
                goods_id: 1,
                target: "a".into(),
                activity_id: Some(1),
                kind: DriftKind::Missing,
                repair_id: Some(9),
            }],
            deferred: vec![DeferredEntry { goods_id: 2, target: "a".into(), reason: "settle".into() }],
            errors: vec![
                GoodsError { goods_id: 4, target: None, reason: "bad row".into() },
                GoodsError { goods_id: 6, target: Some("b".into()), reason: "bad value".into() },
            ],
            unreachable: vec!["down".into()],
            ..Default::default()
        };
        assert_eq!(finding(&r, 1, "a"), Finding { consistent: true, drifted: true }, "repaired");
        assert_eq!(finding(&r, 2, "a"), Finding { consistent: false, drifted: true }, "deferred");
        assert_eq!(finding(&r, 3, "a"), Finding { consistent: false, drifted: true }, "halted: no repair");
        assert_eq!(finding(&r, 4, "a"), Finding { consistent: false, drifted: false }, "not checkable");
        assert_eq!(finding(&r, 5, "a"), Finding { consistent: true, drifted: false }, "equal");
        assert_eq!(finding(&r, 1, "b"), Finding { consistent: true, drifted: false }, "other target equal");
        assert_eq!(finding(&r, 5, "down"), Finding { consistent: false, drifted: false });
        assert_eq!(finding(&r, 6, "b"), Finding { consistent: false, drifted: false }, "an error on that target");
        assert_eq!(finding(&r, 6, "a"), Finding { consistent: true, drifted: false }, "an error on another target");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut t = Tracker::new(1000, 100);
        for g in 0..10_000u64 {
            t.consistent(g, g as i64, "r", g as i64 * 100);
        }
        assert!(t.counted.len() <= 100);
        assert_eq!(t.window("r", 1_000_000, DAY).changes, 10_000);
        for minute in 0..(3 * BUCKETS as i64) {
            t.age_unknown("r", minute * MINUTE_MS);
        }
        assert!(t.buckets["r"].len() <= BUCKETS);
    }
}
