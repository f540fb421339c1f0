//! Readiness of the service for `/healthz`: every handler worker alive (a dead one is
//! restarted by the worker supervisor; until then the service is not ready), and the job
//! consumer polling its broker (a consumer whose poll loop has not gone round for
//! `admin.consumer_stall_ms` is stalled: nothing is taken off the bus).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::clock::Clock;
use serde::Serialize;

#[derive(Debug)]
pub struct Health {
    workers: usize,
    alive: AtomicUsize,
    restarts: AtomicU64,
    /// The job consumer's last poll (epoch ms), once a consumer that can stall runs.
    heartbeat: Mutex<Option<Arc<AtomicI64>>>,
    stall_ms: i64,
    clock: Arc<dyn Clock>,
    /// Supervised components that failed and wait for their restart.
    down: Mutex<std::collections::BTreeSet<&'static str>>,
}

/// What `/healthz` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// `ok` or `not ready`.
    pub status: &'static str,
    pub workers_alive: usize,
    pub workers: usize,
    pub worker_restarts: u64,
    /// Milliseconds since the job consumer last polled (absent for the embedded bus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_last_poll_ms_ago: Option<i64>,
    /// Why not ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Health {
    pub fn new(workers: usize, stall_ms: u64, clock: Arc<dyn Clock>) -> Health {
        Health {
            workers,
            alive: AtomicUsize::new(0),
            restarts: AtomicU64::new(0),
            heartbeat: Mutex::new(None),
            stall_ms: stall_ms.max(1) as i64,
            clock,
            down: Mutex::new(Default::default()),
        }
    }

    pub fn worker_started(&self) {
        self.alive.fetch_add(1, Ordering::Relaxed);
    }

    pub fn worker_stopped(&self) {
        self.alive.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn worker_restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// A supervised component failed (`up = false`) or was restarted (`up = true`).
    pub fn component(&self, name: &'static str, up: bool) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if up {
            down.remove(name);
        } else {
            down.insert(name);
        }
    }

    pub fn watch_consumer(&self, heartbeat: Option<Arc<AtomicI64>>) {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = heartbeat;
    }

    pub fn readiness(&self) -> Readiness {
        let alive = self.alive.load(Ordering::Relaxed);
        let mut problems = Vec::new();
        if alive < self.workers {
            problems.push(format!(
                "{} of {} handler workers dead (being restarted)",
                self.workers - alive,
                self.workers
            ));
        }
        let ago = self
            .heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|h| self.clock.now_ms().saturating_sub(h.load(Ordering::Relaxed)).max(0));
        if let Some(ago) = ago.filter(|ago| *ago >= self.stall_ms) {
            problems.push(format!("job consumer stalled: no poll of the broker for {} s", ago / 1000));
        }
        for name in self.down.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            problems.push(format!("{name} failed (being restarted)"));
        }
        Readiness {
            status: if problems.is_empty() { "ok" } else { "not ready" },
            workers_alive: alive,
            workers: self.workers,
            worker_restarts: self.restarts.load(Ordering::Relaxed),
            consumer_last_poll_ms_ago: ago,
            problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::clock::TokioClock;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn dead_workers_and_a_stalled_consumer_are_not_ready() {
        let clock = Arc::new(TokioClock::starting_at(1_000_000));
        let health = Health::new(2, 60_000, clock.clone());
        health.worker_started();
        health.worker_started();
        assert!(health.readiness().ready());
        health.worker_stopped();
        let r = health.readiness();
        assert_eq!(r.status, "not ready");
        assert_eq!(r.problems, vec!["1 of 2 handler workers dead (being restarted)".to_string()]);
        health.worker_started();

        let beat = Arc::new(AtomicI64::new(clock.now_ms()));
        health.watch_consumer(Some(beat.clone()));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(health.readiness().ready());
        tokio::time::advance(Duration::from_secs(45)).await;
        let r = health.readiness();
        assert_eq!(r.problems, vec!["job consumer stalled: no poll of the broker for 75 s".to_string()]);
        beat.store(clock.now_ms(), Ordering::Relaxed);
        assert!(health.readiness().ready());
    }
}
