//! An activity change touches every goods of that activity: the pager walks every shard
//! table with keyset pagination on `id`, so an activity with millions of goods is never
//! held in memory. One page per call.

use model::{ActivityId, GoodsId};

use crate::error::Result;
use crate::mysql::{quote_ident, TruthPools};

pub struct ActivityGoodsPager<'a> {
    pools: &'a TruthPools,
    activity_id: ActivityId,
    page_size: u32,
    shard: u32,
    last_id: u64,
}

impl<'a> ActivityGoodsPager<'a> {
    pub fn new(pools: &'a TruthPools, activity_id: ActivityId, page_size: u32) -> Self {
        ActivityGoodsPager { pools, activity_id, page_size: page_size.max(1), shard: 0, last_id: 0 }
    }

    /// Next page of goods ids (never empty), or `None` when every shard was read.
    pub async fn next_page(&mut self) -> Result<Option<Vec<GoodsId>>> {
        let layout = &self.pools.layout;
        while self.shard < layout.total_shards() {
            let shard = layout.shard(self.shard);
            let sql = format!(
                "SELECT id, goods_id FROM {}.{} WHERE activity_id = ? AND id > ? ORDER BY id LIMIT ?",
                quote_ident(&shard.database),
                quote_ident(&shard.goods_table)
            );
            let rows: Vec<(u64, u64)> = sqlx::query_as(&sql)
                .bind(self.activity_id)
                .bind(self.last_id)
                .bind(self.page_size)
                .fetch_all(self.pools.database_pool(shard.database_index))
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
