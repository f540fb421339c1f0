//! DDL of the truth schema (contract section 2) and of the reconciler's own tables, as
//! statements for any executor to run. Every statement is idempotent.

use crate::shard::ShardLayout;

/// The reconciler's audit log: one row per cell repair (and per undo), holding the
/// before and after images so any repair can be undone.
pub const REPAIR_LOG_TABLE: &str = "reconcile_repair_log";
/// The contract's unique keys of the shard tables, which every read of truth by goods id
/// goes through (named in `FORCE INDEX`).
pub const GOODS_KEY: &str = "uk_goods_activity";
pub const SKU_KEY: &str = "uk_goods_activity_sku";
/// Trigger watermarks (recent-change scanner), one row per scanned table.
pub const CHECKPOINT_TABLE: &str = "reconcile_checkpoint";
/// Live sweeps of key activities: one row per activity, the last sweep's start time.
pub const KEY_SWEEP_TABLE: &str = "reconcile_key_sweep";
/// The run ledger: one row per distributed full run (state, totals, the publisher's
/// checkpoint and lease).
pub const RUN_TABLE: &str = "reconcile_run";
/// One row per finished job of a run, keyed `(run_id, job_id)`: a job's outcome is
/// added to its run's totals only when this row is first inserted (exactly once).
pub const RUN_JOB_TABLE: &str = "reconcile_run_job";

/// Every statement needed for the configured layout, in order.
pub fn ddl(layout: &ShardLayout) -> Vec<String> {
    let meta = layout.meta_database();
    let mut out = vec![
        format!("CREATE DATABASE IF NOT EXISTS `{meta}`"),
        format!(
            "CREATE TABLE IF NOT EXISTS `{meta}`.activity (
  activity_id  BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  name         VARCHAR(128)    NOT NULL,
  type         TINYINT         NOT NULL,
  biz_code     VARCHAR(32)     NOT NULL,
  tags         VARCHAR(255)    NOT NULL DEFAULT '',
  status       TINYINT         NOT NULL,
  start_time   DATETIME(3)     NOT NULL,
  end_time     DATETIME(3)     NOT NULL,
  priority     INT             NOT NULL DEFAULT 0,
  updated_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_updated_at (updated_at)
) ENGINE=InnoDB"
        ),
    ];
    out.extend(own_tables(&meta));
    for d in 0..layout.databases {
        out.push(format!("CREATE DATABASE IF NOT EXISTS `{}`", layout.database(d)));
    }
    for s in layout.all_shards() {
        let db = &s.database;
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.{} (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  activity_id    BIGINT UNSIGNED NOT NULL,
  goods_id       BIGINT UNSIGNED NOT NULL,
  activity_price BIGINT          NOT NULL,
  limit_per_user INT             NOT NULL DEFAULT 0,
  status         TINYINT         NOT NULL,
  updated_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY {GOODS_KEY} (goods_id, activity_id),
  KEY idx_activity (activity_id),
  KEY idx_updated_at (updated_at)
) ENGINE=InnoDB",
            s.goods_table
        ));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.{} (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  activity_id    BIGINT UNSIGNED NOT NULL,
  goods_id       BIGINT UNSIGNED NOT NULL,
  sku_id         BIGINT UNSIGNED NOT NULL,
  activity_price BIGINT          NOT NULL,
  status         TINYINT         NOT NULL,
  updated_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY {SKU_KEY} (goods_id, activity_id, sku_id),
  KEY idx_updated_at (updated_at)
) ENGINE=InnoDB",
            s.sku_table
        ));
    }
    out
}

