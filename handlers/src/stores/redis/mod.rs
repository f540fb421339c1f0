//! Redis stores: one HASH per goods (`{prefix}{goods_id}`, field = activity id, value =
//! canonical JSON), read with pipelined round trips, repaired with a Lua compare-and-set
//! per goods so a field changed since the check is never overwritten.
//!
//! Two deployments share everything but the transport: [`single`] (one server, `url`)
//! and [`cluster`] (a Redis Cluster, `cluster` = seed nodes; reads pipelined per master by
//! hash slot, the orphan scan over every master). This module holds what both do the same
//! way: the script, the reading of replies (poison is drift, never an outage), the
//! encoding of repairs and their outcomes, and the orphan-scan key parsing.

pub mod cluster;
mod resp;
pub mod single;
mod slots;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use model::config::{RedisEndpoint, RedisTarget};
use model::repair_plan::{CellRepair, CellWrite};
use model::{GoodsId, ObservedCell, ObservedGoods};
use redis::Value;

use crate::error::StoreError;
use crate::stores::{ApplyOutcome, ScanPage, Target};

pub use cluster::RedisClusterStore;
pub use single::RedisStore;

/// The store of one redis target: a single server or a cluster.
pub fn build(config: &RedisTarget) -> Result<Arc<dyn Target>, StoreError> {
    match config.endpoint() {
        Some(RedisEndpoint::Single(url)) => Ok(Arc::new(RedisStore::new(config, url)?)),
        Some(RedisEndpoint::Cluster(seeds)) => Ok(Arc::new(RedisClusterStore::new(config, seeds)?)),
        None => Err(StoreError::failed(&config.name, "a redis target needs exactly one of `url` and `cluster`")),
    }
}

/// Per op: ARGV holds (field, mode, expected, has_new, new). Mode `1`: the field must
/// still hold `expected`; `0`: it must be absent; `K`: the whole key must still be the
/// one the check saw (its `DUMP` equals `expected`), and is then deleted. Field ops on a
/// key that is not a hash are conflicts (never a script error, so no op is half done).
/// Returns, per op, `{1}` applied, `{0}` conflict with nothing there, `{0, value}`
/// conflict with what is there now. One key per call, so on a cluster it runs on the
/// key's master.
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

fn cas_script() -> redis::Script {
    redis::Script::new(CAS_SCRIPT)
}

