//! One table of one scanner pass: keyset pages from the watermark to the window end.
//!
//! Overlap: `updated_at` is set when a statement runs, but its row becomes visible only
//! when the transaction commits, possibly after the watermark moved past that time. So
//! each pass starts `overlap_ms` behind the watermark; rows at or before the watermark
//! that this scanner already published (remembered per table for the overlap window)
//! are skipped, the others (late commits) are published. After a restart the memory is
//! empty and the overlap window's rows are published once more (at least once).

use std::collections::{BTreeSet, HashSet};

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

/// Rows published within the overlap window, `(updated ms, key)`, per table.
pub type Recent = BTreeSet<(i64, u64)>;

#[allow(clippy::too_many_arguments)]
pub async fn scan(
    table: &ScanTable,
    pools: &MysqlPools,
    checkpoints: &CheckpointStore,
    publisher: &dyn JobPublisher,
    config: &ScannerConfig,
    pacer: &mut Pacer,
    recent: &mut Recent,
) -> Result<PassStats> {
    let pool = match table.database_index {
        Some(i) => pools.shard_pool(i),
        None => pools.meta_pool(),
    };
    let now_sql = format!("SELECT {}", epoch_ms_of("NOW(3)"));
    let (db_now,): (i64,) = sqlx::query_as(&now_sql).fetch_one(pool).await?;
    let window_end = db_now - config.settle_ms as i64;
    let name = table.checkpoint_name();
    let (mut mark, mut cursor) = match checkpoints.load(&name).await? {
        // Re-read the overlap window behind the watermark (`key > MAX` is never true: the
        // cursor starts right after `updated_ms`).
        Some(mark) if config.overlap_ms > 0 => {
            (mark, Watermark { updated_ms: mark.updated_ms - config.overlap_ms as i64 - 1, last_id: u64::MAX })
        }
        Some(mark) => (mark, mark),
        None => {
            let start = Watermark { updated_ms: window_end - config.initial_lookback_ms as i64, last_id: 0 };
            (start, start)
        }
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
    recent.retain(|&(ms, _)| ms >= mark.updated_ms - config.overlap_ms as i64);
    loop {
        let rows: Vec<(u64, u64, i64)> = sqlx::query_as(&sql)
            .bind(cursor.updated_ms)
            .bind(window_end)
            .bind(cursor.updated_ms)
            .bind(cursor.last_id)
            .bind(page_size)
            .fetch_all(pool)
            .await?;
        let Some(&(last_key, _, last_ms)) = rows.last() else {
            break;
        };
        stats.rows += rows.len() as u64;
        metrics::counter!(crate::metrics::SCANNER_ROWS, "table" => table.table.clone()).increment(rows.len() as u64);
        // Rows up to the watermark were published unless they committed late.
        let fresh: Vec<(u64, u64, i64)> = rows
            .iter()
            .copied()
            .filter(|&(key, _, ms)| Watermark { updated_ms: ms, last_id: key } > mark || !recent.contains(&(ms, key)))
            .collect();
        if !fresh.is_empty() {
            stats.jobs += match table.kind {
                TableKind::Goods => publish_goods_rows(table, &fresh, publisher).await?,
                TableKind::Activity => publish_activity_rows(pools, &fresh, publisher, page_size).await?,
            };
        }
        recent.extend(fresh.iter().map(|&(key, _, ms)| (ms, key)));
        cursor = Watermark { updated_ms: last_ms, last_id: last_key };
        if cursor > mark {
            mark = cursor;
            checkpoints.save(&name, mark).await?;
        }
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
