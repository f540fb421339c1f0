//! `reconciler undo REPAIR_ID`: restores the before image of one audited repair, under
//! the same compare-and-set rule as repairs (the cell must still hold what the repair
//! wrote), through the same apply path (rate cap, write-ahead audit row, outcome
//! recorded). The removal of a whole key of another type, and a repair whose images were
//! above the audit's size cap, cannot be undone from the log: the command says so.

use model::repair_plan::{CellRepair, CellWrite};
use model::report::{DeferredEntry, RepairEntry, Report};
use model::{DriftKind, ObservedCell};

use crate::error::StoreError;
use crate::handler::{Handler, Mode, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("repair {0} is not in the audit log")]
    NotFound(u64),
    #[error("repair {id} has status `{status}`; only an applied repair can be undone")]
    NotApplied { id: u64, status: String },
    #[error("repair {id} was made on target `{target}`, which is not configured")]
    UnknownTarget { id: u64, target: String },
    #[error(
        "repair {id} cannot be undone from the audit log: {why}; its row keeps what is known (before image prefix, Redis DUMP)"
    )]
    NotRestorable { id: u64, why: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn undo(handler: &Handler, repair_id: u64, mode: &Mode) -> Result<Report, UndoError> {
    let row = handler.audit().get(repair_id).await?.ok_or(UndoError::NotFound(repair_id))?;
    if row.status != "applied" {
        return Err(UndoError::NotApplied { id: repair_id, status: row.status });
    }
    if row.whole {
        return Err(UndoError::NotRestorable { id: repair_id, why: "it removed a whole key of another type" });
    }
    if row.truncated {
        return Err(UndoError::NotRestorable { id: repair_id, why: "an image was above the audit size cap" });
    }
    let target = handler
        .targets()
        .iter()
        .find(|t| t.name() == row.target)
        .ok_or_else(|| UndoError::UnknownTarget { id: repair_id, target: row.target.clone() })?;
    let repair = CellRepair {
        goods_id: row.goods_id,
        activity_id: row.activity_id,
        qualifier: row.qualifier.clone(),
        kind: DriftKind::Stale,
        expected: row.after_value.clone().map(|value| ObservedCell { value, timestamp: row.after_ts }),
        write: match &row.before_value {
            Some(v) => CellWrite::Put { value: v.clone(), ver: row.before_ts.unwrap_or(0) },
            None => CellWrite::Delete,
        },
    };
    let mut report = Report { checked: 1, ..Default::default() };
    // The same path as repairs: rate cap, write-ahead row, compare-and-set, outcome
    // recorded (an unclear outcome is read back).
    let applied = handler.apply_audited(target.as_ref(), std::slice::from_ref(&repair), mode, Some(repair_id)).await?;
    let (id, verdict) = applied.into_iter().next().expect("one outcome per repair");
    match verdict {
        Verdict::Applied { .. } => {
            handler.audit().mark(repair_id, "undone").await?;
            report.repairs.push(RepairEntry {
                goods_id: row.goods_id,
                target: row.target.clone(),
                activity_id: row.activity_id,
                kind: DriftKind::Stale,
                repair_id: id,
            });
        }
        other => report.deferred.push(DeferredEntry {
            goods_id: row.goods_id,
            target: row.target.clone(),
            reason: match other {
                Verdict::Conflict => format!("the cell no longer holds what repair {repair_id} wrote; nothing undone"),
                Verdict::NotApplied { reason } | Verdict::Unknown { reason } => {
                    format!("undo of repair {repair_id} not applied: {reason}")
                }
                Verdict::Applied { .. } => unreachable!(),
            },
        }),
    }
    Ok(report)
}
