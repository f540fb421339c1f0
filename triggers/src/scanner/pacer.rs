//! Rows-per-second pacing: after `n` rows the caller waits until `n / rate` seconds have
//! passed since the pacer started, so bursts are smoothed over the pass.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Pacer {
    rate: u32,
    started: Instant,
    rows: u64,
}

impl Pacer {
    /// `rate` 0: unlimited.
    pub fn new(rate: u32) -> Pacer {
        Pacer { rate, started: Instant::now(), rows: 0 }
    }

    pub async fn consumed(&mut self, rows: u64) {
        self.rows += rows;
        if self.rate == 0 {
            return;
        }
        let due = self.started + Duration::from_secs_f64(self.rows as f64 / self.rate as f64);
        tokio::time::sleep_until(due).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate() {
        let start = Instant::now();
        let mut pacer = Pacer::new(100);
        for _ in 0..5 {
            pacer.consumed(100).await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(5) && elapsed < Duration::from_millis(5100), "{elapsed:?}");
        let mut unlimited = Pacer::new(0);
        let t = Instant::now();
        unlimited.consumed(1_000_000).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
