//! Assignment watchdog: a consumer rejoins its group when records wait on a partition
//! nobody consumes.
//!
//! Seen on Tansu 0.6 after members of a group were killed with `kill -9`: the dead
//! member's partitions were never handed to the survivors, and members restarted after
//! the kill were assigned nothing at all, so the backlog sat there for good. A member
//! may legitimately own nothing (more members than partitions) and another member may
//! own a partition and be slow, so the watchdog acts only when, over [`STRIKES`]
//! consecutive checks (one per half session timeout), some partition this consumer does not
//! own has records beyond its committed offset *and* that committed offset did not
//! move. Then the poll loop unsubscribes and subscribes again, which sends a fresh
//! JoinGroup and makes the coordinator rebalance; counted in
//! `reconciler_consumer_resubscribes_total`.
//!
//! A live member may hold one record for longer than three checks: an orphan-scan part
//! of one Redis server ran 17-18 s at 1,000,000 goods (three checks: 15 s at the default
//! 10 s session), and it grows with the data. Offsets cannot tell that member from a
//! dead one (Tansu 0.6 answers DescribeGroups without assignments and OffsetFetch
//! without commit metadata), so the watchdog backs off instead: when the stall that
//! made it rejoin is still there afterwards (a partition at the same committed offset),
//! the next rejoin waits for twice as many checks (6, 12, ... up to [`MAX_BACKOFF`]
//! doublings); a stall that clears, or a different one, starts again at three. A dead
//! member's partitions still move after the first three checks; a long job costs a
//! rebalance at 3, 9, 21, 45, ... checks instead of one every three (measured in
//! BENCHMARKS.md: two instances at x0.43 of one before the redelivery and shutdown fixes,
//! x0.91 after, the remaining rejoins on those orphan-scan parts).
//!
//! The decision is pure ([`Watchdog::observe`]); [`probe`] reads the offsets (blocking
//! calls, run on a blocking thread by the poll loop).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

/// Per partition (topic, partition): (next offset to consume: the committed offset, or
/// the low watermark when none is committed; high watermark).
pub type Offsets = BTreeMap<(String, i32), (i64, i64)>;

/// Consecutive stalled checks before the consumer rejoins.
pub const STRIKES: u32 = 3;

/// At most this many doublings of [`STRIKES`] while a rejoin leaves the same stall
/// (3 << 5 = 96 checks: 8 minutes at the default 10 s session).
pub const MAX_BACKOFF: u32 = 5;

/// A partition: (topic, partition).
pub type Partition = (String, i32);

#[derive(Debug, Default)]
pub struct Watchdog {
    strikes: u32,
    /// Committed offsets of the stalled partitions at the last check.
    last: BTreeMap<Partition, i64>,
    /// The stall (partitions and their committed offsets) that made it rejoin last.
    rejoined_on: BTreeMap<Partition, i64>,
    /// Rejoins in a row that left the same stall (each doubles the checks needed).
    backoff: u32,
}

