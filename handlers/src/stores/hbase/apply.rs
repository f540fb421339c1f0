//! Repairs on HBase with timestamps as the compare-and-set.
//!
//! 1. One batched re-read of the affected rows: a cell that no longer holds what the
//!    check saw is a conflict and is not written.
//! 2. Puts go at ts = `ver`, or at the seen cell's ts when `ver` is not above it (a put
//!    at an existing version replaces it, so a repair converges even when `ver` went
//!    backwards). Deletes mask only versions at or below the seen ts, so a newer cell
//!    written meanwhile by the sync pipeline survives. Writes go as one `mutateRowsTs`
//!    per timestamp.
//! 3. One batched read-back: a put hidden by a delete marker at or above its ts is
//!    written again at max(now, ts + 1) and verified once more; a different value
//!    with a newer (or the same) ts means someone else wrote: a conflict.

use std::collections::{BTreeMap, BTreeSet};

use common::clock::now_ms;
use hbase_thrift::hbase::THbaseSyncClient;
use model::repair_plan::{CellRepair, CellWrite};
use model::{hbase_row_key, ObservedCell};

use super::cells::{self, current, CellOp, Rows};
use super::HbaseStore;
use crate::error::StoreError;
use crate::stores::ApplyOutcome;

/// A write waiting for its read-back.
struct Pending {
    index: usize,
    row: Vec<u8>,
    ts: i64,
    /// `None` for a delete.
    value: Option<Vec<u8>>,
}

pub async fn apply(store: &HbaseStore, repairs: &[CellRepair]) -> Result<Vec<ApplyOutcome>, StoreError> {
    let mut outcomes: Vec<Option<ApplyOutcome>> = vec![None; repairs.len()];
    let keys: Vec<Vec<u8>> = repairs.iter().map(|r| hbase_row_key(r.goods_id).into_bytes()).collect();
    let unique: BTreeSet<Vec<u8>> = keys.iter().cloned().collect();
    let seen_now = store.read_rows(unique.into_iter().collect()).await?;

    let mut pending = Vec::new();
    for (i, r) in repairs.iter().enumerate() {
        let found = current(&seen_now, &keys[i], &r.qualifier).cloned();
        if found != r.expected {
            outcomes[i] = Some(ApplyOutcome::Conflict { found });
            continue;
        }
        let seen_ts = r.expected.as_ref().and_then(|c| c.timestamp);
        match (&r.write, seen_ts) {
            (CellWrite::Put { value, ver }, _) => {
                let ts = seen_ts.map_or(*ver, |s| (*ver).max(s));
                pending.push(Pending { index: i, row: keys[i].clone(), ts, value: Some(value.clone()) });
            }
            (CellWrite::Delete, Some(ts)) => pending.push(Pending { index: i, row: keys[i].clone(), ts, value: None }),
            // Nothing there to delete (or a cell without timestamp, which HBase never returns).
            (CellWrite::Delete, None) => outcomes[i] = Some(ApplyOutcome::Applied { timestamp: None }),
            // HBase rows have no type: a read never reports a foreign row to remove.
            (CellWrite::DeleteWhole, _) => outcomes[i] = Some(ApplyOutcome::Conflict { found: None }),
        }
    }

    for round in 0..2 {
        if pending.is_empty() {
            break;
        }
        write(store, repairs, &pending).await?;
        let rows: BTreeSet<Vec<u8>> = pending.iter().map(|p| p.row.clone()).collect();
        let after = store.read_rows(rows.into_iter().collect()).await?;
        let mut hidden = Vec::new();
        for p in pending {
            match verify(&after, repairs, &p) {
                Verdict::Done(o) => outcomes[p.index] = Some(o),
                Verdict::Hidden(_) if round == 0 => {
                    tracing::debug!(
                        goods_id = repairs[p.index].goods_id,
                        ts = p.ts,
                        "repair put hidden by a delete marker, rewriting"
                    );
                    let ts = now_ms().max(p.ts + 1);
                    hidden.push(Pending { ts, ..p });
                }
                Verdict::Hidden(found) => outcomes[p.index] = Some(ApplyOutcome::Conflict { found }),
            }
        }
        pending = hidden;
    }
    Ok(outcomes.into_iter().map(|o| o.expect("every repair has an outcome")).collect())
}

enum Verdict {
    Done(ApplyOutcome),
    /// The put is not visible and nothing newer is: a delete marker hides it.
    Hidden(Option<ObservedCell>),
}

fn verify(after: &Rows, repairs: &[CellRepair], p: &Pending) -> Verdict {
    let found = current(after, &p.row, &repairs[p.index].qualifier).cloned();
    let applied = ApplyOutcome::Applied { timestamp: Some(p.ts) };
    match (&p.value, &found) {
        (None, None) => Verdict::Done(applied),
        (None, Some(_)) => Verdict::Done(ApplyOutcome::Conflict { found }),
        (Some(v), Some(c)) if &c.value == v => Verdict::Done(applied),
        (Some(_), Some(c)) if c.timestamp.is_some_and(|t| t >= p.ts) => Verdict::Done(ApplyOutcome::Conflict { found }),
        (Some(_), _) => Verdict::Hidden(found),
    }
}

/// One `mutateRowsTs` per timestamp.
async fn write(store: &HbaseStore, repairs: &[CellRepair], pending: &[Pending]) -> Result<(), StoreError> {
    let ops = pending
        .iter()
        .map(|p| {
            let column = cells::column(&store.family, &repairs[p.index].qualifier);
            (p.ts, CellOp { row: p.row.clone(), column, value: p.value.clone() })
        })
        .collect();
    let batches: BTreeMap<i64, _> = cells::batches(ops);
    let table = store.table.clone().into_bytes();
    store
        .pool
        .call(move |c| {
            for (ts, batch) in &batches {
                c.mutate_rows_ts(table.clone(), batch.clone(), *ts, BTreeMap::new())?;
            }
            Ok(())
        })
        .await
}
