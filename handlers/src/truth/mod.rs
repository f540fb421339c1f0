//! MySQL truth, read-only by type.
//!
//! [`TruthReader`] exposes only SELECTs: truth for a batch of goods (one query per shard
//! table per batch, never per goods), the goods of an activity, and every goods id by
//! keyset pagination. Activities are read fresh with each batch: a cached activity could
//! repair with stale data. Sessions run with `time_zone = '+00:00'` and all times are
//! converted to epoch milliseconds in SQL, treating stored DATETIMEs as UTC.

mod queries;

pub use common::mysql::{MysqlPools, PoolError};

use std::collections::{HashMap, HashSet};

use common::mysql::pager;
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
    pub fn new(pools: MysqlPools) -> TruthReader {
        TruthReader { layout: pools.layout().clone(), pools }
    }

    pub fn layout(&self) -> &ShardLayout {
        &self.layout
    }

    pub fn pools(&self) -> &MysqlPools {
        &self.pools
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
        .map_err(StoreError::mysql)?;

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
            .map_err(StoreError::mysql)?;
        Ok(rows.into_iter().map(|a| (a.activity_id, a)).collect())
    }

    /// Up to `limit` distinct goods ids of one shard after `after` (`None`: from the
    /// smallest), ascending.
    pub async fn goods_page(
        &self,
        shard_index: u32,
        after: Option<GoodsId>,
        limit: u32,
    ) -> Result<Vec<GoodsId>, StoreError> {
        pager::goods_page(&self.pools, shard_index, after, limit).await.map_err(StoreError::mysql)
    }

    /// Whether the activity exists in `act_meta.activity`.
    pub async fn activity_exists(&self, activity: ActivityId) -> Result<bool, StoreError> {
        Ok(!self.activities(&[activity]).await?.is_empty())
    }
}
