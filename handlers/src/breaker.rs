//! The blast-radius breaker: `repair.max_drift_ratio` judged per target over a sliding
//! window of recent checks, shared by every batch that passes it the same breaker.
//!
//! The window of a target holds the batches checked within the last
//! `repair.breaker_window_ms`, and of those at most the last
//! `repair.breaker_window_goods` goods (a batch is kept or dropped whole). Once it holds
//! `repair.min_goods_for_ratio` goods, a drifted/checked ratio above `max_drift_ratio`
//! trips the breaker for that target: repairs on it stop (checks go on and are
//! reported), the log says so at error level and `reconciler_breaker_open{target}` is 1.
//! It closes when the ratio over a full enough window falls back to the limit, or when
//! an operator resets it (`POST /breaker/reset`, `reconciler breaker reset`); after a
//! reset the window starts empty and the breaker does not trip again for one window
//! duration, so the backlog the operator vouched for is repaired.
//!
//! `serve` shares one breaker (the handler's) between every worker and trigger; a CLI
//! run, and an operator's `POST /repair`, judge their own run with a fresh one. Time comes
//! from a [`Clock`], so the window is tested under paused tokio time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use common::clock::{self, Clock};
use model::config::RepairConfig;
use serde::Serialize;

use crate::metrics::{BREAKER_OPEN, BREAKER_RATIO, BREAKER_TRIPS};

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    pub max_ratio: f64,
    pub min_goods: u64,
    pub window_goods: u64,
    pub window_ms: i64,
}

impl BreakerSettings {
    pub fn from_config(c: &RepairConfig) -> BreakerSettings {
        BreakerSettings {
            max_ratio: c.max_drift_ratio,
            min_goods: c.min_goods_for_ratio,
            window_goods: c.breaker_window_goods.max(1),
            window_ms: c.breaker_window_ms.max(1) as i64,
        }
    }
}

/// One batch's checks on one target.
#[derive(Debug, Clone, Copy)]
struct Record {
    at_ms: i64,
    checked: u64,
    drifted: u64,
}

#[derive(Debug, Default)]
struct Window {
    records: VecDeque<Record>,
    checked: u64,
    drifted: u64,
    /// Why repairs are stopped, while the breaker is open.
    open: Option<String>,
    /// No tripping before this time (set by an operator reset).
    grace_until_ms: i64,
}

impl Window {
    fn trim(&mut self, now_ms: i64, s: &BreakerSettings) {
        while let Some(front) = self.records.front().copied() {
            let too_old = front.at_ms < now_ms.saturating_sub(s.window_ms);
            let too_many = self.checked - front.checked >= s.window_goods;
            if !(too_old || too_many) {
                break;
            }
            self.records.pop_front();
            self.checked -= front.checked;
            self.drifted -= front.drifted;
        }
    }

    fn ratio(&self) -> f64 {
        if self.checked == 0 {
            0.0
        } else {
            self.drifted as f64 / self.checked as f64
        }
    }
}

/// What an operator sees of one target's breaker (`GET /breaker`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerState {
    pub target: String,
    pub open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Goods and drifted goods in the window now.
    pub checked: u64,
    pub drifted: u64,
}

#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    clock: Arc<dyn Clock>,
    targets: Mutex<HashMap<String, Window>>,
}

impl Breaker {
    pub fn new(settings: BreakerSettings, clock: Arc<dyn Clock>) -> Breaker {
        Breaker { settings, clock, targets: Mutex::new(HashMap::new()) }
    }

    /// With the configured limits, on the system clock.
    pub fn from_config(c: &RepairConfig) -> Breaker {
        Breaker::new(BreakerSettings::from_config(c), clock::system())
    }

    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    /// Adds one batch's checks of `target` to its window and judges it; returns why
    /// repairs on `target` are stopped, or `None` when they may go ahead.
    pub fn record(&self, target: &str, checked: u64, drifted: u64) -> Option<String> {
        let now = self.clock.now_ms();
        let s = &self.settings;
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let w = targets.entry(target.to_string()).or_default();
        if checked > 0 {
            w.records.push_back(Record { at_ms: now, checked, drifted });
            w.checked += checked;
            w.drifted += drifted;
        }
        w.trim(now, s);
        let ratio = w.ratio();
        metrics::gauge!(BREAKER_RATIO, "target" => target.to_string()).set(ratio);
        if w.checked < s.min_goods {
            return w.open.clone();
        }
        let over = ratio > s.max_ratio;
        match (&w.open, over) {
            (None, true) if now >= w.grace_until_ms => {
                let reason = format!(
                    "{target}: drifted goods {} of the last {} checked exceed max_drift_ratio {}: repairs on {target} stopped, a systemic fault needs a human (reset: POST /breaker/reset or `reconciler breaker reset`)",
                    w.drifted, w.checked, s.max_ratio
                );
                tracing::error!(
                    target_name = target,
                    drifted = w.drifted,
                    checked = w.checked,
                    max_drift_ratio = s.max_ratio,
                    "BLAST-RADIUS BREAKER TRIPPED: repairs stopped on {target}, checks go on"
                );
                metrics::counter!(BREAKER_TRIPS, "target" => target.to_string()).increment(1);
                metrics::gauge!(BREAKER_OPEN, "target" => target.to_string()).set(1.0);
                w.open = Some(reason);
            }
            (Some(_), false) => {
                tracing::warn!(
                    target_name = target,
                    drifted = w.drifted,
                    checked = w.checked,
                    "drift ratio fell back under the limit: repairs on {target} resume"
                );
                metrics::gauge!(BREAKER_OPEN, "target" => target.to_string()).set(0.0);
                w.open = None;
            }
            _ => {}
        }
        w.open.clone()
    }

