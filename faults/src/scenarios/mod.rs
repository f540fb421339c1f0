//! The scenarios and what they share: preparing a scenario's world (config, topics,
//! universe, `serve` instances), watching recovery after a fault, waiting for the end
//! state, and gathering the figures of one row of the report.

pub mod kill;
pub mod outage;
pub mod poison;
pub mod race;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use model::GoodsId;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::check::Checker;
use crate::env::{Ctx, Env};
use crate::observe;
use crate::procs::Serve;
use crate::stream::{self, Log, Stream};
use crate::universe::{self, Universe};

/// One row of the report.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub name: String,
    pub fault: String,
    /// Change events produced (valid ones; poison is counted in `poison`).
    pub events: u64,
    pub changes: u64,
    /// Truth writes refused while the database was down.
    pub refused: u64,
    /// Events the producer could not deliver, after resending for five minutes.
    pub undelivered: u64,
    /// Events sent again after a failed delivery.
    pub resent: u64,
    pub expected: u64,
    pub consistent: u64,
    /// The first few goods left inconsistent, with why.
    pub lost: Vec<String>,
    /// Audit-log rows by status.
    pub audit: BTreeMap<String, u64>,
    pub dead_letters: u64,
    pub dead_letter_reasons: Vec<(String, u64)>,
    /// From the end of the fault until every goods changed before it was consistent.
    pub recovery_ms: Option<u64>,
    pub stage_ms: u64,
    pub stale_overwrites: Option<u64>,
    pub notes: Vec<String>,
    pub seconds: f64,
    pub error: Option<String>,
}

impl Outcome {
    pub fn lost_count(&self) -> u64 {
        self.expected.saturating_sub(self.consistent)
    }

    pub fn failed(name: &str, fault: &str, e: &anyhow::Error) -> Outcome {
        Outcome { name: name.into(), fault: fault.into(), error: Some(format!("{e:#}")), ..Default::default() }
    }
}

/// A prepared scenario: its world, its services, the checker.
pub struct Run {
    pub env: Env,
    pub pool: sqlx::MySqlPool,
    pub checker: Checker,
    pub serves: Vec<Serve>,
    pub universe: Option<Universe>,
    pub started: Instant,
    pub rng: StdRng,
}

impl Run {
    /// Writes the config, creates the topics, seeds and syncs the universe, and creates
    /// `instances` services (started: the first `start` of them).
    pub async fn prepare(ctx: &Ctx, env: Env, instances: usize, start: usize, seed: u64) -> Result<Run> {
        let started = Instant::now();
        env.write_config()?;
        let pool = env.pool().await?;
        env.create_topics().await?;
        let mut rng = StdRng::seed_from_u64(seed);
        let universe = universe::seed(&env, &pool, ctx.goods, &mut rng).await?;
        let checker = Checker::new(&env, pool.clone());
        let mut serves = Vec::new();
        for i in 0..instances {
            let mut s = Serve::new(&env.binary, &env.config, &env.dir, i, ctx.static_membership)?;
            if i < start {
                s.start_and_wait()?;
            }
            serves.push(s);
        }
        // Let the consumers join their groups.
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(Run { env, pool, checker, serves, universe: Some(universe), started, rng })
    }

    pub fn stream(&mut self, ctx: &Ctx, seed: u64) -> Result<Stream> {
        self.stream_at(seed, ctx.rate)
    }

    /// A stream of `rate` changes per second.
    pub fn stream_at(&mut self, seed: u64, rate: u64) -> Result<Stream> {
        let universe = self.universe.take().expect("one stream per run");
        Ok(Stream::spawn(
            self.pool.clone(),
            self.env.layout.clone(),
            universe,
            rate,
            stream::producer(&self.env.brokers)?,
            self.env.topic("canal"),
            seed,
        ))
    }

