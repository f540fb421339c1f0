//! MySQL truth, read-only by type.
//!
//! [`TruthReader`] exposes only SELECTs: truth for a batch of goods (one statement per
//! database per batch, never per goods: the shard tables it touches joined by `UNION
//! ALL`), truth of a goods-id range of one shard (one range query per table: a full run's
//! range job), the goods of an activity, and every goods id by
//! keyset pagination. Activities are read fresh with each batch, except that a range read
//! may reuse one read less than `[full] activity_reuse_ms` ago ([`activities`]); a repair
//! never starts from such a row (the re-read before it is fresh). Sessions run with
//! `time_zone = '+00:00'` and all times are converted to epoch milliseconds in SQL,
//! treating stored DATETIMEs as UTC.

pub mod activities;
mod queries;

pub use queries::{raw_shard_rows, shard_rows_sql, Goods, Select, Table};

pub use common::mysql::{MysqlPools, PoolError};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use activities::{ActivityCache, ActivityMap};

use common::mysql::pager;
use futures::future::try_join_all;
use model::projection::{project_goods, ActivityRow, GoodsRow, SkuRow};
use model::{ActivityId, GoodsId, GoodsTruth, ShardLayout, ShardRef};

use crate::error::StoreError;

/// Truth by goods (foldhash: looked up once per goods and target in every batch).
pub type TruthMap = HashMap<GoodsId, GoodsTruth, foldhash::fast::RandomState>;

/// Truth of a batch, and the goods whose truth rows cannot be used.
#[derive(Debug, Clone, Default)]
pub struct TruthBatch {
    pub truth: TruthMap,
    /// Goods with a row that cannot be used (a zero DATETIME), and what is wrong: they
    /// are reported, never repaired from a partial truth.
    pub unusable: HashMap<GoodsId, String>,
}

/// Reads truth; holds no write method by design.
#[derive(Clone)]
pub struct TruthReader {
    pools: MysqlPools,
    layout: ShardLayout,
    /// Activity rows range reads may reuse (none unless [`Self::reusing_activities`]).
    activities: Arc<ActivityCache>,
}

/// Whether a read may take activity rows from the range reads' cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activities {
    Fresh,
    MayReuse,
}

impl TruthReader {
    /// A reader that reads every activity fresh.
    pub fn new(pools: MysqlPools) -> TruthReader {
        TruthReader { layout: pools.layout().clone(), pools, activities: Arc::default() }
    }

    /// Range reads (a full run's) reuse an activity row read less than `max_age` ago
    /// (zero: never). Reads by id stay fresh.
    pub fn reusing_activities(mut self, max_age: Duration) -> TruthReader {
        self.activities = Arc::new(ActivityCache::new(max_age));
        self
    }

    pub fn layout(&self) -> &ShardLayout {
        &self.layout
    }

    pub fn pools(&self) -> &MysqlPools {
        &self.pools
    }

    /// Truth of every goods in `ids` (goods without rows map to an empty truth). Rows
    /// that cannot be used (see [`read_checked`](Self::read_checked)) are left out.
    pub async fn read(&self, ids: &[GoodsId]) -> Result<TruthMap, StoreError> {
        Ok(self.read_checked(ids).await?.truth)
    }

