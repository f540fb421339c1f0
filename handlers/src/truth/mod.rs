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

/// Truth of a batch, and the goods whose truth rows cannot be used.
#[derive(Debug, Clone, Default)]
pub struct TruthBatch {
    pub truth: HashMap<GoodsId, GoodsTruth>,
    /// Goods with a row that cannot be used (a zero DATETIME), and what is wrong: they
    /// are reported, never repaired from a partial truth.
    pub unusable: HashMap<GoodsId, String>,
}

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

    /// Truth of every goods in `ids` (goods without rows map to an empty truth). Rows
    /// that cannot be used (see [`read_checked`](Self::read_checked)) are left out.
    pub async fn read(&self, ids: &[GoodsId]) -> Result<HashMap<GoodsId, GoodsTruth>, StoreError> {
        Ok(self.read_checked(ids).await?.truth)
    }

    /// Truth of every goods in `ids`, and the goods whose rows cannot be used (a zero
    /// DATETIME in a goods, SKU or activity row), each with the reason. `Err` only when
    /// MySQL cannot answer.
    pub async fn read_checked(&self, ids: &[GoodsId]) -> Result<TruthBatch, StoreError> {
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

        let aids: HashSet<ActivityId> =
            per_shard.iter().flat_map(|((g, _), _)| g.iter().map(|r| r.activity_id)).collect();
        let (activities, bad_activities) = self.activity_rows(&aids.into_iter().collect::<Vec<_>>()).await?;

        let mut unusable: HashMap<GoodsId, String> = HashMap::new();
        let mut by_goods: HashMap<GoodsId, (Vec<GoodsRow>, Vec<SkuRow>)> =
            ids.iter().map(|&id| (id, Default::default())).collect();
        for ((goods, bad_goods), (skus, bad_skus)) in per_shard {
            for r in goods {
                if let Some(why) = bad_activities.get(&r.activity_id) {
                    unusable.entry(r.goods_id).or_insert_with(|| why.clone());
                }
                by_goods.entry(r.goods_id).or_default().0.push(r);
            }
            for s in skus {
                by_goods.entry(s.goods_id).or_default().1.push(s);
            }
            for (goods_id, why) in bad_goods.into_iter().chain(bad_skus) {
                unusable.entry(goods_id).or_insert(why);
            }
        }
        let truth =
            by_goods.into_iter().map(|(id, (goods, skus))| (id, project_goods(&goods, &skus, &activities))).collect();
        Ok(TruthBatch { truth, unusable })
    }

    async fn activity_rows(
        &self,
        ids: &[ActivityId],
    ) -> Result<(HashMap<ActivityId, ActivityRow>, HashMap<ActivityId, String>), StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let (rows, bad) = queries::activity_rows(self.pools.meta_pool(), &self.layout.meta_database(), ids)
            .await
            .map_err(StoreError::mysql)?;
        Ok((rows.into_iter().map(|a| (a.activity_id, a)).collect(), bad.into_iter().collect()))
    }

    /// Activity rows by id, read fresh (rows with an unusable DATETIME left out).
    pub async fn activities(&self, ids: &[ActivityId]) -> Result<HashMap<ActivityId, ActivityRow>, StoreError> {
        Ok(self.activity_rows(ids).await?.0)
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
        let (rows, bad) = self.activity_rows(&[activity]).await?;
        Ok(!rows.is_empty() || !bad.is_empty())
    }
}
