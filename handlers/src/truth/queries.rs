//! The SELECTs behind [`super::TruthReader`]. Id lists are integers rendered into the
//! statement (no injection surface) and sent over the text protocol: one round trip per
//! query, no prepared-statement cache growth for varying list lengths. A goods-id range
//! (a full run's range job) is a prepared statement with the bounds as parameters: one
//! statement per shard table and connection, prepared once, and its rows come in the
//! binary protocol, integers as their bytes (MariaDB formats no digits, the reader parses
//! none).
//!
//! A row whose DATETIME does not convert (a zero date such as `0000-00-00`, stored by a
//! writer running without strict mode) is not an error of the whole query: it comes back
//! in the `unusable` list with what is wrong, and only its goods is reported.
//!
//! Integer columns are read by [`Ints`] (their text, or their bytes), not through
//! `Row::try_get`.
//!
//! Every read by goods id names the contract's unique key in `FORCE INDEX`: a batch is a
//! few keys (or one page) of a table that may hold millions of rows, and statistics gone
//! stale after a bulk load made MariaDB scan the whole index of a shard table for every
//! micro-batch of the benchmark (`perf`: `in_vector::find` under `ha_rnd_next`,
//! BENCHMARKS.md). A table without the key is an error naming it.

use common::mysql::sql::{epoch_ms_of, id_list, text_int_not_null as int, Ints};
use model::projection::{split_tags, ActivityRow, GoodsRow, SkuRow};
use model::schema::{GOODS_KEY, SKU_KEY};
use model::{ActivityId, GoodsId, ShardRef};
use sqlx::mysql::MySqlPool;
use sqlx::Row;

/// Rows that converted, and `(id, what is wrong)` of those that did not (goods id for
/// goods and SKU rows, activity id for activity rows).
pub type Rows<T> = (Vec<T>, Vec<(u64, String)>);

/// Which goods of a shard table a query reads.
#[derive(Debug, Clone, Copy)]
pub enum Goods<'a> {
    /// These goods ids (`goods_id IN (...)`).
    Ids(&'a [GoodsId]),
    /// Every goods with `lo <= goods_id <= hi`: one index range read, no id list
    /// (a full run's range job). The bounds are the statement's parameters.
    Range(GoodsId, GoodsId),
}

impl Goods<'_> {
    fn clause(&self) -> String {
        match self {
            Goods::Ids(ids) => format!("goods_id IN ({})", id_list(ids)),
            Goods::Range(..) => "goods_id BETWEEN ? AND ?".into(),
        }
    }
}

/// The epoch-ms column `i`, or why it is unusable (naming the table and the row, by its
/// key: `row` is formatted only then).
fn time_of(
    ints: &Ints,
    r: &sqlx::mysql::MySqlRow,
    i: usize,
    column: &str,
    table: impl std::fmt::Display,
    row: impl std::fmt::Display,
) -> Result<i64, String> {
    match ints.int::<i64>(r, i) {
        Ok(Some(ms)) => Ok(ms),
        _ => Err(format!("{table} row {row}: {column} is a zero or invalid DATETIME")),
    }
}

/// A shard row by the contract's unique key: `(goods_id 1, activity_id 7)`, with
/// `sku_id` for a SKU row. The statements do not select the surrogate `id` only to name
/// a bad row: it was ~5% of what MariaDB spent on a range read (replayed range reads of
/// 200,000 goods, BENCHMARKS.md).
struct RowKey {
    goods_id: GoodsId,
    activity_id: u64,
    sku_id: Option<u64>,
}

impl std::fmt::Display for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(goods_id {}, activity_id {}", self.goods_id, self.activity_id)?;
        if let Some(sku) = self.sku_id {
            write!(f, ", sku_id {sku}")?;
        }
        f.write_str(")")
    }
}

/// Which table of a shard a [`Select`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Goods,
    Sku,
}

/// One shard table's part of a [`shard_rows`] statement.
#[derive(Debug, Clone, Copy)]
pub struct Select<'a> {
    pub shard: &'a ShardRef,
    pub table: Table,
    pub which: Goods<'a>,
}

