//! Maxwell messages: one row per message, `data` the row after (before, for a delete),
//! `old` the changed columns before an update, `ts` the commit time in *seconds*.
//! Bootstrap markers and rows, DDL (`table-create`, `table-alter`, ...) and heartbeats are
//! not change events.

use serde_json::Value;

use super::event::{
    as_object, err, id_value, millis, parse_json, push_unique, required_id, ChangeEvent, ChangeOp, LogicalTable,
    ParseError, Parsed,
};

pub fn parse(payload: &[u8]) -> Result<Parsed, ParseError> {
    let value = parse_json(payload)?;
    let msg = as_object(&value, "message")?;
    let op = match msg.get("type").and_then(Value::as_str) {
        None => return err("no `type`"),
        Some("insert") => ChangeOp::Insert,
        Some("update") => ChangeOp::Update,
        Some("delete") => ChangeOp::Delete,
        Some(t) if t.starts_with("bootstrap") => return Ok(Parsed::Skip("bootstrap")),
        Some(_) => return Ok(Parsed::Skip("not a row change")),
    };
    let Some(table) = msg.get("table").and_then(Value::as_str) else {
        return err("no `table`");
    };
    let Some(table) = LogicalTable::from_physical(table) else {
        return Ok(Parsed::Skip("unwatched table"));
    };
    let Some(data) = msg.get("data") else {
        return err("no `data`");
    };
    let column = table.id_column();
    let mut ids = vec![required_id(as_object(data, "data")?, column, "data")?];
    if let Some(old) = msg.get("old").filter(|o| !o.is_null()) {
        if let Some(id) = id_value(as_object(old, "old")?, column, "old")? {
            push_unique(&mut ids, id);
        }
    }
    let commit_ms = millis(msg.get("ts")).map(|s| s * 1000);
    Ok(Parsed::Change(ChangeEvent { table, op, commit_ms, ids }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &str = r#"{"database":"act_1","table":"activity_goods_0005","type":"update","ts":1781700000,"xid":23396,"commit":true,"data":{"id":11,"activity_id":7001,"goods_id":1005,"activity_price":250,"limit_per_user":2,"status":1,"updated_at":"2026-06-17 12:00:00.123"},"old":{"activity_price":300}}"#;

    fn change(payload: &str) -> ChangeEvent {
        match parse(payload.as_bytes()).unwrap() {
            Parsed::Change(c) => c,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn update_insert_delete() {
        let c = change(UPDATE);
        assert_eq!(
            c,
            ChangeEvent {
                table: LogicalTable::ActivityGoods,
                op: ChangeOp::Update,
                commit_ms: Some(1781700000000),
                ids: vec![1005]
            }
        );
        let moved = UPDATE.replace(r#""old":{"activity_price":300}"#, r#""old":{"goods_id":1013}"#);
        assert_eq!(change(&moved).ids, vec![1005, 1013]);
        let insert = UPDATE.replace("\"update\"", "\"insert\"").replace(r#","old":{"activity_price":300}"#, "");
        assert_eq!(change(&insert).op, ChangeOp::Insert);
        let delete = insert.replace("\"insert\"", "\"delete\"");
        assert_eq!(change(&delete).op, ChangeOp::Delete);
        let sku = insert.replace("activity_goods_0005", "activity_sku_0005");
        assert_eq!(change(&sku).table, LogicalTable::ActivitySku);
    }

    #[test]
    fn activity_yields_activity_id() {
        let msg = r#"{"database":"act_meta","table":"activity","type":"update","ts":1781700000,"xid":1,"commit":true,"data":{"activity_id":7001,"status":2},"old":{"status":1}}"#;
        let c = change(msg);
        assert_eq!((c.table, c.ids), (LogicalTable::Activity, vec![7001]));
    }

    #[test]
    fn bootstrap_ddl_and_heartbeat_are_skipped() {
        let start =
            r#"{"database":"act_0","table":"activity_goods_0001","type":"bootstrap-start","ts":1781700000,"data":{}}"#;
        assert_eq!(parse(start.as_bytes()).unwrap(), Parsed::Skip("bootstrap"));
        let row = UPDATE.replace("\"update\"", "\"bootstrap-insert\"");
        assert_eq!(parse(row.as_bytes()).unwrap(), Parsed::Skip("bootstrap"));
        let ddl = r#"{"type":"table-alter","database":"act_0","table":"activity_goods_0001","old":{},"def":{},"ts":1781700000000,"sql":"ALTER TABLE activity_goods_0001 ADD x INT"}"#;
        assert_eq!(parse(ddl.as_bytes()).unwrap(), Parsed::Skip("not a row change"));
        let heartbeat = r#"{"database":"maxwell","table":"heartbeats","type":"heartbeat","ts":1781700000}"#;
        assert_eq!(parse(heartbeat.as_bytes()).unwrap(), Parsed::Skip("not a row change"));
        let other = UPDATE.replace("activity_goods_0005", "orders");
        assert_eq!(parse(other.as_bytes()).unwrap(), Parsed::Skip("unwatched table"));
    }

    #[test]
    fn malformed_messages_are_errors() {
        for (payload, needle) in [
            ("", "not JSON"),
            ("\"text\"", "not a JSON object"),
            (r#"{"table":"activity_goods_0001","data":{}}"#, "no `type`"),
            (r#"{"type":"insert","data":{"goods_id":1}}"#, "no `table`"),
            (r#"{"type":"insert","table":"activity_goods_0001"}"#, "no `data`"),
            (r#"{"type":"insert","table":"activity_goods_0001","data":[1]}"#, "`data` is not a JSON object"),
            (r#"{"type":"insert","table":"activity_goods_0001","data":{"id":1}}"#, "`data` has no `goods_id`"),
            (r#"{"type":"insert","table":"activity","data":{"activity_id":"x"}}"#, "not an unsigned 64-bit id"),
        ] {
            let e = parse(payload.as_bytes()).unwrap_err();
            assert!(e.0.contains(needle), "{payload}: {e} lacks {needle}");
        }
    }
}
