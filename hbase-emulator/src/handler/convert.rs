//! Between the generated Thrift structs and the store's types.

use std::collections::BTreeMap;

use hbase_thrift::hbase::{BatchMutation, Mutation, TCell, TColumn, TRowResult};

use crate::error::{Error, Result};
use crate::store::select::parse_column;
use crate::store::{Cell, DeleteTarget, Op, RowMutation, Ts, LATEST};

pub fn column_name(c: &Cell) -> Vec<u8> {
    let mut name = Vec::with_capacity(c.family.len() + 1 + c.qualifier.len());
    name.extend_from_slice(&c.family);
    name.push(b':');
    name.extend_from_slice(&c.qualifier);
    name
}

pub fn tcell(c: Cell) -> TCell {
    TCell { value: Some(c.value), timestamp: Some(c.timestamp) }
}

pub fn row_results(rows: Vec<(Vec<u8>, Vec<Cell>)>, sorted: bool) -> Vec<TRowResult> {
    rows.into_iter()
        .map(|(row, cells)| {
            if sorted {
                let cols =
                    cells.into_iter().map(|c| TColumn { column_name: Some(column_name(&c)), cell: Some(tcell(c)) });
                TRowResult { row: Some(row), columns: None, sorted_columns: Some(cols.collect()) }
            } else {
                let cols: BTreeMap<_, _> = cells.into_iter().map(|c| (column_name(&c), tcell(c))).collect();
                TRowResult { row: Some(row), columns: Some(cols), sorted_columns: None }
            }
        })
        .collect()
}

/// Checks what `new Put(row, ts)` / `new Delete(row)` check; the error is an
/// `IllegalArgument` (callers turn it into an internal error where HBase does).
pub fn check_put(row: &[u8], ts: Ts) -> Result<()> {
    if row.is_empty() {
        return Err(Error::illegal("Row length is 0"));
    }
    if ts < 0 {
        return Err(Error::illegal(format!("Timestamp cannot be negative. ts={ts}")));
    }
    Ok(())
}

/// One Thrift `Mutation` as the handler reads it: a delete of a column or a family, or
/// a put of a column. A put naming only a family is `None` (HBase logs and skips it in
/// mutateRow) or an error (mutateRows, `strict`).
pub fn op(m: &Mutation, strict: bool) -> Result<Option<Op>> {
    let column = m.column.as_deref().ok_or_else(|| Error::illegal("mutation without a column"))?;
    let (family, qualifier) = parse_column(column);
    Ok(match (m.is_delete.unwrap_or(false), qualifier) {
        (true, None) => Some(Op::Delete(DeleteTarget::Family { family })),
        (true, Some(qualifier)) => Some(Op::Delete(DeleteTarget::Column { family, qualifier })),
        (false, Some(qualifier)) => Some(Op::Put { family, qualifier, value: m.value.clone().unwrap_or_default() }),
        (false, None) if strict => return Err(Error::illegal("Invalid famAndQf provided.")),
        (false, None) => None,
    })
}

pub fn row_mutation(row: Vec<u8>, mutations: &[Mutation], ts: Ts, strict: bool) -> Result<RowMutation> {
    check_put(&row, if ts == LATEST { 0 } else { ts })?;
    let mut ops = Vec::with_capacity(mutations.len());
    for m in mutations {
        ops.extend(op(m, strict)?);
    }
    Ok(RowMutation { row, ops })
}

pub fn batch(batches: Vec<BatchMutation>, ts: Ts) -> Result<Vec<RowMutation>> {
    batches
        .into_iter()
        .map(|b| row_mutation(b.row.unwrap_or_default(), b.mutations.as_deref().unwrap_or_default(), ts, true))
        .collect()
}
