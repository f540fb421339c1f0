//! The service's small supervisor: each long-running component (DTS trigger, scanner,
//! run publisher, scheduled runs, price verifier) runs as a task of its own; one that
//! fails, panics or ends before shutdown is restarted after a backoff from the retry
//! policy (`[retry]`, the delays growing to `max_backoff_ms` and staying there), and
//! `/healthz` names it as not ready meanwhile. Components watch the shutdown signal
//! themselves (so they drain and commit); one that ends after it is not restarted.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use common::RetryPolicy;
use futures::FutureExt;
use tokio::sync::watch;

use super::health::Health;
use super::telemetry::{ERRORS, WORKER_RESTARTS};

/// A healthy stretch this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Runs `make()` until shutdown, restarting it when it ends early.
pub fn spawn<F, Fut>(
    name: &'static str,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
    policy: RetryPolicy,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut delays = policy.delays();
        loop {
            let started = tokio::time::Instant::now();
            let outcome = AssertUnwindSafe(make()).catch_unwind().await;
            if *shutdown.borrow() {
                return;
            }
            let why = match outcome {
                Ok(Ok(())) => "ended".to_string(),
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => "panicked".to_string(),
            };
            if started.elapsed() >= HEALTHY_AFTER {
                delays = policy.delays();
            }
            let delay = delays.next().unwrap_or(policy.max_delay);
            metrics::counter!(ERRORS, "component" => name).increment(1);
            metrics::counter!(WORKER_RESTARTS).increment(1);
            tracing::error!(component = name, error = %why, restart_in_ms = delay.as_millis() as u64, "component failed; restarting it");
            health.component(name, false);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            health.component(name, true);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_failing_component_is_restarted_with_backoff_and_reported() {
        let health = Arc::new(Health::new(0, 60_000, common::clock::system()));
        let (stop, shutdown) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let policy = RetryPolicy {
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
            max_attempts: 3,
            give_up_after: None,
            jitter: false,
        };
        let (s, rx) = (starts.clone(), shutdown.clone());
        let task = spawn("scanner", health.clone(), shutdown, policy, move || {
            let n = s.fetch_add(1, Ordering::SeqCst);
            let mut rx = rx.clone();
            async move {
                match n {
                    0 => anyhow::bail!("mysql gone"),
                    1 => panic!("a bug"),
                    _ => {
                        let _ = rx.wait_for(|s| *s).await;
                        Ok(())
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(health.readiness().problems, vec!["scanner failed (being restarted)".to_string()]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2, "restarted after 1 s");
        // The second start (at 1 s) panicked: the next delay is 2 s.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2, "the second delay doubled");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert!(health.readiness().ready());
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
