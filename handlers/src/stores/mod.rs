//! Derived stores behind one narrow trait: read a batch of goods, apply cell repairs
//! with compare-and-set, and page through every goods the store holds (orphan scan).

pub mod hbase;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use model::config::TargetConfig;
use model::repair_plan::CellRepair;
use model::{GoodsId, ObservedCell, ObservedGoods};

use crate::error::StoreError;

/// What became of one [`CellRepair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Written. `timestamp` is the HBase cell timestamp used (for undo), `None` on Redis.
    Applied { timestamp: Option<i64> },
    /// The cell no longer held what the check saw; nothing was written.
    Conflict { found: Option<ObservedCell> },
    /// The store did not say (an error after the write may have landed): the handler
    /// re-reads the cell to learn what happened.
    Unknown { reason: String },
}

/// One page of an orphan scan.
#[derive(Debug, Clone, Default)]
pub struct ScanPage {
    /// Goods ids of the keys / rows on this page.
    pub goods: Vec<GoodsId>,
    /// Keys / rows on this page that are not of the contract's shape (reported, never
    /// touched).
    pub foreign: Vec<Vec<u8>>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next: Option<Vec<u8>>,
}

#[async_trait]
pub trait Target: Send + Sync {
    fn name(&self) -> &str;
    /// `redis` or `hbase`.
    fn kind(&self) -> &'static str;
    /// What the target holds for each goods, in input order (empty when absent). `Err`
    /// only when the store cannot answer at all: poison in one goods (a key of another
    /// type, an error reply for one key) is reported in that goods' [`ObservedGoods`].
    async fn read(&self, goods: &[GoodsId]) -> Result<Vec<ObservedGoods>, StoreError>;
    /// Applies repairs, each only if its cell still holds `expected`; one outcome per
    /// repair, in order. A repair of a goods never touches cells it does not name.
    async fn apply(&self, repairs: &[CellRepair]) -> Result<Vec<ApplyOutcome>, StoreError>;
    /// One page of every goods the target holds; start with `cursor = None`.
    async fn scan(&self, cursor: Option<Vec<u8>>, limit: usize) -> Result<ScanPage, StoreError>;
}

/// Connects to every configured target. Construction does no IO beyond building
/// clients, so a target that is down is found (and reported) on first use.
pub fn build_targets(configs: &[TargetConfig]) -> Result<Vec<Arc<dyn Target>>, StoreError> {
    configs
        .iter()
        .map(|c| -> Result<Arc<dyn Target>, StoreError> {
            Ok(match c {
                TargetConfig::Redis(r) => redis::build(r)?,
                TargetConfig::Hbase(h) => Arc::new(hbase::HbaseStore::new(h)?),
            })
        })
        .collect()
}
