//! The in-memory HBase: tables by name, each a sorted map of rows behind its own
//! `RwLock` (reads of a batch take the lock once), plus the open scanners.

pub mod cells;
pub mod filter;
mod read;
pub mod scanner;
pub mod select;
pub mod table;
mod write;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub use cells::{Cell, Ts};
pub use filter::Filter;
pub use scanner::ScanSpec;
pub use table::{FamilySpec, Table};
pub use write::{DeleteTarget, Op, RowMutation};

use crate::error::{show, Error, Result};

/// `HConstants.LATEST_TIMESTAMP`: "now" for writes, "no upper bound" for reads.
pub const LATEST: Ts = Ts::MAX;

#[derive(Debug, Default)]
pub struct Store {
    tables: RwLock<BTreeMap<Vec<u8>, Arc<Table>>>,
    scanners: scanner::Scanners,
    /// Last timestamp handed out, so that "now" never goes backwards.
    clock: Mutex<Ts>,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// The server's current time in ms, never below one handed out before.
    pub fn now(&self) -> Ts {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Ts).unwrap_or(0);
        let mut last = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        *last = wall.max(*last);
        *last
    }

    /// A write timestamp: `LATEST` becomes now.
    pub fn write_ts(&self, ts: Ts) -> Ts {
        if ts == LATEST {
            self.now()
        } else {
            ts
        }
    }

    /// Any table, enabled or not.
    pub fn table(&self, name: &[u8]) -> Result<Arc<Table>> {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        tables.get(name).cloned().ok_or_else(|| Error::table_not_found(name))
    }

    /// A table that serves reads and writes.
    pub fn enabled_table(&self, name: &[u8]) -> Result<Arc<Table>> {
        let t = self.table(name)?;
        t.check_enabled()?;
        Ok(t)
    }

    pub fn table_names(&self) -> Vec<Vec<u8>> {
        self.tables.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    pub fn tables_enabled(&self) -> BTreeMap<Vec<u8>, bool> {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        tables.iter().map(|(n, t)| (n.clone(), t.is_enabled())).collect()
    }

    pub fn create_table(&self, name: &[u8], families: BTreeMap<Vec<u8>, FamilySpec>) -> Result<()> {
        validate_table_name(name)?;
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        if tables.contains_key(name) {
            return Err(Error::AlreadyExists("table name already in use".into()));
        }
        if families.is_empty() {
            return Err(Error::Io(
                "org.apache.hadoop.hbase.DoNotRetryIOException: Table should have at least one column family.".into(),
            ));
        }
        tables.insert(name.to_vec(), Arc::new(Table::new(name.to_vec(), families)));
        Ok(())
    }

    pub fn delete_table(&self, name: &[u8]) -> Result<()> {
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        let t = tables.get(name).ok_or_else(|| Error::Io("java.io.IOException: table does not exist".into()))?;
        if t.is_enabled() {
            return Err(Error::Io(format!("org.apache.hadoop.hbase.TableNotDisabledException: {}", show(name))));
        }
        tables.remove(name);
        Ok(())
    }

    pub fn set_enabled(&self, name: &[u8], enabled: bool) -> Result<()> {
        let t = self.table(name)?;
        if t.set_enabled(enabled) {
            Ok(())
        } else if enabled {
            Err(Error::Io(format!("org.apache.hadoop.hbase.TableNotDisabledException: {}", show(name))))
        } else {
            Err(Error::Io(format!("org.apache.hadoop.hbase.TableNotEnabledException: {}", show(name))))
        }
    }

    /// `compact` / `majorCompact`, done at once rather than queued as HBase does.
    pub fn compact(&self, name: &[u8], major: bool) -> Result<()> {
        self.table(name)?.compact(major);
        Ok(())
    }
}

/// `TableName.valueOf` rules: `[namespace:]qualifier`, word characters, `-` and `.`,
/// not starting with `.` or `-`.
fn validate_table_name(name: &[u8]) -> Result<()> {
    let qualifier = match name.iter().position(|&b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    let legal = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
    let ok = !qualifier.is_empty()
        && qualifier[0] != b'.'
        && qualifier[0] != b'-'
        && name.iter().filter(|&&b| b != b':').all(legal)
        && name.iter().filter(|&&b| b == b':').count() <= 1;
    if ok {
        Ok(())
    } else {
        Err(Error::internal(format!("Illegal table name {}", show(name))))
    }
}
