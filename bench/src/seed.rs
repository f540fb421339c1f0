//! Bulk seeding: truth straight into the MariaDB shards with big multi-row INSERTs (one
//! per shard table per chunk, shards in parallel), and the projection of every goods
//! written directly into the targets: pipelined `HSET` into both Redis dbs and
//! `mutateRowsTs` into HBase, values in the canonical encoding, cell timestamp = `ver`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use common::mysql::MysqlPools;
use futures::future::try_join_all;
use model::projection::ActivityRow;
use model::{hbase_row_key, ActivityId, Entity, GoodsId, ShardLayout};

use crate::data::{self, Clock};
use crate::env;
use crate::hb;

/// Goods per seeding chunk.
const CHUNK: u64 = 20_000;

pub struct Seeder {
    pub pools: MysqlPools,
    pub layout: ShardLayout,
    pub clock: Clock,
    pub acts: Arc<HashMap<ActivityId, ActivityRow>>,
    pub targets: Targets,
}

/// The bench's own writer of projections into every target (both Redis dbs, the HBase
/// table), as the sync pipeline writes them: the seed's, and the incremental phase's for
/// the changes it does not lose.
#[derive(Clone)]
pub struct Targets {
    pub redis: Vec<redis::aio::MultiplexedConnection>,
    pub hbase: Arc<Mutex<hb::Client>>,
    pub hbase_table: String,
    pub hbase_family: String,
}

