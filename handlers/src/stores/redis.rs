//! Redis store: one HASH per goods (`{prefix}{goods_id}`, field = activity id, value =
//! canonical JSON), read with one pipelined round trip per batch, repaired with a Lua
//! compare-and-set per goods so a field changed since the check is never overwritten.

use std::time::Duration;

use async_trait::async_trait;
use model::config::RedisTarget;
use model::repair_plan::{CellRepair, CellWrite};
use model::{GoodsId, ObservedCell, ObservedGoods};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::Value;
use tokio::sync::Mutex;

use crate::error::StoreError;
use crate::stores::{ApplyOutcome, ScanPage, Target};

/// Per op: ARGV holds (field, mode, expected, has_new, new). Mode `1`: the field must
/// still hold `expected`; `0`: it must be absent; `K`: the whole key must still be the
/// one the check saw (its `DUMP` equals `expected`), and is then deleted. Field ops on a
/// key that is not a hash are conflicts (never a script error, so no op is half done).
/// Returns, per op, `{1}` applied, `{0}` conflict with nothing there, `{0, value}`
/// conflict with what is there now.
const CAS_SCRIPT: &str = r#"
local key = KEYS[1]
local out = {}
local n = (#ARGV) / 5
local t = redis.call('TYPE', key)['ok']
for i = 0, n - 1 do
  local b = i * 5
  local field = ARGV[b + 1]
  local mode = ARGV[b + 2]
  if mode == 'K' then
    local cur = redis.call('DUMP', key)
    if cur == ARGV[b + 3] then
      redis.call('DEL', key)
      t = 'none'
      out[i + 1] = {1}
    elseif cur then
      out[i + 1] = {0, cur}
    else
      out[i + 1] = {0}
    end
  elseif t ~= 'hash' and t ~= 'none' then
    out[i + 1] = {0}
  else
    local cur = redis.call('HGET', key, field)
    local ok
    if mode == '1' then ok = (cur == ARGV[b + 3]) else ok = (cur == false) end
    if ok then
      if ARGV[b + 4] == '1' then
        redis.call('HSET', key, field, ARGV[b + 5])
        t = 'hash'
      else
        redis.call('HDEL', key, field)
      end
      out[i + 1] = {1}
    elseif cur then
      out[i + 1] = {0, cur}
    else
      out[i + 1] = {0}
    end
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

impl RedisStore {
    /// `cmd key` for every key in one round trip, each reply on its own: an error reply
    /// for one key does not fail the others (see [`key_reply`](Self::key_reply)).
    async fn pipeline(&self, cmd: &str, keys: &[String]) -> Result<Vec<Value>, StoreError> {
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd(cmd).arg(k);
        }
        let n = keys.len();
        let replies = self.with_conn(|mut c| async move { c.req_packed_commands(&pipe, 0, n).await }).await?;
        if replies.len() != n {
            return Err(StoreError::failed(
                &self.name,
                format!("{cmd} pipeline: {} replies for {n} keys", replies.len()),
            ));
        }
        Ok(replies)
    }

    /// One reply of a pipeline: the value, an error of this key alone, or (`Err`) an
    /// error that says the store cannot answer now (`LOADING`, `READONLY`, ...).
    fn key_reply(&self, reply: Value) -> Result<Result<Value, KeyError>, StoreError> {
        let Value::ServerError(e) = reply else { return Ok(Ok(reply)) };
        if e.code() == "WRONGTYPE" {
            return Ok(Err(KeyError::WrongType));
        }
        let text = format!("{} {}", e.code(), e.details().unwrap_or_default());
        let err = redis::RedisError::from(e);
        if common::Classify::is_transient(&err) {
            return Err(StoreError::unreachable(&self.name, text));
        }
        Ok(Err(KeyError::Other(text)))
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

/// The fields of one `HGETALL` reply (RESP2 flat array or RESP3 map).
fn hash_cells(reply: Value) -> Option<ObservedGoods> {
    let cell = |v: Value| match v {
        Value::BulkString(b) => Some(ObservedCell { value: b, timestamp: None }),
        Value::SimpleString(s) => Some(ObservedCell { value: s.into_bytes(), timestamp: None }),
        _ => None,
    };
    let field = |v: Value| match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    };
    let mut cells = std::collections::BTreeMap::new();
    match reply {
        Value::Nil => {}
        Value::Array(items) => {
            let mut it = items.into_iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                cells.insert(field(f)?, cell(v)?);
            }
        }
        Value::Map(pairs) => {
            for (f, v) in pairs {
                cells.insert(field(f)?, cell(v)?);
            }
        }
        _ => return None,
    }
    Some(ObservedGoods::of_cells(cells))
}

