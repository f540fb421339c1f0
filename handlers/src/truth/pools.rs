//! Connection pools: one for `act_meta`'s server and one per `act_n` server (shared when
//! the URLs are equal). Connections are opened lazily, so a server that is down is found
//! and reported on first use.

use std::sync::Arc;
use std::time::Duration;

use model::config::{redact_url, MysqlConfig};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use thiserror::Error;

use crate::error::StoreError;

#[derive(Debug, Error)]
#[error("bad MySQL URL `{url}`: {reason}")]
pub struct PoolError {
    pub url: String,
    pub reason: String,
}

#[derive(Clone)]
pub struct MysqlPools {
    meta: MySqlPool,
    /// Index = database index `s div T`; all equal to `meta` without `database_urls`.
    shards: Arc<Vec<MySqlPool>>,
}

impl MysqlPools {
    pub fn new(config: &MysqlConfig) -> Result<MysqlPools, PoolError> {
        let open = |url: &str| -> Result<MySqlPool, PoolError> {
            let options: MySqlConnectOptions = url
                .parse::<MySqlConnectOptions>()
                .map_err(|e| PoolError { url: redact_url(url), reason: e.to_string() })?
                .timezone(Some("+00:00".to_string()));
            Ok(MySqlPoolOptions::new()
                .max_connections(config.pool_size)
                .acquire_timeout(Duration::from_millis(config.connect_timeout_ms))
                .connect_lazy_with(options))
        };
        let meta = open(&config.url)?;
        let mut shards = Vec::new();
        for d in 0..config.databases as usize {
            match config.database_urls.get(d) {
                Some(url) if url != &config.url => shards.push(open(url)?),
                _ => shards.push(meta.clone()),
            }
        }
        Ok(MysqlPools { meta, shards: Arc::new(shards) })
    }

    pub fn meta_pool(&self) -> &MySqlPool {
        &self.meta
    }

    pub fn shard_pool(&self, database_index: u32) -> &MySqlPool {
        &self.shards[database_index as usize]
    }

    /// Maps a driver error to a store error: IO, TLS and pool timeouts are unreachable.
    pub fn classify(&self, e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
                StoreError::unreachable("mysql", e)
            }
            other => StoreError::failed("mysql", other),
        }
    }
}