impl Targets {
    /// Writes each entity's canonical encoding (HBase cell timestamp = its `ver`): one
    /// `HSET` per run of entities of one goods, one pipeline per Redis db, and the HBase
    /// cells beside them.
    pub async fn write(&self, entities: Vec<(GoodsId, Entity)>) -> Result<()> {
        if entities.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let mut cells = Vec::with_capacity(entities.len());
        let mut at = 0;
        while at < entities.len() {
            let g = entities[at].0;
            let row = hbase_row_key(g).into_bytes();
            let cmd = pipe.cmd("HSET").arg(format!("{}{g}", env::KEY_PREFIX));
            while at < entities.len() && entities[at].0 == g {
                let e = &entities[at].1;
                let value = e.encode();
                cmd.arg(e.aid.to_string()).arg(&value);
                cells.push(hb::Cell {
                    row: row.clone(),
                    qualifier: e.aid.to_string().into_bytes(),
                    value: Some(value),
                    ts: e.ver,
                });
                at += 1;
            }
            pipe.ignore();
        }
        let hbase = self.hbase.clone();
        let (table, family) = (self.hbase_table.clone(), self.hbase_family.clone());
        let hwrite = tokio::task::spawn_blocking(move || hb::write(&mut hbase.lock().unwrap(), &table, &family, cells));
        try_join_all(self.redis.iter().map(|c| {
            let (mut c, pipe) = (c.clone(), &pipe);
            async move { pipe.query_async::<()>(&mut c).await }
        }))
        .await?;
        hwrite.await?
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SeedStats {
    pub goods_rows: u64,
    pub sku_rows: u64,
    pub entities: u64,
    pub seconds: f64,
}

impl Seeder {
    /// Inserts the activities (once per data set).
    pub async fn activities(&self, rows: &[(ActivityRow, String)]) -> Result<()> {
        let meta = self.layout.meta_database();
        for chunk in rows.chunks(2000) {
            let mut sql = format!(
                "INSERT INTO `{meta}`.activity (activity_id, name, type, biz_code, tags, status, start_time, end_time, priority, updated_at) VALUES "
            );
            for (i, (a, name)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                write!(
                    sql,
                    "({},'{}',{},'{}','{}',{},'{}','{}',{},'{}')",
                    a.activity_id,
                    name,
                    a.kind,
                    a.biz_code,
                    a.tags.join(","),
                    a.status,
                    data::datetime(a.start_ms),
                    data::datetime(a.end_ms),
                    a.priority,
                    data::datetime(a.updated_ms)
                )?;
            }
            sqlx::raw_sql(&sql).execute(self.pools.meta_pool()).await?;
        }
        Ok(())
    }

    /// Seeds goods `first..=last` into truth and every target.
    pub async fn goods(&self, first: GoodsId, last: GoodsId, progress: bool) -> Result<SeedStats> {
        let started = Instant::now();
        let mut stats = SeedStats::default();
        let mut start = first;
        while start <= last {
            let end = (start + CHUNK - 1).min(last);
            let (truth, targets) = tokio::join!(self.truth_chunk(start, end), self.targets_chunk(start, end));
            let (g, s) = truth?;
            stats.goods_rows += g;
            stats.sku_rows += s;
            stats.entities += targets?;
            if progress && (end - first + 1) % 200_000 < CHUNK {
                eprintln!(
                    "bench: seeded {} goods ({:.0} goods/s)",
                    end - first + 1,
                    (end - first + 1) as f64 / started.elapsed().as_secs_f64()
                );
            }
            start = end + 1;
        }
        stats.seconds = started.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// Recounts the optimizer's statistics of every truth table, as a server's background
    /// recount would soon after a load: the generator's UPDATEs and the floor then run
    /// on the plans a settled database gives them, not on statistics taken mid-seed.
    pub async fn analyze(&self) -> Result<()> {
        let mut tables = vec![format!("`{}`.activity", self.layout.meta_database())];
        for s in self.layout.all_shards() {
            tables.push(format!("`{}`.{}", s.database, s.goods_table));
            tables.push(format!("`{}`.{}", s.database, s.sku_table));
        }
        sqlx::raw_sql(&format!("ANALYZE TABLE {}", tables.join(", ")))
            .fetch_all(self.pools.meta_pool())
            .await
            .context("ANALYZE TABLE")?;
        Ok(())
    }

    async fn truth_chunk(&self, first: GoodsId, last: GoodsId) -> Result<(u64, u64)> {
        let mut by_shard: BTreeMap<u32, (String, String)> = BTreeMap::new();
        let (mut gn, mut sn) = (0, 0);
        for g in first..=last {
            let d = data::goods(g, self.clock);
            let (goods_sql, sku_sql) = by_shard.entry(self.layout.shard_of(g)).or_default();
            for r in &d.goods {
                if !goods_sql.is_empty() {
                    goods_sql.push(',');
                }
                write!(
                    goods_sql,
                    "({},{},{},{},{},'{}')",
                    r.activity_id,
                    r.goods_id,
                    r.activity_price,
                    r.limit_per_user,
                    r.status,
                    data::datetime(r.updated_ms)
                )?;
                gn += 1;
            }
            for s in &d.skus {
                if !sku_sql.is_empty() {
                    sku_sql.push(',');
                }
                write!(
                    sku_sql,
                    "({},{},{},{},{},'{}')",
                    s.activity_id,
                    s.goods_id,
                    s.sku_id,
                    s.activity_price,
                    s.status,
                    data::datetime(s.updated_ms)
                )?;
                sn += 1;
            }
        }
        try_join_all(by_shard.into_iter().map(|(s, (goods_values, sku_values))| async move {
            let shard = self.layout.shard(s);
            let pool = self.pools.shard_pool(shard.database_index);
            let mut sql = format!(
                "SET SESSION unique_checks = 0; START TRANSACTION; INSERT INTO `{}`.{} (activity_id, goods_id, activity_price, limit_per_user, status, updated_at) VALUES {goods_values};",
                shard.database, shard.goods_table
            );
            if !sku_values.is_empty() {
                write!(
                    sql,
                    " INSERT INTO `{}`.{} (activity_id, goods_id, sku_id, activity_price, status, updated_at) VALUES {sku_values};",
                    shard.database, shard.sku_table
                )?;
            }
            sql.push_str(" COMMIT; SET SESSION unique_checks = 1;");
            sqlx::raw_sql(&sql).execute(pool).await.with_context(|| format!("seeding shard {s}"))?;
            Ok::<_, anyhow::Error>(())
        }))
        .await?;
        Ok((gn, sn))
    }

    async fn targets_chunk(&self, first: GoodsId, last: GoodsId) -> Result<u64> {
        let mut entities = Vec::new();
        for g in first..=last {
            entities.extend(data::truth(g, self.clock, &self.acts).entities.into_values().map(|e| (g, e)));
        }
        let n = entities.len() as u64;
        self.targets.write(entities).await?;
        Ok(n)
    }
}
