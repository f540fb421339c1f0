//! The repair audit log, `act_meta.reconcile_repair_log`: the only MySQL table handlers
//! write. Each repair is recorded `pending` before it is applied (write-ahead, so a crash
//! between the two leaves a trace) and then marked `applied` or `conflict`, with the
//! before and after images and timestamps that `undo` needs.

use model::job::TriggerKind;
use model::repair_plan::{CellRepair, CellWrite};
use model::schema::REPAIR_LOG_TABLE;
use sqlx::mysql::MySqlPool;
use sqlx::Row;

use crate::error::StoreError;
use crate::stores::ApplyOutcome;

#[derive(Clone)]
pub struct AuditLog {
    pool: MySqlPool,
    table: String,
    /// Whether one multi-row INSERT gets consecutive ids (`innodb_autoinc_lock_mode` 0
    /// or 1; MariaDB's default is 1). Asked once; with mode 2 rows go in one by one.
    consecutive_ids: std::sync::Arc<tokio::sync::OnceCell<bool>>,
}

/// One audited repair as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: u64,
    pub target: String,
    pub goods_id: u64,
    pub activity_id: Option<u64>,
    pub qualifier: Vec<u8>,
    pub kind: String,
    pub before_value: Option<Vec<u8>>,
    pub before_ts: Option<i64>,
    pub after_value: Option<Vec<u8>>,
    pub after_ts: Option<i64>,
    pub status: String,
}

fn failed(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => StoreError::unreachable("mysql", e),
        other => StoreError::failed("mysql", format!("audit log: {other}")),
    }
}

impl AuditLog {
    pub fn new(pool: MySqlPool, meta_database: &str) -> AuditLog {
        AuditLog { pool, table: format!("`{meta_database}`.{REPAIR_LOG_TABLE}"), consecutive_ids: Default::default() }
    }

    async fn consecutive_ids(&self) -> Result<bool, StoreError> {
        self.consecutive_ids
            .get_or_try_init(|| async {
                let mode: i64 = sqlx::query_scalar("SELECT CAST(@@innodb_autoinc_lock_mode AS SIGNED)")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(failed)?;
                Ok(mode < 2)
            })
            .await
            .copied()
    }

    /// Records repairs as `pending` in one statement; returns their ids in order.
    pub async fn record_pending(
        &self,
        run_id: &str,
        target: &str,
        trigger: TriggerKind,
        repairs: &[CellRepair],
        undo_of: Option<u64>,
    ) -> Result<Vec<u64>, StoreError> {
        if repairs.is_empty() {
            return Ok(Vec::new());
        }
        if repairs.len() > 1 && !self.consecutive_ids().await? {
            let mut ids = Vec::with_capacity(repairs.len());
            for r in repairs {
                ids.extend(
                    Box::pin(self.record_pending(run_id, target, trigger, std::slice::from_ref(r), undo_of)).await?,
                );
            }
            return Ok(ids);
        }
        let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new(format!(
            "INSERT INTO {} (run_id, target, goods_id, activity_id, qualifier, kind, before_value, before_ts, after_value, after_ts, trigger_kind, status, undo_of) ",
            self.table
        ));
        qb.push_values(repairs, |mut b, r| {
            let (after_value, after_ts) = match &r.write {
                CellWrite::Put { value, ver } => (Some(value.clone()), Some(*ver)),
                CellWrite::Delete => (None, None),
            };
            b.push_bind(run_id)
                .push_bind(target)
                .push_bind(r.goods_id)
                .push_bind(r.activity_id)
                .push_bind(r.qualifier.clone())
                .push_bind(if undo_of.is_some() { "undo" } else { r.kind.as_str() })
                .push_bind(r.expected.as_ref().map(|c| c.value.clone()))
                .push_bind(r.expected.as_ref().and_then(|c| c.timestamp))
                .push_bind(after_value)
                .push_bind(after_ts)
                .push_bind(trigger.as_str())
                .push_bind("pending")
                .push_bind(undo_of);
        });
        let done = qb.build().execute(&self.pool).await.map_err(failed)?;
        // One multi-row INSERT got consecutive ids (checked above).
        let first = done.last_insert_id();
        Ok((0..repairs.len() as u64).map(|i| first + i).collect())
    }

    /// Marks each repair with its outcome (and the timestamp actually written).
    pub async fn record_outcomes(&self, ids: &[u64], outcomes: &[ApplyOutcome]) -> Result<(), StoreError> {
        let mut applied = Vec::new();
        let mut conflicts = Vec::new();
        let mut ts_updates = Vec::new();
        for (id, o) in ids.iter().zip(outcomes) {
            match o {
                ApplyOutcome::Applied { timestamp } => {
                    applied.push(*id);
                    if let Some(ts) = timestamp {
                        ts_updates.push((*id, *ts));
                    }
                }
                ApplyOutcome::Conflict { .. } => conflicts.push(*id),
            }
        }
        for (status, list) in [("applied", &applied), ("conflict", &conflicts)] {
            if list.is_empty() {
                continue;
            }
            let ids: Vec<String> = list.iter().map(u64::to_string).collect();
            let sql = format!("UPDATE {} SET status = '{status}' WHERE id IN ({})", self.table, ids.join(","));
            sqlx::raw_sql(&sql).execute(&self.pool).await.map_err(failed)?;
        }
        if !ts_updates.is_empty() {
            let cases: String = ts_updates.iter().map(|(id, ts)| format!(" WHEN {id} THEN {ts}")).collect();
            let ids: Vec<String> = ts_updates.iter().map(|(id, _)| id.to_string()).collect();
            let sql =
                format!("UPDATE {} SET after_ts = CASE id{cases} END WHERE id IN ({})", self.table, ids.join(","));
            sqlx::raw_sql(&sql).execute(&self.pool).await.map_err(failed)?;
        }
        Ok(())
    }

    pub async fn mark_many(&self, ids: &[u64], status: &str) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        let sql = format!("UPDATE {} SET status = ? WHERE id IN ({})", self.table, list.join(","));
        sqlx::query(&sql).bind(status).execute(&self.pool).await.map_err(failed)?;
        Ok(())
    }

    pub async fn mark(&self, id: u64, status: &str) -> Result<(), StoreError> {
        sqlx::query(&format!("UPDATE {} SET status = ? WHERE id = ?", self.table))
            .bind(status)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(())
    }

    pub async fn get(&self, id: u64) -> Result<Option<AuditRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT id, target, goods_id, activity_id, qualifier, kind, before_value, before_ts, after_value, after_ts, status FROM {} WHERE id = ?",
            self.table
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        let Some(r) = row else { return Ok(None) };
        let get = || -> Result<AuditRow, sqlx::Error> {
            Ok(AuditRow {
                id: r.try_get(0)?,
                target: r.try_get(1)?,
                goods_id: r.try_get(2)?,
                activity_id: r.try_get(3)?,
                qualifier: r.try_get(4)?,
                kind: r.try_get(5)?,
                before_value: r.try_get(6)?,
                before_ts: r.try_get(7)?,
                after_value: r.try_get(8)?,
                after_ts: r.try_get(9)?,
                status: r.try_get(10)?,
            })
        };
        get().map(Some).map_err(failed)
    }
}