impl Select<'_> {
    /// The unique key the part reads through.
    fn key(&self) -> &'static str {
        match self.table {
            Table::Goods => GOODS_KEY,
            Table::Sku => SKU_KEY,
        }
    }
}

/// The table's qualified name, formatted only where used (not a string per row).
impl std::fmt::Display for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.table {
            Table::Goods => &self.shard.goods_table,
            Table::Sku => &self.shard.sku_table,
        };
        write!(f, "`{}`.{}", self.shard.database, name)
    }
}

/// Goods and SKU rows of several shard tables of one database in **one statement**
/// (`SELECT .. UNION ALL SELECT ..`, one round trip and one parse), whatever the number
/// of tables: a batch of goods spread over every shard costs the server one statement per
/// database instead of two per shard (an incremental micro-batch reads truth twice: at the
/// check and right before repairing). Every part has the same eight columns (a literal 0
/// where its table has no such column): the part's position, `activity_id`, `goods_id`,
/// `sku_id` (0 for a goods row), `activity_price`, `limit_per_user` (0 for a SKU row),
/// `status`, `updated_at` as epoch ms. A statement with a range part is prepared, its
/// bounds bound in the parts' order ([`shard_rows_sql`]).
pub async fn shard_rows(pool: &MySqlPool, parts: &[Select<'_>]) -> Result<(Rows<GoodsRow>, Rows<SkuRow>), sqlx::Error> {
    let mut out: (Rows<GoodsRow>, Rows<SkuRow>) = Default::default();
    if parts.is_empty() {
        return Ok(out);
    }
    let (rows, ints) = raw_shard_rows(pool, parts).await?;
    // A single part's rows all go to one list: sized once (a range job's thousands of
    // rows grew it a dozen times, copying every row each time).
    match parts {
        [Select { table: Table::Goods, .. }] => out.0 .0.reserve_exact(rows.len()),
        [Select { table: Table::Sku, .. }] => out.1 .0.reserve_exact(rows.len()),
        _ => {}
    }
    for r in &rows {
        // A single part (a range job's) needs no look-up: its column 0 is not parsed.
        let part = match parts {
            [only] => only,
            _ => parts.get(ints.int_not_null::<usize>(r, 0)?).ok_or_else(|| {
                sqlx::Error::Protocol(format!("a row of no part of the statement: {}", shard_rows_sql(parts)))
            })?,
        };
        let (goods_id, activity_id): (GoodsId, u64) = (ints.int_not_null(r, 2)?, ints.int_not_null(r, 1)?);
        let sku_id: u64 = if part.table == Table::Sku { ints.int_not_null(r, 3)? } else { 0 };
        let key = RowKey { goods_id, activity_id, sku_id: (part.table == Table::Sku).then_some(sku_id) };
        let updated = time_of(&ints, r, 7, "updated_at", part, key);
        match (part.table, updated) {
            (Table::Goods, Ok(updated_ms)) => out.0 .0.push(GoodsRow {
                activity_id,
                goods_id,
                activity_price: ints.int_not_null(r, 4)?,
                limit_per_user: ints.int_not_null(r, 5)?,
                status: ints.int_not_null(r, 6)?,
                updated_ms,
            }),
            (Table::Sku, Ok(updated_ms)) => out.1 .0.push(SkuRow {
                activity_id,
                goods_id,
                sku_id,
                activity_price: ints.int_not_null(r, 4)?,
                status: ints.int_not_null(r, 6)?,
                updated_ms,
            }),
            (Table::Goods, Err(why)) => out.0 .1.push((goods_id, why)),
            (Table::Sku, Err(why)) => out.1 .1.push((goods_id, why)),
        }
    }
    Ok(out)
}

/// The rows of `parts` (not empty) as the server sends them, unconverted, and how their
/// integers come: the statement of [`shard_rows_sql`], prepared with the range parts'
/// bounds bound in order when it has any (rows in the binary protocol), else sent as text.
pub async fn raw_shard_rows(
    pool: &MySqlPool,
    parts: &[Select<'_>],
) -> Result<(Vec<sqlx::mysql::MySqlRow>, Ints), sqlx::Error> {
    let sql = shard_rows_sql(parts);
    let ranges: Vec<(GoodsId, GoodsId)> = parts
        .iter()
        .filter_map(|p| match p.which {
            Goods::Range(lo, hi) => Some((lo, hi)),
            Goods::Ids(_) => None,
        })
        .collect();
    if ranges.is_empty() {
        return Ok((sqlx::raw_sql(&sql).fetch_all(pool).await?, Ints::text()));
    }
    let query = ranges.iter().fold(sqlx::query(&sql), |q, &(lo, hi)| q.bind(lo).bind(hi));
    let rows = query.fetch_all(pool).await?;
    let ints = Ints::binary(rows.first().map_or(&[][..], |r| r.columns()));
    Ok((rows, ints))
}

/// The statement [`shard_rows`] sends for `parts` (not empty): a range part's bounds are
/// two `?` parameters, in the parts' order.
pub fn shard_rows_sql(parts: &[Select<'_>]) -> String {
    use std::fmt::Write as _;
    let updated = epoch_ms_of("updated_at");
    let mut sql = String::new();
    for (i, part) in parts.iter().enumerate() {
        let columns = match part.table {
            Table::Goods => "0, activity_price, limit_per_user",
            Table::Sku => "sku_id, activity_price, 0",
        };
        let _ = write!(
            sql,
            "{}SELECT {i}, activity_id, goods_id, {columns}, status, {updated} FROM {} FORCE INDEX ({}) WHERE {}",
            if i == 0 { "" } else { " UNION ALL " },
            part,
            part.key(),
            part.which.clause()
        );
    }
    sql
}

pub async fn activity_rows(
    pool: &MySqlPool,
    meta_db: &str,
    ids: &[ActivityId],
) -> Result<Rows<ActivityRow>, sqlx::Error> {
    let sql = format!(
        "SELECT activity_id, type, biz_code, tags, status, {}, {}, priority, {} FROM `{meta_db}`.activity WHERE activity_id IN ({})",
        epoch_ms_of("start_time"),
        epoch_ms_of("end_time"),
        epoch_ms_of("updated_at"),
        id_list(ids)
    );
    let rows = sqlx::raw_sql(&sql).fetch_all(pool).await?;
    let table = format!("`{meta_db}`.activity");
    let mut out: Rows<ActivityRow> = Default::default();
    for r in &rows {
        let activity_id: ActivityId = int(r, 0)?;
        let times = (|| {
            Ok::<_, String>((
                time_of(&Ints::text(), r, 5, "start_time", &table, activity_id)?,
                time_of(&Ints::text(), r, 6, "end_time", &table, activity_id)?,
                time_of(&Ints::text(), r, 8, "updated_at", &table, activity_id)?,
            ))
        })();
        match times {
            Ok((start_ms, end_ms, updated_ms)) => out.0.push(ActivityRow {
                activity_id,
                kind: int::<i8>(r, 1)? as i32,
                biz_code: r.try_get::<&str, _>(2)?.into(),
                tags: split_tags(r.try_get(3)?).into(),
                status: int(r, 4)?,
                start_ms,
                end_ms,
                priority: int(r, 7)?,
                updated_ms,
            }),
            Err(why) => out.1.push((activity_id, why)),
        }
    }
    Ok(out)
}

/// The goods of `ids` with at least one row in the shard's goods table.
pub async fn goods_present(pool: &MySqlPool, shard: &ShardRef, ids: &[GoodsId]) -> Result<Vec<GoodsId>, sqlx::Error> {
    let sql = format!(
        "SELECT DISTINCT goods_id FROM `{}`.{} FORCE INDEX ({GOODS_KEY}) WHERE {}",
        shard.database,
        shard.goods_table,
        Goods::Ids(ids).clause()
    );
    let rows = sqlx::raw_sql(&sql).fetch_all(pool).await?;
    rows.iter().map(|r| r.try_get::<GoodsId, _>(0)).collect()
}
