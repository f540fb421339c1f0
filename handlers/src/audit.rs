//! The repair audit log, `act_meta.reconcile_repair_log`: the only MySQL table handlers
//! write. Each repair is recorded `pending` before it is applied (write-ahead, so a crash
//! between the two leaves a trace) and then marked `applied`, `conflict` or `failed`
//! (verified not written), with the before and after images and timestamps that `undo`
//! needs. A row whose write had no clear outcome stays `pending` until the target is
//! read again ([`Handler::resolve_pending`](crate::Handler::resolve_pending)).
//!
//! Exact ids: a batch of rows is inserted with a client-generated `write_key` and each
//! row's position (`write_seq`), then the ids MySQL assigned are read back by that key,
//! whatever `auto_increment_increment` and `innodb_autoinc_lock_mode` are.
//!
//! Any data is accepted: qualifiers and images are BLOBs; an image (or qualifier) above
//! [`IMAGE_LIMIT`] bytes is stored as its prefix and the row flagged `truncated` (such a
//! repair cannot be undone from the log; everything else about it is recorded), and rows
//! go in statements of at most [`STATEMENT_BYTES`], below any `max_allowed_packet`.

use std::fmt::Write as _;

use common::mysql::sql::{bytes_literal, text_literal};
use model::job::TriggerKind;
use model::repair_plan::{CellRepair, CellWrite};
use model::schema::REPAIR_LOG_TABLE;
use sqlx::mysql::MySqlPool;
use sqlx::Row;

use crate::error::StoreError;

/// Largest image or qualifier stored in full.
pub const IMAGE_LIMIT: usize = 256 * 1024;
/// Rows of one INSERT are cut at about this many bytes of statement text (values go as
/// hex literals, two characters a byte).
pub const STATEMENT_BYTES: usize = 1024 * 1024;
/// A `pending` row younger than this may belong to a write still in flight (in this or
/// another process); older ones are resolved by reading the target.
pub const PENDING_MIN_AGE_MS: u64 = 60_000;

#[derive(Clone)]
pub struct AuditLog {
    pool: MySqlPool,
    meta: String,
    table: String,
    /// The table is created / upgraded once, on first use.
    ready: std::sync::Arc<tokio::sync::OnceCell<()>>,
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
    /// An image or the qualifier was stored as a prefix only.
    pub truncated: bool,
    /// The repair removed a whole key of another type.
    pub whole: bool,
}

impl AuditRow {
    /// The write this row recorded.
    pub fn write(&self) -> CellWrite {
        match (&self.after_value, self.whole) {
            (_, true) => CellWrite::DeleteWhole,
            (Some(v), false) => CellWrite::Put { value: v.clone(), ver: self.after_ts.unwrap_or(0) },
            (None, false) => CellWrite::Delete,
        }
    }
}

/// A row's final status: `applied`, `conflict` (the cell held something else) or
/// `failed` (verified not written), with the timestamp actually written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub id: u64,
    pub status: &'static str,
    pub after_ts: Option<i64>,
}

fn failed(e: sqlx::Error) -> StoreError {
    StoreError::classified("mysql", &e, format!("audit log: {e}"))
}

fn capped(bytes: &[u8], truncated: &mut bool) -> Vec<u8> {
    if bytes.len() > IMAGE_LIMIT {
        *truncated = true;
        bytes[..IMAGE_LIMIT].to_vec()
    } else {
        bytes.to_vec()
    }
}

const COLUMNS: &str =
    "id, target, goods_id, activity_id, qualifier, kind, before_value, before_ts, after_value, after_ts, status, truncated, whole";

fn row_of(r: &sqlx::mysql::MySqlRow) -> Result<AuditRow, sqlx::Error> {
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
        truncated: r.try_get::<i8, _>(11)? != 0,
        whole: r.try_get::<i8, _>(12)? != 0,
    })
}

