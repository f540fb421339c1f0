//! Writes truth rows (demo, tests, benchmarks). This is the only code of the project
//! that writes the truth tables, playing the role of the pricing system's own writers.

use common::mysql::MysqlPools;
use model::{ActivityId, GoodsId, ShardLayout};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
pub struct ActivitySeed {
    pub activity_id: ActivityId,
    pub name: String,
    pub kind: i8,
    pub biz_code: String,
    pub tags: String,
    pub status: i8,
    pub priority: i32,
    /// Epoch ms (UTC).
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Debug, Clone)]
pub struct GoodsSeed {
    pub goods_id: GoodsId,
    pub activity_id: ActivityId,
    pub price: i64,
    pub limit: i32,
    pub status: i8,
    /// `(sku_id, price, status)`.
    pub skus: Vec<(u64, i64, i8)>,
}

/// A generated data set.
#[derive(Debug, Clone, Default)]
pub struct DataSet {
    pub activities: Vec<ActivitySeed>,
    pub goods: Vec<GoodsSeed>,
}

/// Deterministic sample data: `activities` activities (the last two offline and draft,
/// so their goods rows do not project) and goods `first_goods..first_goods+goods`, each
/// carrying 1 to 3 activities with 0 to 3 SKUs, a few rows removed.
pub fn generate(seed: u64, activities: u64, first_goods: GoodsId, goods: u64) -> DataSet {
    let mut rng = StdRng::seed_from_u64(seed);
    let biz = ["main", "brand", "flash", "league"];
    let tags = ["618,hot", "", "double11", "new,,member", "hot"];
    let mut set = DataSet::default();
    for i in 0..activities {
        let status = if i + 2 == activities {
            2
        } else if i + 1 == activities {
            0
        } else {
            1
        };
        set.activities.push(ActivitySeed {
            activity_id: 7001 + i,
            name: format!("activity {}", 7001 + i),
            kind: 1 + (i % 4) as i8,
            biz_code: biz[(i % 4) as usize].into(),
            tags: tags[(i % 5) as usize].into(),
            status,
            priority: (i % 7) as i32 * 10,
            start_ms: 1_781_740_800_000, // 2026-06-18 00:00:00.000
            end_ms: 1_781_999_999_000,   // 2026-06-20 23:59:59.000
        });
    }
    for g in first_goods..first_goods + goods {
        let n = rng.gen_range(1..=3u64.min(activities));
        let mut chosen: Vec<u64> = Vec::new();
        while (chosen.len() as u64) < n {
            let a = 7001 + rng.gen_range(0..activities);
            if !chosen.contains(&a) {
                chosen.push(a);
            }
        }
        for a in chosen {
            let skus = (0..rng.gen_range(0..=3u64))
                .map(|k| (g * 10 + k, rng.gen_range(100..10_000), if rng.gen_ratio(1, 10) { 0 } else { 1 }))
                .collect();
            set.goods.push(GoodsSeed {
                goods_id: g,
                activity_id: a,
                price: rng.gen_range(100..100_000),
                limit: rng.gen_range(0..5),
                status: if rng.gen_ratio(1, 20) { 0 } else { 1 },
                skus,
            });
        }
    }
    set
}

/// Inserts (or replaces) the data set; every row gets `updated_at = NOW(3) - age_ms`.
pub async fn insert(pools: &MysqlPools, layout: &ShardLayout, set: &DataSet, age_ms: u64) -> Result<(), sqlx::Error> {
    let at = format!("NOW(3) - INTERVAL {} MICROSECOND", age_ms * 1000);
    let meta = layout.meta_database();
    for chunk in set.activities.chunks(1000) {
        let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new(format!(
            "REPLACE INTO `{meta}`.activity (activity_id, name, type, biz_code, tags, status, start_time, end_time, priority, updated_at) "
        ));
        qb.push_values(chunk, |mut b, a| {
            b.push_bind(a.activity_id)
                .push_bind(&a.name)
                .push_bind(a.kind)
                .push_bind(&a.biz_code)
                .push_bind(&a.tags)
                .push_bind(a.status)
                .push_bind(datetime(a.start_ms))
                .push_bind(datetime(a.end_ms))
                .push_bind(a.priority)
                .push_unseparated(format!(", {at}"));
        });
        qb.build().execute(pools.meta_pool()).await?;
    }
    let mut by_shard: std::collections::BTreeMap<u32, Vec<&GoodsSeed>> = Default::default();
    for g in &set.goods {
        by_shard.entry(layout.shard_of(g.goods_id)).or_default().push(g);
    }
    for (s, rows) in by_shard {
        let shard = layout.shard(s);
        let pool = pools.shard_pool(shard.database_index);
        for chunk in rows.chunks(1000) {
            let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new(format!(
                "REPLACE INTO `{}`.{} (activity_id, goods_id, activity_price, limit_per_user, status, updated_at) ",
                shard.database, shard.goods_table
            ));
            qb.push_values(chunk, |mut b, g| {
                b.push_bind(g.activity_id)
                    .push_bind(g.goods_id)
                    .push_bind(g.price)
                    .push_bind(g.limit)
                    .push_bind(g.status)
                    .push_unseparated(format!(", {at}"));
            });
            qb.build().execute(pool).await?;
            let skus: Vec<(&GoodsSeed, &(u64, i64, i8))> =
                chunk.iter().flat_map(|g| g.skus.iter().map(move |s| (*g, s))).collect();
            for sku_chunk in skus.chunks(1000) {
                let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new(format!(
                    "REPLACE INTO `{}`.{} (activity_id, goods_id, sku_id, activity_price, status, updated_at) ",
                    shard.database, shard.sku_table
                ));
                qb.push_values(sku_chunk, |mut b, (g, (sku, price, status))| {
                    b.push_bind(g.activity_id)
                        .push_bind(g.goods_id)
                        .push_bind(*sku)
                        .push_bind(*price)
                        .push_bind(*status)
                        .push_unseparated(format!(", {at}"));
                });
                qb.build().execute(pool).await?;
            }
        }
    }
    Ok(())
}

/// Empties every truth table of the layout (the demo owns the embedded default's data).
pub async fn truncate(pools: &MysqlPools, layout: &ShardLayout) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(&format!("DELETE FROM `{}`.activity", layout.meta_database())).execute(pools.meta_pool()).await?;
    for s in layout.all_shards() {
        let pool = pools.shard_pool(s.database_index);
        sqlx::raw_sql(&format!("TRUNCATE TABLE `{}`.{}", s.database, s.goods_table)).execute(pool).await?;
        sqlx::raw_sql(&format!("TRUNCATE TABLE `{}`.{}", s.database, s.sku_table)).execute(pool).await?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) of epoch milliseconds, for DATETIME(3) columns.
pub fn datetime(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{milli:03}", sod / 3600, sod % 3600 / 60, sod % 60)
}
