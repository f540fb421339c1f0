//! MySQL truth, read-only by type.
//!
//! [`TruthReader`] exposes only SELECTs: truth for a batch of goods (one query per shard
//! table per batch, never per goods), the goods of an activity, and every goods id by
//! keyset pagination. Activities are read fresh with each batch: a cached activity could
//! repair with stale data. Sessions run with `time_zone = '+00:00'` and all times are
//! converted to epoch milliseconds in SQL, treating stored DATETIMEs as UTC.

mod pools;
mod queries;

pub use pools::{MysqlPools, PoolError};

use std::collections::{HashMap, HashSet};

use futures::future::try_join_all;
use model::projection::{project_goods, ActivityRow, GoodsRow, SkuRow};
use model::{ActivityId, GoodsId, GoodsTruth, ShardLayout};

use crate::error::StoreError;

/// Reads truth; holds no write method by design.
#[derive(Clone)]
pub struct TruthReader {
    pools: MysqlPools,
    layout: ShardLayout,
}

impl TruthReader {
    pub fn new(pools: MysqlPools, layout: ShardLayout) -> TruthReader {
        TruthReader { pools, layout }
    }

    pub fn layout(&self) -> &ShardLayout {
        &self.layout
    }

    /// Truth of every goods in `ids` (goods without rows map to an empty truth).
    pub async fn read(&self, ids: &[GoodsId]) -> Result<HashMap<GoodsId, GoodsTruth>, StoreError> {
        let groups = self.layout.group_by_shard(ids);
        let per_shard = try_join_all(groups.iter().map(|(&s, ids)| async move {
            let shard = self.layout.shard(s);
            let pool = self.pools.shard_pool(shard.database_index);
            let goods = queries::goods_rows(pool, &shard, ids);
            let skus = queries::sku_rows(pool, &shard, ids);
            tokio::try_join!(goods, skus)
        }))
        .await
        .map_err(|e| self.pools.classify(e))?;

        let aids: HashSet<ActivityId> = per_shard.iter().flat_map(|(g, _)| g.iter().map(|r| r.activity_id)).collect();
        let activities = self.activities(&aids.into_iter().collect::<Vec<_>>()).await?;

        let mut by_goods: HashMap<GoodsId, (Vec<GoodsRow>, Vec<SkuRow>)> =
            ids.iter().map(|&id| (id, Default::default())).collect();
        for (goods, skus) in per_shard {
            for r in goods {
                by_goods.entry(r.goods_id).or_default().0.push(r);
            }
            for s in skus {
                by_goods.entry(s.goods_id).or_default().1.push(s);
            }
        }
        Ok(by_goods.into_iter().map(|(id, (goods, skus))| (id, project_goods(&goods, &skus, &activities))).collect())
    }

    /// Activity rows by id, read fresh.
    pub async fn activities(&self, ids: &[ActivityId]) -> Result<HashMap<ActivityId, ActivityRow>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = queries::activity_rows(self.pools.meta_pool(), &self.layout.meta_database(), ids)
            .await
            .map_err(|e| self.pools.classify(e))?;
        Ok(rows.into_iter().map(|a| (a.activity_id, a)).collect())
    }

    /// Up to `limit` distinct goods ids of one shard greater than `after`, ascending.
    pub async fn goods_page(&self, shard_index: u32, after: GoodsId, limit: u32) -> Result<Vec<GoodsId>, StoreError> {
        let shard = self.layout.shard(shard_index);
        queries::goods_page(self.pools.shard_pool(shard.database_index), &shard, after, limit)
            .await
            .map_err(|e| self.pools.classify(e))
    }

    /// Up to `limit` goods ids of one shard carrying `activity` (any row status), greater
    /// than `after`, ascending.
    pub async fn activity_goods_page(
        &self,
        shard_index: u32,
        activity: ActivityId,
        after: GoodsId,
        limit: u32,
    ) -> Result<Vec<GoodsId>, StoreError> {
        let shard = self.layout.shard(shard_index);
        queries::activity_goods_page(self.pools.shard_pool(shard.database_index), &shard, activity, after, limit)
            .await
            .map_err(|e| self.pools.classify(e))
    }

    /// Whether the activity exists in `act_meta.activity`.
    pub async fn activity_exists(&self, activity: ActivityId) -> Result<bool, StoreError> {
        Ok(!self.activities(&[activity]).await?.is_empty())
    }
}
