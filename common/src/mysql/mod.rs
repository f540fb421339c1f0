//! The MySQL access layer every component uses: one pool per server (`act_meta`'s, and
//! one per `act_n` server when shards live on several), the SQL fragments that convert
//! times, the keyset pagers over the shard tables, and the DDL runner. Handlers read
//! truth through it (SELECTs only), triggers read what changed; only `model::schema`
//! says what a table looks like.
//!
//! Sessions run with `time_zone = '+00:00'`; DATETIMEs are converted to epoch ms in SQL
//! ([`sql::epoch_ms_of`]), independent of the session zone anyway. They also run with
//! `eq_range_index_dive_limit = 1`: the optimizer estimates `goods_id IN (..)` lists from
//! index statistics instead of descending the index once per id before reading the
//! same ids again (the only index such a query can use either way; a server without the
//! variable keeps its default).

pub mod ledger;
pub mod pager;
pub mod schema;
pub mod sql;

use std::sync::Arc;
use std::time::Duration;

use model::config::{redact_url, MysqlConfig};
use model::ShardLayout;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("bad MySQL URL `{url}`: {reason}")]
pub struct PoolError {
    pub url: String,
    pub reason: String,
}

/// Pools to the truth servers, with the shard layout they serve.
#[derive(Debug, Clone)]
pub struct MysqlPools {
    layout: ShardLayout,
    meta: MySqlPool,
    /// Index = database index `s div T`; all equal to `meta` without `database_urls`.
    shards: Arc<Vec<MySqlPool>>,
}

/// `SET SESSION eq_range_index_dive_limit = 1` (see the module); a server that does
/// not know the variable is left as it is.
async fn no_index_dives(conn: &mut sqlx::MySqlConnection) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    if let Err(e) = conn.execute("SET SESSION eq_range_index_dive_limit = 1").await {
        tracing::debug!(error = %e, "eq_range_index_dive_limit not set");
    }
    Ok(())
}

impl MysqlPools {
    /// Lazily connecting pools for the configured servers: no connection is opened here,
    /// so a server that is down is found (and reported) on first use.
    pub fn new(config: &MysqlConfig, layout: ShardLayout) -> Result<MysqlPools, PoolError> {
        let open = |url: &str| -> Result<MySqlPool, PoolError> {
            let options: MySqlConnectOptions = url
                .parse::<MySqlConnectOptions>()
                .map_err(|e| PoolError { url: redact_url(url), reason: e.to_string() })?
                .timezone(Some("+00:00".to_string()));
            Ok(MySqlPoolOptions::new()
                .max_connections(config.pool_size.max(1))
                .acquire_timeout(Duration::from_millis(config.connect_timeout_ms))
                .after_connect(|conn, _| Box::pin(async move { no_index_dives(conn).await }))
                .connect_lazy_with(options))
        };
        if !config.database_urls.is_empty() && config.database_urls.len() != layout.databases as usize {
            return Err(PoolError {
                url: "mysql.database_urls".into(),
                reason: format!(
                    "{} entries for {} databases (mysql.databases)",
                    config.database_urls.len(),
                    layout.databases
                ),
            });
        }
        let meta = open(&config.url)?;
        let mut shards = Vec::new();
        for d in 0..layout.databases as usize {
            match config.database_urls.get(d) {
                Some(url) if url != &config.url => shards.push(open(url)?),
                _ => shards.push(meta.clone()),
            }
        }
        Ok(MysqlPools { layout, meta, shards: Arc::new(shards) })
    }

    /// One pool for everything (tests, or a caller that shares its pool).
    pub fn from_pool(pool: MySqlPool, layout: ShardLayout) -> MysqlPools {
        let shards = vec![pool.clone(); layout.databases as usize];
        MysqlPools { layout, meta: pool, shards: Arc::new(shards) }
    }

    pub fn layout(&self) -> &ShardLayout {
        &self.layout
    }

    /// The server of `act_meta` (activities, the reconciler's own tables).
    pub fn meta_pool(&self) -> &MySqlPool {
        &self.meta
    }

    /// The server of database `act_{database_index}`.
    pub fn shard_pool(&self, database_index: u32) -> &MySqlPool {
        &self.shards[database_index as usize]
    }
}