    /// Truth of every goods in `ids`, and the goods whose rows cannot be used (a zero
    /// DATETIME in a goods, SKU or activity row), each with the reason. `Err` only when
    /// MySQL cannot answer.
    pub async fn read_checked(&self, ids: &[GoodsId]) -> Result<TruthBatch, StoreError> {
        // One statement per database for every shard table the batch touches.
        let groups = self.layout.group_by_shard(ids);
        let shards: Vec<(ShardRef, &[GoodsId])> =
            groups.iter().map(|(&s, ids)| (self.layout.shard(s), &ids[..])).collect();
        let mut databases: Vec<(u32, Vec<Select<'_>>)> = Vec::new();
        for (shard, ids) in &shards {
            if databases.last().is_none_or(|(d, _)| *d != shard.database_index) {
                databases.push((shard.database_index, Vec::new()));
            }
            let parts = &mut databases.last_mut().expect("pushed above").1;
            for table in [Table::Goods, Table::Sku] {
                parts.push(Select { shard, table, which: Goods::Ids(ids) });
            }
        }
        let per_shard =
            try_join_all(databases.iter().map(|(d, parts)| queries::shard_rows(self.pools.shard_pool(*d), parts)))
                .await
                .map_err(StoreError::mysql)?;
        self.assemble(ids, per_shard, Activities::Fresh).await
    }

    /// Every goods of shard `shard_index` with `lo <= goods_id <= hi` that has a goods
    /// row (ascending), and their truth: one range query per table instead of listing
    /// the ids first and reading them back by id.
    pub async fn read_range(
        &self,
        shard_index: u32,
        lo: GoodsId,
        hi: GoodsId,
    ) -> Result<(Vec<GoodsId>, TruthBatch), StoreError> {
        let shard = self.layout.shard(shard_index);
        let pool = self.pools.shard_pool(shard.database_index);
        // Two statements side by side (two server threads for one range).
        let part = |table| [Select { shard: &shard, table, which: Goods::Range(lo, hi) }];
        let (goods_part, sku_part) = (part(Table::Goods), part(Table::Sku));
        let ((goods, _), (_, skus)) =
            tokio::try_join!(queries::shard_rows(pool, &goods_part), queries::shard_rows(pool, &sku_part))
                .map_err(StoreError::mysql)?;
        let mut ids: Vec<GoodsId> = goods.0.iter().map(|r| r.goods_id).chain(goods.1.iter().map(|b| b.0)).collect();
        ids.sort_unstable();
        ids.dedup();
        // SKU rows of goods without a goods row are not in the universe.
        let (sku_rows, bad_skus) = skus;
        let keep = |g: &GoodsId| ids.binary_search(g).is_ok();
        let skus = (
            sku_rows.into_iter().filter(|s| keep(&s.goods_id)).collect(),
            bad_skus.into_iter().filter(|b| keep(&b.0)).collect(),
        );
        let truth = self.assemble(&ids, vec![(goods, skus)], Activities::MayReuse).await?;
        Ok((ids, truth))
    }

    /// Projects the rows read for `ids` (per shard: goods rows, SKU rows).
    async fn assemble(
        &self,
        ids: &[GoodsId],
        per_shard: Vec<(queries::Rows<GoodsRow>, queries::Rows<SkuRow>)>,
        reuse: Activities,
    ) -> Result<TruthBatch, StoreError> {
        let mut aids: Vec<ActivityId> =
            per_shard.iter().flat_map(|((g, _), _)| g.iter().map(|r| r.activity_id)).collect();
        aids.sort_unstable();
        aids.dedup();
        let (activities, bad_activities) = match reuse {
            Activities::MayReuse if self.activities.enabled() => self.activity_rows_reused(&aids).await?,
            _ => {
                let (rows, bad) = self.activity_rows(&aids).await?;
                (rows.into_values().map(|a| (a.activity_id, Arc::new(a))).collect(), bad)
            }
        };

        let mut unusable: HashMap<GoodsId, String> = HashMap::new();
        let (mut goods, mut skus): (Vec<GoodsRow>, Vec<SkuRow>) = (Vec::new(), Vec::new());
        for ((goods_rows, bad_goods), (sku_rows, bad_skus)) in per_shard {
            goods.extend(goods_rows);
            skus.extend(sku_rows);
            for (goods_id, why) in bad_goods.into_iter().chain(bad_skus) {
                unusable.entry(goods_id).or_insert(why);
            }
        }
        for r in &goods {
            if let Some(why) = bad_activities.get(&r.activity_id) {
                unusable.entry(r.goods_id).or_insert_with(|| why.clone());
            }
        }
        // Rows grouped by goods with one sort each (no per-goods lists): each goods'
        // rows are then one slice of either.
        goods.sort_unstable_by_key(|r| r.goods_id);
        skus.sort_unstable_by_key(|s| s.goods_id);
        let rows_of = |g: GoodsId| {
            let gl = goods.partition_point(|r| r.goods_id < g);
            let gh = gl + goods[gl..].partition_point(|r| r.goods_id == g);
            let sl = skus.partition_point(|s| s.goods_id < g);
            let sh = sl + skus[sl..].partition_point(|s| s.goods_id == g);
            (gl..gh, sl..sh)
        };
        let mut truth = TruthMap::with_capacity_and_hasher(ids.len(), Default::default());
        for &id in ids {
            if truth.contains_key(&id) {
                continue;
            }
            let (g, k) = rows_of(id);
            truth.insert(id, project_goods(&goods[g], &skus[k], &activities));
        }
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

    /// [`activity_rows`](Self::activity_rows), taking rows read less than the reuse
    /// age ago from the cache and keeping the rows read now.
    async fn activity_rows_reused(
        &self,
        ids: &[ActivityId],
    ) -> Result<(ActivityMap, HashMap<ActivityId, String>), StoreError> {
        let (mut rows, missing) = self.activities.lookup(ids, tokio::time::Instant::now());
        if missing.is_empty() {
            return Ok((rows, HashMap::new()));
        }
        let read_at = tokio::time::Instant::now();
        let (read, bad) = self.activity_rows(&missing).await?;
        let read: Vec<Arc<ActivityRow>> = read.into_values().map(Arc::new).collect();
        self.activities.store(&read, read_at);
        rows.extend(read.into_iter().map(|a| (a.activity_id, a)));
        Ok((rows, bad))
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

    /// Which of `ids` have at least one goods row (one query per shard table): an orphan
    /// scan checks only the others.
    pub async fn present(&self, ids: &[GoodsId]) -> Result<HashSet<GoodsId>, StoreError> {
        let groups = self.layout.group_by_shard(ids);
        let found = try_join_all(groups.iter().map(|(&s, ids)| async move {
            let shard = self.layout.shard(s);
            queries::goods_present(self.pools.shard_pool(shard.database_index), &shard, ids).await
        }))
        .await
        .map_err(StoreError::mysql)?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Whether the activity exists in `act_meta.activity`.
    pub async fn activity_exists(&self, activity: ActivityId) -> Result<bool, StoreError> {
        let (rows, bad) = self.activity_rows(&[activity]).await?;
        Ok(!rows.is_empty() || !bad.is_empty())
    }
}
