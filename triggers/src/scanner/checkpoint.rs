//! Watermarks persisted in `{prefix}act_meta.reconcile_checkpoint`, one row per name, so a
//! restarted scanner resumes where it stopped (and the schedule remembers its last fire).

use sqlx::mysql::MySqlPool;

use crate::error::Result;
use common::mysql::sql::{epoch_ms_of, quote_ident, DATETIME_OF_MS};
use common::mysql::MysqlPools;

/// Position after the last row handled: `(updated_at ms, key)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watermark {
    pub updated_ms: i64,
    pub last_id: u64,
}

#[derive(Debug, Clone)]
pub struct CheckpointStore {
    pool: MySqlPool,
    table: String,
}

impl CheckpointStore {
    /// Opens the checkpoint table of `act_meta` (created from `model::schema` when
    /// absent).
    pub async fn open(pools: &MysqlPools) -> Result<CheckpointStore> {
        common::mysql::schema::ensure_own_tables(pools).await?;
        let table = format!(
            "{}.{}",
            quote_ident(&pools.layout().meta_database()),
            quote_ident(model::schema::CHECKPOINT_TABLE)
        );
        Ok(CheckpointStore { pool: pools.meta_pool().clone(), table })
    }

    pub async fn load(&self, name: &str) -> Result<Option<Watermark>> {
        let sql = format!("SELECT {}, last_id FROM {} WHERE name = ?", epoch_ms_of("updated_at"), self.table);
        let row: Option<(i64, u64)> = sqlx::query_as(&sql).bind(name).fetch_optional(&self.pool).await?;
        Ok(row.map(|(updated_ms, last_id)| Watermark { updated_ms, last_id }))
    }

    /// Sets a watermark whatever it was.
    fn upsert_sql(&self) -> String {
        format!(
            "INSERT INTO {} (name, updated_at, last_id) VALUES (?, {DATETIME_OF_MS}, ?)
             ON DUPLICATE KEY UPDATE updated_at = VALUES(updated_at), last_id = VALUES(last_id)",
            self.table
        )
    }

    pub async fn save(&self, name: &str, mark: Watermark) -> Result<()> {
        let sql = self.upsert_sql();
        sqlx::query(&sql).bind(name).bind(mark.updated_ms).bind(mark.last_id).execute(&self.pool).await?;
        Ok(())
    }

    /// Sets `name` to `mark` only if it is absent or older; true when it was set. Used by
    /// the schedule so one fire time is taken by one instance only.
    pub async fn advance(&self, name: &str, mark: Watermark) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let sql =
            format!("SELECT {}, last_id FROM {} WHERE name = ? FOR UPDATE", epoch_ms_of("updated_at"), self.table);
        let current: Option<(i64, u64)> = sqlx::query_as(&sql).bind(name).fetch_optional(&mut *tx).await?;
        if current.is_some_and(|(ms, id)| Watermark { updated_ms: ms, last_id: id } >= mark) {
            return Ok(false);
        }
        let sql = self.upsert_sql();
        sqlx::query(&sql).bind(name).bind(mark.updated_ms).bind(mark.last_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}