    /// Why repairs on `target` are stopped, if they are.
    pub fn open_reason(&self, target: &str) -> Option<String> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner()).get(target).and_then(|w| w.open.clone())
    }

    /// Every open target's reason, joined (for a run's report), or `None`.
    pub fn halted(&self) -> Option<String> {
        let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let mut reasons: Vec<&String> = targets.values().filter_map(|w| w.open.as_ref()).collect();
        reasons.sort();
        (!reasons.is_empty()).then(|| reasons.into_iter().cloned().collect::<Vec<_>>().join("; "))
    }

    /// An operator reset: closes `target` (every target when `None`), empties its window
    /// and holds off tripping for one window duration. Returns the targets reset.
    pub fn reset(&self, target: Option<&str>) -> Vec<String> {
        let now = self.clock.now_ms();
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = target {
            targets.entry(t.to_string()).or_default();
        }
        let mut done = Vec::new();
        for (name, w) in targets.iter_mut().filter(|(n, _)| target.is_none_or(|t| t == n.as_str())) {
            if w.open.is_some() {
                tracing::warn!(target_name = %name, "blast-radius breaker reset by an operator: repairs resume");
            }
            *w = Window { grace_until_ms: now.saturating_add(self.settings.window_ms), ..Default::default() };
            metrics::gauge!(BREAKER_OPEN, "target" => name.clone()).set(0.0);
            done.push(name.clone());
        }
        done.sort();
        done
    }

    /// Every target seen so far.
    pub fn states(&self) -> Vec<BreakerState> {
        let now = self.clock.now_ms();
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<BreakerState> = targets
            .iter_mut()
            .map(|(name, w)| {
                w.trim(now, &self.settings);
                BreakerState {
                    target: name.clone(),
                    open: w.open.is_some(),
                    reason: w.open.clone(),
                    checked: w.checked,
                    drifted: w.drifted,
                }
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::clock::TokioClock;
    use std::time::Duration;

    fn breaker() -> Breaker {
        let settings = BreakerSettings { max_ratio: 0.2, min_goods: 100, window_goods: 1000, window_ms: 60_000 };
        Breaker::new(settings, Arc::new(TokioClock::starting_at(1_000_000)))
    }

    #[tokio::test(start_paused = true)]
    async fn small_batches_add_up_to_a_trip_across_the_window() {
        let b = breaker();
        // Ten goods per batch, half drifted: each batch alone is below min_goods.
        for i in 0..9 {
            assert_eq!(b.record("redis-a", 10, 5), None, "batch {i}: window below 100 goods");
        }
        let reason = b.record("redis-a", 10, 5).expect("trips once the window holds 100 goods");
        assert!(reason.contains("50 of the last 100"), "{reason}");
        assert!(b.record("redis-b", 10, 0).is_none(), "per target");
        // Checks go on; clean ones push the ratio back down, and the breaker closes.
        for _ in 0..14 {
            assert!(b.record("redis-a", 10, 0).is_some());
        }
        assert_eq!(b.record("redis-a", 10, 0), None, "50 of 250 = 0.2: back at the limit");
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_forgets_old_checks() {
        let b = breaker();
        assert!(b.record("redis-a", 100, 100).is_some());
        // Older than the window: gone, but an open breaker needs evidence to close.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(b.record("redis-a", 50, 0).is_some(), "50 goods are not enough to judge");
        assert_eq!(b.record("redis-a", 50, 0), None, "100 clean goods in the window");
        // At most window_goods goods: a long clean history does not hide a burst.
        for _ in 0..10 {
            b.record("redis-a", 100, 0);
        }
        let s = &b.states()[0];
        assert_eq!((s.checked, s.drifted), (1000, 0));
        for _ in 0..2 {
            b.record("redis-a", 100, 100);
        }
        assert!(b.record("redis-a", 100, 100).is_some(), "300 of the last 1000");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_lets_the_backlog_through_for_one_window() {
        let b = breaker();
        assert!(b.record("redis-a", 200, 200).is_some());
        assert!(b.halted().unwrap().contains("redis-a"));
        assert_eq!(b.reset(None), vec!["redis-a".to_string()]);
        for _ in 0..5 {
            assert_eq!(b.record("redis-a", 100, 100), None, "vouched for by the operator");
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(b.record("redis-a", 100, 100).is_some(), "after the grace window it judges again");
        assert_eq!(b.reset(Some("redis-b")), vec!["redis-b".to_string()]);
        assert!(b.open_reason("redis-a").is_some(), "resetting one target leaves the others");
    }
}
