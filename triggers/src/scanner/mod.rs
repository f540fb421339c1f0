//! The recent-change scanner: catches truth changes that never produced a change event.
//!
//! Each pass reads, per shard, the rows of `activity_goods_{s}` and `activity_sku_{s}`
//! (and of `act_meta.activity`) whose `updated_at` lies between the table's watermark and
//! `now - settle_ms` (database clock), in keyset order `(updated_at, id)`, at most
//! `rows_per_sec` rows per second per shard. Every page's goods become `scanner` jobs; the
//! watermark moves, and is persisted, only after the page's jobs were published. Activity
//! rows fan out to every goods of the activity. Each pass re-reads `overlap_ms` behind
//! the watermark for transactions that committed late (see [`table_scan`]).

pub mod checkpoint;
pub mod pacer;
pub mod table_scan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use model::config::ScannerConfig;

pub use checkpoint::{CheckpointStore, Watermark};
pub use table_scan::{ScanTable, TableKind};

use crate::bus::JobPublisher;
use crate::error::Result;
use common::mysql::MysqlPools;

/// What one pass did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassStats {
    pub rows: u64,
    pub jobs: u64,
}

pub struct Scanner {
    pools: MysqlPools,
    publisher: Arc<dyn JobPublisher>,
    config: ScannerConfig,
    checkpoints: CheckpointStore,
    /// Shards scanned at once.
    concurrency: usize,
    /// Per table, the rows published within the overlap window.
    recent: Mutex<HashMap<String, table_scan::Recent>>,
}

impl Scanner {
    /// Creates the checkpoint table when absent.
    pub async fn new(pools: MysqlPools, publisher: Arc<dyn JobPublisher>, config: ScannerConfig) -> Result<Scanner> {
        let checkpoints = CheckpointStore::open(&pools).await?;
        Ok(Scanner { pools, publisher, config, checkpoints, concurrency: 4, recent: Mutex::new(HashMap::new()) })
    }

    pub fn checkpoints(&self) -> &CheckpointStore {
        &self.checkpoints
    }

    /// The tables of one shard (goods, sku), and `activity` as a shard of its own.
    fn groups(&self) -> Vec<Vec<ScanTable>> {
        let layout = self.pools.layout();
        let mut groups: Vec<Vec<ScanTable>> = layout
            .all_shards()
            .map(|s| {
                vec![
                    ScanTable {
                        database_index: Some(s.database_index),
                        database: s.database.clone(),
                        table: s.goods_table,
                        kind: TableKind::Goods,
                    },
                    ScanTable {
                        database_index: Some(s.database_index),
                        database: s.database,
                        table: s.sku_table,
                        kind: TableKind::Goods,
                    },
                ]
            })
            .collect();
        groups.push(vec![ScanTable {
            database_index: None,
            database: layout.meta_database(),
            table: "activity".into(),
            kind: TableKind::Activity,
        }]);
        groups
    }

    /// One pass over every table, up to `now - settle_ms`.
    pub async fn pass(&self) -> Result<PassStats> {
        let results: Vec<Result<PassStats>> = stream::iter(self.groups())
            .map(|tables| async move {
                let mut pacer = pacer::Pacer::new(self.config.rows_per_sec);
                let mut stats = PassStats::default();
                for table in tables {
                    let name = table.checkpoint_name();
                    let mut recent = self.recent.lock().unwrap().remove(&name).unwrap_or_default();
                    let s = table_scan::scan(
                        &table,
                        &self.pools,
                        &self.checkpoints,
                        self.publisher.as_ref(),
                        &self.config,
                        &mut pacer,
                        &mut recent,
                    )
                    .await;
                    self.recent.lock().unwrap().insert(name, recent);
                    let s = s?;
                    stats.rows += s.rows;
                    stats.jobs += s.jobs;
                }
                Ok(stats)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut total = PassStats::default();
        for r in results {
            let s = r?;
            total.rows += s.rows;
            total.jobs += s.jobs;
        }
        Ok(total)
    }

    /// Runs a pass every `interval_ms` until `shutdown` resolves; failed passes are
    /// logged and retried at the next interval (watermarks only move on success).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            tokio::select! {
                _ = &mut shutdown => return,
                result = self.pass() => match result {
                    Ok(stats) => tracing::debug!(rows = stats.rows, jobs = stats.jobs, "scanner pass done"),
                    Err(e) => tracing::warn!(error = %e, retryable = e.is_retryable(), "scanner pass failed"),
                },
            }
        }
    }
}
