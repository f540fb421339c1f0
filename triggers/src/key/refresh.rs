//! The key-set refresher: reads the activities that have not ended (or ended within
//! `ended_grace_secs`) from `act_meta.activity`, keeps those the rules make key, pages
//! through their goods on every shard, and swaps the new set in. Run every
//! `refresh_secs`, so an activity created or tagged becomes key without a restart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::mysql::pager::ActivityGoodsPager;
use common::mysql::sql::{epoch_ms_of, quote_ident, DATETIME_OF_MS};
use common::mysql::MysqlPools;
use model::config::KeyActivitiesConfig;
use model::key::{ActivityMeta, KeyRules, KeySet};

use super::SharedKeySet;
use crate::error::Result;

pub struct Refresher {
    pools: MysqlPools,
    rules: KeyRules,
    grace_ms: i64,
    interval: Duration,
    page_size: u32,
    keys: SharedKeySet,
}

impl Refresher {
    pub fn new(pools: MysqlPools, config: &KeyActivitiesConfig) -> Refresher {
        Refresher {
            pools,
            rules: KeyRules::from_config(config),
            grace_ms: (config.ended_grace_secs as i64).saturating_mul(1000),
            interval: Duration::from_secs(config.refresh_secs.max(1)),
            page_size: 5000,
            keys: Arc::new(RwLock::new(KeySet::default())),
        }
    }

    /// The set this refresher keeps up to date.
    pub fn keys(&self) -> SharedKeySet {
        self.keys.clone()
    }

    /// Reads the activities and their goods once and swaps the set in; returns the number
    /// of key activities and of their goods.
    pub async fn refresh(&self, now_ms: i64) -> Result<(usize, usize)> {
        let rows = read_activities(&self.pools, now_ms.saturating_sub(self.grace_ms)).await?;
        let mut set = KeySet::build(&self.rules, rows, now_ms);
        let ids: Vec<u64> = set.activities().map(|a| a.meta.activity_id).collect();
        for id in &ids {
            let mut pager = ActivityGoodsPager::new(&self.pools, *id, self.page_size);
            while let Some(goods) = pager.next_page().await? {
                set.add_goods(&goods);
            }
        }
        let counts = (ids.len(), set.goods_count());
        *self.keys.write().expect("key set lock") = set;
        metrics::gauge!(crate::metrics::KEY_ACTIVITIES).set(counts.0 as f64);
        metrics::gauge!(crate::metrics::KEY_GOODS).set(counts.1 as f64);
        Ok(counts)
    }

    /// Refreshes every `refresh_secs` until `shutdown` resolves; a failed refresh keeps
    /// the previous set and is retried at the next tick.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.refresh(common::clock::now_ms()).await {
                Ok((activities, goods)) => tracing::debug!(activities, goods, "key activities refreshed"),
                Err(e) => {
                    metrics::counter!(crate::metrics::KEY_REFRESH_ERRORS).increment(1);
                    tracing::warn!(error = %e, "key activities not refreshed, keeping the previous set");
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

/// Activities not deleted whose end is at or after `ended_after_ms`. Rows whose times
/// do not convert are left out (the handlers report them as errors of their goods).
pub async fn read_activities(pools: &MysqlPools, ended_after_ms: i64) -> Result<Vec<ActivityMeta>> {
    let sql = format!(
        "SELECT activity_id, CAST(type AS SIGNED), biz_code, tags, CAST(status AS SIGNED), {}, {} FROM {}.activity WHERE status <> 3 AND end_time >= {DATETIME_OF_MS}",
        epoch_ms_of("start_time"),
        epoch_ms_of("end_time"),
        quote_ident(&pools.layout().meta_database()),
    );
    type Row = (u64, i64, String, String, i64, Option<i64>, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(&sql).bind(ended_after_ms).fetch_all(pools.meta_pool()).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(activity_id, activity_type, biz_code, tags, status, start, end)| {
            Some(ActivityMeta { activity_id, activity_type, biz_code, tags, status, start_ms: start?, end_ms: end? })
        })
        .collect())
}

/// One activity's row, for the operator commands (`check --activity`, the admin API):
/// whatever its end time.
pub async fn read_activity(pools: &MysqlPools, activity_id: u64) -> Result<Option<ActivityMeta>> {
    let sql = format!(
        "SELECT activity_id, CAST(type AS SIGNED), biz_code, tags, CAST(status AS SIGNED), {}, {} FROM {}.activity WHERE activity_id = ?",
        epoch_ms_of("start_time"),
        epoch_ms_of("end_time"),
        quote_ident(&pools.layout().meta_database()),
    );
    type Row = (u64, i64, String, String, i64, Option<i64>, Option<i64>);
    let row: Option<Row> = sqlx::query_as(&sql).bind(activity_id).fetch_optional(pools.meta_pool()).await?;
    Ok(row.map(|(activity_id, activity_type, biz_code, tags, status, start, end)| ActivityMeta {
        activity_id,
        activity_type,
        biz_code,
        tags,
        status,
        start_ms: start.unwrap_or(0),
        end_ms: end.unwrap_or(0),
    }))
}
