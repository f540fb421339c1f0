//! Assignment watchdog: a consumer left without partitions while its topics hold records
//! nobody consumes rejoins its group.
//!
//! Seen on Tansu 0.6 after members of a group were killed with `kill -9` and restarted:
//! the new members polled happily, but the coordinator assigned them nothing, so the
//! backlog sat there for good. A member may legitimately own nothing (a group with more
//! members than partitions), so the watchdog acts only when, over several consecutive
//! checks, this consumer owns no partition *and* some partition of its topics has
//! records beyond its committed offset *and* no committed offset moved (no other member
//! consumes either). Then the poll loop unsubscribes and subscribes again, which sends a
//! fresh JoinGroup; counted in `reconciler_consumer_resubscribes_total`.
//!
//! The decision is pure ([`Watchdog::observe`]); [`probe`] reads the offsets (blocking
//! calls, run on a blocking thread by the poll loop).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

/// Per partition (topic, partition): (next offset to consume: the committed offset, or
/// the low watermark when none is committed; high watermark).
pub type Offsets = BTreeMap<(String, i32), (i64, i64)>;

/// Consecutive stalled checks before the consumer rejoins.
pub const STRIKES: u32 = 3;

#[derive(Debug, Default)]
pub struct Watchdog {
    strikes: u32,
    last: Option<BTreeMap<(String, i32), i64>>,
}

impl Watchdog {
    /// One check: `assigned` partitions owned now, `offsets` of the topics (`None` when
    /// they could not be read, which counts as nothing learned). True when the consumer
    /// should rejoin its group now.
    pub fn observe(&mut self, assigned: usize, offsets: Option<&Offsets>) -> bool {
        let Some(offsets) = offsets else { return false };
        if assigned > 0 {
            *self = Watchdog::default();
            return false;
        }
        let backlog = offsets.values().any(|(next, high)| next < high);
        let committed: BTreeMap<(String, i32), i64> = offsets.iter().map(|(k, v)| (k.clone(), v.0)).collect();
        let unmoved = self.last.as_ref() == Some(&committed);
        self.last = Some(committed);
        if !backlog {
            self.strikes = 0;
            return false;
        }
        self.strikes = if unmoved { self.strikes + 1 } else { 1 };
        if self.strikes >= STRIKES {
            self.strikes = 0;
            self.last = None;
            return true;
        }
        false
    }
}

/// Reads the committed offsets and watermarks of every partition of `topics` (blocking).
pub fn probe<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
    consumer: &C,
    topics: &[String],
    timeout: Duration,
) -> Result<Offsets, rdkafka::error::KafkaError> {
    let mut list = TopicPartitionList::new();
    let mut watermarks = BTreeMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
                watermarks.insert((topic.clone(), p.id()), (low, high));
                list.add_partition(topic, p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(list, timeout)?;
    let mut offsets = Offsets::new();
    for e in committed.elements() {
        let key = (e.topic().to_string(), e.partition());
        let Some(&(low, high)) = watermarks.get(&key) else { continue };
        let next = match e.offset() {
            Offset::Offset(o) => o.max(low),
            _ => low,
        };
        offsets.insert(key, (next, high));
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(parts: &[(i64, i64)]) -> Offsets {
        parts.iter().enumerate().map(|(i, &o)| (("jobs".to_string(), i as i32), o)).collect()
    }

    #[test]
    fn rejoins_after_consecutive_stalled_checks_only() {
        let mut w = Watchdog::default();
        let stalled = offsets(&[(10, 50), (7, 7)]);
        assert!(!w.observe(0, Some(&stalled)));
        assert!(!w.observe(0, Some(&stalled)));
        assert!(w.observe(0, Some(&stalled)), "third stalled check: rejoin");
        // Counting starts over after a rejoin.
        assert!(!w.observe(0, Some(&stalled)));
    }

    #[test]
    fn an_idle_member_of_a_busy_or_caught_up_group_stays() {
        let mut w = Watchdog::default();
        // Others consume: the committed offsets move.
        for step in 0..10 {
            assert!(!w.observe(0, Some(&offsets(&[(10 + step, 50)]))));
        }
        // Nothing to consume.
        for _ in 0..10 {
            assert!(!w.observe(0, Some(&offsets(&[(50, 50)]))));
        }
    }

    #[test]
    fn an_assignment_or_an_unreadable_probe_resets_nothing_wrongly() {
        let mut w = Watchdog::default();
        let stalled = offsets(&[(10, 50)]);
        assert!(!w.observe(0, Some(&stalled)));
        assert!(!w.observe(0, Some(&stalled)));
        assert!(!w.observe(0, None), "an unreadable probe is no evidence");
        assert!(!w.observe(2, Some(&stalled)), "owning partitions: fine");
        assert!(!w.observe(0, Some(&stalled)));
        assert!(!w.observe(0, Some(&stalled)));
        assert!(w.observe(0, Some(&stalled)));
    }
}
