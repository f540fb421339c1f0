//! The naive baseline: goods one at a time through the real check path. For one goods
//! `Handler::process` runs one SELECT per truth table (goods rows, SKU rows, then the
//! activities), one `HGETALL` per Redis target and one single-row get on HBase, then
//! projects, decodes and diffs. Measured on a sample, with one worker (literally one
//! goods at a time) and with the full run's worker count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use handlers::{Handler, Mode, RunState};
use model::GoodsId;

pub async fn run(handler: &Arc<Handler>, sample: Vec<GoodsId>, workers: usize) -> Result<(Duration, u64, u64)> {
    let started = Instant::now();
    let sample = Arc::new(sample);
    let next = Arc::new(AtomicUsize::new(0));
    let run = Arc::new(RunState::default());
    let tasks = (0..workers.max(1)).map(|_| {
        let (sample, next, handler, run) = (sample.clone(), next.clone(), handler.clone(), run.clone());
        tokio::spawn(async move {
            let mode = Mode::check("bench-naive".into());
            let mut drift = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&g) = sample.get(i) else { break };
                let report = handler.process(&[g], &mode, &run).await.map_err(|e| anyhow!("{e}"))?;
                drift += report.drift.len() as u64;
            }
            Ok::<u64, anyhow::Error>(drift)
        })
    });
    let mut drift = 0;
    for r in futures::future::join_all(tasks).await {
        drift += r??;
    }
    Ok((started.elapsed(), sample.len() as u64, drift))
}
