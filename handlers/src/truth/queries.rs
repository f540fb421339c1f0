//! The SELECTs behind [`super::TruthReader`]. Id lists are integers rendered into the
//! statement (no injection surface) and sent over the text protocol: one round trip per
//! query, no prepared-statement cache growth for varying list lengths.

use common::mysql::sql::{epoch_ms_of, id_list};
use model::projection::{ActivityRow, GoodsRow, SkuRow};
use model::{ActivityId, GoodsId, ShardRef};
use sqlx::mysql::MySqlPool;
use sqlx::Row;

pub async fn goods_rows(pool: &MySqlPool, shard: &ShardRef, ids: &[GoodsId]) -> Result<Vec<GoodsRow>, sqlx::Error> {
    let sql = format!(
        "SELECT activity_id, goods_id, activity_price, limit_per_user, status, {} FROM `{}`.{} WHERE goods_id IN ({})",
        epoch_ms_of("updated_at"),
        shard.database,
        shard.goods_table,
        id_list(ids)
    );
    let rows = sqlx::raw_sql(&sql).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(GoodsRow {
                activity_id: r.try_get(0)?,
                goods_id: r.try_get(1)?,
                activity_price: r.try_get(2)?,
                limit_per_user: r.try_get(3)?,
                status: r.try_get(4)?,
                updated_ms: r.try_get(5)?,
            })
        })
        .collect()
}

pub async fn sku_rows(pool: &MySqlPool, shard: &ShardRef, ids: &[GoodsId]) -> Result<Vec<SkuRow>, sqlx::Error> {
    let sql = format!(
        "SELECT activity_id, goods_id, sku_id, activity_price, status, {} FROM `{}`.{} WHERE goods_id IN ({})",
        epoch_ms_of("updated_at"),
        shard.database,
        shard.sku_table,
        id_list(ids)
    );
    let rows = sqlx::raw_sql(&sql).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(SkuRow {
                activity_id: r.try_get(0)?,
                goods_id: r.try_get(1)?,
                sku_id: r.try_get(2)?,
                activity_price: r.try_get(3)?,
                status: r.try_get(4)?,
                updated_ms: r.try_get(5)?,
            })
        })
        .collect()
}

pub async fn activity_rows(
    pool: &MySqlPool,
    meta_db: &str,
    ids: &[ActivityId],
) -> Result<Vec<ActivityRow>, sqlx::Error> {
    let sql = format!(
        "SELECT activity_id, type, biz_code, tags, status, {}, {}, priority, {} FROM `{meta_db}`.activity WHERE activity_id IN ({})",
        epoch_ms_of("start_time"),
        epoch_ms_of("end_time"),
        epoch_ms_of("updated_at"),
        id_list(ids)
    );
    let rows = sqlx::raw_sql(&sql).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(ActivityRow {
                activity_id: r.try_get(0)?,
                kind: r.try_get::<i8, _>(1)? as i32,
                biz_code: r.try_get(2)?,
                tags: r.try_get(3)?,
                status: r.try_get(4)?,
                start_ms: r.try_get(5)?,
                end_ms: r.try_get(6)?,
                priority: r.try_get(7)?,
                updated_ms: r.try_get(8)?,
            })
        })
        .collect()
}
