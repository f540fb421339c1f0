//! Live sweeps: from `lead_secs` before a key activity starts until it ends, every goods
//! of the activity is re-checked every `interval_secs`, drift or no change event.
//!
//! A sweep publishes one `sweep` job per goods on the priority lane, so the handler group
//! shares the work; it pages the activity's goods shard by shard, paced at
//! `goods_per_sec` per shard. One sweep at a time per activity across the fleet: a MySQL
//! named lock (`GET_LOCK`) per activity, and under it the last sweep time
//! (`reconcile_key_sweep`, in `act_meta`) is read again, so an instance arriving just
//! after another one swept does not sweep twice. The time is recorded when every job of
//! the sweep was published (a sweep cut short is done again at the next tick).

use std::sync::Arc;
use std::time::Duration;

use common::mysql::pager::ActivityGoodsPager;
use common::mysql::sql::quote_ident;
use common::mysql::MysqlPools;
use model::config::SweepConfig;
use model::job::{Job, TriggerKind};
use model::key::KeyActivity;
use model::ActivityId;

use super::SharedKeySet;
use crate::bus::JobPublisher;
use crate::error::Result;
use crate::scanner::pacer::Pacer;
use crate::schedule::NamedLock;

pub struct Sweeper {
    pools: MysqlPools,
    keys: SharedKeySet,
    publisher: Arc<dyn JobPublisher>,
    config: SweepConfig,
}

/// What one sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepDone {
    pub activity_id: ActivityId,
    pub started_ms: i64,
    pub goods: u64,
}

impl Sweeper {
    /// Creates the sweep table when absent.
    pub async fn new(
        pools: MysqlPools,
        keys: SharedKeySet,
        publisher: Arc<dyn JobPublisher>,
        config: SweepConfig,
    ) -> Result<Sweeper> {
        common::mysql::schema::ensure_own_tables(&pools).await?;
        Ok(Sweeper { pools, keys, publisher, config })
    }

    fn lead_ms(&self) -> i64 {
        (self.config.lead_secs as i64).saturating_mul(1000)
    }

    fn interval_ms(&self) -> i64 {
        (self.config.interval_secs as i64).saturating_mul(1000)
    }

    /// One pass at `now_ms`: sweeps every key activity that is due (in its window, not
    /// swept within the interval) and whose lock this instance gets.
    pub async fn pass(&self, now_ms: i64) -> Result<Vec<SweepDone>> {
        let candidates: Vec<KeyActivity> = {
            let keys = self.keys.read().expect("key set lock");
            keys.activities().filter(|a| a.in_sweep_window(now_ms, self.lead_ms())).cloned().collect()
        };
        let mut done = Vec::new();
        for activity in candidates {
            let last = last_swept(&self.pools, activity.meta.activity_id).await?;
            if !activity.sweep_due(now_ms, last, self.lead_ms(), self.interval_ms()) {
                continue;
            }
            if let Some(d) = self.sweep(&activity, now_ms).await? {
                done.push(d);
            }
        }
        Ok(done)
    }

    /// Sweeps one activity under its lock; `None` when another instance holds the lock or
    /// swept it within the interval.
    async fn sweep(&self, activity: &KeyActivity, now_ms: i64) -> Result<Option<SweepDone>> {
        let aid = activity.meta.activity_id;
        let mut name = format!("{}.key_sweep.{aid}", self.pools.layout().meta_database());
        if name.len() > 64 {
            name = format!("reconciler.key_sweep.{aid}.{:x}", fnv(&name));
        }
        let Some(lock) = NamedLock::try_acquire(self.pools.meta_pool(), &name, 0).await? else {
            return Ok(None);
        };
        let result = self.sweep_locked(activity, now_ms).await;
        let released = lock.release().await;
        let done = result?;
        released?;
        Ok(done)
    }

    async fn sweep_locked(&self, activity: &KeyActivity, now_ms: i64) -> Result<Option<SweepDone>> {
        let aid = activity.meta.activity_id;
        let last = last_swept(&self.pools, aid).await?;
        if !activity.sweep_due(now_ms, last, self.lead_ms(), self.interval_ms()) {
            return Ok(None);
        }
        let mut pager = ActivityGoodsPager::new(&self.pools, aid, self.config.page_size);
        let mut shard = pager.shard();
        let mut pacer = Pacer::new(self.config.goods_per_sec);
        let mut goods = 0u64;
        while let Some(page) = pager.next_page().await? {
            let jobs: Vec<Job> = page
                .iter()
                .map(|&g| {
                    let mut job = Job::new(g, TriggerKind::Sweep, format!("sweep-{aid}-{now_ms}-{g}"));
                    job.key = true;
                    job
                })
                .collect();
            self.publisher.publish(&jobs).await?;
            goods += jobs.len() as u64;
            metrics::counter!(crate::metrics::SWEEP_GOODS).increment(jobs.len() as u64);
            if pager.shard() != shard {
                shard = pager.shard();
                pacer = Pacer::new(self.config.goods_per_sec);
            } else {
                pacer.consumed(jobs.len() as u64).await;
            }
        }
        let sql = format!(
            "INSERT INTO {} (activity_id, last_swept_ms, goods) VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE last_swept_ms = VALUES(last_swept_ms), goods = VALUES(goods)",
            table(&self.pools)
        );
        sqlx::query(&sql).bind(aid).bind(now_ms).bind(goods).execute(self.pools.meta_pool()).await?;
        metrics::counter!(crate::metrics::SWEEPS).increment(1);
        tracing::info!(activity_id = aid, goods, "key activity swept");
        Ok(Some(SweepDone { activity_id: aid, started_ms: now_ms, goods }))
    }

    /// Passes every `tick` (at most the sweep interval) until `shutdown` resolves; a
    /// failed pass is logged and tried again at the next tick.
    pub async fn run(self, tick: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let tick = tick.min(Duration::from_millis(self.interval_ms().max(1) as u64));
        loop {
            let pass = self.pass(common::clock::now_ms());
            tokio::select! {
                _ = &mut shutdown => return,
                r = pass => if let Err(e) = r {
                    metrics::counter!(crate::metrics::KEY_REFRESH_ERRORS).increment(1);
                    tracing::warn!(error = %e, "key activity sweep failed, trying again at the next tick");
                },
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }
}

fn table(pools: &MysqlPools) -> String {
    format!("{}.{}", quote_ident(&pools.layout().meta_database()), quote_ident(model::schema::KEY_SWEEP_TABLE))
}

/// When the last sweep of `activity_id` started (epoch ms), if it was ever swept.
/// Without the table (no sweep ever ran against this database): `None`.
pub async fn last_swept(pools: &MysqlPools, activity_id: ActivityId) -> Result<Option<i64>> {
    let sql = format!("SELECT last_swept_ms FROM {} WHERE activity_id = ?", table(pools));
    match sqlx::query_as::<_, (i64,)>(&sql).bind(activity_id).fetch_optional(pools.meta_pool()).await {
        Ok(row) => Ok(row.map(|r| r.0)),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42S02") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}
