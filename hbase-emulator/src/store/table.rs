//! One table: its column families (fixed at creation, Thrift1 has no alter; rows name
//! them by position), its enabled flag and its rows, sorted bytewise.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use hbase_thrift::hbase::ColumnDescriptor;

use super::cells::{RowBuf, RowEdit};
use crate::error::{Error, Result};

/// A column family's settings, kept to echo them back in `getColumnDescriptors`.
#[derive(Debug, Clone)]
pub struct FamilySpec {
    /// Versions a read can return; older ones are dropped.
    pub max_versions: i32,
    pub compression: String,
    pub in_memory: bool,
    pub bloom_filter_type: String,
    pub block_cache_enabled: bool,
    pub time_to_live: i32,
}

const COMPRESSIONS: [&str; 7] = ["none", "gz", "lzo", "snappy", "lz4", "bzip2", "zstd"];
const BLOOMS: [&str; 5] = ["NONE", "ROW", "ROWCOL", "ROWPREFIX_FIXED_LENGTH", "ROWPREFIX_DELIMITED"];

impl FamilySpec {
    /// Validates a Thrift descriptor as `ThriftUtilities.colDescFromThrift` does; absent
    /// fields take the defaults of `Hbase.thrift`.
    pub fn from_thrift(d: &ColumnDescriptor) -> Result<(Vec<u8>, FamilySpec)> {
        let name = d.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(Error::IllegalArgument("column name is empty".into()));
        }
        let family = super::select::parse_column(&name).0;
        // Empty counts as absent: the Rust client's `Default` sends empty strings.
        let compression = d.compression.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| "NONE".into());
        if !COMPRESSIONS.contains(&compression.to_lowercase().as_str()) {
            return Err(Error::illegal(format!("Unsupported compression algorithm name: {compression}")));
        }
        let bloom = d.bloom_filter_type.clone().filter(|b| !b.is_empty()).unwrap_or_else(|| "NONE".into());
        if !BLOOMS.contains(&bloom.as_str()) {
            return Err(Error::illegal(format!(
                "No enum constant org.apache.hadoop.hbase.regionserver.BloomType.{bloom}"
            )));
        }
        let max_versions = d.max_versions.unwrap_or(3);
        if max_versions < 1 {
            return Err(Error::illegal("Maximum versions must be positive"));
        }
        if family.is_empty() || family[0] == b'.' || family.iter().any(|b| b.is_ascii_control()) {
            return Err(Error::illegal(format!("Illegal column family name {}", crate::error::show(&family))));
        }
        let ttl = d.time_to_live.unwrap_or(-1);
        Ok((
            family,
            FamilySpec {
                max_versions,
                compression: compression.to_uppercase(),
                in_memory: d.in_memory.unwrap_or(false),
                bloom_filter_type: bloom,
                block_cache_enabled: d.block_cache_enabled.unwrap_or(false),
                time_to_live: if ttl > 0 { ttl } else { i32::MAX },
            },
        ))
    }

    pub fn to_thrift(&self, family: &[u8]) -> ColumnDescriptor {
        let mut name = family.to_vec();
        name.push(b':');
        ColumnDescriptor {
            name: Some(name),
            max_versions: Some(self.max_versions),
            compression: Some(self.compression.clone()),
            in_memory: Some(self.in_memory),
            bloom_filter_type: Some(self.bloom_filter_type.clone()),
            bloom_filter_vector_size: Some(0),
            bloom_filter_nb_hashes: Some(0),
            block_cache_enabled: Some(self.block_cache_enabled),
            time_to_live: Some(self.time_to_live),
        }
    }
}

#[derive(Debug)]
pub struct Table {
    pub name: Vec<u8>,
    pub families: BTreeMap<Vec<u8>, FamilySpec>,
    /// The keys of `families`, in order: a family's id in the rows is its position here.
    ids: Vec<Vec<u8>>,
    enabled: AtomicBool,
    rows: RwLock<Rows>,
}

/// A table's rows, ordered and looked up by key (`RowBuf: Borrow<[u8]>`).
pub type Rows = BTreeSet<RowBuf>;

impl Table {
    pub fn new(name: Vec<u8>, families: BTreeMap<Vec<u8>, FamilySpec>) -> Self {
        let ids = families.keys().cloned().collect();
        Table { name, families, ids, enabled: AtomicBool::new(true), rows: RwLock::default() }
    }

    pub fn family(&self, family: &[u8]) -> Result<&FamilySpec> {
        self.families.get(family).ok_or_else(|| Error::no_such_family(&self.name, family))
    }

    /// The id rows store for a family.
    pub fn family_id(&self, family: &[u8]) -> Result<usize> {
        self.ids.binary_search_by(|f| f.as_slice().cmp(family)).map_err(|_| Error::no_such_family(&self.name, family))
    }

    /// The name and settings of the family with that id.
    pub fn family_by_id(&self, id: usize) -> (&[u8], &FamilySpec) {
        let name = &self.ids[id];
        (name, &self.families[name])
    }

    pub fn family_count(&self) -> usize {
        self.ids.len()
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Flips the enabled flag; false when it already had that value.
    pub fn set_enabled(&self, enabled: bool) -> bool {
        self.enabled.swap(enabled, Ordering::SeqCst) != enabled
    }

    pub fn check_enabled(&self) -> Result<()> {
        if self.is_enabled() {
            Ok(())
        } else {
            Err(Error::table_disabled(&self.name))
        }
    }

    pub fn rows(&self) -> RwLockReadGuard<'_, Rows> {
        self.rows.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn rows_mut(&self) -> RwLockWriteGuard<'_, Rows> {
        self.rows.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Minor (`major = false`) or major compaction of every row. Only the rows that
    /// change are re-encoded (rows left empty are removed).
    pub fn compact(&self, major: bool) {
        let mut rows = self.rows_mut();
        let mut changed = Vec::new();
        for row in rows.iter() {
            let mut edit = RowEdit::decode(row);
            if edit.compact(major) {
                changed.push((row.key().to_vec(), (!edit.is_empty()).then(|| edit.encode(row.key()))));
            }
        }
        for (key, new) in changed {
            rows.remove(key.as_slice());
            rows.extend(new);
        }
    }
}