impl AuditLog {
    pub fn new(pool: MySqlPool, meta_database: &str) -> AuditLog {
        AuditLog {
            pool,
            meta: meta_database.to_string(),
            table: format!("`{meta_database}`.{REPAIR_LOG_TABLE}"),
            ready: Default::default(),
        }
    }

    /// Creates the table when absent and upgrades one made by an earlier version.
    async fn ready(&self) -> Result<(), StoreError> {
        self.ready
            .get_or_try_init(|| async {
                common::mysql::schema::ensure_own_tables_on(&self.pool, &self.meta).await.map_err(failed)
            })
            .await
            .map(|_| ())
    }

    /// Records the repairs of one or more targets as `pending`, in as few statements as
    /// their size allows (one for a usual batch); returns the ids MySQL assigned, per
    /// target, in order.
    pub async fn record_pending(
        &self,
        run_id: &str,
        trigger: TriggerKind,
        groups: &[(&str, &[CellRepair])],
        undo_of: Option<u64>,
    ) -> Result<Vec<Vec<u64>>, StoreError> {
        let rows: Vec<(&str, &CellRepair)> =
            groups.iter().flat_map(|(target, repairs)| repairs.iter().map(move |r| (*target, r))).collect();
        if rows.is_empty() {
            return Ok(groups.iter().map(|_| Vec::new()).collect());
        }
        self.ready().await?;
        let write_key: [u8; 16] = rand::random();
        let mut start = 0;
        while start < rows.len() {
            // Cut statements by size so no INSERT exceeds `max_allowed_packet`.
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len() && (end == start || bytes < STATEMENT_BYTES) {
                let r = rows[end].1;
                // Values go as hex literals: two characters a byte.
                bytes += 512
                    + 2 * r.qualifier.len().min(IMAGE_LIMIT)
                    + 2 * r.expected.as_ref().map_or(0, |c| c.value.len().min(IMAGE_LIMIT))
                    + 2 * match &r.write {
                        CellWrite::Put { value, .. } => value.len().min(IMAGE_LIMIT),
                        _ => 0,
                    };
                end += 1;
            }
            self.insert(run_id, trigger, undo_of, &write_key, start, &rows[start..end]).await?;
            start = end;
        }
        let ids: Vec<(u64, u32)> =
            sqlx::query_as(&format!("SELECT id, write_seq FROM {} WHERE write_key = ? ORDER BY write_seq", self.table))
                .bind(&write_key[..])
                .fetch_all(&self.pool)
                .await
                .map_err(failed)?;
        if ids.len() != rows.len() || ids.iter().enumerate().any(|(i, (_, seq))| *seq as usize != i) {
            return Err(StoreError::failed(
                "mysql",
                format!("audit log: {} rows read back for {} written", ids.len(), rows.len()),
            ));
        }
        let mut ids = ids.into_iter().map(|(id, _)| id);
        Ok(groups.iter().map(|(_, repairs)| ids.by_ref().take(repairs.len()).collect()).collect())
    }

