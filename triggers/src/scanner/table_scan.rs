//! One table of one scanner pass: keyset pages from the watermark to the window end.

use std::collections::HashSet;

use model::config::ScannerConfig;
use model::job::{Job, TriggerKind};

use super::checkpoint::{CheckpointStore, Watermark};
use super::pacer::Pacer;
use super::PassStats;
use crate::bus::JobPublisher;
use crate::error::Result;
use common::mysql::pager::ActivityGoodsPager;
use common::mysql::sql::{epoch_ms_of, quote_ident, DATETIME_OF_MS};
use common::mysql::MysqlPools;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// `activity_goods_*` / `activity_sku_*`: rows carry their goods id.
    Goods,
    /// `act_meta.activity`: rows fan out to the activity's goods.
    Activity,
}

#[derive(Debug, Clone)]
pub struct ScanTable {
    /// `None` for `act_meta`.
    pub database_index: Option<u32>,
    pub database: String,
    pub table: String,
    pub kind: TableKind,
}

impl ScanTable {
    /// Checkpoint name; shard table names are globally unique (global shard index).
    pub fn checkpoint_name(&self) -> String {
        format!("scanner:{}", self.table)
    }
}

pub async fn scan(
    table: &ScanTable,
    pools: &MysqlPools,
    checkpoints: &CheckpointStore,
    publisher: &dyn JobPublisher,
    config: &ScannerConfig,
    pacer: &mut Pacer,
) -> Result<PassStats> {
    let pool = match table.database_index {
        Some(i) => pools.shard_pool(i),
        None => pools.meta_pool(),
    };
    let now_sql = format!("SELECT {}", epoch_ms_of("NOW(3)"));
    let (db_now,): (i64,) = sqlx::query_as(&now_sql).fetch_one(pool).await?;
    let window_end = db_now - config.settle_ms as i64;
    let name = table.checkpoint_name();
    let mut mark = match checkpoints.load(&name).await? {
        Some(mark) => mark,
        None => Watermark { updated_ms: window_end - config.initial_lookback_ms as i64, last_id: 0 },
    };
    let (key, goods) = match table.kind {
        TableKind::Goods => ("id", "goods_id"),
        TableKind::Activity => ("activity_id", "activity_id"),
    };
    let sql = format!(
        "SELECT {key}, {goods}, {ms} FROM {db}.{t}
         WHERE updated_at >= {DATETIME_OF_MS} AND updated_at <= {DATETIME_OF_MS}
           AND (updated_at > {DATETIME_OF_MS} OR {key} > ?)
         ORDER BY updated_at, {key} LIMIT ?",
        ms = epoch_ms_of("updated_at"),
        db = quote_ident(&table.database),
        t = quote_ident(&table.table),
    );
    let page_size = config.page_size.max(1);
    let mut stats = PassStats::default();
    loop {
        let rows: Vec<(u64, u64, i64)> = sqlx::query_as(&sql)
            .bind(mark.updated_ms)
            .bind(window_end)
            .bind(mark.updated_ms)
            .bind(mark.last_id)
            .bind(page_size)
            .fetch_all(pool)
            .await?;
        let Some(&(last_key, _, last_ms)) = rows.last() else {
            break;
        };
        stats.rows += rows.len() as u64;
        metrics::counter!(crate::metrics::SCANNER_ROWS, "table" => table.table.clone()).increment(rows.len() as u64);
        stats.jobs += match table.kind {
            TableKind::Goods => publish_goods_rows(table, &rows, publisher).await?,
            TableKind::Activity => publish_activity_rows(pools, &rows, publisher, page_size).await?,
        };
        mark = Watermark { updated_ms: last_ms, last_id: last_key };
        checkpoints.save(&name, mark).await?;
        pacer.consumed(rows.len() as u64).await;
        if (rows.len() as u32) < page_size {
            break;
        }
    }
    metrics::gauge!(crate::metrics::SCANNER_LAG, "table" => table.table.clone())
        .set((db_now - mark.updated_ms).max(0) as f64);
    Ok(stats)
}

async fn publish_goods_rows(table: &ScanTable, rows: &[(u64, u64, i64)], publisher: &dyn JobPublisher) -> Result<u64> {
    let mut seen = HashSet::new();
    let jobs: Vec<Job> = rows
        .iter()
        .filter(|(_, goods_id, _)| seen.insert(*goods_id))
        .map(|&(id, goods_id, ms)| {
            let mut job = Job::new(goods_id, TriggerKind::Scanner, format!("scan-{}-{id}-{ms}", table.table));
            job.origin_ms = ms;
            job
        })
        .collect();
    publisher.publish(&jobs).await?;
    Ok(jobs.len() as u64)
}

async fn publish_activity_rows(
    pools: &MysqlPools,
    rows: &[(u64, u64, i64)],
    publisher: &dyn JobPublisher,
    page_size: u32,
) -> Result<u64> {
    let mut count = 0;
    for &(activity_id, _, ms) in rows {
        let mut pager = ActivityGoodsPager::new(pools, activity_id, page_size);
        while let Some(goods) = pager.next_page().await? {
            let jobs: Vec<Job> = goods
                .into_iter()
                .map(|goods_id| {
                    let mut job = Job::new(
                        goods_id,
                        TriggerKind::Scanner,
                        format!("scan-activity-{activity_id}-{ms}-{goods_id}"),
                    );
                    job.origin_ms = ms;
                    job
                })
                .collect();
            publisher.publish(&jobs).await?;
            count += jobs.len() as u64;
        }
    }
    Ok(count)
}
