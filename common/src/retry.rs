//! The one retry policy: exponential backoff with jitter (`backon`) capped low, bounded
//! in time (and optionally in attempts), sleeping on tokio's clock so tests run it under
//! paused time. Only [`transient`](crate::ErrorClass::Transient) errors are retried; a
//! permanent error, or a transient one that outlasted the bound, is returned to the
//! caller, which reports or dead-letters the work.
//!
//! Why a time bound and a low cap rather than many attempts doubling up to a long delay:
//! an outage is waited out for as long as the operator chose (`give_up_after_ms`), and
//! the first attempt after the store is back comes at most `max_backoff_ms` (with jitter,
//! twice that) later, whatever the outage lasted. Retrying every second or two costs a
//! connection attempt per worker, nothing a store that is down notices.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::classify::Classify;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay.
    pub initial: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Attempts in all, the first one included (1: no retry; 0: no count bound).
    pub max_attempts: u32,
    /// How long after the first attempt retries go on (`None`: no time bound).
    pub give_up_after: Option<Duration>,
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
            max_attempts: c.max_attempts,
            give_up_after: (c.give_up_after_ms > 0).then(|| Duration::from_millis(c.give_up_after_ms)),
            jitter: true,
        }
    }

    /// The delays between attempts, from now: none once `max_attempts - 1` were given
    /// (with a count bound) or once `give_up_after` has passed since this call (with a
    /// time bound; on tokio's clock).
    pub fn delays(&self) -> Delays {
        let times = match self.max_attempts {
            0 => usize::MAX,
            n => n.saturating_sub(1) as usize,
        };
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(times);
        if self.jitter {
            builder = builder.with_jitter();
        }
        let deadline = match (self.give_up_after, self.max_attempts) {
            (Some(d), _) => Some(tokio::time::Instant::now() + d),
            // Neither bound (config validation refuses it): one attempt only.
            (None, 0) => Some(tokio::time::Instant::now()),
            (None, _) => None,
        };
        Delays { inner: builder.build(), deadline }
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

/// The delays of one piece of work under a [`RetryPolicy`].
pub struct Delays {
    inner: backon::ExponentialBackoff,
    deadline: Option<tokio::time::Instant>,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return None;
        }
        self.inner.next()
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
            give_up_after: None,
            jitter: false,
        }
    }

    /// The default policy: no count bound; a store down for five minutes is retried at
    /// most `max_backoff_ms` (twice that with jitter) apart for `give_up_after_ms`, so
    /// the first attempt after it is back comes within two seconds.
    #[tokio::test(start_paused = true)]
    async fn retries_within_the_time_bound_and_soon_after_the_store_is_back() {
        let c = model::config::RetryConfig { give_up_after_ms: 300_000, ..Default::default() };
        let p = RetryPolicy::from_config(&c);
        let start = tokio::time::Instant::now();
        let back_at = Duration::from_secs(200);
        let calls = AtomicU32::new(0);
        let r: Result<Duration, E> = p
            .run("op", || async {
                calls.fetch_add(1, Ordering::Relaxed);
                let now = start.elapsed();
                if now < back_at {
                    Err(E(ErrorClass::Transient))
                } else {
                    Ok(now)
                }
            })
            .await;
        let Ok(ok_at) = r else { panic!("the store came back within the time bound") };
        assert!(
            ok_at - back_at <= Duration::from_millis(2_001),
            "first attempt after the store was back: {:?} late",
            ok_at - back_at
        );
        assert!(calls.load(Ordering::Relaxed) > 100, "retried every second or two");

        // Down for longer than the bound: given up on at the bound, not long after.
        let start = tokio::time::Instant::now();
        let r: Result<(), E> = p.run("op", || async { Err(E(ErrorClass::Transient)) }).await;
        assert!(r.is_err());
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(300) && waited <= Duration::from_millis(302_001), "{waited:?}");
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
