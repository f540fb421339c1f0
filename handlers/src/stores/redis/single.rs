//! A redis target on one server (`url`): each batch read with one pipelined round trip
//! and the orphan scan's pages (on connections of [`resp`](super::resp) when the URL
//! allows, else on redis-rs's), repairs pipelined as one script call per goods on a
//! shared multiplexed connection.

use std::time::Duration;

use async_trait::async_trait;
use model::config::RedisTarget;
use model::repair_plan::CellRepair;
use model::{GoodsId, ObservedGoods};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::Value;
use tokio::sync::Mutex;

use super::resp::{self, RawPipeline};
use super::{outcomes, read_keys, scan_page, scan_pattern, script_calls, KeyPipeline};
use crate::error::StoreError;
use crate::stores::{ApplyOutcome, ScanPage, Target};

pub struct RedisStore {
    name: String,
    client: redis::Client,
    key_prefix: String,
    timeout: Duration,
    script: redis::Script,
    /// Shared multiplexed connection, made on first use and dropped on IO errors so the
    /// next call reconnects.
    conn: Mutex<Option<MultiplexedConnection>>,
    /// The batch reads' own connections (`None`: the URL needs redis-rs, see [`super::resp`]).
    reads: Option<RawPipeline>,
}

impl RedisStore {
    pub fn new(config: &RedisTarget, url: &str) -> Result<RedisStore, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::failed(&config.name, format!("bad redis URL: {e}")))?;
        Ok(RedisStore {
            name: config.name.clone(),
            key_prefix: config.key_prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            script: super::cas_script(),
            conn: Mutex::new(None),
            reads: RawPipeline::for_connection(client.get_connection_info()),
            client,
        })
    }

    pub fn key(&self, goods: GoodsId) -> String {
        model::redis_key(&self.key_prefix, goods)
    }

    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection())
            .await
            .map_err(|_| StoreError::unreachable(&self.name, "connect timed out"))?
            .map_err(|e| self.error(e))?;
        let mut loader = c.clone();
        tokio::time::timeout(self.timeout, self.script.prepare_invoke().load_async(&mut loader))
            .await
            .map_err(|_| StoreError::unreachable(&self.name, "script load timed out"))?
            .map_err(|e| self.error(e))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    fn error(&self, e: redis::RedisError) -> StoreError {
        StoreError::classified(&self.name, &e, &e)
    }

    /// Runs `op` on the shared connection with the configured timeout; forgets the
    /// connection when the store did not answer.
    async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, redis::RedisError>>,
    {
        let conn = self.connection().await?;
        let result = match tokio::time::timeout(self.timeout, op(conn)).await {
            Err(_) => Err(StoreError::unreachable(&self.name, "command timed out")),
            Ok(r) => r.map_err(|e| self.error(e)),
        };
        if matches!(result, Err(StoreError::Unreachable { .. })) {
            *self.conn.lock().await = None;
        }
        result
    }
}

#[async_trait]
impl KeyPipeline for RedisStore {
    fn store_name(&self) -> &str {
        &self.name
    }

    /// `cmd key` for every key in one round trip, each reply on its own.
    async fn pipeline(&self, cmd: &'static str, keys: &[String]) -> Result<Vec<Value>, StoreError> {
        let n = keys.len();
        let replies = match &self.reads {
            Some(reads) => {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                resp::timed(&self.name, self.timeout, reads.run(cmd, &keys)).await?
            }
            None => {
                let mut pipe = redis::pipe();
                for k in keys {
                    pipe.cmd(cmd).arg(k);
                }
                self.with_conn(|mut c| async move { c.req_packed_commands(&pipe, 0, n).await }).await?
            }
        };
        if replies.len() != n {
            return Err(StoreError::failed(
                &self.name,
                format!("{cmd} pipeline: {} replies for {n} keys", replies.len()),
            ));
        }
        Ok(replies)
    }
}

#[async_trait]
impl Target for RedisStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn read(&self, goods: &[GoodsId]) -> Result<Vec<ObservedGoods>, StoreError> {
        if goods.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = goods.iter().map(|&g| self.key(g)).collect();
        read_keys(self, &keys).await
    }

    async fn apply(&self, repairs: &[CellRepair]) -> Result<Vec<ApplyOutcome>, StoreError> {
        if repairs.is_empty() {
            return Ok(Vec::new());
        }
        let calls = script_calls(repairs);
        let hash = self.script.get_hash().to_string();
        let run = |goods: Vec<GoodsId>| {
            let mut pipe = redis::pipe();
            for g in &goods {
                pipe.cmd("EVALSHA").arg(&hash).arg(1).arg(self.key(*g)).arg(&calls.args[g]);
            }
            let n = goods.len();
            async move {
                let replies = self.with_conn(|mut c| async move { c.req_packed_commands(&pipe, 0, n).await }).await?;
                Ok::<_, StoreError>(goods.into_iter().zip(replies).collect::<Vec<_>>())
            }
        };
        let mut results: std::collections::HashMap<GoodsId, Value> = Default::default();
        let mut todo = calls.order.clone();
        for attempt in 0..2 {
            let mut noscript = Vec::new();
            for (g, reply) in run(std::mem::take(&mut todo)).await? {
                match reply {
                    Value::ServerError(e) if e.code() == "NOSCRIPT" && attempt == 0 => noscript.push(g),
                    other => {
                        results.insert(g, other);
                    }
                }
            }
            if noscript.is_empty() {
                break;
            }
            let script = self.script.clone();
            self.with_conn(|mut c| async move { script.prepare_invoke().load_async(&mut c).await }).await?;
            todo = noscript;
        }
        Ok(outcomes(calls.slots, &results))
    }

    async fn scan(&self, cursor: Option<Vec<u8>>, limit: usize) -> Result<ScanPage, StoreError> {
        let start = cursor.map(|c| String::from_utf8_lossy(&c).into_owned()).unwrap_or_else(|| "0".into());
        let pattern = scan_pattern(&self.key_prefix);
        let reply: Value = match &self.reads {
            Some(reads) => resp::timed(&self.name, self.timeout, reads.scan(&start, &pattern, limit)).await?,
            None => {
                self.with_conn(|mut c| async move {
                    redis::cmd("SCAN")
                        .arg(&start)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(limit)
                        .query_async(&mut c)
                        .await
                })
                .await?
            }
        };
        let (next, keys): (String, Vec<Vec<u8>>) = redis::from_redis_value(&reply).map_err(|e| self.error(e))?;
        Ok(scan_page(&self.key_prefix, keys, (next != "0").then(|| next.into_bytes())))
    }
}
