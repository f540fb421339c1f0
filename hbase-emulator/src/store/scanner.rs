//! Scanners: a cursor over a table's rows in byte order (or reversed), with an
//! exclusive stop row, an optional prefix, a column selection and a time bound; a
//! `TScan.filterString` ([`Filter`]) applies to each row's selected cells. Each
//! `next` batch re-reads under the table's read lock from where the last one ended, so
//! concurrent writes show up as HBase's row-level consistency allows.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use super::cells::{Ts, Window};
use super::filter::Filter;
use super::read::RowCells;
use super::select::Selection;
use super::table::Table;
use super::Store;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct ScanSpec {
    /// First row (inclusive); empty: the table's first row (last row when reversed).
    pub start: Vec<u8>,
    /// Row to stop at (exclusive); empty: the table's end.
    pub stop: Vec<u8>,
    /// Stops at the first row that does not start with it (scannerOpenWithPrefix).
    pub prefix: Option<Vec<u8>>,
    pub columns: Vec<Vec<u8>>,
    /// Exclusive upper bound of cell timestamps.
    pub below: Ts,
    pub reversed: bool,
    /// Answer with `sortedColumns` instead of the `columns` map.
    pub sort_columns: bool,
    /// `TScan.filterString`, parsed (none: every selected cell, values included).
    pub filter: Filter,
}

impl ScanSpec {
    pub fn new(start: Vec<u8>, stop: Vec<u8>, columns: Vec<Vec<u8>>, below: Ts) -> Self {
        ScanSpec {
            start,
            stop,
            prefix: None,
            columns,
            below,
            reversed: false,
            sort_columns: false,
            filter: Filter::default(),
        }
    }
}

#[derive(Debug)]
struct Scanner {
    table: Arc<Table>,
    selection: Selection,
    spec: ScanSpec,
    /// Last row looked at; the next batch starts strictly after it.
    last: Option<Vec<u8>>,
    done: bool,
}

#[derive(Debug, Default)]
pub struct Scanners {
    next_id: AtomicI32,
    open: Mutex<HashMap<i32, Arc<Mutex<Scanner>>>>,
}

fn invalid() -> Error {
    Error::IllegalArgument("scanner ID is invalid".into())
}

impl Scanner {
    fn next(&mut self, n: usize) -> Vec<RowCells> {
        let mut out = Vec::new();
        if self.done || n == 0 {
            return out;
        }
        let rows = self.table.rows();
        let spec = &self.spec;
        let from = match &self.last {
            Some(k) => Bound::Excluded(k.as_slice()),
            None if spec.start.is_empty() => Bound::Unbounded,
            None => Bound::Included(spec.start.as_slice()),
        };
        let stop = if spec.stop.is_empty() { Bound::Unbounded } else { Bound::Excluded(spec.stop.as_slice()) };
        // BTreeSet::range panics on an inverted range; an inverted scan is just empty.
        let inverted = match (from, stop) {
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b)) => {
                if spec.reversed {
                    a <= b
                } else {
                    a >= b
                }
            }
            _ => false,
        };
        if inverted {
            self.done = true;
            return out;
        }
        let iter: Box<dyn Iterator<Item = &super::cells::RowBuf>> = if spec.reversed {
            Box::new(rows.range::<[u8], _>((stop, from)).rev())
        } else {
            Box::new(rows.range::<[u8], _>((from, stop)))
        };
        let w = Window { below: spec.below, versions: 1 };
        let mut finished = true;
        for row in iter {
            let key = row.key();
            if spec.prefix.as_ref().is_some_and(|p| !key.starts_with(p)) {
                break;
            }
            self.last = Some(key.to_vec());
            let mut cells = Vec::new();
            self.selection.read_filtered(&self.table, row, w, &spec.filter, &mut cells);
            if !cells.is_empty() {
                out.push((key.to_vec(), cells));
                if out.len() == n {
                    finished = false;
                    break;
                }
            }
        }
        self.done = finished;
        out
    }
}

impl Store {
    pub fn scanner_open(&self, table: &[u8], spec: ScanSpec) -> Result<i32> {
        let t = self.enabled_table(table)?;
        let selection = Selection::parse(&t, &spec.columns)?;
        let id = self.scanners.next_id.fetch_add(1, Ordering::SeqCst);
        let s = Scanner { table: t, selection, spec, last: None, done: false };
        self.scanners.open.lock().unwrap_or_else(|p| p.into_inner()).insert(id, Arc::new(Mutex::new(s)));
        Ok(id)
    }

    /// Up to `n` more rows (empty at the end), and whether to answer with sorted columns.
    pub fn scanner_next(&self, id: i32, n: i32) -> Result<(Vec<RowCells>, bool)> {
        let s = self.scanners.open.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned().ok_or_else(invalid)?;
        let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
        let rows = s.next(n.max(0) as usize);
        Ok((rows, s.spec.sort_columns))
    }

    pub fn scanner_close(&self, id: i32) -> Result<()> {
        self.scanners.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id).map(|_| ()).ok_or_else(invalid)
    }

    pub fn open_scanners(&self) -> usize {
        self.scanners.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
