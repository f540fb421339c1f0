//! What a change event means to the reconciler, whatever its wire format: which logical
//! table changed, when it was committed, and which goods (or activity) ids it touched.

use serde_json::{Map, Value};
use thiserror::Error;

/// Truth tables, with shard suffixes removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogicalTable {
    Activity,
    ActivityGoods,
    ActivitySku,
}

impl LogicalTable {
    /// `activity_goods_0005` -> `ActivityGoods`; `None` for tables the reconciler does
    /// not watch (their events are skipped).
    pub fn from_physical(name: &str) -> Option<LogicalTable> {
        fn sharded(name: &str, base: &str) -> bool {
            name.strip_prefix(base)
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        }
        match name {
            "activity" => Some(LogicalTable::Activity),
            n if n == "activity_goods" || sharded(n, "activity_goods") => Some(LogicalTable::ActivityGoods),
            n if n == "activity_sku" || sharded(n, "activity_sku") => Some(LogicalTable::ActivitySku),
            _ => None,
        }
    }

    /// The column whose value the event yields: goods id, or activity id for `activity`.
    pub fn id_column(self) -> &'static str {
        match self {
            LogicalTable::Activity => "activity_id",
            LogicalTable::ActivityGoods | LogicalTable::ActivitySku => "goods_id",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
    /// Debezium snapshot read (`op = r`): the row exists, check it like an insert.
    Snapshot,
}

/// One row-change message reduced to what the trigger needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub table: LogicalTable,
    pub op: ChangeOp,
    /// Commit time in epoch ms when the message carries one.
    pub commit_ms: Option<i64>,
    /// Goods ids (goods and sku tables) or activity ids (activity table), new and old
    /// values when the id changed, without duplicates, in message order.
    pub ids: Vec<u64>,
}

/// Result of parsing one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Change(ChangeEvent),
    /// Not a row change of a watched table: DDL, heartbeat, transaction marker, bootstrap
    /// marker, tombstone, another table. The reason is for debug logs.
    Skip(&'static str),
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(pub String);

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

pub(crate) fn parse_json(payload: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(payload).map_err(|e| ParseError(format!("not JSON: {e}")))
}

pub(crate) fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ParseError> {
    value.as_object().ok_or_else(|| ParseError(format!("`{what}` is not a JSON object")))
}

/// An id column value: a JSON number, or a decimal string (Canal sends every value as a
/// string).
pub(crate) fn id_value(row: &Map<String, Value>, column: &str, what: &str) -> Result<Option<u64>, ParseError> {
    match row.get(column) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| ParseError(format!("`{what}.{column}` = {n} is not an unsigned 64-bit id"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ParseError(format!("`{what}.{column}` = {s:?} is not an unsigned 64-bit id"))),
        Some(Value::Null) => err(format!("`{what}.{column}` is null")),
        Some(other) => err(format!("`{what}.{column}` = {other} is not an id")),
    }
}

/// Required id of a row image.
pub(crate) fn required_id(row: &Map<String, Value>, column: &str, what: &str) -> Result<u64, ParseError> {
    id_value(row, column, what)?.ok_or_else(|| ParseError(format!("`{what}` has no `{column}`")))
}

pub(crate) fn push_unique(ids: &mut Vec<u64>, id: u64) {
    if !ids.contains(&id) {
        ids.push(id);
    }
}

/// Epoch ms from a JSON number or numeric string.
pub(crate) fn millis(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_sharded_tables_to_logical_ones() {
        assert_eq!(LogicalTable::from_physical("activity_goods_0005"), Some(LogicalTable::ActivityGoods));
        assert_eq!(LogicalTable::from_physical("activity_sku_0003"), Some(LogicalTable::ActivitySku));
        assert_eq!(LogicalTable::from_physical("activity_goods"), Some(LogicalTable::ActivityGoods));
        assert_eq!(LogicalTable::from_physical("activity"), Some(LogicalTable::Activity));
        assert_eq!(LogicalTable::from_physical("activity_goods_x1"), None);
        assert_eq!(LogicalTable::from_physical("activity_goods_"), None);
        assert_eq!(LogicalTable::from_physical("activity_log"), None);
        assert_eq!(LogicalTable::from_physical("reconcile_checkpoint"), None);
    }
}
