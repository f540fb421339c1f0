//! HBase store over the Thrift1 API (contract section 4): table `activity_goods`, row
//! `{md5 prefix}_{goods_id}`, family `a`, qualifier = activity id, cell timestamp =
//! the entity's `ver`. Reads are one `getRowsWithColumns` per batch, decoded straight
//! into cells (see [`read`]); repairs write at explicit timestamps so a newer cell is
//! never masked (see [`apply`]).

mod apply;
mod cells;
mod pool;
mod read;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hbase_thrift::hbase::{THbaseSyncClient, TScan};
use model::config::HbaseTarget;
use model::repair_plan::CellRepair;
use model::shard::parse_hbase_row_key;
use model::{hbase_row_key, GoodsId, ObservedGoods};

use crate::error::StoreError;
use crate::stores::{ApplyOutcome, ScanPage, Target};
use cells::Rows;
use pool::Pool;

/// The orphan scan's filter (HBase's filter language, evaluated by the region server):
/// each row's first cell without its value. A row's key is all the scan needs; the
/// cells of a goods list row are read by `getRowsWithColumns` when it is checked.
pub const KEY_ONLY_SCAN: &str = "FirstKeyOnlyFilter() AND KeyOnlyFilter()";

pub struct HbaseStore {
    name: String,
    table: String,
    family: String,
    pool: Arc<Pool>,
}

impl HbaseStore {
    /// Builds the client pool; connections are made on first use.
    pub fn new(config: &HbaseTarget) -> Result<HbaseStore, StoreError> {
        if config.address.trim().is_empty() {
            return Err(StoreError::failed(&config.name, "hbase target has no address"));
        }
        if config.family.is_empty() || config.family.contains(':') {
            return Err(StoreError::failed(&config.name, format!("bad column family {:?}", config.family)));
        }
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        Ok(HbaseStore {
            name: config.name.clone(),
            table: config.table.clone(),
            family: config.family.clone(),
            pool: Arc::new(Pool::new(&config.name, &config.address, config.transport, timeout, config.pool_size)),
        })
    }

    /// The family's cells of each row, in one `getRowsWithColumns`. The column is the
    /// bare family: `family:` would select only the empty qualifier (HBASE-9549).
    async fn read_rows(&self, keys: Vec<Vec<u8>>) -> Result<Rows, StoreError> {
        if keys.is_empty() {
            return Ok(Rows::new());
        }
        let (table, family) = (self.table.clone().into_bytes(), self.family.clone());
        self.pool.call(move |c| read::get_rows(c, &table, &keys, &family)).await
    }
}

#[async_trait]
impl Target for HbaseStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "hbase"
    }

    async fn read(&self, goods: &[GoodsId]) -> Result<Vec<ObservedGoods>, StoreError> {
        let keys: Vec<Vec<u8>> = goods.iter().map(|&g| hbase_row_key(g).into_bytes()).collect();
        let mut rows = self.read_rows(keys.clone()).await?;
        // Each row is moved out, not cloned (a row's cells are most of a batch's
        // memory); a goods named twice reads the same row twice, so then every row is
        // cloned.
        let distinct = goods.iter().collect::<std::collections::HashSet<_>>().len() == goods.len();
        Ok(keys
            .iter()
            .map(|k| if distinct { rows.remove(k) } else { rows.get(k).cloned() }.unwrap_or_default())
            .collect())
    }

    async fn apply(&self, repairs: &[CellRepair]) -> Result<Vec<ApplyOutcome>, StoreError> {
        apply::apply(self, repairs).await
    }

    async fn scan(&self, cursor: Option<Vec<u8>>, limit: usize) -> Result<ScanPage, StoreError> {
        // Row keys are all a scan needs: the server sends each row's first cell, valueless.
        let limit = limit.clamp(1, i32::MAX as usize) as i32;
        let table = self.table.clone().into_bytes();
        let scan = TScan::new(
            cursor.unwrap_or_default(),
            None,
            None,
            vec![self.family.clone().into_bytes()],
            limit,
            KEY_ONLY_SCAN.as_bytes().to_vec(),
            None,
            None,
            None,
            None,
        );
        let rows = self
            .pool
            .call(move |c| {
                let id = c.scanner_open_with_scan(table.clone(), scan.clone(), BTreeMap::new())?;
                let rows = read::scanner_row_keys(c, id, limit);
                let closed = c.scanner_close(id);
                let rows = rows?;
                closed?;
                Ok(rows)
            })
            .await?;
        let (returned, keys) = rows;
        let mut page = ScanPage::default();
        let full = returned == limit as usize;
        let mut last = None;
        for key in keys {
            match parse_hbase_row_key(&key) {
                Some(g) => page.goods.push(g),
                None => page.foreign.push(key.clone()),
            }
            last = Some(key);
        }
        // The smallest key after the last one: the next page starts there.
        page.next = last.filter(|_| full).map(|mut k| {
            k.push(0);
            k
        });
        Ok(page)
    }
}
