//! Between HBase rows and the reconciler's cells: row keys, `family:qualifier`
//! column names, and the batched mutations of a repair.

use std::collections::{BTreeMap, HashMap};

use hbase_thrift::hbase::{BatchMutation, Mutation};
use model::{ObservedCell, ObservedGoods};

/// Cells of each row read, by row key (rows without cells are absent).
pub type Rows = HashMap<Vec<u8>, ObservedGoods>;

/// `family:qualifier`.
pub fn column(family: &str, qualifier: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(family.len() + 1 + qualifier.len());
    c.extend_from_slice(family.as_bytes());
    c.push(b':');
    c.extend_from_slice(qualifier);
    c
}

pub fn current<'a>(rows: &'a Rows, row: &[u8], qualifier: &[u8]) -> Option<&'a ObservedCell> {
    rows.get(row)?.cells.get(qualifier)
}

/// One cell write of a repair: a put of `value`, or a delete (`None`) of every
/// version at or below the batch's timestamp.
pub struct CellOp {
    pub row: Vec<u8>,
    pub column: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Groups cell writes by timestamp, then by row: one `mutateRowsTs` per timestamp.
pub fn batches(ops: Vec<(i64, CellOp)>) -> BTreeMap<i64, Vec<BatchMutation>> {
    let mut by_ts: BTreeMap<i64, BTreeMap<Vec<u8>, Vec<Mutation>>> = BTreeMap::new();
    for (ts, op) in ops {
        let m = Mutation::new(op.value.is_none(), op.column, op.value, true);
        by_ts.entry(ts).or_default().entry(op.row).or_default().push(m);
    }
    by_ts
        .into_iter()
        .map(|(ts, rows)| (ts, rows.into_iter().map(|(row, muts)| BatchMutation::new(row, muts)).collect()))
        .collect()
}
