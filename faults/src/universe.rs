//! The universe a scenario starts from: activities and goods rows written into the
//! scenario's truth databases (after `reconciler schema`), then projected into the
//! targets by `reconciler sync --all`, so the stream starts from consistent targets.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use model::{ActivityId, GoodsId, ShardLayout};
use rand::rngs::StdRng;
use rand::Rng;

use crate::env::Env;

/// Activities `9001 ..= 9000 + ACTIVITIES`, every one online for a month.
pub const ACTIVITIES: u64 = 24;

/// One `activity_goods` row of a goods, with the SKU ids it may have.
#[derive(Clone, Debug)]
pub struct Slot {
    pub aid: ActivityId,
    pub skus: Vec<u64>,
}

pub struct Universe {
    pub goods: BTreeMap<GoodsId, Vec<Slot>>,
}

pub fn activity_ids() -> impl Iterator<Item = ActivityId> {
    9001..=9000 + ACTIVITIES
}

async fn insert(pool: &sqlx::MySqlPool, head: &str, rows: &[String]) -> Result<()> {
    for chunk in rows.chunks(1000) {
        sqlx::raw_sql(&format!("{head} VALUES {}", chunk.join(","))).execute(pool).await.context("seeding truth")?;
    }
    Ok(())
}

/// Creates the schema, writes `goods` goods (1 to 3 activities each, 0 to 2 SKUs per
/// row, one row in ten removed) and syncs them into every target.
pub async fn seed(env: &Env, pool: &sqlx::MySqlPool, goods: u64, rng: &mut StdRng) -> Result<Universe> {
    env.reconciler(&["schema"])?;
    let layout: &ShardLayout = &env.layout;
    let meta = layout.meta_database();
    let acts: Vec<String> = activity_ids()
        .map(|a| {
            let i = a - 9001;
            let tags = ["618,hot", "", "double11", ",new,"][i as usize % 4];
            let biz = ["main", "sub", "ops"][i as usize % 3];
            format!(
                "({a},'act {a}',{},'{biz}','{tags}',1,NOW(3) - INTERVAL 1 DAY,NOW(3) + INTERVAL 30 DAY,{})",
                i % 4 + 1,
                (i % 5) * 10
            )
        })
        .collect();
    insert(
        pool,
        &format!(
            "INSERT INTO `{meta}`.activity (activity_id,name,type,biz_code,tags,status,start_time,end_time,priority)"
        ),
        &acts,
    )
    .await?;

    let mut universe = Universe { goods: BTreeMap::new() };
    let mut goods_rows: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut sku_rows: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for g in 1..=goods {
        let s = layout.shard_of(g);
        let mut slots = Vec::new();
        let n = 1 + rng.gen_range(0..3);
        let mut aids: Vec<ActivityId> = Vec::new();
        while aids.len() < n {
            let a = 9001 + rng.gen_range(0..ACTIVITIES);
            if !aids.contains(&a) {
                aids.push(a);
            }
        }
        for aid in aids {
            let status = if rng.gen_range(0..10) == 0 { 0 } else { 1 };
            goods_rows.entry(s).or_default().push(format!(
                "({aid},{g},{},{},{status})",
                1000 + rng.gen_range(0..9000),
                rng.gen_range(0..3)
            ));
            let skus: Vec<u64> = (0..rng.gen_range(0..3)).map(|j| g * 100 + j).collect();
            for &sku in &skus {
                sku_rows.entry(s).or_default().push(format!("({aid},{g},{sku},{},1)", 900 + rng.gen_range(0..9000)));
            }
            slots.push(Slot { aid, skus });
        }
        universe.goods.insert(g, slots);
    }
    for (s, rows) in &goods_rows {
        let sh = layout.shard(*s);
        let head = format!(
            "INSERT INTO `{}`.{} (activity_id,goods_id,activity_price,limit_per_user,status)",
            sh.database, sh.goods_table
        );
        insert(pool, &head, rows).await?;
    }
    for (s, rows) in &sku_rows {
        let sh = layout.shard(*s);
        let head = format!(
            "INSERT INTO `{}`.{} (activity_id,goods_id,sku_id,activity_price,status)",
            sh.database, sh.sku_table
        );
        insert(pool, &head, rows).await?;
    }
    crate::hb::ensure_table(&env.hbase_addr, &env.hbase_table)?;
    env.reconciler(&["sync", "--all"]).context("reconciler sync --all")?;
    Ok(universe)
}
