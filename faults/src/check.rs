//! The independent check: truth rows read straight from MySQL with the harness's own
//! SQL, projected with `model::project_goods`, against raw reads of every target (Redis
//! `TYPE` + `HGETALL` with redis-rs, HBase `getRowsWithColumns` with the hbase-thrift
//! client). Nothing of the reconciler's handlers is used.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{anyhow, Result};
use model::projection::{ActivityRow, GoodsRow, SkuRow};
use model::{hbase_row_key, project_goods, ActivityId, Entity, GoodsId, GoodsTruth};

use crate::env::Env;
use crate::hb;

const EPOCH: &str = "'1970-01-01 00:00:00'";

fn ms(col: &str) -> String {
    format!("CAST(TIMESTAMPDIFF(MICROSECOND, {EPOCH}, {col}) DIV 1000 AS SIGNED)")
}

#[derive(Clone)]
pub struct Checker {
    pub pool: sqlx::MySqlPool,
    pub layout: model::ShardLayout,
    pub redis_url: String,
    pub key_prefix: String,
    pub hbase_addr: String,
    pub table: String,
}

/// What one target holds for one goods: qualifier → (value, HBase timestamp).
type Observed = BTreeMap<Vec<u8>, (Vec<u8>, Option<i64>)>;

impl Checker {
    pub fn new(env: &Env, pool: sqlx::MySqlPool) -> Checker {
        Checker {
            pool,
            layout: env.layout.clone(),
            redis_url: env.redis_url.clone(),
            key_prefix: env.key_prefix.clone(),
            hbase_addr: env.hbase_addr.clone(),
            table: env.hbase_table.clone(),
        }
    }

    /// The projection of truth for each goods (goods without rows project to nothing).
    pub async fn truth(&self, goods: &[GoodsId]) -> Result<BTreeMap<GoodsId, GoodsTruth>> {
        let meta = self.layout.meta_database();
        let sql = format!(
            "SELECT activity_id, type, biz_code, tags, status, {}, {}, priority, {} FROM `{meta}`.activity",
            ms("start_time"),
            ms("end_time"),
            ms("updated_at")
        );
        type A = (u64, i32, String, String, i8, i64, i64, i32, i64);
        let acts: HashMap<ActivityId, ActivityRow> = sqlx::query_as::<_, A>(&sql)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(activity_id, kind, biz_code, tags, status, start_ms, end_ms, priority, updated_ms)| {
                let (biz_code, tags) = (biz_code.into(), model::projection::split_tags(&tags).into());
                let row =
                    ActivityRow { activity_id, kind, biz_code, tags, status, start_ms, end_ms, priority, updated_ms };
                (activity_id, row)
            })
            .collect();
        let mut rows: BTreeMap<GoodsId, (Vec<GoodsRow>, Vec<SkuRow>)> =
            goods.iter().map(|&g| (g, Default::default())).collect();
        for (s, ids) in self.layout.group_by_shard(goods) {
            let sh = self.layout.shard(s);
            let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            let sql = format!(
                "SELECT activity_id, goods_id, activity_price, limit_per_user, status, {} FROM `{}`.{} WHERE goods_id IN ({list})",
                ms("updated_at"),
                sh.database,
                sh.goods_table
            );
            for (activity_id, goods_id, activity_price, limit_per_user, status, updated_ms) in
                sqlx::query_as::<_, (u64, u64, i64, i32, i8, i64)>(&sql).fetch_all(&self.pool).await?
            {
                let r = GoodsRow { activity_id, goods_id, activity_price, limit_per_user, status, updated_ms };
                rows.entry(goods_id).or_default().0.push(r);
            }
            let sql = format!(
                "SELECT activity_id, goods_id, sku_id, activity_price, status, {} FROM `{}`.{} WHERE goods_id IN ({list})",
                ms("updated_at"),
                sh.database,
                sh.sku_table
            );
            for (activity_id, goods_id, sku_id, activity_price, status, updated_ms) in
                sqlx::query_as::<_, (u64, u64, u64, i64, i8, i64)>(&sql).fetch_all(&self.pool).await?
            {
                let r = SkuRow { activity_id, goods_id, sku_id, activity_price, status, updated_ms };
                rows.entry(goods_id).or_default().1.push(r);
            }
        }
        Ok(rows.into_iter().map(|(g, (gr, sr))| (g, project_goods(&gr, &sr, &acts))).collect())
    }

    async fn redis(&self, goods: &[GoodsId]) -> Result<BTreeMap<GoodsId, Result<Observed, String>>> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut c = tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection())
            .await
            .map_err(|_| anyhow!("redis: connect timed out"))??;
        let keys: Vec<String> = goods.iter().map(|g| format!("{}{g}", self.key_prefix)).collect();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("TYPE").arg(k);
        }
        let types: Vec<String> = pipe.query_async(&mut c).await?;
        let mut pipe = redis::pipe();
        for (k, t) in keys.iter().zip(&types) {
            if t == "hash" {
                pipe.cmd("HGETALL").arg(k);
            }
        }
        let mut hashes: std::vec::IntoIter<BTreeMap<Vec<u8>, Vec<u8>>> =
            pipe.query_async::<Vec<BTreeMap<Vec<u8>, Vec<u8>>>>(&mut c).await?.into_iter();
        let mut out = BTreeMap::new();
        for (&g, t) in goods.iter().zip(&types) {
            let v = match t.as_str() {
                "hash" => Ok(hashes.next().unwrap_or_default().into_iter().map(|(q, v)| (q, (v, None))).collect()),
                "none" => Ok(Observed::new()),
                other => Err(format!("redis key of type {other}")),
            };
            out.insert(g, v);
        }
        Ok(out)
    }

    fn hbase(&self, goods: &[GoodsId]) -> Result<BTreeMap<GoodsId, Observed>> {
        let mut c = hb::connect(&self.hbase_addr)?;
        let keys: Vec<String> = goods.iter().map(|&g| hbase_row_key(g)).collect();
        let rows = hb::read_rows(&mut c, &self.table, &keys)?;
        Ok(goods
            .iter()
            .zip(&keys)
            .map(|(&g, k)| {
                let cells = rows.get(k).cloned().unwrap_or_default();
                (g, cells.into_iter().map(|(q, (v, ts))| (q, (v, Some(ts)))).collect())
            })
            .collect())
    }

    /// Checks goods against truth on every target; returns the inconsistent ones with
    /// why. A target that cannot be read is an error (nothing can be judged).
    pub async fn check(&self, goods: &[GoodsId]) -> Result<BTreeMap<GoodsId, String>> {
        let mut bad = BTreeMap::new();
        for chunk in goods.chunks(500) {
            let truth = self.truth(chunk).await?;
            let redis = self.redis(chunk).await?;
            let me = self.clone();
            let ids = chunk.to_vec();
            let hbase = tokio::task::spawn_blocking(move || me.hbase(&ids)).await??;
            for &g in chunk {
                let t = &truth[&g];
                let mut why = Vec::new();
                match &redis[&g] {
                    Ok(o) => why.extend(compare(t, o).map(|w| format!("redis-a: {w}"))),
                    Err(e) => why.push(format!("redis-a: {e}")),
                }
                why.extend(compare(t, &hbase[&g]).map(|w| format!("hbase-a: {w}")));
                if !why.is_empty() {
                    bad.insert(g, why.join("; "));
                }
            }
        }
        Ok(bad)
    }
}

