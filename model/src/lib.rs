//! The reconciler's pure core: what truth looks like, what every derived store must hold,
//! how a derived copy differs from truth, and the messages that cross process boundaries.
//!
//! Nothing in this crate does IO. Stores, brokers and clocks live in `handlers`,
//! `triggers` and the binary; they feed values in and act on values that come out.

pub mod change;
pub mod config;
pub mod consistency;
pub mod diff;
pub mod entity;
pub mod ids;
pub mod job;
pub mod key;
pub mod pricing;
pub mod projection;
pub mod repair_plan;
pub mod report;
pub mod schema;
pub mod shard;

pub use diff::{diff_goods, Drift, DriftKind, ObservedCell, ObservedGoods};
pub use entity::Entity;
pub use ids::{ActivityId, GoodsId};
pub use projection::{project_goods, ActivityRow, GoodsRow, GoodsTruth, SkuRow};
pub use shard::{hbase_row_key, redis_key, ShardLayout, ShardRef};
