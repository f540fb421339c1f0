//! The scheduled full run: a UTC cron with seconds (`0 0 3 * * *`) and a MySQL named lock,
//! so that in a fleet exactly one instance fires each scheduled time.
//!
//! This module only says "it is time, and I hold the lock" ([`FireGuard`]); the full run
//! itself belongs to the handler side, which releases the guard when it is done. Winning
//! a fire takes both `GET_LOCK` (no two full runs at once) and moving the `full:last_fire`
//! checkpoint forward (a fire time is taken once, even by an instance that arrives after
//! the winner released the lock).

use std::str::FromStr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use sqlx::mysql::{MySql, MySqlPool};
use sqlx::pool::PoolConnection;

use crate::error::{Result, TriggerError};
use crate::scanner::{CheckpointStore, Watermark};
use common::clock::now_ms;
use common::mysql::MysqlPools;

#[derive(Debug, Clone)]
pub struct FullSchedule {
    schedule: cron::Schedule,
}

impl FullSchedule {
    /// Parses a six- or seven-field cron expression (seconds first), evaluated in UTC.
    pub fn parse(expr: &str) -> Result<FullSchedule> {
        let schedule = cron::Schedule::from_str(expr).map_err(|e| {
            TriggerError::Config(format!("triggers.full.cron `{expr}` is not a cron expression with seconds: {e}"))
        })?;
        Ok(FullSchedule { schedule })
    }

    /// The first fire time strictly after `after_ms` (epoch ms), if any.
    pub fn next_after_ms(&self, after_ms: i64) -> Option<i64> {
        let after = Utc.timestamp_millis_opt(after_ms).single()?;
        self.schedule.after(&after).next().map(|t| t.timestamp_millis())
    }
}

/// A MySQL named lock (`GET_LOCK`), held by one pooled connection until released.
pub struct NamedLock {
    conn: PoolConnection<MySql>,
    name: String,
}

impl NamedLock {
    /// Tries to take `name`, waiting at most `wait_s` seconds; `None` when another session
    /// holds it.
    pub async fn try_acquire(pool: &MySqlPool, name: &str, wait_s: u32) -> Result<Option<NamedLock>> {
        let mut conn = pool.acquire().await?;
        let (got,): (Option<i64>,) =
            sqlx::query_as("SELECT GET_LOCK(?, ?)").bind(name).bind(wait_s).fetch_one(&mut *conn).await?;
        Ok((got == Some(1)).then(|| NamedLock { conn, name: name.to_string() }))
    }

    pub async fn release(mut self) -> Result<()> {
        sqlx::query("SELECT RELEASE_LOCK(?)").bind(&self.name).execute(&mut *self.conn).await?;
        Ok(())
    }
}

/// Proof that this instance won a fire time; hold it for the duration of the full run.
pub struct FireGuard {
    /// The scheduled time that fired (epoch ms).
    pub fire_ms: i64,
    lock: NamedLock,
}

impl FireGuard {
    pub async fn release(self) -> Result<()> {
        self.lock.release().await
    }
}

pub struct FullTrigger {
    schedule: FullSchedule,
    pool: MySqlPool,
    checkpoints: CheckpointStore,
    lock_name: String,
    /// Fire times at or before this were already considered.
    last_considered_ms: i64,
}

const LAST_FIRE: &str = "full:last_fire";

impl FullTrigger {
    pub async fn new(schedule: FullSchedule, pools: &MysqlPools) -> Result<FullTrigger> {
        let meta = pools.layout().meta_database();
        let checkpoints = CheckpointStore::open(pools).await?;
        let mut lock_name = format!("{meta}.reconciler_full_run");
        lock_name.truncate(64);
        Ok(FullTrigger {
            schedule,
            pool: pools.meta_pool().clone(),
            checkpoints,
            lock_name,
            last_considered_ms: now_ms(),
        })
    }

    /// One step: tries to win the fire at `fire_ms`. `None` when another instance holds
    /// the lock or already took this fire time.
    pub async fn try_fire(&self, fire_ms: i64) -> Result<Option<FireGuard>> {
        let Some(lock) = NamedLock::try_acquire(&self.pool, &self.lock_name, 0).await? else {
            return Ok(None);
        };
        match self.checkpoints.advance(LAST_FIRE, Watermark { updated_ms: fire_ms, last_id: 0 }).await {
            Ok(true) => Ok(Some(FireGuard { fire_ms, lock })),
            Ok(false) => {
                lock.release().await?;
                Ok(None)
            }
            Err(e) => {
                let _ = lock.release().await;
                Err(e)
            }
        }
    }

    /// Sleeps until the next scheduled time and returns once this instance won one.
    /// `Ok(None)` when the schedule has no further fire time.
    pub async fn wait_due(&mut self) -> Result<Option<FireGuard>> {
        loop {
            let Some(fire_ms) = self.schedule.next_after_ms(self.last_considered_ms) else {
                return Ok(None);
            };
            let wait = (fire_ms - now_ms()).max(0) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            self.last_considered_ms = fire_ms;
            if let Some(guard) = self.try_fire(fire_ms).await? {
                return Ok(Some(guard));
            }
            tracing::info!(fire_ms, "full run fire taken by another instance");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn next_fire_times_are_utc() {
        let s = FullSchedule::parse("0 0 3 * * *").unwrap();
        assert_eq!(s.next_after_ms(ms("2026-06-17T02:59:59Z")), Some(ms("2026-06-17T03:00:00Z")));
        assert_eq!(s.next_after_ms(ms("2026-06-17T03:00:00Z")), Some(ms("2026-06-18T03:00:00Z")));
        let every_10s = FullSchedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(every_10s.next_after_ms(ms("2026-06-17T03:00:01Z")), Some(ms("2026-06-17T03:00:10Z")));
    }

    #[test]
    fn bad_expressions_are_config_errors() {
        let e = FullSchedule::parse("every night").unwrap_err();
        assert!(matches!(e, TriggerError::Config(_)) && !e.is_retryable());
        assert!(e.to_string().contains("every night"));
    }
}