/// Why what a target holds differs from the projection, if it does: semantically (decoded
/// values, contract section 3), every qualifier accounted for. HBase cell timestamps are
/// not compared (see the test below).
pub fn compare(truth: &GoodsTruth, observed: &Observed) -> Option<String> {
    let mut why = Vec::new();
    for (aid, e) in &truth.entities {
        match observed.get(aid.to_string().as_bytes()) {
            None => why.push(format!("{aid} missing")),
            Some((v, _)) => match Entity::decode(v) {
                Err(_) => why.push(format!("{aid} corrupt ({} bytes)", v.len())),
                Ok(d) if &d != e => {
                    why.push(format!("{aid} stale {:?} (ver {} vs {})", d.differing_fields(e), d.ver, e.ver))
                }
                Ok(_) => {}
            },
        }
    }
    for q in observed.keys() {
        let known =
            std::str::from_utf8(q).ok().and_then(|s| s.parse::<u64>().ok()).filter(|a| truth.entities.contains_key(a));
        if known.is_none() {
            why.push(format!("extra qualifier {:?}", String::from_utf8_lossy(&q[..q.len().min(24)])));
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> GoodsTruth {
        let e = Entity::decode(br#"{"aid":7001,"type":2,"biz":"main","tags":["618"],"prio":10,"start":1,"end":2,"price":250,"limit":2,"skus":[[88,240]],"ver":99}"#).unwrap();
        let mut t = GoodsTruth::default();
        t.entities.insert(7001, e);
        t
    }

    fn cell(v: &[u8], ts: Option<i64>) -> Observed {
        [(b"7001".to_vec(), (v.to_vec(), ts))].into_iter().collect()
    }

    #[test]
    fn equal_values_in_another_key_order_are_consistent() {
        let v = br#"{"ver":99,"aid":7001,"type":2,"biz":"main","tags":["618"],"prio":10,"start":1,"end":2,"price":250,"limit":2,"skus":[[88,240]]}"#;
        assert_eq!(compare(&truth(), &cell(v, None)), None);
        assert_eq!(compare(&truth(), &cell(v, Some(99))), None);
    }

    #[test]
    fn every_kind_of_difference_is_named() {
        let t = truth();
        let good = t.entities[&7001].encode();
        assert!(compare(&t, &Observed::new()).unwrap().contains("7001 missing"));
        assert!(compare(&t, &cell(b"\xff", None)).unwrap().contains("corrupt"));
        let stale = String::from_utf8(good.clone()).unwrap().replace("\"price\":250", "\"price\":251");
        assert!(compare(&t, &cell(stale.as_bytes(), None)).unwrap().contains("stale [\"price\"]"));
        // The cell timestamp is not judged: a repair puts at the seen cell's timestamp when
        // `ver` went backwards (a physically deleted SKU row), so the value stays visible.
        assert_eq!(compare(&t, &cell(&good, Some(98))), None);
        let mut extra = cell(&good, None);
        extra.insert(b"junk".to_vec(), (b"x".to_vec(), None));
        assert!(compare(&t, &extra).unwrap().contains("extra qualifier \"junk\""));
        assert!(compare(&GoodsTruth::default(), &cell(&good, None)).unwrap().contains("extra qualifier \"7001\""));
    }
}
