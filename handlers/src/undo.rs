//! `reconciler undo REPAIR_ID`: restores the before image of one audited repair, under
//! the same compare-and-set rule as repairs (the cell must still hold what the repair
//! wrote), and audits the undo itself.

use model::repair_plan::{CellRepair, CellWrite};
use model::report::{DeferredEntry, RepairEntry, Report};
use model::{DriftKind, ObservedCell};

use crate::error::StoreError;
use crate::handler::{Handler, Mode};
use crate::stores::ApplyOutcome;

#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("repair {0} is not in the audit log")]
    NotFound(u64),
    #[error("repair {id} has status `{status}`; only an applied repair can be undone")]
    NotApplied { id: u64, status: String },
    #[error("repair {id} was made on target `{target}`, which is not configured")]
    UnknownTarget { id: u64, target: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn undo(handler: &Handler, repair_id: u64, mode: &Mode) -> Result<Report, UndoError> {
    let row = handler.audit().get(repair_id).await?.ok_or(UndoError::NotFound(repair_id))?;
    if row.status != "applied" {
        return Err(UndoError::NotApplied { id: repair_id, status: row.status });
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
    let ids = handler
        .audit()
        .record_pending(&mode.run_id, target.name(), mode.trigger, std::slice::from_ref(&repair), Some(repair_id))
        .await?;
    let outcomes = target.apply(std::slice::from_ref(&repair)).await?;
    handler.audit().record_outcomes(&ids, &outcomes).await?;
    match &outcomes[0] {
        ApplyOutcome::Applied { .. } => {
            handler.audit().mark(repair_id, "undone").await?;
            report.repairs.push(RepairEntry {
                goods_id: row.goods_id,
                target: row.target.clone(),
                activity_id: row.activity_id,
                kind: DriftKind::Stale,
                repair_id: Some(ids[0]),
            });
        }
        ApplyOutcome::Conflict { .. } => report.deferred.push(DeferredEntry {
            goods_id: row.goods_id,
            target: row.target.clone(),
            reason: format!("the cell no longer holds what repair {repair_id} wrote; nothing undone"),
        }),
    }
    Ok(report)
}