/// The reconciler's own tables in `act_meta` (audit log, checkpoints, run ledger), each
/// idempotent.
pub fn own_tables(meta: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS `{meta}`.{REPAIR_LOG_TABLE} (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  run_id        VARCHAR(64)     NOT NULL,
  target        VARCHAR(64)     NOT NULL,
  goods_id      BIGINT UNSIGNED NOT NULL,
  activity_id   BIGINT UNSIGNED NULL,
  qualifier     MEDIUMBLOB      NOT NULL,
  kind          VARCHAR(16)     NOT NULL,
  before_value  MEDIUMBLOB      NULL,
  before_ts     BIGINT          NULL,
  after_value   MEDIUMBLOB      NULL,
  after_ts      BIGINT          NULL,
  trigger_kind  VARCHAR(16)     NOT NULL,
  status        VARCHAR(16)     NOT NULL,
  undo_of       BIGINT UNSIGNED NULL,
  created_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  truncated     TINYINT         NOT NULL DEFAULT 0,
  whole         TINYINT         NOT NULL DEFAULT 0,
  write_key     BINARY(16)      NULL,
  write_seq     INT UNSIGNED    NULL,
  KEY idx_goods (goods_id),
  KEY idx_created_at (created_at),
  KEY idx_write_key (write_key),
  KEY idx_status (status, created_at)
) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{meta}`.{CHECKPOINT_TABLE} (
  name        VARCHAR(191)    NOT NULL PRIMARY KEY,
  updated_at  DATETIME(3)     NOT NULL,
  last_id     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  changed_at  DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{meta}`.{KEY_SWEEP_TABLE} (
  activity_id    BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  last_swept_ms  BIGINT          NOT NULL,
  goods          BIGINT UNSIGNED NOT NULL DEFAULT 0,
  changed_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB"
        ),
        // Times are epoch ms from `common::clock` (no DATETIME conversion involved).
        format!(
            "CREATE TABLE IF NOT EXISTS `{meta}`.{RUN_TABLE} (
  id              VARCHAR(64)     NOT NULL PRIMARY KEY,
  source          VARCHAR(1024)   NOT NULL,
  state           VARCHAR(16)     NOT NULL,
  dry_run         TINYINT         NOT NULL DEFAULT 0,
  jobs_published  BIGINT UNSIGNED NOT NULL DEFAULT 0,
  jobs_done       BIGINT UNSIGNED NOT NULL DEFAULT 0,
  jobs_failed     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  published       BIGINT UNSIGNED NOT NULL DEFAULT 0,
  checked         BIGINT UNSIGNED NOT NULL DEFAULT 0,
  orphans_checked BIGINT UNSIGNED NOT NULL DEFAULT 0,
  drifted         BIGINT UNSIGNED NOT NULL DEFAULT 0,
  drift           BIGINT UNSIGNED NOT NULL DEFAULT 0,
  drift_left      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  repaired        BIGINT UNSIGNED NOT NULL DEFAULT 0,
  deferred        BIGINT UNSIGNED NOT NULL DEFAULT 0,
  errors          BIGINT UNSIGNED NOT NULL DEFAULT 0,
  unknown_goods   BIGINT UNSIGNED NOT NULL DEFAULT 0,
  halted          TINYINT         NOT NULL DEFAULT 0,
  unreachable     VARCHAR(1024)   NOT NULL DEFAULT '',
  started_ms      BIGINT          NOT NULL,
  finished_ms     BIGINT          NULL,
  checkpoint      VARCHAR(255)    NOT NULL DEFAULT '',
  lease_owner     VARCHAR(128)    NOT NULL DEFAULT '',
  lease_until_ms  BIGINT          NOT NULL DEFAULT 0,
  error           TEXT            NULL,
  KEY idx_state (state, started_ms)
) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS `{meta}`.{RUN_JOB_TABLE} (
  run_id       VARCHAR(64)     NOT NULL,
  job_id       VARCHAR(191)    NOT NULL,
  handled_by   VARCHAR(128)    NOT NULL,
  checked      BIGINT UNSIGNED NOT NULL,
  drift        BIGINT UNSIGNED NOT NULL,
  repaired     BIGINT UNSIGNED NOT NULL,
  failed       TINYINT         NOT NULL DEFAULT 0,
  finished_ms  BIGINT          NOT NULL,
  entries      MEDIUMTEXT      NULL,
  PRIMARY KEY (run_id, job_id)
) ENGINE=InnoDB"
        ),
    ]
}

/// A column an older version of a reconciler table lacks, or has with another type:
/// `statement` is run when `information_schema.COLUMNS` shows `column` of `table` missing
/// or of another `DATA_TYPE` (portable: no `IF NOT EXISTS` in MySQL's `ALTER TABLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnUpgrade {
    pub table: &'static str,
    pub column: &'static str,
    /// `information_schema.COLUMNS.DATA_TYPE` once upgraded.
    pub data_type: &'static str,
    pub statement: String,
}

/// Upgrades of the reconciler's own tables created by earlier versions, in order.
pub fn own_table_upgrades(meta: &str) -> Vec<ColumnUpgrade> {
    let log = format!("`{meta}`.{REPAIR_LOG_TABLE}");
    vec![
        // Qualifiers of any length (junk fields and qualifiers are drift to repair).
        ColumnUpgrade {
            table: REPAIR_LOG_TABLE,
            column: "qualifier",
            data_type: "mediumblob",
            statement: format!("ALTER TABLE {log} MODIFY qualifier MEDIUMBLOB NOT NULL"),
        },
        // Images above the audit's size cap are kept as a prefix, flagged.
        ColumnUpgrade {
            table: REPAIR_LOG_TABLE,
            column: "truncated",
            data_type: "tinyint",
            statement: format!("ALTER TABLE {log} ADD COLUMN truncated TINYINT NOT NULL DEFAULT 0"),
        },
        // The removal of a whole key of another type (before image: Redis DUMP).
        ColumnUpgrade {
            table: REPAIR_LOG_TABLE,
            column: "whole",
            data_type: "tinyint",
            statement: format!("ALTER TABLE {log} ADD COLUMN whole TINYINT NOT NULL DEFAULT 0"),
        },
        // Client-generated write keys: the ids MySQL assigned, read back whatever the
        // auto-increment settings; pending rows found fast at start.
        ColumnUpgrade {
            table: REPAIR_LOG_TABLE,
            column: "write_key",
            data_type: "binary",
            statement: format!(
                "ALTER TABLE {log} ADD COLUMN write_key BINARY(16) NULL, ADD COLUMN write_seq INT UNSIGNED NULL, ADD KEY idx_write_key (write_key), ADD KEY idx_status (status, created_at)"
            ),
        },
    ]
}

/// Statements dropping every database of the layout (tests and benchmarks clean up).
pub fn drop_all(layout: &ShardLayout) -> Vec<String> {
    let mut out = vec![format!("DROP DATABASE IF EXISTS `{}`", layout.meta_database())];
    for d in 0..layout.databases {
        out.push(format!("DROP DATABASE IF EXISTS `{}`", layout.database(d)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_pair_per_shard_in_the_right_database() {
        let layout = ShardLayout { databases: 2, tables_per_database: 4, db_prefix: "p_".into() };
        let ddl = ddl(&layout);
        assert_eq!(ddl.iter().filter(|s| s.contains(".activity_goods_")).count(), 8);
        assert!(ddl.iter().any(|s| s.contains("`p_act_1`.activity_sku_0007")));
        assert!(ddl.iter().any(|s| s.contains("`p_act_0`.activity_goods_0003")));
        assert!(ddl.iter().all(|s| s.contains("IF NOT EXISTS")));
    }
}
