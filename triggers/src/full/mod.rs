//! The publisher of distributed full runs: turns the universe (MySQL keyset over every
//! shard, or a Parquet dump) into batch jobs (job message version 2, `model::job`) on the
//! job bus, records the run in the ledger (`common::mysql::ledger`) and checkpoints its
//! position there after every batch it published.
//!
//! - **MySQL source**: shards in order, each walked in goods-id order with keyset pages
//!   of `job_goods` ids; each page becomes one `range` job `[lo, hi]` (lo = just after the
//!   previous page). Paced at `rows_per_sec` per shard.
//! - **Dump source**: batches of `job_goods` ids become `ids` jobs numbered by their
//!   index in the dump (the same dump read twice gives the same jobs).
//! - Then the orphan-scan jobs the caller names (targets and their parts).
//!
//! Resumable: the checkpoint (`s{shard}:{last id}` / `d{batches}` / `o{jobs}`) and the
//! counts move together after each publish; a publisher that dies leaves its lease to
//! expire and another instance [`FullPublisher::resume_orphaned`] continues from the
//! checkpoint. Jobs published after the last checkpoint are published again with the
//! same ids, which the ledger counts once. Memory is one page, whatever the universe.

mod position;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::clock::Clock;
use common::mysql::ledger::Ledger;
use common::mysql::MysqlPools;
use model::job::{Job, Work};

use crate::bus::JobPublisher;
use crate::dump::DumpReader;
use crate::error::{Result, TriggerError};
use position::Position;

/// Where a run's goods come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSource {
    Mysql,
    Dump(PathBuf),
}

impl RunSource {
    /// As recorded in the ledger: `mysql` or `dump:PATH`.
    pub fn describe(&self) -> String {
        match self {
            RunSource::Mysql => "mysql".into(),
            RunSource::Dump(p) => format!("dump:{}", p.display()),
        }
    }

    pub fn parse(s: &str) -> RunSource {
        match s.strip_prefix("dump:") {
            Some(p) => RunSource::Dump(PathBuf::from(p)),
            None => RunSource::Mysql,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Goods per batch job.
    pub job_goods: u32,
    /// Goods rows per second per shard (0: unlimited).
    pub rows_per_sec: u32,
    pub lease_ms: i64,
    /// This instance, as the ledger's lease owner.
    pub owner: String,
    /// Orphan-scan jobs: (target name, parts).
    pub orphan_scans: Vec<(String, u32)>,
    /// Goods id column of dumps.
    pub dump_column: String,
}

/// How a publication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Every job is on the bus; the run is `running` (or already finished).
    All { jobs: u64, goods: u64 },
    /// Another instance holds the run's lease (or the run is no longer publishing).
    NotOwner,
}

pub struct FullPublisher {
    pools: MysqlPools,
    ledger: Ledger,
    bus: Arc<dyn JobPublisher>,
    opts: PublishOptions,
    clock: Arc<dyn Clock>,
    /// The ledger tables were made sure of.
    tables: std::sync::atomic::AtomicBool,
}

impl FullPublisher {
    pub fn new(pools: MysqlPools, bus: Arc<dyn JobPublisher>, opts: PublishOptions, clock: Arc<dyn Clock>) -> Self {
        FullPublisher { ledger: Ledger::new(&pools), pools, bus, opts, clock, tables: Default::default() }
    }

