//! The run ledger of distributed full runs (`act_meta.reconcile_run` and
//! `act_meta.reconcile_run_job`, DDL in `model::schema`).
//!
//! One row per run: its source, state (`publishing` → `running` → `done` / `failed`;
//! `cancelled` by an operator), totals, the publisher's checkpoint and its lease. The
//! publisher holds the lease while it publishes and renews it with every checkpoint; an
//! instance that finds a `publishing` run whose lease expired takes it over
//! ([`Ledger::claim`]) and resumes from the checkpoint.
//!
//! Handlers record each job's outcome with [`Ledger::record`]: the `(run_id, job_id)` row
//! is inserted with `INSERT IGNORE` and the run's totals grow only when the row was new,
//! in one transaction, so a job delivered or published twice is counted once. The same
//! transaction moves a `running` run whose every job is finished to its end state.
//!
//! A *local* run (a big operator repair run in one process, `POST /repair`) is one job
//! the process itself handles: created `running` with its goods as `published`, it
//! renews its lease and saves the goods checked so far as the checkpoint
//! (`local:<checked>`) while it goes, and records its outcome as job `local` at the end.
//! A local run whose lease expired (its process died) is failed by
//! [`Ledger::fail_abandoned`]: a repair is not resumed, it is run again.

use serde::Serialize;
use sqlx::{MySqlPool, Row};

use super::sql::quote_ident;
use super::MysqlPools;
use model::schema::{RUN_JOB_TABLE, RUN_TABLE};

/// What one finished job adds to its run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOutcome {
    /// Goods of the run's universe checked (range and id jobs).
    pub checked: u64,
    /// Goods found by the orphan scan without truth, checked.
    pub orphans_checked: u64,
    pub drifted: u64,
    pub drift: u64,
    pub drift_left: u64,
    pub repaired: u64,
    pub deferred: u64,
    pub errors: u64,
    pub unknown_goods: u64,
    pub halted: bool,
    pub unreachable: Vec<String>,
    /// The job was dead-lettered (its goods were not checked).
    pub failed: bool,
    /// The instance that handled it.
    pub handled_by: String,
    /// The job's report entries (JSON object of lists), when it has any.
    pub entries: Option<String>,
}

/// One run as the ledger holds it (and `reconciler runs --json` prints it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub source: String,
    pub state: String,
    pub dry_run: bool,
    pub jobs_published: u64,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    /// Goods published (ids jobs: exact; range jobs: the goods of the pages published).
    pub published: u64,
    pub checked: u64,
    pub orphans_checked: u64,
    pub drifted: u64,
    pub drift: u64,
    pub drift_left: u64,
    pub repaired: u64,
    pub deferred: u64,
    pub errors: u64,
    pub unknown_goods: u64,
    pub halted: bool,
    pub unreachable: Vec<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub checkpoint: String,
    pub lease_owner: String,
    pub lease_until_ms: i64,
    pub error: Option<String>,
}

/// The checkpoint prefix of local runs.
pub const LOCAL: &str = "local";

impl RunRecord {
    /// Share of the run's jobs finished (0..=1); `None` while the publisher still
    /// publishes (the total is not known yet). A local run's share is its goods checked.
    pub fn progress(&self) -> Option<f64> {
        if self.state == "publishing" {
            return None;
        }
        if let Some(checked) = self.checkpoint.strip_prefix("local:").and_then(|c| c.parse::<u64>().ok()) {
            if self.is_finished() || self.published == 0 {
                return Some(1.0);
            }
            return Some((checked as f64 / self.published as f64).min(1.0));
        }
        if self.jobs_published == 0 {
            return Some(1.0);
        }
        Some(((self.jobs_done + self.jobs_failed) as f64 / self.jobs_published as f64).min(1.0))
    }

    /// Estimated ms until the run ends, from its pace so far; `None` when finished or
    /// not yet estimable.
    pub fn eta_ms(&self, now_ms: i64) -> Option<i64> {
        if self.finished_ms.is_some() {
            return None;
        }
        let progress = self.progress()?;
        if progress <= 0.0 {
            return None;
        }
        let elapsed = now_ms.saturating_sub(self.started_ms).max(0) as f64;
        Some((elapsed / progress - elapsed).max(0.0) as i64)
    }

    /// The record as JSON with `progress` and `eta_ms` (contract section 7 keys first).
    pub fn to_json(&self, now_ms: i64) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a run record serializes");
        v["progress"] = self.progress().map(serde_json::Value::from).unwrap_or(serde_json::Value::Null);
        v["eta_ms"] = self.eta_ms(now_ms).map(serde_json::Value::from).unwrap_or(serde_json::Value::Null);
        v
    }

    /// Finished: `done`, `failed` or `cancelled`.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "done" | "failed" | "cancelled")
    }
}

