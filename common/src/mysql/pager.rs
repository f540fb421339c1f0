//! Keyset pagers over the shard tables. Pages are bounded, so a universe of any size or an
//! activity with millions of goods is never held in memory, and every page is one indexed
//! range read.

use model::{ActivityId, GoodsId, ShardLayout};

use super::sql::quote_ident;
use super::MysqlPools;

/// Up to `limit` distinct goods ids of one shard, ascending, strictly after `after`
/// (`None`: from the smallest id, goods id 0 included). Walks `uk_goods_activity`.
pub async fn goods_page(
    pools: &MysqlPools,
    shard_index: u32,
    after: Option<GoodsId>,
    limit: u32,
) -> Result<Vec<GoodsId>, sqlx::Error> {
    let shard = pools.layout().shard(shard_index);
    let after_clause = after.map(|a| format!("WHERE goods_id > {a}")).unwrap_or_default();
    let sql = format!(
        "SELECT DISTINCT goods_id FROM {}.{} {after_clause} ORDER BY goods_id LIMIT {limit}",
        quote_ident(&shard.database),
        quote_ident(&shard.goods_table)
    );
    let rows: Vec<(u64,)> = sqlx::query_as(&sql).fetch_all(pools.shard_pool(shard.database_index)).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The goods of one activity (any row status, so goods whose row was just removed are
/// found too), shard by shard, keyset-paged on the row id over `idx_activity`.
pub struct ActivityGoodsPager {
    pools: MysqlPools,
    activity_id: ActivityId,
    page_size: u32,
    shard: u32,
    last_id: u64,
}

impl ActivityGoodsPager {
    pub fn new(pools: &MysqlPools, activity_id: ActivityId, page_size: u32) -> Self {
        ActivityGoodsPager { pools: pools.clone(), activity_id, page_size: page_size.max(1), shard: 0, last_id: 0 }
    }

    fn layout(&self) -> &ShardLayout {
        self.pools.layout()
    }

    /// The shard the next page comes from (for progress and per-shard pacing).
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Next page of goods ids (never empty), or `None` when every shard was read. A
    /// failed page can be asked for again: the position moves only on success.
    pub async fn next_page(&mut self) -> Result<Option<Vec<GoodsId>>, sqlx::Error> {
        while self.shard < self.layout().total_shards() {
            let shard = self.layout().shard(self.shard);
            let sql = format!(
                "SELECT id, goods_id FROM {}.{} WHERE activity_id = ? AND id > ? ORDER BY id LIMIT ?",
                quote_ident(&shard.database),
                quote_ident(&shard.goods_table)
            );
            let rows: Vec<(u64, u64)> = sqlx::query_as(&sql)
                .bind(self.activity_id)
                .bind(self.last_id)
                .bind(self.page_size)
                .fetch_all(self.pools.shard_pool(shard.database_index))
                .await?;
            if (rows.len() as u32) < self.page_size {
                self.shard += 1;
                self.last_id = 0;
            } else {
                self.last_id = rows.last().map(|r| r.0).unwrap_or(0);
            }
            if !rows.is_empty() {
                return Ok(Some(rows.into_iter().map(|r| r.1).collect()));
            }
        }
        Ok(None)
    }
}

/// Goods rows of one activity (any row status), counted shard by shard up to `cap`: the
/// count stops growing once it passes `cap`, so asking whether a huge activity is "more
/// than N goods" reads at most N + 1 index entries per shard.
pub async fn count_activity_goods(pools: &MysqlPools, activity_id: ActivityId, cap: u64) -> Result<u64, sqlx::Error> {
    let mut total = 0u64;
    for index in 0..pools.layout().total_shards() {
        if total > cap {
            break;
        }
        let shard = pools.layout().shard(index);
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {}.{} WHERE activity_id = ? LIMIT ?) AS page",
            quote_ident(&shard.database),
            quote_ident(&shard.goods_table)
        );
        let (n,): (i64,) = sqlx::query_as(&sql)
            .bind(activity_id)
            .bind(cap.saturating_add(1).saturating_sub(total).max(1))
            .fetch_one(pools.shard_pool(shard.database_index))
            .await?;
        total += n as u64;
    }
    Ok(total)
}
