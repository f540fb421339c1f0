//! The one retry policy: bounded attempts, exponential backoff with full jitter
//! (`backon`), sleeping on tokio's clock so tests run it under paused time. Only
//! [`transient`](crate::ErrorClass::Transient) errors are retried; a permanent error, or
//! a transient one that outlasted the bound, is returned to the caller, which reports or
//! dead-letters the work.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::classify::Classify;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay.
    pub initial: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Attempts in all, the first one included (1: no retry).
    pub max_attempts: u32,
    /// Randomize each delay (spreads the retries of many workers after an outage).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from_config(&model::config::RetryConfig::default())
    }
}

impl RetryPolicy {
    pub fn from_config(c: &model::config::RetryConfig) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(c.initial_backoff_ms),
            max_delay: Duration::from_millis(c.max_backoff_ms),
            max_attempts: c.max_attempts.max(1),
            jitter: true,
        }
    }

    /// The delays between attempts: `max_attempts - 1` of them.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder.build()
    }

    /// Runs `op` until it succeeds, fails permanently, or the attempts are used up;
    /// returns the last error then. `what` names the operation in logs.
    pub async fn run<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, E>
    where
        E: Classify + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut delays = self.delays();
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() => match delays.next() {
                    Some(delay) => {
                        tracing::warn!(what, attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "transient error, retrying");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ErrorClass;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct E(ErrorClass);
    impl Classify for E {
        fn class(&self) -> ErrorClass {
            self.0
        }
    }
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_attempts: 5,
            jitter: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_up_to_the_bound() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), E> = policy()
            .run("op", || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(E(ErrorClass::Transient))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 5);
        // 100 + 200 + 400 + 800 ms of backoff on the paused clock (the timer wheel rounds
        // each sleep up to the next millisecond).
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_millis(1510), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_success_stops() {
        let calls = AtomicU32::new(0);
        let r: Result<(), E> = policy()
            .run("op", || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(E(ErrorClass::Permanent))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        let calls = AtomicU32::new(0);
        let r: Result<u32, E> = policy()
            .run("op", || async {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                if n < 2 {
                    Err(E(ErrorClass::Transient))
                } else {
                    Ok(n)
                }
            })
            .await;
        assert_eq!(r.ok(), Some(2));
    }

    #[test]
    fn jittered_delays_stay_within_bounds() {
        let p = RetryPolicy { jitter: true, ..policy() };
        let delays: Vec<Duration> = p.delays().collect();
        assert_eq!(delays.len(), 4);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(4)), "{delays:?}");
    }
}
