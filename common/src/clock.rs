//! One clock. Wall time (epoch ms) is compared with MySQL `updated_at` values and job
//! not-before times, so it is the system's wall clock in production; tests that exercise
//! settle windows, stages, lag or breaker windows use [`TokioClock`], which moves with
//! tokio's (pausable) clock, instead of sleeping.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// Wall time that follows `tokio::time::Instant`: under `tokio::time::pause()` it moves
/// only when the test advances time (or the runtime auto-advances).
#[derive(Debug, Clone)]
pub struct TokioClock {
    base_ms: i64,
    base: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at `base_ms` now.
    pub fn starting_at(base_ms: i64) -> TokioClock {
        TokioClock { base_ms, base: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.base_ms + self.base.elapsed().as_millis() as i64
    }
}

/// The system clock as a shared handle, the default for every component.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// The system's wall clock in epoch ms (0 before 1970, which no machine is at).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_moves_with_paused_time() {
        let clock = TokioClock::starting_at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(clock.now_ms(), 3_500);
    }

    #[test]
    fn system_clock_is_wall_time() {
        let before = now_ms();
        let t = SystemClock.now_ms();
        assert!(t >= before && t - before < 60_000);
    }
}