/// Sends one command per key and returns one reply per key, in order; an error reply
/// for one key is that key's reply (`Value::ServerError`), never a failure of the rest.
#[async_trait]
trait KeyPipeline: Send + Sync {
    fn store_name(&self) -> &str;
    async fn pipeline(&self, cmd: &'static str, keys: &[String]) -> Result<Vec<Value>, StoreError>;
}

/// `HGETALL` of every key; keys of another type than a hash are reported with their
/// `DUMP` image (`foreign`), errors of one key in that goods alone.
async fn read_keys(store: &impl KeyPipeline, keys: &[String]) -> Result<Vec<ObservedGoods>, StoreError> {
    let name = store.store_name();
    let replies = store.pipeline("HGETALL", keys).await?;
    let mut out = Vec::with_capacity(keys.len());
    let mut wrong_type = Vec::new();
    for (i, reply) in replies.into_iter().enumerate() {
        match key_reply(name, reply)? {
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
    // Keys of another type: their image, for the compare-and-set removal and the audit
    // before-image. A key that turned into a hash meanwhile is read next time.
    let poisoned: Vec<String> = wrong_type.iter().map(|&i| keys[i].clone()).collect();
    let (types, dumps) = futures::try_join!(store.pipeline("TYPE", &poisoned), store.pipeline("DUMP", &poisoned))?;
    for ((&i, kind), dump) in wrong_type.iter().zip(types).zip(dumps) {
        let kind = match kind {
            Value::SimpleString(s) => s,
            other => format!("{other:?}"),
        };
        out[i] = match (kind.as_str(), key_reply(name, dump)?) {
            ("hash" | "none", _) => {
                ObservedGoods { error: Some("the key changed type while it was read".into()), ..Default::default() }
            }
            (_, Ok(Value::BulkString(image))) => {
                tracing::debug!(target = %name, key = %keys[i], kind, "key of another type than hash");
                ObservedGoods { foreign: Some(ObservedCell { value: image, timestamp: None }), ..Default::default() }
            }
            (_, Ok(Value::Nil)) => ObservedGoods::default(),
            (_, Ok(other)) => ObservedGoods { error: Some(format!("DUMP answered {other:?}")), ..Default::default() },
            (_, Err(KeyError::WrongType)) => unreachable!("DUMP takes any type"),
            (_, Err(KeyError::Other(reason))) => ObservedGoods { error: Some(reason), ..Default::default() },
        };
    }
    Ok(out)
}

/// One reply of a pipeline: the value, an error of this key alone, or (`Err`) an error
/// that says the store cannot answer now (`LOADING`, `READONLY`, `CLUSTERDOWN`, ...).
fn key_reply(store: &str, reply: Value) -> Result<Result<Value, KeyError>, StoreError> {
    let Value::ServerError(e) = reply else { return Ok(Ok(reply)) };
    if e.code() == "WRONGTYPE" {
        return Ok(Err(KeyError::WrongType));
    }
    let text = format!("{} {}", e.code(), e.details().unwrap_or_default());
    let err = redis::RedisError::from(e);
    if common::Classify::is_transient(&err) {
        return Err(StoreError::unreachable(store, text));
    }
    Ok(Err(KeyError::Other(text)))
}

/// The reply value of an error the server answered for one key (as a pipeline would
/// hold it), from an error the cluster client returned for a single command.
fn error_reply(code: &str, detail: Option<&str>) -> Value {
    let line = format!("-{code} {}\r\n", detail.unwrap_or_default().replace(['\r', '\n'], " "));
    match redis::parse_redis_value(line.as_bytes()) {
        Ok(v @ Value::ServerError(_)) => v,
        _ => Value::SimpleString(format!("unreadable error reply {code}")),
    }
}

/// One reply of a pipeline that is an error for its key only.
enum KeyError {
    /// The key holds another type than a hash.
    WrongType,
    /// Something else the server refused for this key (`NOPERM`, ...): the goods alone
    /// is reported.
    Other(String),
}

/// The repairs of a batch as one script call per goods (first-seen order, ARGV as the
/// script reads it), and where each repair's outcome is found: (goods, op index).
struct ScriptCalls<'a> {
    order: Vec<GoodsId>,
    args: HashMap<GoodsId, Vec<&'a [u8]>>,
    slots: Vec<(GoodsId, usize)>,
}

fn script_calls(repairs: &[CellRepair]) -> ScriptCalls<'_> {
    let mut calls = ScriptCalls { order: Vec::new(), args: HashMap::new(), slots: Vec::with_capacity(repairs.len()) };
    let mut counts: HashMap<GoodsId, usize> = HashMap::new();
    for r in repairs {
        let entry = calls.args.entry(r.goods_id).or_insert_with(|| {
            calls.order.push(r.goods_id);
            Vec::new()
        });
        let n = counts.entry(r.goods_id).or_default();
        calls.slots.push((r.goods_id, *n));
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
    calls
}

/// Each repair's outcome from the script's reply for its goods.
fn outcomes(slots: Vec<(GoodsId, usize)>, results: &HashMap<GoodsId, Value>) -> Vec<ApplyOutcome> {
    slots
        .into_iter()
        .map(|(g, i)| match &results[&g] {
            Value::Array(per_op) => per_op
                .get(i)
                .map(outcome)
                .unwrap_or(ApplyOutcome::Unknown { reason: "compare-and-set script answered too few outcomes".into() }),
            // The script raised an error for this goods: what it wrote before is unknown
            // until the key is read again.
            Value::ServerError(e) => {
                ApplyOutcome::Unknown { reason: format!("{} {}", e.code(), e.details().unwrap_or_default()) }
            }
            other => ApplyOutcome::Unknown { reason: format!("compare-and-set script answered {other:?}") },
        })
        .collect()
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
    let mut cells = BTreeMap::new();
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

/// The `SCAN ... MATCH` pattern of a key prefix.
fn scan_pattern(prefix: &str) -> String {
    format!("{}*", glob_escape(prefix))
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

/// Sorts the keys of one `SCAN` page into goods ids and keys not of the contract's shape.
fn scan_page(prefix: &str, keys: Vec<Vec<u8>>, next: Option<Vec<u8>>) -> ScanPage {
    let mut page = ScanPage { next, ..Default::default() };
    for key in keys {
        let id = key
            .strip_prefix(prefix.as_bytes())
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .and_then(|s| s.parse::<GoodsId>().ok().filter(|id| id.to_string() == s));
        match id {
            Some(id) => page.goods.push(id),
            None => page.foreign.push(key),
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_glob_characters() {
        assert_eq!(glob_escape("act:goods:"), "act:goods:");
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }

    #[test]
    fn error_replies_keep_their_code() {
        let Value::ServerError(e) = error_reply("WRONGTYPE", Some("Operation against a key\r\n")) else { panic!() };
        assert_eq!((e.code(), e.details()), ("WRONGTYPE", Some("Operation against a key  ")));
        assert!(matches!(key_reply("t", error_reply("WRONGTYPE", None)), Ok(Err(KeyError::WrongType))));
        assert!(matches!(key_reply("t", error_reply("NOPERM", Some("no"))), Ok(Err(KeyError::Other(_)))));
        assert!(key_reply("t", error_reply("CLUSTERDOWN", Some("down"))).is_err());
    }

    #[test]
    fn scan_keys_of_another_shape_are_foreign() {
        let page = scan_page("p:", vec![b"p:12".to_vec(), b"p:012".to_vec(), b"p:x".to_vec()], None);
        assert_eq!(page.goods, vec![12]);
        assert_eq!(page.foreign, vec![b"p:012".to_vec(), b"p:x".to_vec()]);
    }
}