impl Watchdog {
    /// One check: the partitions this consumer owns now, and `offsets` of its topics
    /// (`None` when they could not be read: nothing learned). True when the consumer
    /// should rejoin its group now.
    pub fn observe(&mut self, owned: &BTreeSet<Partition>, offsets: Option<&Offsets>) -> bool {
        let Some(offsets) = offsets else { return false };
        // Partitions of others (or of nobody) with records waiting.
        let waiting: BTreeMap<Partition, i64> = offsets
            .iter()
            .filter(|(p, (next, high))| !owned.contains(*p) && next < high)
            .map(|(p, (next, _))| (p.clone(), *next))
            .collect();
        let stalled: BTreeMap<Partition, i64> =
            waiting.iter().filter(|(p, next)| self.last.get(*p) == Some(*next)).map(|(p, n)| (p.clone(), *n)).collect();
        if waiting.is_empty() {
            *self = Watchdog::default();
            return false;
        }
        self.strikes = if stalled.is_empty() { 1 } else { self.strikes + 1 };
        // Only partitions that stayed put count further.
        self.last = if stalled.is_empty() { waiting } else { stalled };
        // The last rejoin did not move this stall: wait twice as long as then.
        let same_stall = self.last.iter().any(|(p, next)| self.rejoined_on.get(p) == Some(next));
        let backoff = if same_stall { (self.backoff + 1).min(MAX_BACKOFF) } else { 0 };
        if self.strikes >= STRIKES << backoff {
            let stall = std::mem::take(&mut self.last);
            *self = Watchdog { rejoined_on: stall, backoff, ..Default::default() };
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

    fn owned(parts: &[i32]) -> BTreeSet<Partition> {
        parts.iter().map(|&p| ("jobs".to_string(), p)).collect()
    }

    #[test]
    fn rejoins_after_consecutive_stalled_checks_only() {
        let mut w = Watchdog::default();
        let stalled = offsets(&[(10, 50), (7, 7)]);
        assert!(!w.observe(&owned(&[]), Some(&stalled)));
        assert!(!w.observe(&owned(&[]), Some(&stalled)));
        assert!(w.observe(&owned(&[]), Some(&stalled)), "third stalled check: rejoin");
        // Counting starts over after a rejoin.
        assert!(!w.observe(&owned(&[]), Some(&stalled)));
    }

    #[test]
    fn a_partition_of_a_dead_member_is_noticed_by_a_member_owning_others() {
        let mut w = Watchdog::default();
        // Partition 0 is ours (and stuck: our business), partition 1 nobody consumes.
        let o = offsets(&[(3, 9), (10, 50)]);
        assert!(!w.observe(&owned(&[0]), Some(&o)));
        assert!(!w.observe(&owned(&[0]), Some(&o)));
        assert!(w.observe(&owned(&[0]), Some(&o)));
        // Owning every partition: nothing to watch.
        for _ in 0..5 {
            assert!(!w.observe(&owned(&[0, 1]), Some(&o)));
        }
    }

    #[test]
    fn an_idle_member_of_a_busy_or_caught_up_group_stays() {
        let mut w = Watchdog::default();
        // Others consume: the committed offsets move.
        for step in 0..10 {
            assert!(!w.observe(&owned(&[]), Some(&offsets(&[(10 + step, 50)]))));
        }
        // Nothing to consume.
        for _ in 0..10 {
            assert!(!w.observe(&owned(&[]), Some(&offsets(&[(50, 50)]))));
        }
    }

    /// Regression: a live member holding one record longer than three checks (a 17 s
    /// orphan-scan part) made the others rejoin every three checks until it finished,
    /// each rejoin a rebalance of the whole group.
    #[test]
    fn a_rejoin_that_leaves_the_same_stall_doubles_the_wait_for_the_next() {
        let mut w = Watchdog::default();
        let stalled = offsets(&[(10, 50)]);
        let checks_to_rejoin = |w: &mut Watchdog, o: &Offsets| (1..=200).find(|_| w.observe(&owned(&[]), Some(o)));
        assert_eq!(checks_to_rejoin(&mut w, &stalled), Some(3));
        assert_eq!(checks_to_rejoin(&mut w, &stalled), Some(6), "the same partition at the same offset");
        assert_eq!(checks_to_rejoin(&mut w, &stalled), Some(12));
        for _ in 0..4 {
            checks_to_rejoin(&mut w, &stalled);
        }
        assert_eq!(checks_to_rejoin(&mut w, &stalled), Some(STRIKES << MAX_BACKOFF), "capped");
        // The stall moved on (the long record was done, the next one is stuck): three again.
        assert_eq!(checks_to_rejoin(&mut w, &offsets(&[(11, 50)])), Some(3));
        // Doubled again, then the backlog is consumed: a later stall starts at three.
        assert_eq!(checks_to_rejoin(&mut w, &offsets(&[(11, 50)])), Some(6));
        assert!(!w.observe(&owned(&[]), Some(&offsets(&[(50, 50)]))));
        assert_eq!(checks_to_rejoin(&mut w, &offsets(&[(11, 50)])), Some(3));
    }

    #[test]
    fn an_unreadable_probe_is_no_evidence() {
        let mut w = Watchdog::default();
        let stalled = offsets(&[(10, 50)]);
        assert!(!w.observe(&owned(&[]), Some(&stalled)));
        assert!(!w.observe(&owned(&[]), Some(&stalled)));
        assert!(!w.observe(&owned(&[]), None));
        assert!(w.observe(&owned(&[]), Some(&stalled)));
    }
}
