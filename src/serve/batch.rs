//! Batch jobs of distributed full runs in the handler workers: check the piece
//! (`handlers::jobs`), count its outcome into the run ledger (exactly once per job id),
//! then acknowledge it.
//!
//! A copy of a job this instance is checking now (a rebalance gave its partition back
//! and the consumer delivered the record again) waits for the original, then finds it
//! counted; a copy of a job counted before is acknowledged unchecked.
//!
//! A store failure is retried under the retry policy (an unreachable target too: a
//! piece is done only when every target was checked); past it, or on a permanent
//! failure, the job is counted as failed in the ledger (so the run still ends, as
//! `failed`) and dead-lettered with the reason. A ledger write that fails is retried
//! until it lands or the service stops (the job then stays unacknowledged and comes
//! back; the ledger counts it once). Deferred repairs and halted targets are counted
//! and reported with the run, not re-checked: the next run sees them.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use common::mysql::ledger::JobOutcome;
use futures::FutureExt;
use handlers::jobs::{outcome, run_batch};
use handlers::Mode;
use model::job::{BatchJob, TriggerKind, Work};
use tokio::sync::watch;
use triggers::Delivery;

use super::telemetry::{ERRORS, JOBS};
use super::worker::{dead_letter, Ctx};

pub(super) async fn handle(ctx: &Ctx, d: Delivery) {
    let Some(batch) = d.job.batch.clone() else { return };
    // A copy of a job this instance is still checking (the partition came back to it
    // after a rebalance) waits for the original instead of checking the piece twice.
    let _running = loop {
        match ctx.running.enter(&d.job.job_id) {
            Ok(guard) => break guard,
            Err(mut original) => {
                tracing::debug!(job_id = %d.job.job_id, "batch job redelivered while being checked here: waiting for it");
                let _ = original.changed().await;
            }
        }
    };
    if already_counted(ctx, &d.job.job_id, &batch.run_id).await {
        metrics::counter!(JOBS, "trigger" => "full", "outcome" => "redelivered").increment(1);
        d.ack.ack();
        return;
    }
    let mode = Mode::repair(TriggerKind::Full, batch.run_id.clone());
    let mut delays = ctx.settings.retry.delays();
    let mut attempt = 1u32;
    let started = std::time::Instant::now();
    let failure = loop {
        let run = run_batch(&ctx.handler, &batch, &mode, ctx.handler.breaker(), ctx.settings.batch_size);
        let (why, retryable, unreachable) = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(Ok(mut result)) if result.report.unreachable.is_empty() => {
                let o = outcome(&mut result, &ctx.settings.instance);
                tracing::debug!(
                    job_id = %d.job.job_id,
                    work = work_kind(&batch.work),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    checked = o.checked,
                    "batch job done"
                );
                if record(ctx, &d.job.job_id, &batch, &o).await {
                    metrics::counter!(JOBS, "trigger" => "full", "outcome" => "done").increment(1);
                    d.ack.ack();
                }
                return;
            }
            Ok(Ok(result)) => {
                let targets = result.report.unreachable.clone();
                (format!("targets unreachable: {}", targets.join(", ")), true, targets)
            }
            Ok(Err(e)) => (e.to_string(), e.is_retryable(), vec![]),
            Err(_) => ("handler panicked".to_string(), false, vec![]),
        };
        metrics::counter!(ERRORS, "component" => "handler").increment(1);
        match delays.next().filter(|_| retryable) {
            Some(delay) => {
                tracing::warn!(job_id = %d.job.job_id, attempt, error = %why, "batch job failed, retrying");
                if !ctx.pause(delay).await {
                    return;
                }
                attempt += 1;
            }
            None => break (format!("gave up after {attempt} attempts: {why}"), unreachable),
        }
    };
    let (why, unreachable) = failure;
    let o = JobOutcome { failed: true, unreachable, handled_by: ctx.settings.instance.clone(), ..Default::default() };
    if record(ctx, &d.job.job_id, &batch, &o).await {
        dead_letter(ctx, vec![d], &why).await;
    }
}

/// Batch jobs being checked by this instance, by job id. [`Running::enter`] gives the
/// first caller a guard (the job is its to check; dropping the guard, however the check
/// ends, wakes the others) and later callers a receiver that changes when it is dropped.
#[derive(Default)]
pub(super) struct Running(std::sync::Mutex<std::collections::HashMap<String, watch::Receiver<()>>>);

/// The right to check a job, held while checking it.
pub(super) struct RunningGuard<'a> {
    running: &'a Running,
    job_id: String,
    _done: watch::Sender<()>,
}

impl Running {
    pub(super) fn enter(&self, job_id: &str) -> Result<RunningGuard<'_>, watch::Receiver<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(job_id) {
            return Err(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        map.insert(job_id.to_string(), rx);
        Ok(RunningGuard { running: self, job_id: job_id.to_string(), _done: tx })
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.running.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.job_id);
    }
}

/// A redelivered job (after a rebalance, or a handler stopped before its offset was
/// committed) whose outcome the ledger holds is acknowledged without checking its piece
/// again: an orphan-scan part of one Redis server took 17 s at 1,000,000 goods, and
/// running it twice held its partition's committed offset long enough for the other
/// members' assignment watchdog to rejoin (BENCHMARKS.md). When the ledger cannot say,
/// the piece is checked: counting stays exactly once either way.
async fn already_counted(ctx: &Ctx, job_id: &str, run_id: &str) -> bool {
    match ctx.ledger.counted(run_id, job_id).await {
        Ok(counted) => {
            if counted {
                tracing::debug!(job_id, run_id, "batch job already counted (a redelivery): acknowledged unchecked");
            }
            counted
        }
        Err(e) => {
            tracing::warn!(job_id, error = %e, "run ledger not read; checking the job's piece");
            false
        }
    }
}

/// Counts the outcome into the ledger, retrying until it lands; false when the service
/// stops first.
async fn record(ctx: &Ctx, job_id: &str, batch: &BatchJob, o: &JobOutcome) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match handlers::jobs::record(&ctx.ledger, job_id, &batch.run_id, o).await {
            Ok(counted) => {
                if !counted {
                    tracing::debug!(job_id, run_id = %batch.run_id, "batch job already counted (a redelivery)");
                }
                return true;
            }
            Err(e) => {
                metrics::counter!(ERRORS, "component" => "ledger").increment(1);
                tracing::warn!(job_id, error = %e, "run ledger not updated, retrying");
            }
        }
        if !ctx.pause(backoff).await {
            return false;
        }
        backoff = (backoff * 2).min(ctx.settings.retry.max_delay.max(Duration::from_millis(100)));
    }
}

/// The kind of a job's work, for logs.
fn work_kind(work: &Work) -> &'static str {
    match work {
        Work::Range { .. } => "range",
        Work::Ids { .. } => "ids",
        Work::OrphanScan { .. } => "orphan_scan",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_being_checked_makes_its_copy_wait_until_the_check_ends() {
        let running = Running::default();
        let guard = running.enter("run-i0").unwrap();
        let mut copy = running.enter("run-i0").err().expect("the copy waits");
        assert!(running.enter("run-i1").is_ok(), "another job does not wait");
        assert!(copy.changed().now_or_never().is_none(), "not while the original is checked");
        drop(guard);
        assert!(copy.changed().await.is_err(), "woken when the original ends");
        let again = running.enter("run-i0");
        assert!(again.is_ok(), "the job is free once its check ended");
    }
}
