//! The benchmark's data set, generated deterministically per goods id (so any goods can
//! be regenerated later, e.g. to inject drift, without holding the set in memory).
//!
//! Shape: `ACTIVITIES` activities of four types, six business codes and several tag
//! sets (a few offline or draft); each goods carries 1 to 5 activities, each with 0 to
//! 3 SKUs; about 5% of goods rows and 10% of SKU rows are removed (status 0). Every row
//! is at least an hour old, with `updated_at` on one of 16 minute marks, so entity
//! versions fall on a few HBase timestamps.

use std::collections::HashMap;

use model::projection::{project_goods, split_tags, ActivityRow, GoodsRow, SkuRow};
use model::{ActivityId, GoodsId, GoodsTruth};

pub const ACTIVITIES: u64 = 5000;
pub const FIRST_ACTIVITY: ActivityId = 100_001;
/// Goods ids used for injected orphans: no truth rows exist for them.
pub const ORPHAN_BASE: GoodsId = 9_000_000_000;

const BIZ: [&str; 6] = ["main", "brand", "flash", "league", "outlet", "global"];
const TAGS: [&str; 6] = ["618,hot", "", "double11", "new,,member", "hot", "clearance,vip,zone-a"];

/// splitmix64: a fast, well-mixed hash for per-row pseudo-randomness.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A deterministic stream of numbers for one goods.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed))
    }
    pub fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

/// Times of the data set, epoch ms.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The newest `updated_at` of any row: an hour before the benchmark started.
    pub base_ms: i64,
}

impl Clock {
    pub fn now_minus_hour() -> Clock {
        let now = common::clock::now_ms();
        Clock { base_ms: (now - 3_600_000) / 60_000 * 60_000 }
    }
    pub fn updated(&self, r: &mut Rng) -> i64 {
        self.base_ms - (r.range(0, 15) as i64) * 60_000
    }
}

/// Activity rows (the first `ACTIVITIES`), with name.
pub fn activities(clock: Clock) -> Vec<(ActivityRow, String)> {
    let start = clock.base_ms - 86_400_000;
    (0..ACTIVITIES)
        .map(|i| {
            let mut r = Rng::new(0xAC71_0000 + i);
            let status = if i % 40 == 7 {
                2
            } else if i % 50 == 9 {
                0
            } else {
                1
            };
            let id = FIRST_ACTIVITY + i;
            (
                ActivityRow {
                    activity_id: id,
                    kind: 1 + (i % 4) as i32,
                    biz_code: BIZ[(i % 6) as usize].into(),
                    tags: split_tags(TAGS[(r.next() % 6) as usize]).into(),
                    status,
                    start_ms: start,
                    end_ms: start + (r.range(2, 30) as i64) * 86_400_000 - 1000,
                    priority: (r.range(0, 9) * 10) as i32,
                    updated_ms: clock.updated(&mut r),
                },
                format!("bench activity {id}"),
            )
        })
        .collect()
}

/// Truth rows of one goods.
#[derive(Debug, Default)]
pub struct GoodsData {
    pub goods: Vec<GoodsRow>,
    pub skus: Vec<SkuRow>,
}

pub fn goods(goods_id: GoodsId, clock: Clock) -> GoodsData {
    let mut r = Rng::new(goods_id);
    let n = r.range(1, 5) as usize;
    let mut chosen: Vec<ActivityId> = Vec::with_capacity(n);
    while chosen.len() < n {
        let a = FIRST_ACTIVITY + r.next() % ACTIVITIES;
        if !chosen.contains(&a) {
            chosen.push(a);
        }
    }
    let mut d = GoodsData::default();
    for a in chosen {
        d.goods.push(GoodsRow {
            activity_id: a,
            goods_id,
            activity_price: r.range(100, 100_000) as i64,
            limit_per_user: r.range(0, 4) as i32,
            status: if r.chance(50) { 0 } else { 1 },
            updated_ms: clock.updated(&mut r),
        });
        for k in 0..r.range(0, 3) {
            d.skus.push(SkuRow {
                activity_id: a,
                goods_id,
                sku_id: goods_id * 8 + k,
                activity_price: r.range(100, 10_000) as i64,
                status: if r.chance(100) { 0 } else { 1 },
                updated_ms: clock.updated(&mut r),
            });
        }
    }
    d
}

/// The activities by id, as the projection needs them.
pub fn activity_map(acts: &[(ActivityRow, String)]) -> HashMap<ActivityId, ActivityRow> {
    acts.iter().map(|(a, _)| (a.activity_id, a.clone())).collect()
}

pub fn truth(goods_id: GoodsId, clock: Clock, acts: &HashMap<ActivityId, ActivityRow>) -> GoodsTruth {
    let d = goods(goods_id, clock);
    project_goods(&d.goods, &d.skus, acts)
}

pub use reconciler::seed::datetime;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_datetimes() {
        assert_eq!(datetime(0), "1970-01-01 00:00:00.000");
        assert_eq!(datetime(1_781_740_800_123), "2026-06-18 00:00:00.123");
    }

    #[test]
    fn goods_are_deterministic_and_shaped() {
        let clock = Clock { base_ms: 1_781_740_800_000 };
        let a = goods(42, clock);
        let b = goods(42, clock);
        assert_eq!(a.goods, b.goods);
        assert!((1..=5).contains(&a.goods.len()));
    }
}
