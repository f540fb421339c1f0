//! A token bucket capping repair writes per second, per process (blast radius).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct RateLimiter {
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A bucket of `per_sec` tokens refilled continuously; starts full.
    pub fn new(per_sec: u32) -> RateLimiter {
        let per_sec = per_sec.max(1) as f64;
        RateLimiter { per_sec, state: Mutex::new((per_sec, Instant::now())) }
    }

    /// Waits until `n` tokens are available and takes them. Requests larger than the
    /// bucket are served by going into debt, so they wait proportionally.
    pub async fn acquire(&self, n: usize) {
        let wait = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let refill = now.duration_since(s.1).as_secs_f64() * self.per_sec;
            s.0 = (s.0 + refill).min(self.per_sec);
            s.1 = now;
            s.0 -= n as f64;
            if s.0 >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.0 / self.per_sec)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn caps_the_rate() {
        let limiter = RateLimiter::new(100);
        let start = Instant::now();
        limiter.acquire(100).await; // the full bucket
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..10 {
            limiter.acquire(50).await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!((4.9..5.2).contains(&elapsed), "{elapsed}");
    }
}
