//! Shard routing of the truth tables and the HBase row key, as fixed by the contract.
//!
//! `s = goods_id mod (D*T)`, database `act_{s div T}`, tables `activity_goods_{s:04}` and
//! `activity_sku_{s:04}`. Every database name carries the configured prefix so that tests
//! can run side by side on one server.

use md5::{Digest, Md5};

use crate::ids::GoodsId;

/// The configured sharding: `D` databases of `T` tables each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLayout {
    pub databases: u32,
    pub tables_per_database: u32,
    /// Prepended to every database name (`""` in production, random in tests).
    pub db_prefix: String,
}

/// Where the rows of one global shard live.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardRef {
    /// Global shard index `s`.
    pub index: u32,
    /// Database index `s div T`, the position in `mysql.database_urls`.
    pub database_index: u32,
    pub database: String,
    pub goods_table: String,
    pub sku_table: String,
}

impl ShardLayout {
    pub fn total_shards(&self) -> u32 {
        self.databases * self.tables_per_database
    }

    pub fn meta_database(&self) -> String {
        format!("{}act_meta", self.db_prefix)
    }

    pub fn database(&self, database_index: u32) -> String {
        format!("{}act_{}", self.db_prefix, database_index)
    }

    pub fn shard_of(&self, goods_id: GoodsId) -> u32 {
        (goods_id % self.total_shards() as u64) as u32
    }

    pub fn shard(&self, index: u32) -> ShardRef {
        let database_index = index / self.tables_per_database;
        ShardRef {
            index,
            database_index,
            database: self.database(database_index),
            goods_table: format!("activity_goods_{index:04}"),
            sku_table: format!("activity_sku_{index:04}"),
        }
    }

    pub fn route(&self, goods_id: GoodsId) -> ShardRef {
        self.shard(self.shard_of(goods_id))
    }

    pub fn all_shards(&self) -> impl Iterator<Item = ShardRef> + '_ {
        (0..self.total_shards()).map(|s| self.shard(s))
    }

    /// Groups goods ids by global shard index, keeping each group's input order.
    pub fn group_by_shard(&self, ids: &[GoodsId]) -> std::collections::BTreeMap<u32, Vec<GoodsId>> {
        let mut groups = std::collections::BTreeMap::<u32, Vec<GoodsId>>::new();
        for &id in ids {
            groups.entry(self.shard_of(id)).or_default().push(id);
        }
        groups
    }
}

/// HBase row key `{p}_{goods_id}`, `p` the first 4 lowercase hex digits of md5 of the
/// decimal goods id.
pub fn hbase_row_key(goods_id: GoodsId) -> String {
    // Built by hand: `format!` was half of the cost of a key (callgrind), and a full run
    // makes one per goods read and one per row scanned.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = itoa::Buffer::new();
    let decimal = digits.format(goods_id);
    let digest = Md5::digest(decimal.as_bytes());
    let mut key = String::with_capacity(5 + decimal.len());
    for b in &digest[..2] {
        key.push(HEX[usize::from(b >> 4)] as char);
        key.push(HEX[usize::from(b & 15)] as char);
    }
    key.push('_');
    key.push_str(decimal);
    key
}

/// Redis key `{key_prefix}{goods_id}` (built by hand for the same reason: one per goods
/// read on every Redis target).
pub fn redis_key(key_prefix: &str, goods_id: GoodsId) -> String {
    let mut digits = itoa::Buffer::new();
    let decimal = digits.format(goods_id);
    let mut key = String::with_capacity(key_prefix.len() + decimal.len());
    key.push_str(key_prefix);
    key.push_str(decimal);
    key
}

/// Inverse of [`hbase_row_key`]; `None` for a key that is not of that shape or whose
/// prefix does not match (a row some other writer put in the table).
pub fn parse_hbase_row_key(key: &[u8]) -> Option<GoodsId> {
    let text = std::str::from_utf8(key).ok()?;
    let (_, decimal) = text.split_once('_')?;
    let id: GoodsId = decimal.parse().ok()?;
    (hbase_row_key(id) == text).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> ShardLayout {
        ShardLayout { databases: 2, tables_per_database: 4, db_prefix: String::new() }
    }

    #[test]
    fn routes_as_the_contract_says() {
        let l = layout();
        let r = l.route(13);
        assert_eq!(r.index, 5);
        assert_eq!(r.database, "act_1");
        assert_eq!(r.goods_table, "activity_goods_0005");
        assert_eq!(r.sku_table, "activity_sku_0005");
        assert_eq!(l.route(8).database, "act_0");
        assert_eq!(l.route(3).database, "act_0");
        assert_eq!(l.route(4).database, "act_1");
        assert_eq!(l.all_shards().count(), 8);
    }

    #[test]
    fn prefix_applies_to_every_database() {
        let l = ShardLayout { db_prefix: "t1_".into(), ..layout() };
        assert_eq!(l.meta_database(), "t1_act_meta");
        assert_eq!(l.route(7).database, "t1_act_1");
    }

    #[test]
    fn hbase_row_keys_are_the_contracts_format() {
        let reference = |id: GoodsId| {
            let d = Md5::digest(id.to_string().as_bytes());
            format!("{:02x}{:02x}_{id}", d[0], d[1])
        };
        for id in (0..5_000).chain([u64::MAX, u64::MAX - 1, 1 << 40, 999_999_999_999]) {
            assert_eq!(hbase_row_key(id), reference(id), "goods {id}");
            assert_eq!(parse_hbase_row_key(hbase_row_key(id).as_bytes()), Some(id));
        }
    }

    #[test]
    fn redis_keys_are_the_prefix_and_the_decimal_goods_id() {
        for id in [0, 7, 1001, 999_999_999, u64::MAX] {
            assert_eq!(redis_key("act:goods:", id), format!("act:goods:{id}"));
        }
        assert_eq!(redis_key("", 42), "42");
    }

    #[test]
    fn hbase_row_key_matches_contract_example() {
        assert_eq!(hbase_row_key(1001), "b8c3_1001");
        assert_eq!(parse_hbase_row_key(b"b8c3_1001"), Some(1001));
        assert_eq!(parse_hbase_row_key(b"0000_1001"), None);
        assert_eq!(parse_hbase_row_key(b"junk"), None);
    }
}