/// The run ledger on the `act_meta` server.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: MySqlPool,
    runs: String,
    jobs: String,
}

const COLUMNS: &str = "id, source, state, dry_run, jobs_published, jobs_done, jobs_failed, published, checked, \
    orphans_checked, drifted, drift, drift_left, repaired, deferred, errors, unknown_goods, halted, unreachable, \
    started_ms, finished_ms, checkpoint, lease_owner, lease_until_ms, error";

impl Ledger {
    pub fn new(pools: &MysqlPools) -> Ledger {
        Ledger::on(pools.meta_pool().clone(), &pools.layout().meta_database())
    }

    pub fn on(pool: MySqlPool, meta_database: &str) -> Ledger {
        let meta = quote_ident(meta_database);
        Ledger { pool, runs: format!("{meta}.{RUN_TABLE}"), jobs: format!("{meta}.{RUN_JOB_TABLE}") }
    }

    /// Creates the ledger tables when absent (with every other own table).
    pub async fn ensure_tables(pools: &MysqlPools) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(&format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&pools.layout().meta_database())))
            .execute(pools.meta_pool())
            .await?;
        super::schema::ensure_own_tables(pools).await
    }

    /// Records a new run in state `publishing`, its lease held by `owner`.
    pub async fn create(
        &self,
        run_id: &str,
        source: &str,
        dry_run: bool,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO {} (id, source, state, dry_run, started_ms, lease_owner, lease_until_ms) VALUES (?, ?, 'publishing', ?, ?, ?, ?)",
            self.runs
        ))
        .bind(run_id)
        .bind(source)
        .bind(dry_run as i8)
        .bind(now_ms)
        .bind(owner)
        .bind(now_ms.saturating_add(lease_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes (or renews) the publisher lease of a `publishing` run: granted when the
    /// lease is `owner`'s or expired. Returns the run (with its checkpoint) when granted.
    pub async fn claim(
        &self,
        run_id: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<RunRecord>, sqlx::Error> {
        let done = sqlx::query(&format!(
            "UPDATE {} SET lease_owner = ?, lease_until_ms = ? WHERE id = ? AND state = 'publishing' AND (lease_owner = ? OR lease_until_ms < ?)",
            self.runs
        ))
        .bind(owner)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(run_id)
        .bind(owner)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            // Renewing with an unchanged expiry affects no row; check who holds it.
            return Ok(self.get(run_id).await?.filter(|r| r.state == "publishing" && r.lease_owner == owner));
        }
        self.get(run_id).await
    }

    /// Runs still `publishing` whose publisher lease expired at `now_ms` (their
    /// publisher died): candidates for [`Ledger::claim`].
    pub async fn orphaned(&self, now_ms: i64) -> Result<Vec<String>, sqlx::Error> {
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT id FROM {} WHERE state = 'publishing' AND lease_until_ms < ? ORDER BY started_ms",
            self.runs
        ))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Saves the publisher's position and totals after a batch was published
    /// (`at` = checkpoint, jobs published, goods published), renewing the lease; false
    /// when `owner` no longer holds it (another instance took over: the caller stops
    /// publishing).
    pub async fn checkpoint(
        &self,
        run_id: &str,
        owner: &str,
        at: (&str, u64, u64),
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let (checkpoint, jobs_published, published) = at;
        let done = sqlx::query(&format!(
            "UPDATE {} SET checkpoint = ?, jobs_published = ?, published = ?, lease_until_ms = ? WHERE id = ? AND state = 'publishing' AND lease_owner = ?",
            self.runs
        ))
        .bind(checkpoint)
        .bind(jobs_published)
        .bind(published)
        .bind(now_ms.saturating_add(lease_ms).max(now_ms + 1))
        .bind(run_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every job is published: the run moves to `running` (or straight to its end when
    /// every job is already finished). False when `owner` no longer holds the lease.
    pub async fn published_all(
        &self,
        run_id: &str,
        owner: &str,
        jobs_published: u64,
        published: u64,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&format!(
            "UPDATE {} SET state = 'running', checkpoint = 'published', jobs_published = ?, published = ?, lease_owner = '', lease_until_ms = 0 WHERE id = ? AND state = 'publishing' AND lease_owner = ?",
            self.runs
        ))
        .bind(jobs_published)
        .bind(published)
        .bind(run_id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            self.finish_if_complete(&mut tx, run_id, now_ms).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a local run (see the module header) of `goods` goods, `running` at once,
    /// its lease held by `owner`.
    pub async fn create_local(
        &self,
        run_id: &str,
        source: &str,
        goods: u64,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO {} (id, source, state, dry_run, jobs_published, published, checkpoint, started_ms, lease_owner, lease_until_ms) VALUES (?, ?, 'running', 0, 1, ?, 'local:0', ?, ?, ?)",
            self.runs
        ))
        .bind(run_id)
        .bind(source)
        .bind(goods)
        .bind(now_ms)
        .bind(owner)
        .bind(now_ms.saturating_add(lease_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A local run's heartbeat: its goods (`published`) and the goods checked so far
    /// (`at`), and a renewed lease.
    pub async fn heartbeat_local(
        &self,
        run_id: &str,
        owner: &str,
        at: (u64, u64),
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<(), sqlx::Error> {
        let (published, checked) = at;
        sqlx::query(&format!(
            "UPDATE {} SET published = ?, checkpoint = ?, lease_until_ms = ? WHERE id = ? AND state = 'running' AND lease_owner = ? AND checkpoint LIKE 'local:%'",
            self.runs
        ))
        .bind(published)
        .bind(format!("{LOCAL}:{checked}"))
        .bind(now_ms.saturating_add(lease_ms))
        .bind(run_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Fails the local runs whose process stopped renewing their lease (it died);
    /// returns their ids.
    pub async fn fail_abandoned(&self, now_ms: i64) -> Result<Vec<String>, sqlx::Error> {
        let ids: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT id FROM {} WHERE state = 'running' AND checkpoint LIKE 'local:%' AND lease_until_ms < ?",
            self.runs
        ))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        for (id,) in &ids {
            sqlx::query(&format!(
                "UPDATE {} SET state = 'failed', finished_ms = ?, error = CONCAT('instance ', lease_owner, ' stopped before the run finished; run it again') WHERE id = ? AND state = 'running' AND checkpoint LIKE 'local:%' AND lease_until_ms < ?",
                self.runs
            ))
            .bind(now_ms)
            .bind(id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        }
        Ok(ids.into_iter().map(|r| r.0).collect())
    }

    /// Ends a run that cannot go on (its source failed), with the reason.
    pub async fn fail(&self, run_id: &str, error: &str, now_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "UPDATE {} SET state = 'failed', error = ?, finished_ms = ? WHERE id = ? AND state IN ('publishing', 'running')",
            self.runs
        ))
        .bind(error)
        .bind(now_ms)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the outcome of `job_id` was counted already: a redelivery of a job whose
    /// piece was checked (and counted) before it was acknowledged.
    pub async fn counted(&self, run_id: &str, job_id: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT 1 FROM {} WHERE run_id = ? AND job_id = ? LIMIT 1", self.jobs))
            .bind(run_id)
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Adds a finished job's outcome to its run, exactly once per `(run_id, job_id)`;
    /// true when this call counted it (false: counted before, a redelivery).
    pub async fn record(&self, run_id: &str, job_id: &str, o: &JobOutcome, now_ms: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(&format!(
            "INSERT IGNORE INTO {} (run_id, job_id, handled_by, checked, drift, repaired, failed, finished_ms, entries) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.jobs
        ))
        .bind(run_id)
        .bind(job_id)
        .bind(&o.handled_by)
        .bind(o.checked + o.orphans_checked)
        .bind(o.drift)
        .bind(o.repaired)
        .bind(o.failed as i8)
        .bind(now_ms)
        .bind(&o.entries)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            let (done, failed) = if o.failed { (0u64, 1u64) } else { (1, 0) };
            sqlx::query(&format!(
                "UPDATE {} SET jobs_done = jobs_done + ?, jobs_failed = jobs_failed + ?, checked = checked + ?, orphans_checked = orphans_checked + ?, drifted = drifted + ?, drift = drift + ?, drift_left = drift_left + ?, repaired = repaired + ?, deferred = deferred + ?, errors = errors + ?, unknown_goods = unknown_goods + ?, halted = GREATEST(halted, ?) WHERE id = ?",
                self.runs
            ))
            .bind(done)
            .bind(failed)
            .bind(o.checked)
            .bind(o.orphans_checked)
            .bind(o.drifted)
            .bind(o.drift)
            .bind(o.drift_left)
            .bind(o.repaired)
            .bind(o.deferred)
            .bind(o.errors)
            .bind(o.unknown_goods)
            .bind(o.halted as i8)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            for target in &o.unreachable {
                sqlx::query(&format!(
                    "UPDATE {} SET unreachable = IF(unreachable = '', ?, CONCAT(unreachable, ',', ?)) WHERE id = ? AND NOT FIND_IN_SET(?, unreachable)",
                    self.runs
                ))
                .bind(target)
                .bind(target)
                .bind(run_id)
                .bind(target)
                .execute(&mut *tx)
                .await?;
            }
            self.finish_if_complete(&mut tx, run_id, now_ms).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn finish_if_complete(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
        run_id: &str,
        now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "UPDATE {} SET state = IF(jobs_failed > 0, 'failed', 'done'), finished_ms = ?, error = IF(jobs_failed > 0, CONCAT(jobs_failed, ' jobs dead-lettered (see the dead-letter topic)'), error) WHERE id = ? AND state = 'running' AND jobs_done + jobs_failed >= jobs_published",
            self.runs
        ))
        .bind(now_ms)
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM {} WHERE id = ?", self.runs))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| record_of(&r)).transpose()
    }

    /// The newest `limit` runs, newest first.
    pub async fn list(&self, limit: u32) -> Result<Vec<RunRecord>, sqlx::Error> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM {} ORDER BY started_ms DESC, id DESC LIMIT ?", self.runs))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(record_of).collect()
    }

    /// Report entries of a run's jobs, `limit` jobs at a time after job id `after`
    /// (`""` first): (job id, entries JSON).
    pub async fn entries(&self, run_id: &str, after: &str, limit: u32) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT job_id, entries FROM {} WHERE run_id = ? AND job_id > ? AND entries IS NOT NULL ORDER BY job_id LIMIT ?",
            self.jobs
        ))
        .bind(run_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Jobs of a run each instance handled: (instance, jobs).
    pub async fn handled_by(&self, run_id: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT handled_by, COUNT(*) FROM {} WHERE run_id = ? GROUP BY handled_by ORDER BY handled_by",
            self.jobs
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
    }
}

fn record_of(r: &sqlx::mysql::MySqlRow) -> Result<RunRecord, sqlx::Error> {
    let unreachable: String = r.try_get("unreachable")?;
    Ok(RunRecord {
        run_id: r.try_get("id")?,
        source: r.try_get("source")?,
        state: r.try_get("state")?,
        dry_run: r.try_get::<i8, _>("dry_run")? != 0,
        jobs_published: r.try_get("jobs_published")?,
        jobs_done: r.try_get("jobs_done")?,
        jobs_failed: r.try_get("jobs_failed")?,
        published: r.try_get("published")?,
        checked: r.try_get("checked")?,
        orphans_checked: r.try_get("orphans_checked")?,
        drifted: r.try_get("drifted")?,
        drift: r.try_get("drift")?,
        drift_left: r.try_get("drift_left")?,
        repaired: r.try_get("repaired")?,
        deferred: r.try_get("deferred")?,
        errors: r.try_get("errors")?,
        unknown_goods: r.try_get("unknown_goods")?,
        halted: r.try_get::<i8, _>("halted")? != 0,
        unreachable: unreachable.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        started_ms: r.try_get("started_ms")?,
        finished_ms: r.try_get("finished_ms")?,
        checkpoint: r.try_get("checkpoint")?,
        lease_owner: r.try_get("lease_owner")?,
        lease_until_ms: r.try_get("lease_until_ms")?,
        error: r.try_get("error")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: &str, published: u64, done: u64) -> RunRecord {
        RunRecord {
            run_id: "r".into(),
            source: "mysql".into(),
            state: state.into(),
            dry_run: false,
            jobs_published: published,
            jobs_done: done,
            jobs_failed: 0,
            published: 0,
            checked: 0,
            orphans_checked: 0,
            drifted: 0,
            drift: 0,
            drift_left: 0,
            repaired: 0,
            deferred: 0,
            errors: 0,
            unknown_goods: 0,
            halted: false,
            unreachable: vec![],
            started_ms: 1000,
            finished_ms: None,
            checkpoint: String::new(),
            lease_owner: String::new(),
            lease_until_ms: 0,
            error: None,
        }
    }

    #[test]
    fn progress_and_eta_follow_the_finished_jobs() {
        assert_eq!(record("publishing", 10, 5).progress(), None);
        let r = record("running", 10, 5);
        assert_eq!(r.progress(), Some(0.5));
        assert_eq!(r.eta_ms(3000), Some(2000), "half done in 2 s: 2 s to go");
        assert_eq!(record("running", 0, 0).progress(), Some(1.0));
        let v = r.to_json(3000);
        for key in
            ["run_id", "source", "state", "published", "checked", "drifted", "repaired", "started_ms", "finished_ms"]
        {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["eta_ms"], 2000);
    }

    #[test]
    fn a_local_runs_progress_is_its_goods_checked() {
        let mut r = record("running", 1, 0);
        r.published = 200;
        r.checkpoint = "local:50".into();
        assert_eq!(r.progress(), Some(0.25));
        assert_eq!(r.eta_ms(2000), Some(3000), "a quarter in 1 s: 3 s to go");
        r.state = "done".into();
        assert_eq!(r.progress(), Some(1.0));
    }
}
