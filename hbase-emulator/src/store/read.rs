//! Point reads: one column of one row (get, getVer, getVerTs) and whole or partial rows
//! of a batch (getRow*, getRows*), each batch under one read lock.

use super::cells::{Cell, Ts, Window};
use super::select::Selection;
use super::Store;
use crate::error::{Error, Result};

/// A row as a read returns it; rows without visible cells are left out, as HBase's
/// `rowResultFromHBase` leaves out empty results.
pub type RowCells = (Vec<u8>, Vec<Cell>);

pub(super) fn check_row(row: &[u8]) -> Result<()> {
    if row.is_empty() {
        Err(Error::illegal("Row length is 0"))
    } else {
        Ok(())
    }
}

impl Store {
    /// Versions of one column, or of every column of a family when `column` has no `:`.
    pub fn get_cells(&self, table: &[u8], row: &[u8], column: &[u8], below: Ts, versions: i32) -> Result<Vec<Cell>> {
        check_row(row).map_err(Error::undeclared_illegal)?;
        let t = self.enabled_table(table)?;
        if versions < 1 {
            return Err(Error::Io("java.io.IOException: versions must be positive".into()));
        }
        let sel = Selection::one(&t, column)?;
        let mut out = Vec::new();
        if let Some(r) = t.rows().get(row) {
            sel.read(&t, r, Window { below, versions: versions as usize }, &mut out);
        }
        Ok(out)
    }

    /// The newest visible version of the selected columns of each row.
    pub fn get_rows(&self, table: &[u8], rows: &[Vec<u8>], columns: &[Vec<u8>], below: Ts) -> Result<Vec<RowCells>> {
        for r in rows {
            check_row(r).map_err(Error::undeclared_illegal)?;
        }
        let t = self.enabled_table(table)?;
        let sel = Selection::parse(&t, columns)?;
        let w = Window { below, versions: 1 };
        let guard = t.rows();
        let mut out = Vec::with_capacity(rows.len());
        for key in rows {
            if let Some(r) = guard.get(key.as_slice()) {
                let mut cells = Vec::new();
                sel.read(&t, r, w, &mut cells);
                if !cells.is_empty() {
                    out.push((key.clone(), cells));
                }
            }
        }
        Ok(out)
    }
}