/// One reply of a pipeline that is an error for its key only.
enum KeyError {
    /// The key holds another type than a hash.
    WrongType,
    /// Something else the server refused for this key (`NOPERM`, ...): the goods alone
    /// is reported.
    Other(String),
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
        let replies = self.pipeline("HGETALL", &keys).await?;
        let mut out = Vec::with_capacity(goods.len());
        let mut wrong_type = Vec::new();
        for (i, reply) in replies.into_iter().enumerate() {
            match self.key_reply(reply)? {
                Ok(v) => out.push(hash_cells(v).unwrap_or_else(|| ObservedGoods {
                    error: Some("HGETALL answered something that is not a hash".into()),
                    ..Default::default()
                })),
                Err(KeyError::WrongType) => {
                    wrong_type.push(i);
                    out.push(ObservedGoods::default());
                }
                Err(KeyError::Other(reason)) => out.push(ObservedGoods { error: Some(reason), ..Default::default() }),
            }
        }
        if wrong_type.is_empty() {
            return Ok(out);
        }
        // Keys of another type: their image, for the compare-and-set removal and the
        // audit before-image. A key that turned into a hash meanwhile is read next time.
        let poisoned: Vec<String> = wrong_type.iter().map(|&i| keys[i].clone()).collect();
        let (types, dumps) = futures::try_join!(self.pipeline("TYPE", &poisoned), self.pipeline("DUMP", &poisoned))?;
        for ((&i, kind), dump) in wrong_type.iter().zip(types).zip(dumps) {
            let kind = match kind {
                Value::SimpleString(s) => s,
                other => format!("{other:?}"),
            };
            out[i] = match (kind.as_str(), self.key_reply(dump)?) {
                ("hash" | "none", _) => {
                    ObservedGoods { error: Some("the key changed type while it was read".into()), ..Default::default() }
                }
                (_, Ok(Value::BulkString(image))) => {
                    tracing::debug!(target = %self.name, key = %keys[i], kind, "key of another type than hash");
                    ObservedGoods {
                        foreign: Some(ObservedCell { value: image, timestamp: None }),
                        ..Default::default()
                    }
                }
                (_, Ok(Value::Nil)) => ObservedGoods::default(),
                (_, Ok(other)) => {
                    ObservedGoods { error: Some(format!("DUMP answered {other:?}")), ..Default::default() }
                }
                (_, Err(KeyError::WrongType)) => unreachable!("DUMP takes any type"),
                (_, Err(KeyError::Other(reason))) => ObservedGoods { error: Some(reason), ..Default::default() },
            };
        }
        Ok(out)
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
            match (&r.write, &r.expected) {
                (CellWrite::DeleteWhole, Some(cell)) => entry.extend([&b"K"[..], &cell.value]),
                (_, Some(cell)) => entry.extend([&b"1"[..], &cell.value]),
                (_, None) => entry.extend([&b"0"[..], &b""[..]]),
            }
            match &r.write {
                CellWrite::Put { value, .. } => entry.extend([&b"1"[..], value]),
                CellWrite::Delete | CellWrite::DeleteWhole => entry.extend([&b"0"[..], &b""[..]]),
            }
        }
        let hash = self.script.get_hash().to_string();
        let run = |goods: Vec<GoodsId>| {
            let mut pipe = redis::pipe();
            for g in &goods {
                pipe.cmd("EVALSHA").arg(&hash).arg(1).arg(self.key(*g)).arg(&args[g]);
            }
            let n = goods.len();
            async move {
                let replies = self.with_conn(|mut c| async move { c.req_packed_commands(&pipe, 0, n).await }).await?;
                Ok::<_, StoreError>(goods.into_iter().zip(replies).collect::<Vec<_>>())
            }
        };
        let mut results: std::collections::HashMap<GoodsId, Value> = Default::default();
        let mut todo = order;
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
        Ok(slots
            .into_iter()
            .map(|(g, i)| match &results[&g] {
                Value::Array(per_op) => per_op.get(i).map(outcome).unwrap_or(ApplyOutcome::Unknown {
                    reason: "compare-and-set script answered too few outcomes".into(),
                }),
                // The script raised an error for this goods: what it wrote before is
                // unknown until the key is read again.
                Value::ServerError(e) => {
                    ApplyOutcome::Unknown { reason: format!("{} {}", e.code(), e.details().unwrap_or_default()) }
                }
                other => ApplyOutcome::Unknown { reason: format!("compare-and-set script answered {other:?}") },
            })
            .collect())
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
