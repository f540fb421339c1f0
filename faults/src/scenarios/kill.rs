//! Scenario `kill`: `kill -9` of `reconciler serve` at random moments under the stream,
//! each victim restarted at once; for the second half of the kills two instances share
//! the consumer groups and the victim is either of them. Shared MariaDB, Redis and
//! broker (own databases, keys, topics); the scenario's own HBase server.

use std::time::{Duration, Instant};

use anyhow::Result;
use rand::Rng;

use super::{pause, Outcome, Run};
use crate::env::{Ctx, Env};
use crate::procs;

pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let (_hbase, hbase_addr) = procs::start_emulator(&ctx.binary, &ctx.work)?;
    let env = Env::new(
        ctx,
        "kill",
        common::testenv::mysql_url(),
        format!("{}/0", common::testenv::redis_url().trim_end_matches('/')),
        hbase_addr,
        common::testenv::kafka_brokers(),
    )?;
    let mut run = Run::prepare(ctx, env, 2, 1, 0x4B11).await?;
    let kills = if ctx.quick { 6 } else { 20 };
    let mut out = Outcome {
        name: "kill".into(),
        fault: format!("`kill -9` of serve {kills} times at random moments (2-6 s apart), restarted at once; two instances in one group for the last {}", kills / 2),
        ..Default::default()
    };
    let stream = run.stream(ctx, 0x4B12)?;
    pause(5_000).await;
    let mut last_restart = Instant::now();
    for k in 0..kills {
        if k == kills / 2 {
            run.serves[1].start_and_wait()?;
        }
        let wait = run.rng.gen_range(2_000..6_000);
        pause(wait).await;
        let victim = if k >= kills / 2 { run.rng.gen_range(0..2) } else { 0 };
        let s = &mut run.serves[victim];
        s.kill9();
        s.start()?;
        last_restart = Instant::now();
    }
    let recovery = run.watch_recovery(stream.log.clone(), last_restart);
    pause(15_000).await;
    let log = stream.stop().await?;
    eprintln!("faults: stream stopped, waiting for recovery");
    out.recovery_ms = tokio::time::timeout(run.settle_limit() + Duration::from_secs(30), recovery)
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten();
    let log = std::mem::take(&mut *log.lock().unwrap());
    run.finish(&log, &[], &mut out).await?;
    out.notes.push(format!(
        "restarts: instance #0 {}, instance #1 {}",
        run.serves[0].starts.saturating_sub(1),
        run.serves[1].starts.saturating_sub(1)
    ));
    run.clean_up(ctx).await;
    Ok(out)
}
