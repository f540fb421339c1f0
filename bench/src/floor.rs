//! The raw read floor: the full run's reads with nothing else. Same id source (keyset
//! page per shard), same batch size and worker count; per batch the same statements (one
//! SELECT per shard table by the page's goods id range, prepared as the full run's
//! [`raw_shard_rows`], then the activity SELECT for the activity ids found), one
//! `HGETALL` pipeline per Redis target and one `getRowsWithColumns` on HBase (the
//! targets' own `read`), truth and targets read concurrently; activities read less than
//! `full.activity_reuse_ms` ago are not read again, as the full run reuses them; then
//! the orphan scan's paging of every target. No projection, no JSON decode, no diff, no repair: rows stay
//! raw driver rows (only the activity id column is read, to build the activity query).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use common::mysql::sql::{epoch_ms_of as ms, id_list};
use futures::future::try_join_all;
use handlers::run::{mysql_id_source, Batch};
use handlers::truth::{raw_shard_rows, Goods, Select, Table};
use handlers::Handler;
use model::ShardLayout;
use sqlx::Row;
use tokio::sync::Mutex;

/// When each activity was last read, and for how long a read stands (the full run's
/// `activity_reuse_ms`).
struct ActivityReads {
    reuse: Duration,
    read_at: std::sync::Mutex<HashMap<u64, Instant>>,
}

impl ActivityReads {
    /// The ids of `aids` to read now (marked read).
    fn due(&self, aids: Vec<u64>) -> Vec<u64> {
        let mut read_at = self.read_at.lock().unwrap();
        let now = Instant::now();
        aids.into_iter()
            .filter(|a| match read_at.get(a) {
                Some(at) if now.duration_since(*at) < self.reuse => false,
                _ => {
                    read_at.insert(*a, now);
                    true
                }
            })
            .collect()
    }
}

/// Reads of one batch; returns rows + cells read (to keep the work observable).
async fn read_batch(
    handler: &Handler,
    layout: &ShardLayout,
    pools: &common::mysql::MysqlPools,
    batch: &Batch,
    activities: &ActivityReads,
) -> Result<u64> {
    let ids = &batch.ids[..];
    let truth = async {
        let groups = layout.group_by_shard(ids);
        let per_shard = try_join_all(groups.iter().map(|(&s, ids)| async move {
            let shard = layout.shard(s);
            let pool = pools.shard_pool(shard.database_index);
            // The full run's statements: the shard's range when the source knows it, else
            // the id list; rows left as the driver gives them.
            let which = match batch.range {
                Some((_, lo, hi)) => Goods::Range(lo, hi),
                None => Goods::Ids(ids),
            };
            let shard = &shard;
            let read = |table| async move {
                Ok::<_, sqlx::Error>(raw_shard_rows(pool, &[Select { shard, table, which }]).await?.0)
            };
            tokio::try_join!(read(Table::Goods), read(Table::Sku))
        }))
        .await?;
        let mut aids: Vec<u64> = Vec::new();
        let mut n = 0u64;
        for (g, k) in &per_shard {
            n += (g.len() + k.len()) as u64;
            for r in g {
                aids.push(r.try_get(1)?);
            }
        }
        aids.sort_unstable();
        aids.dedup();
        let aids = activities.due(aids);
        if !aids.is_empty() {
            let sql = format!(
                "SELECT activity_id, type, biz_code, tags, status, {}, {}, priority, {} FROM `{}`.activity WHERE activity_id IN ({})",
                ms("start_time"),
                ms("end_time"),
                ms("updated_at"),
                layout.meta_database(),
                id_list(&aids)
            );
            n += sqlx::raw_sql(&sql).fetch_all(pools.meta_pool()).await?.len() as u64;
        }
        Ok::<u64, anyhow::Error>(n)
    };
    let targets = try_join_all(handler.targets().iter().map(|t| t.read(ids)));
    let (rows, observed) = tokio::join!(truth, targets);
    let cells: usize = observed.map_err(|e| anyhow!("{e}"))?.iter().flatten().map(|g| g.cells.len()).sum();
    Ok(rows? + cells as u64)
}

pub struct Floor {
    pub elapsed: Duration,
    /// Of which the orphan scan's paging.
    pub scan: Duration,
    pub goods: u64,
    pub items: u64,
}

pub async fn run(
    handler: &Arc<Handler>,
    pools: &common::mysql::MysqlPools,
    batch: usize,
    workers: usize,
    activity_reuse: Duration,
) -> Result<Floor> {
    let started = Instant::now();
    let activities = Arc::new(ActivityReads { reuse: activity_reuse, read_at: Default::default() });
    let layout = handler.truth().layout().clone();
    let rx = Arc::new(Mutex::new(mysql_id_source(handler, batch)));
    let tasks = (0..workers.max(1)).map(|_| {
        let (rx, handler, layout, pools) = (rx.clone(), handler.clone(), layout.clone(), pools.clone());
        let activities = activities.clone();
        tokio::spawn(async move {
            let (mut goods, mut items) = (0u64, 0u64);
            loop {
                let next = rx.lock().await.recv().await;
                let ids = match next {
                    None => break,
                    Some(Err(e)) => return Err(anyhow!(e)),
                    Some(Ok(ids)) => ids,
                };
                items += read_batch(&handler, &layout, &pools, &ids, &activities).await?;
                goods += ids.ids.len() as u64;
            }
            Ok((goods, items))
        })
    });
    let mut floor = Floor { elapsed: Duration::ZERO, scan: Duration::ZERO, goods: 0, items: 0 };
    for r in futures::future::join_all(tasks).await {
        let (g, i) = r??;
        floor.goods += g;
        floor.items += i;
    }
    // The orphan scan's paging, every target at once as in `run_full`.
    let scan_started = Instant::now();
    let pages = try_join_all(handler.targets().iter().map(|t| async move {
        let (mut cursor, mut goods) = (None, 0u64);
        loop {
            let page = t.scan(cursor.take(), batch).await.map_err(|e| anyhow!("{e}"))?;
            goods += page.goods.len() as u64;
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok::<u64, anyhow::Error>(goods),
            }
        }
    }))
    .await?;
    floor.items += pages.iter().sum::<u64>();
    floor.scan = scan_started.elapsed();
    floor.elapsed = started.elapsed();
    Ok(floor)
}
