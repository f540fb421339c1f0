//! Mutations: puts and deletes at a timestamp (`LATEST` = the server's now),
//! atomicIncrement and checkAndPut, each row applied atomically under the table's
//! write lock.

use super::cells::{RowEdit, Ts};
use super::read::check_row;
use super::table::{Rows, Table};
use super::Store;
use crate::error::{Error, Result};

/// What a delete masks (every version at or below its timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteTarget {
    Column {
        family: Vec<u8>,
        qualifier: Vec<u8>,
    },
    Family {
        family: Vec<u8>,
    },
    /// Every family of the table.
    Row,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { family: Vec<u8>, qualifier: Vec<u8>, value: Vec<u8> },
    Delete(DeleteTarget),
}

impl Op {
    fn family(&self) -> Option<&[u8]> {
        match self {
            Op::Put { family, .. }
            | Op::Delete(DeleteTarget::Column { family, .. } | DeleteTarget::Family { family }) => Some(family),
            Op::Delete(DeleteTarget::Row) => None,
        }
    }
}

/// The mutations of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMutation {
    pub row: Vec<u8>,
    pub ops: Vec<Op>,
}

fn check_families<'a>(t: &Table, ops: impl IntoIterator<Item = &'a Op>) -> Result<()> {
    for op in ops {
        if let Some(f) = op.family() {
            t.family(f)?;
        }
    }
    Ok(())
}

/// Applies `ops` to one row: decodes it (borrowing its bytes and the ops' values),
/// changes it, and stores it re-encoded as one allocation.
fn apply<'a>(t: &Table, rows: &mut Rows, key: &[u8], ops: impl IntoIterator<Item = &'a Op>, ts: Ts) {
    let old = rows.take(key);
    let mut row = old.as_ref().map(RowEdit::decode).unwrap_or_default();
    let id = |family: &[u8]| t.family_id(family).expect("families checked before applying");
    for op in ops {
        match op {
            Op::Put { family, qualifier, value } => {
                let max = t.families[family].max_versions as usize;
                row.family_mut(id(family)).column_mut(qualifier).put(ts, value, max);
            }
            Op::Delete(DeleteTarget::Column { family, qualifier }) => {
                row.family_mut(id(family)).column_mut(qualifier).delete(ts)
            }
            Op::Delete(DeleteTarget::Family { family }) => row.family_mut(id(family)).delete(ts),
            Op::Delete(DeleteTarget::Row) => {
                for family in 0..t.family_count() {
                    row.family_mut(family).delete(ts);
                }
            }
        }
    }
    rows.insert(row.encode(key));
}

impl Store {
    /// One row's mutations at one timestamp (mutateRow, mutateRowTs, deleteAll*).
    pub fn mutate_row(&self, table: &[u8], m: &RowMutation, ts: Ts) -> Result<()> {
        let t = self.enabled_table(table)?;
        check_families(&t, &m.ops)?;
        let ts = self.write_ts(ts);
        apply(&t, &mut t.rows_mut(), &m.row, &m.ops, ts);
        Ok(())
    }

    /// Several rows at one timestamp (mutateRows, mutateRowsTs). Like HBase's handler,
    /// all puts go first as one batch, then all deletes; a row naming an unknown family
    /// fails alone, the batch reports it, and a failed put batch skips the deletes.
    pub fn mutate_rows(&self, table: &[u8], batch: &[RowMutation], ts: Ts) -> Result<()> {
        let t = self.enabled_table(table)?;
        let ts = self.write_ts(ts);
        let is_put = |op: &&Op| matches!(op, Op::Put { .. });
        let is_delete = |op: &&Op| !matches!(op, Op::Put { .. });
        for phase in [&is_put as &dyn Fn(&&Op) -> bool, &is_delete] {
            let mut failed = None;
            let mut rows = t.rows_mut();
            for m in batch {
                let ops: Vec<&Op> = m.ops.iter().filter(phase).collect();
                if ops.is_empty() {
                    continue;
                }
                match check_families(&t, ops.iter().copied()) {
                    Ok(()) => apply(&t, &mut rows, &m.row, ops, ts),
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            if let Some(e) = failed {
                return Err(match e {
                    Error::Io(m) => Error::Io(format!(
                        "org.apache.hadoop.hbase.client.RetriesExhaustedWithDetailsException: Failed 1 action: {m}"
                    )),
                    other => other,
                });
            }
        }
        Ok(())
    }

    /// Adds `amount` to an 8-byte big-endian counter (absent: 0) and returns the sum.
    /// The new cell's timestamp is now, or one above the old cell's if that is newer.
    pub fn increment(&self, table: &[u8], row: &[u8], family: &[u8], qualifier: &[u8], amount: i64) -> Result<i64> {
        check_row(row).map_err(Error::undeclared_illegal)?;
        let t = self.enabled_table(table)?;
        let max = t.family(family)?.max_versions as usize;
        let fid = t.family_id(family)?;
        let now = self.now();
        let mut rows = t.rows_mut();
        let (old, ts) = match rows.get(row).and_then(|r| r.current(fid, qualifier)) {
            None => (0, now),
            Some((ts, v)) => {
                let bytes: [u8; 8] = v.try_into().map_err(|_| {
                    Error::Io(format!(
                        "org.apache.hadoop.hbase.DoNotRetryIOException: Field is not a long, it's {} bytes wide",
                        v.len()
                    ))
                })?;
                (i64::from_be_bytes(bytes), now.max(ts + 1))
            }
        };
        let sum = old.wrapping_add(amount);
        let bytes = sum.to_be_bytes();
        let old_row = rows.take(row);
        let mut edit = old_row.as_ref().map(RowEdit::decode).unwrap_or_default();
        edit.family_mut(fid).column_mut(qualifier).put(ts, &bytes, max);
        rows.insert(edit.encode(row));
        Ok(sum)
    }

    /// Puts `put` at now if the checked column's newest value equals `expected`; an
    /// empty `expected` matches an absent or empty cell, as HBase's checkAndMutate does.
    pub fn check_and_put(
        &self,
        table: &[u8],
        row: &[u8],
        check: (&[u8], &[u8]),
        expected: &[u8],
        put: &Op,
    ) -> Result<bool> {
        let t = self.enabled_table(table)?;
        let fid = t.family_id(check.0)?;
        check_families(&t, [put])?;
        let now = self.now();
        let mut rows = t.rows_mut();
        let current = rows.get(row).and_then(|r| r.current(fid, check.1)).map(|(_, v)| v);
        let matches = match current {
            None => expected.is_empty(),
            Some(v) => v == expected,
        };
        if matches {
            apply(&t, &mut rows, row, [put], now);
        }
        Ok(matches)
    }
}
