//! Which offset of each partition may be committed, when jobs finish out of order.
//!
//! Every offset handed to the caller is tracked as pending; an ack marks it done, and the
//! commit position moves to just past the longest done prefix. An offset is therefore
//! committed only once it and everything before it in its partition are done, so a crash
//! redelivers whatever was not finished (and possibly some that were: at least once).
//!
//! A partition revoked by a rebalance forgets its pending offsets; acks that arrive later
//! carry the old generation and are ignored (the new owner redelivers those messages).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(Arc<str>, i32), PartitionState>,
    next_generation: u64,
}

#[derive(Debug)]
struct PartitionState {
    generation: u64,
    /// Offset -> done. Only offsets handed out and not yet past the committed prefix.
    pending: BTreeMap<i64, bool>,
}

impl OffsetTracker {
    /// Records that `offset` was handed out; returns the generation its ack must carry.
    pub fn track(&mut self, topic: &Arc<str>, partition: i32, offset: i64) -> u64 {
        let next_generation = &mut self.next_generation;
        let state = self.partitions.entry((topic.clone(), partition)).or_insert_with(|| {
            *next_generation += 1;
            PartitionState { generation: *next_generation, pending: BTreeMap::new() }
        });
        state.pending.insert(offset, false);
        state.generation
    }

    /// Marks `offset` done; returns the new commit position (next offset to read) when the
    /// done prefix grew.
    pub fn ack(&mut self, topic: &str, partition: i32, offset: i64, generation: u64) -> Option<i64> {
        let state = self.partitions.get_mut(&(Arc::from(topic), partition))?;
        if state.generation != generation {
            return None;
        }
        *state.pending.get_mut(&offset)? = true;
        let mut commit = None;
        while let Some(entry) = state.pending.first_entry() {
            if !*entry.get() {
                break;
            }
            commit = Some(*entry.key() + 1);
            entry.remove();
        }
        commit
    }

    /// Forgets a partition this consumer no longer owns.
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        self.partitions.remove(&(Arc::from(topic), partition));
    }

    /// Offsets handed out and not yet committable, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|s| s.pending.len()).sum()
    }
}

/// Stores a commit position `(topic, partition, next offset)` on the consumer.
pub type StoreFn = Box<dyn Fn(&str, i32, i64) + Send + Sync>;

/// The tracker shared by the poll loop, ack handles and the rebalance callback, plus what
/// to do with a commit position (store it on the consumer for the next auto commit).
pub struct SharedTracker {
    tracker: Mutex<OffsetTracker>,
    store: StoreFn,
}

impl std::fmt::Debug for SharedTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTracker").finish_non_exhaustive()
    }
}

impl SharedTracker {
    pub fn new(store: StoreFn) -> SharedTracker {
        SharedTracker { tracker: Mutex::new(OffsetTracker::default()), store }
    }

    pub fn track(&self, topic: &Arc<str>, partition: i32, offset: i64) -> u64 {
        self.tracker.lock().expect("tracker lock").track(topic, partition, offset)
    }

    pub fn ack(&self, topic: &str, partition: i32, offset: i64, generation: u64) {
        let commit = self.tracker.lock().expect("tracker lock").ack(topic, partition, offset, generation);
        if let Some(next) = commit {
            (self.store)(topic, partition, next);
        }
    }

    pub fn revoke(&self, topic: &str, partition: i32) {
        self.tracker.lock().expect("tracker lock").revoke(topic, partition)
    }

    pub fn in_flight(&self) -> usize {
        self.tracker.lock().expect("tracker lock").in_flight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_done_prefix() {
        let t: Arc<str> = Arc::from("t");
        let mut tracker = OffsetTracker::default();
        let g = tracker.track(&t, 0, 10);
        tracker.track(&t, 0, 11);
        tracker.track(&t, 0, 13); // 12 was a control record: never handed out
        assert_eq!(tracker.ack("t", 0, 11, g), None, "10 is still pending");
        assert_eq!(tracker.ack("t", 0, 13, g), None);
        assert_eq!(tracker.ack("t", 0, 10, g), Some(14));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let t: Arc<str> = Arc::from("t");
        let mut tracker = OffsetTracker::default();
        let g0 = tracker.track(&t, 0, 5);
        let g1 = tracker.track(&t, 1, 7);
        assert_eq!(tracker.ack("t", 1, 7, g1), Some(8));
        assert_eq!(tracker.ack("t", 0, 5, g0), Some(6));
    }

    #[test]
    fn acks_from_a_revoked_generation_are_ignored() {
        let t: Arc<str> = Arc::from("t");
        let mut tracker = OffsetTracker::default();
        let old = tracker.track(&t, 0, 5);
        tracker.revoke("t", 0);
        let new = tracker.track(&t, 0, 5);
        assert_ne!(old, new);
        assert_eq!(tracker.ack("t", 0, 5, old), None);
        assert_eq!(tracker.ack("t", 0, 5, new), Some(6));
        assert_eq!(tracker.ack("t", 0, 99, new), None, "unknown offsets are ignored");
    }
}
