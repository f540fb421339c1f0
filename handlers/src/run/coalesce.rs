//! Repairs of several batches applied in one round. With little drift nearly every batch
//! of a full run plans a few repairs, and each repair round costs the same handful of
//! round trips whatever its size (truth re-read, audit insert, compare-and-set writes,
//! audit update: two durable commits). A run's workers hand their checked batches here;
//! a round starts when enough goods wait or the oldest has waited long enough, and when
//! the run's source is done. A batch without planned repairs is not held.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::handler::Checked;

/// When a run's repair round is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairRound {
    /// Once this many goods have planned repairs (a bootstrap's batch alone, usually) ...
    pub goods: usize,
    /// ... or once the oldest waited this long (a run's repairs stay prompt).
    pub wait: Duration,
}

impl Default for RepairRound {
    fn default() -> RepairRound {
        RepairRound { goods: 256, wait: Duration::from_millis(500) }
    }
}

pub struct Coalescer {
    goods: usize,
    wait: Duration,
    waiting: Mutex<Option<(Checked, Instant)>>,
}

impl Coalescer {
    pub fn new(round: RepairRound) -> Coalescer {
        Coalescer { goods: round.goods.max(1), wait: round.wait, waiting: Mutex::new(None) }
    }

    /// Holds `checked` (which plans repairs) with the batches waiting; returns them all
    /// when a round is due.
    pub fn add(&self, checked: Checked) -> Option<Checked> {
        let mut waiting = self.waiting.lock().unwrap();
        match waiting.as_mut() {
            Some((all, _)) => all.merge(checked),
            None => *waiting = Some((checked, Instant::now())),
        }
        let due = waiting
            .as_ref()
            .is_some_and(|(all, since)| all.repairs.goods() >= self.goods || since.elapsed() >= self.wait);
        if due {
            waiting.take().map(|(all, _)| all)
        } else {
            None
        }
    }

    /// The batches waiting when the oldest waited long enough (asked after every batch,
    /// with repairs or not).
    pub fn due(&self) -> Option<Checked> {
        let mut waiting = self.waiting.lock().unwrap();
        if waiting.as_ref().is_some_and(|(_, since)| since.elapsed() >= self.wait) {
            waiting.take().map(|(all, _)| all)
        } else {
            None
        }
    }

    /// Every batch waiting (the source is done, or failed).
    pub fn rest(&self) -> Option<Checked> {
        self.waiting.lock().unwrap().take().map(|(all, _)| all)
    }
}

#[cfg(test)]
mod tests {
    use model::report::Report;

    use super::*;

    fn checked(goods: &[u64]) -> Checked {
        Checked {
            report: Report { checked: goods.len() as u64, ..Default::default() },
            repairs: crate::handler::planned(goods),
        }
    }

    fn coalescer(goods: usize, wait_ms: u64) -> Coalescer {
        Coalescer::new(RepairRound { goods, wait: Duration::from_millis(wait_ms) })
    }

    #[tokio::test(start_paused = true)]
    async fn batches_wait_until_enough_goods_have_repairs() {
        let c = coalescer(5, 500);
        assert!(c.add(checked(&[1, 2])).is_none());
        assert!(c.add(checked(&[3, 4])).is_none());
        let round = c.add(checked(&[5])).expect("five goods: due");
        assert_eq!((round.report.checked, round.repairs.goods()), (5, 5));
        assert!(c.rest().is_none(), "nothing left waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_batch_waits_at_most_the_round_wait() {
        let c = coalescer(100, 500);
        assert!(c.add(checked(&[1])).is_none());
        tokio::time::advance(Duration::from_millis(300)).await;
        assert!(c.add(checked(&[2])).is_none());
        assert!(c.due().is_none(), "the oldest waited 300 ms");
        tokio::time::advance(Duration::from_millis(200)).await;
        let round = c.due().expect("the oldest waited 500 ms");
        assert_eq!(round.repairs.goods(), 2);
        // The wait counts from the first batch of the next round.
        assert!(c.add(checked(&[3])).is_none());
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(c.due().is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(c.add(checked(&[4])).expect("due by age").repairs.goods(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rest_is_handed_out_once() {
        let c = coalescer(100, 500);
        assert!(c.rest().is_none());
        assert!(c.add(checked(&[1, 2, 3])).is_none());
        let rest = c.rest().expect("waiting");
        assert_eq!(rest.repairs.goods(), 3);
        assert!(c.rest().is_none());
    }
}