    /// Watches, from `fault_end`, the goods whose last change came before it, until each
    /// has been seen consistent on every target; the time that took.
    pub fn watch_recovery(&self, log: Arc<Mutex<Log>>, fault_end: Instant) -> tokio::task::JoinHandle<Option<u64>> {
        let checker = self.checker.clone();
        let limit = self.settle_limit() + Duration::from_secs(30);
        tokio::spawn(async move {
            let mut confirmed: BTreeSet<GoodsId> = BTreeSet::new();
            while fault_end.elapsed() < limit {
                let pending: Vec<GoodsId> = {
                    let l = log.lock().unwrap();
                    l.touched
                        .iter()
                        .filter(|(g, &t)| t < fault_end && !confirmed.contains(g))
                        .map(|(&g, _)| g)
                        .collect()
                };
                if pending.is_empty() {
                    return Some(fault_end.elapsed().as_millis() as u64);
                }
                if let Ok(bad) = checker.check(&pending).await {
                    // A goods changed again since the snapshot is dropped from the watch.
                    let l = log.lock().unwrap();
                    confirmed.extend(pending.iter().filter(|g| !bad.contains_key(g) || l.touched[g] >= fault_end));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            None
        })
    }

    /// Polls `goods` until every one is consistent or `within` has passed; the ones left,
    /// with why.
    pub async fn settle(&self, goods: &[GoodsId], within: Duration) -> BTreeMap<GoodsId, String> {
        let started = Instant::now();
        let mut left: Vec<GoodsId> = goods.to_vec();
        loop {
            let why: BTreeMap<GoodsId, String> = match self.checker.check(&left).await {
                Ok(bad) => {
                    left = bad.keys().copied().collect();
                    bad
                }
                Err(e) => left.iter().map(|&g| (g, format!("check failed: {e:#}"))).collect(),
            };
            if left.is_empty() || started.elapsed() > within {
                return why;
            }
            eprintln!("faults: {} goods not consistent yet, e.g. {:?}", left.len(), why.iter().next());
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// The longest wait for the end state: the last stage plus retries.
    pub fn settle_limit(&self) -> Duration {
        Duration::from_millis(self.env.stages_ms.iter().copied().max().unwrap_or(0)) + Duration::from_secs(90)
    }

    /// Stops the services, waits for the end state of `goods`, reads the dead letters and
    /// the audit log, and fills the common figures of `out`.
    pub async fn finish(
        &mut self,
        log: &Log,
        extra_goods: &[GoodsId],
        out: &mut Outcome,
    ) -> Result<Vec<observe::DeadLetter>> {
        let mut goods: BTreeSet<GoodsId> = log.touched.keys().copied().collect();
        goods.extend(extra_goods);
        // A goods whose latest change never reached the broker was never announced to
        // the service (the scanner, which would catch it, is off here): not expected.
        let untold = goods.iter().filter(|g| log.untold.contains(g)).count();
        if untold > 0 {
            out.notes.push(format!(
                "{untold} goods whose latest change event the broker never took (after resending for five minutes) are not expected consistent: the service was never told of that change"
            ));
        }
        let goods: Vec<GoodsId> = goods.into_iter().filter(|g| !log.untold.contains(g)).collect();
        let bad = self.settle(&goods, self.settle_limit()).await;
        for (i, s) in self.serves.iter_mut().enumerate() {
            if s.starts > 0 && !s.alive() {
                out.notes.push(format!("serve #{i} had exited on its own before the end (see {})", s.log.display()));
            }
        }
        let (mut drift, mut repairs) = (0.0, 0.0);
        for s in &self.serves {
            if let Some(text) = s.metrics() {
                drift += observe::counter_sum(&text, "reconciler_drift_total");
                repairs += observe::counter_sum(&text, "reconciler_repairs_total");
            }
        }
        out.notes.push(format!(
            "metrics of the instances running at the end (since their last start): {drift} drift, {repairs} repairs"
        ));
        for s in &mut self.serves {
            s.stop();
        }
        out.events += log.events;
        out.changes = log.changes;
        out.refused = log.refused;
        out.undelivered = log.undelivered;
        out.resent = log.resent;
        out.expected = goods.len() as u64;
        out.consistent = (goods.len() - bad.len()) as u64;
        out.lost = bad.iter().take(5).map(|(g, w)| format!("goods {g}: {w}")).collect();
        out.stage_ms = self.env.stages_ms[0];
        out.audit = observe::audit_counts(&self.pool, &self.env.layout.meta_database()).await;
        let (brokers, topic) = (self.env.brokers.clone(), self.env.topic("dlq"));
        let group = format!("flt-{}-dlq-reader", self.env.tag);
        let letters = tokio::task::spawn_blocking(move || observe::dead_letters(&brokers, &topic, &group)).await??;
        out.dead_letters = letters.len() as u64;
        out.dead_letter_reasons = observe::reason_counts(&letters);
        out.seconds = self.started.elapsed().as_secs_f64();
        Ok(letters)
    }

    pub async fn clean_up(&self, ctx: &Ctx) {
        if !ctx.keep {
            let _ = self.env.clean_up(&self.pool).await;
        }
    }
}

/// Sleeps on tokio's clock for `ms` milliseconds.
pub async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
