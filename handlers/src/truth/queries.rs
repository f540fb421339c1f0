//! The SELECTs behind [`super::TruthReader`]. Id lists are integers rendered into the
//! statement (no injection surface) and sent over the text protocol: one round trip per
//! query, no prepared-statement cache growth for varying list lengths.

use model::projection::{ActivityRow, GoodsRow, SkuRow};
use model::{ActivityId, GoodsId, ShardRef};
use sqlx::mysql::MySqlPool;
use sqlx::Row;

/// `DATETIME` as epoch milliseconds, independent of the session time zone.
fn ms(column: &str) -> String {
    format!("CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {column}) DIV 1000 AS SIGNED)")
}

fn id_list(ids: &[u64]) -> String {
    let mut out = String::with_capacity(ids.len() * 8);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&id.to_string());
    }
    out
}

pub async fn goods_rows(pool: &MySqlPool, shard: &ShardRef, ids: &[GoodsId]) -> Result<Vec<GoodsRow>, sqlx::Error> {
    let sql = format!(
        "SELECT activity_id, goods_id, activity_price, limit_per_user, status, {} FROM `{}`.{} WHERE goods_id IN ({})",
        ms("updated_at"),
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
        ms("updated_at"),
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
        ms("start_time"),
        ms("end_time"),
        ms("updated_at"),
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

pub async fn goods_page(
    pool: &MySqlPool,
    shard: &ShardRef,
    after: GoodsId,
    limit: u32,
) -> Result<Vec<GoodsId>, sqlx::Error> {
    let sql = format!(
        "SELECT DISTINCT goods_id FROM `{}`.{} WHERE goods_id > {after} ORDER BY goods_id LIMIT {limit}",
        shard.database, shard.goods_table
    );
    let rows = sqlx::raw_sql(&sql).fetch_all(pool).await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

pub async fn activity_goods_page(
    pool: &MySqlPool,
    shard: &ShardRef,
    activity: ActivityId,
    after: GoodsId,
    limit: u32,
) -> Result<Vec<GoodsId>, sqlx::Error> {
    let sql = format!(
        "SELECT goods_id FROM `{}`.{} WHERE activity_id = {activity} AND goods_id > {after} ORDER BY goods_id LIMIT {limit}",
        shard.database, shard.goods_table
    );
    let rows = sqlx::raw_sql(&sql).fetch_all(pool).await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}
