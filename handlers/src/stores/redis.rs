//! Redis store: one HASH per goods (`{prefix}{goods_id}`, field = activity id, value =
//! canonical JSON), read with one pipelined round trip per batch, repaired with a Lua
//! compare-and-set per goods so a field changed since the check is never overwritten.

use std::time::Duration;

use async_trait::async_trait;
use model::config::RedisTarget;
use model::repair_plan::{CellRepair, CellWrite};
use model::{GoodsId, ObservedCell, ObservedGoods};
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::Mutex;

use crate::error::StoreError;
use crate::stores::{ApplyOutcome, ScanPage, Target};

/// Per field: ARGV holds (field, has_expected, expected, has_new, new). Each field is
/// written only if it still holds `expected` (absent when has_expected is 0). Returns,
/// per field, `{1}` applied, `{0}` conflict with the field absent, `{0, value}` conflict.
const CAS_SCRIPT: &str = r#"
local out = {}
local n = (#ARGV) / 5
for i = 0, n - 1 do
  local b = i * 5
  local field = ARGV[b + 1]
  local cur = redis.call('HGET', KEYS[1], field)
  local ok
  if ARGV[b + 2] == '1' then ok = (cur == ARGV[b + 3]) else ok = (cur == false) end
  if ok then
    if ARGV[b + 4] == '1' then
      redis.call('HSET', KEYS[1], field, ARGV[b + 5])
    else
      redis.call('HDEL', KEYS[1], field)
    end
    out[i + 1] = {1}
  elseif cur then
    out[i + 1] = {0, cur}
  else
    out[i + 1] = {0}
  end
end
return out
"#;

pub struct RedisStore {
    name: String,
    client: redis::Client,
    key_prefix: String,
    timeout: Duration,
    script: redis::Script,
    /// Shared multiplexed connection, made on first use and dropped on IO errors so the
    /// next call reconnects.
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl RedisStore {
    pub fn new(config: &RedisTarget) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError::failed(&config.name, format!("bad redis URL: {e}")))?;
        Ok(RedisStore {
            name: config.name.clone(),
            client,
            key_prefix: config.key_prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            script: redis::Script::new(CAS_SCRIPT),
            conn: Mutex::new(None),
        })
    }

    pub fn key(&self, goods: GoodsId) -> String {
        format!("{}{goods}", self.key_prefix)
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

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn outcome(v: &Value) -> ApplyOutcome {
    let items: &[Value] = match v {
        Value::Array(items) => items,
        _ => &[],
    };
    match items {
        [Value::Int(1)] => ApplyOutcome::Applied { timestamp: None },
        [_, Value::BulkString(found)] => {
            ApplyOutcome::Conflict { found: Some(ObservedCell { value: found.clone(), timestamp: None }) }
        }
        _ => ApplyOutcome::Conflict { found: None },
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
        let mut pipe = redis::pipe();
        for &g in goods {
            pipe.cmd("HGETALL").arg(self.key(g));
        }
        let raw: Vec<Vec<(Vec<u8>, Vec<u8>)>> =
            self.with_conn(|mut c| async move { pipe.query_async(&mut c).await }).await?;
        Ok(raw
            .into_iter()
            .map(|fields| ObservedGoods {
                cells: fields.into_iter().map(|(f, v)| (f, ObservedCell { value: v, timestamp: None })).collect(),
            })
            .collect())
    }

    async fn apply(&self, repairs: &[CellRepair]) -> Result<Vec<ApplyOutcome>, StoreError> {
        if repairs.is_empty() {
            return Ok(Vec::new());
        }
        // One script call per goods, in first-seen order; remember each repair's slot.
        let mut order: Vec<GoodsId> = Vec::new();
        let mut slots = Vec::with_capacity(repairs.len());
        let mut args: std::collections::HashMap<GoodsId, Vec<&[u8]>> = Default::default();
        let mut counts: std::collections::HashMap<GoodsId, usize> = Default::default();
        for r in repairs {
            let entry = args.entry(r.goods_id).or_insert_with(|| {
                order.push(r.goods_id);
                Vec::new()
            });
            let n = counts.entry(r.goods_id).or_default();
            slots.push((r.goods_id, *n));
            *n += 1;
            entry.push(&r.qualifier);
            match &r.expected {
                Some(cell) => entry.extend([&b"1"[..], &cell.value]),
                None => entry.extend([&b"0"[..], &b""[..]]),
            }
            match &r.write {
                CellWrite::Put { value, .. } => entry.extend([&b"1"[..], value]),
                CellWrite::Delete => entry.extend([&b"0"[..], &b""[..]]),
            }
        }
        let hash = self.script.get_hash().to_string();
        let build = |hash: &str| {
            let mut pipe = redis::pipe();
            for g in &order {
                pipe.cmd("EVALSHA").arg(hash).arg(1).arg(self.key(*g)).arg(&args[g]);
            }
            pipe
        };
        let first = {
            let pipe = build(&hash);
            self.with_conn(|mut c| async move { pipe.query_async::<Vec<Vec<Value>>>(&mut c).await }).await
        };
        let results = match first {
            Ok(r) => r,
            Err(StoreError::Failed { reason, .. }) if reason.contains("NoScript") || reason.contains("NOSCRIPT") => {
                let script = self.script.clone();
                self.with_conn(|mut c| async move { script.prepare_invoke().load_async(&mut c).await }).await?;
                let pipe = build(&hash);
                self.with_conn(|mut c| async move { pipe.query_async::<Vec<Vec<Value>>>(&mut c).await }).await?
            }
            Err(e) => return Err(e),
        };
        let by_goods: std::collections::HashMap<GoodsId, Vec<Value>> = order.into_iter().zip(results).collect();
        Ok(slots.into_iter().map(|(g, i)| outcome(&by_goods[&g][i])).collect())
    }

    async fn scan(&self, cursor: Option<Vec<u8>>, limit: usize) -> Result<ScanPage, StoreError> {
        let start = cursor.map(|c| String::from_utf8_lossy(&c).into_owned()).unwrap_or_else(|| "0".into());
        let pattern = format!("{}*", glob_escape(&self.key_prefix));
        let (next, keys): (String, Vec<Vec<u8>>) = self
            .with_conn(|mut c| async move {
                redis::cmd("SCAN")
                    .arg(&start)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut page = ScanPage { next: (next != "0").then(|| next.into_bytes()), ..Default::default() };
        for key in keys {
            let id = key
                .strip_prefix(self.key_prefix.as_bytes())
                .and_then(|rest| std::str::from_utf8(rest).ok())
                .and_then(|s| s.parse::<GoodsId>().ok().filter(|id| id.to_string() == s));
            match id {
                Some(id) => page.goods.push(id),
                None => page.foreign.push(key),
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_glob_characters() {
        assert_eq!(glob_escape("act:goods:"), "act:goods:");
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
