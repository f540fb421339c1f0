//! Connection pools to the truth servers: one for `act_meta`, one per `act_n` (the same
//! pool when every database lives on one server). Queries name tables fully
//! (`db`.`table`), so pools are not bound to a database.

use std::time::Duration;

use model::config::MysqlConfig;
use model::ShardLayout;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};

use crate::error::{Result, TriggerError};

#[derive(Debug, Clone)]
pub struct TruthPools {
    pub layout: ShardLayout,
    /// Server of `act_meta`.
    pub meta: MySqlPool,
    /// Indexed by database index (`act_{i}`).
    pub databases: Vec<MySqlPool>,
}

impl TruthPools {
    /// Lazily connecting pools for the configured servers; no connection is opened here.
    pub fn connect_lazy(config: &MysqlConfig, layout: ShardLayout) -> Result<TruthPools> {
        let options = || {
            MySqlPoolOptions::new()
                .max_connections(config.pool_size.max(1))
                .acquire_timeout(Duration::from_millis(config.connect_timeout_ms))
        };
        let meta = options().connect_lazy(&config.url)?;
        let databases = if config.database_urls.is_empty() {
            vec![meta.clone(); layout.databases as usize]
        } else {
            if config.database_urls.len() != layout.databases as usize {
                return Err(TriggerError::Config(format!(
                    "mysql.database_urls has {} entries, mysql.databases is {}",
                    config.database_urls.len(),
                    layout.databases
                )));
            }
            config.database_urls.iter().map(|u| options().connect_lazy(u)).collect::<Result<_, _>>()?
        };
        Ok(TruthPools { layout, meta, databases })
    }

    /// Pools built by the caller (tests, or a runtime that shares its pools).
    pub fn from_pool(pool: MySqlPool, layout: ShardLayout) -> TruthPools {
        TruthPools { databases: vec![pool.clone(); layout.databases as usize], meta: pool, layout }
    }

    pub fn database_pool(&self, database_index: u32) -> &MySqlPool {
        &self.databases[database_index as usize]
    }
}

/// Backtick-quotes an identifier built from configuration (database prefix, table name).
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// SQL expression for a DATETIME column as epoch ms. `TIMESTAMPDIFF` against the epoch
/// keeps the conversion independent of the session time zone (truth times are UTC).
pub fn epoch_ms_of(column: &str) -> String {
    format!("CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {column}) DIV 1000 AS SIGNED)")
}

/// SQL expression turning a bound epoch-ms parameter into a DATETIME(3).
pub const DATETIME_OF_MS: &str = "TIMESTAMPADD(MICROSECOND, ? * 1000, '1970-01-01 00:00:00')";

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