    async fn ensure_tables(&self) -> Result<()> {
        if !self.tables.load(std::sync::atomic::Ordering::Relaxed) {
            Ledger::ensure_tables(&self.pools).await?;
            self.tables.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Records a new run (state `publishing`, this instance holding its lease).
    pub async fn create(&self, run_id: &str, source: &RunSource, dry_run: bool) -> Result<()> {
        self.ensure_tables().await?;
        if let RunSource::Dump(path) = source {
            // A missing path or an empty directory fails here, before the run exists.
            crate::dump::part_files(path).map_err(|e| TriggerError::Config(e.to_string()))?;
        }
        let now = self.clock.now_ms();
        self.ledger.create(run_id, &source.describe(), dry_run, &self.opts.owner, now, self.opts.lease_ms).await?;
        Ok(())
    }

    /// Publishes (or resumes publishing) run `run_id` to its end. A source that fails
    /// for good (a broken dump file) fails the run with the reason.
    pub async fn publish(&self, run_id: &str) -> Result<Published> {
        let Some(run) = self.ledger.claim(run_id, &self.opts.owner, self.clock.now_ms(), self.opts.lease_ms).await?
        else {
            return Ok(Published::NotOwner);
        };
        let source = RunSource::parse(&run.source);
        let mut state =
            State { position: Position::parse(&run.checkpoint), jobs: run.jobs_published, goods: run.published };
        if state.position == Position::Start {
            state.position = match source {
                RunSource::Mysql => Position::Shard { shard: 0, after: None },
                RunSource::Dump(_) => Position::Dump { batches: 0 },
            };
        }
        tracing::info!(run_id, checkpoint = %state.position, jobs = state.jobs, "publishing full run");
        let outcome = match (&source, &state.position) {
            (_, Position::Orphans { .. }) => self.orphans(run_id, &mut state).await,
            (RunSource::Mysql, _) => match self.mysql(run_id, &mut state).await? {
                true => self.orphans(run_id, &mut state).await,
                false => Ok(false),
            },
            (RunSource::Dump(path), _) => match self.dump(run_id, path, &mut state).await {
                Ok(true) => self.orphans(run_id, &mut state).await,
                Ok(false) => Ok(false),
                Err(TriggerError::Dump(e)) => {
                    self.ledger.fail(run_id, &e.to_string(), self.clock.now_ms()).await?;
                    return Err(TriggerError::Dump(e));
                }
                Err(e) => Err(e),
            },
        }?;
        if !outcome {
            return Ok(Published::NotOwner);
        }
        if !self.ledger.published_all(run_id, &self.opts.owner, state.jobs, state.goods, self.clock.now_ms()).await? {
            return Ok(Published::NotOwner);
        }
        tracing::info!(run_id, jobs = state.jobs, goods = state.goods, "full run published");
        Ok(Published::All { jobs: state.jobs, goods: state.goods })
    }

    /// Takes over runs whose publisher died (lease expired) and finishes publishing
    /// them; returns the runs it published.
    pub async fn resume_orphaned(&self) -> Result<Vec<String>> {
        self.ensure_tables().await?;
        let mut resumed = Vec::new();
        for run_id in self.ledger.orphaned(self.clock.now_ms()).await? {
            tracing::warn!(run_id = %run_id, "full run publisher lease expired, resuming its publication");
            if let Published::All { .. } = self.publish(&run_id).await? {
                resumed.push(run_id);
            }
        }
        Ok(resumed)
    }

    /// Publishes `jobs`, then moves the checkpoint; false when the lease was lost.
    async fn put(&self, run_id: &str, state: &mut State, jobs: Vec<Job>, goods: u64, next: Position) -> Result<bool> {
        if !jobs.is_empty() {
            self.bus.publish(&jobs).await?;
        }
        state.jobs += jobs.len() as u64;
        state.goods += goods;
        state.position = next;
        let now = self.clock.now_ms();
        let checkpoint = state.position.to_string();
        let kept = self
            .ledger
            .checkpoint(run_id, &self.opts.owner, (&checkpoint, state.jobs, state.goods), now, self.opts.lease_ms)
            .await?;
        if !kept {
            tracing::warn!(run_id, "full run publisher lost its lease; another instance publishes the run");
        }
        Ok(kept)
    }

    /// Waits so that `rows` more rows keep the pace of `rows_per_sec`.
    async fn pace(&self, rows: usize) {
        if self.opts.rows_per_sec > 0 && rows > 0 {
            let ms = rows as u64 * 1000 / self.opts.rows_per_sec as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    async fn mysql(&self, run_id: &str, state: &mut State) -> Result<bool> {
        let shards = self.pools.layout().total_shards();
        while let Position::Shard { shard, after } = state.position {
            if shard >= shards {
                state.position = Position::Orphans { jobs: 0 };
                break;
            }
            let ids = common::mysql::pager::goods_page(&self.pools, shard, after, self.opts.job_goods).await?;
            let (jobs, goods, next) = match ids.last() {
                None => (vec![], 0, Position::Shard { shard: shard + 1, after: None }),
                Some(&hi) => {
                    let lo = after.map(|a| a + 1).unwrap_or(0);
                    let job = Job::batch(run_id, Work::Range { shard, lo, hi });
                    let next = if ids.len() < self.opts.job_goods as usize {
                        Position::Shard { shard: shard + 1, after: None }
                    } else {
                        Position::Shard { shard, after: Some(hi) }
                    };
                    (vec![job], ids.len() as u64, next)
                }
            };
            if !self.put(run_id, state, jobs, goods, next).await? {
                return Ok(false);
            }
            self.pace(ids.len()).await;
        }
        Ok(true)
    }

    async fn dump(&self, run_id: &str, path: &std::path::Path, state: &mut State) -> Result<bool> {
        let Position::Dump { batches: start } = state.position else { return Ok(true) };
        let reader = DumpReader::open(path, &self.opts.dump_column, self.opts.job_goods as usize)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        // The reader is blocking IO: its own thread, one batch ahead.
        let read = tokio::task::spawn_blocking(move || {
            for (seq, batch) in reader.enumerate() {
                let failed = batch.is_err();
                let skip = (seq as u64) < start && !failed;
                if !skip && (tx.blocking_send((seq as u64, batch)).is_err() || failed) {
                    return;
                }
            }
        });
        while let Some((seq, batch)) = rx.recv().await {
            let ids = batch?;
            let n = ids.len();
            let job = Job::batch(run_id, Work::Ids { seq, ids });
            if !self.put(run_id, state, vec![job], n as u64, Position::Dump { batches: seq + 1 }).await? {
                return Ok(false);
            }
            self.pace(n).await;
        }
        read.await.map_err(|e| TriggerError::Config(format!("dump reader thread failed: {e}")))?;
        state.position = Position::Orphans { jobs: 0 };
        Ok(true)
    }

    async fn orphans(&self, run_id: &str, state: &mut State) -> Result<bool> {
        let Position::Orphans { jobs: done } = state.position else { return Ok(true) };
        let all: Vec<Job> = self
            .opts
            .orphan_scans
            .iter()
            .flat_map(|(target, parts)| {
                (0..*parts).map(move |part| Work::OrphanScan { target: target.clone(), part, parts: *parts })
            })
            .map(|w| Job::batch(run_id, w))
            .collect();
        let mut next = done as usize;
        for chunk in all.get(next..).unwrap_or_default().chunks(64) {
            next += chunk.len();
            if !self.put(run_id, state, chunk.to_vec(), 0, Position::Orphans { jobs: next as u64 }).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

struct State {
    position: Position,
    jobs: u64,
    goods: u64,
}