    /// One INSERT of `rows`, values as literals over the text protocol: one round trip
    /// and one parse, where a prepared statement (its text differs with every row count)
    /// costs a prepare, an execute and, once the statement cache is full, a close.
    #[allow(clippy::too_many_arguments)]
    async fn insert(
        &self,
        run_id: &str,
        trigger: TriggerKind,
        undo_of: Option<u64>,
        write_key: &[u8; 16],
        first_seq: usize,
        rows: &[(&str, &CellRepair)],
    ) -> Result<(), StoreError> {
        let mut sql = format!(
            "INSERT INTO {} (run_id, target, goods_id, activity_id, qualifier, kind, before_value, before_ts, after_value, after_ts, trigger_kind, status, undo_of, truncated, whole, write_key, write_seq) VALUES ",
            self.table
        );
        let opt = |v: Option<String>| v.unwrap_or_else(|| "NULL".to_string());
        let (run_id, trigger, key) = (text_literal(run_id), text_literal(trigger.as_str()), bytes_literal(write_key));
        let undo = opt(undo_of.map(|u| u.to_string()));
        for (i, (target, r)) in rows.iter().enumerate() {
            let mut truncated = false;
            let (after_value, after_ts) = match &r.write {
                CellWrite::Put { value, ver } => (Some(capped(value, &mut truncated)), Some(*ver)),
                CellWrite::Delete | CellWrite::DeleteWhole => (None, None),
            };
            let qualifier = capped(&r.qualifier, &mut truncated);
            let before = r.expected.as_ref().map(|c| capped(&c.value, &mut truncated));
            let kind = if undo_of.is_some() { "undo" } else { r.kind.as_str() };
            let _ = write!(
                sql,
                "{}({run_id},{},{},{},{},{},{},{},{},{},{trigger},'pending',{undo},{},{},{key},{})",
                if i == 0 { "" } else { "," },
                text_literal(target),
                r.goods_id,
                opt(r.activity_id.map(|a| a.to_string())),
                bytes_literal(&qualifier),
                text_literal(kind),
                opt(before.map(|b| bytes_literal(&b))),
                opt(r.expected.as_ref().and_then(|c| c.timestamp).map(|t| t.to_string())),
                opt(after_value.map(|v| bytes_literal(&v))),
                opt(after_ts.map(|t| t.to_string())),
                truncated as i8,
                (r.write == CellWrite::DeleteWhole) as i8,
                first_seq + i
            );
        }
        sqlx::raw_sql(&sql).execute(&self.pool).await.map_err(failed)?;
        Ok(())
    }

    /// Marks rows with their outcome (and the timestamp actually written).
    pub async fn finish(&self, rows: &[Finished]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // One statement, so one durable commit, for the whole batch: the outcomes as a
        // derived table (`SELECT .. UNION ALL SELECT ..`, understood by MySQL and MariaDB
        // alike) joined to the log by primary key. A `CASE id WHEN ..` per column costs
        // the server a scan of every WHEN for each row updated: at 600 rows, 10-11 ms
        // against 6 ms this way (BENCHMARKS.md).
        let mut outcomes = String::new();
        for (i, r) in rows.iter().enumerate() {
            let ts = r.after_ts.map_or_else(|| "NULL".to_string(), |ts| ts.to_string());
            let _ = match i {
                0 => write!(outcomes, "SELECT {} AS id, '{}' AS status, {ts} AS after_ts", r.id, r.status),
                _ => write!(outcomes, " UNION ALL SELECT {}, '{}', {ts}", r.id, r.status),
            };
        }
        let sql = format!(
            "UPDATE {} AS l JOIN ({outcomes}) AS f ON l.id = f.id \
             SET l.status = f.status, l.after_ts = COALESCE(f.after_ts, l.after_ts)",
            self.table
        );
        sqlx::raw_sql(&sql).execute(&self.pool).await.map_err(failed)?;
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
        self.ready().await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM {} WHERE id = ?", self.table))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed)?;
        row.as_ref().map(row_of).transpose().map_err(failed)
    }

    /// Up to `limit` rows still `pending` that were written at least `min_age_ms` ago
    /// (a write in flight is younger), oldest first, after id `after`.
    pub async fn pending(&self, min_age_ms: u64, after: u64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        self.ready().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE status = 'pending' AND created_at <= NOW(3) - INTERVAL ? MICROSECOND AND id > ? ORDER BY id LIMIT ?",
            self.table
        );
        let rows = sqlx::query(&sql)
            .bind(min_age_ms.saturating_mul(1000))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?;
        rows.iter().map(row_of).collect::<Result<_, _>>().map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_above_the_cap_are_kept_as_a_prefix() {
        let mut t = false;
        assert_eq!(capped(b"abc", &mut t), b"abc");
        assert!(!t);
        assert_eq!(capped(&vec![7u8; IMAGE_LIMIT + 1], &mut t).len(), IMAGE_LIMIT);
        assert!(t);
    }
}
