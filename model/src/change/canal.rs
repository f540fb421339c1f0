//! Canal flat messages (`canal.mq.flatMessage=true`): one message per binlog event,
//! `data` and `old` are lists of string maps (`old[i]` holds the changed columns of
//! `data[i]` before an UPDATE), `es` is the commit time and `ts` Canal's own time (ms).

use serde_json::Value;

use super::event::{
    as_object, err, id_value, millis, parse_json, push_unique, required_id, ChangeEvent, ChangeOp, LogicalTable,
    ParseError, Parsed,
};

pub fn parse(payload: &[u8]) -> Result<Parsed, ParseError> {
    let value = parse_json(payload)?;
    let msg = as_object(&value, "message")?;
    if msg.get("isDdl").and_then(Value::as_bool) == Some(true) {
        return Ok(Parsed::Skip("ddl"));
    }
    let op = match msg.get("type").and_then(Value::as_str) {
        None => return err("no `type`"),
        Some("INSERT") => ChangeOp::Insert,
        Some("UPDATE") => ChangeOp::Update,
        Some("DELETE") => ChangeOp::Delete,
        Some(_) => return Ok(Parsed::Skip("not a row change")),
    };
    let Some(table) = msg.get("table").and_then(Value::as_str) else {
        return err("no `table`");
    };
    let Some(table) = LogicalTable::from_physical(table) else {
        return Ok(Parsed::Skip("unwatched table"));
    };
    let rows = match msg.get("data") {
        Some(Value::Array(rows)) if !rows.is_empty() => rows,
        Some(Value::Array(_)) => return err("`data` is empty"),
        Some(_) => return err("`data` is not a list"),
        None => return err("no `data`"),
    };
    let olds = match msg.get("old") {
        Some(Value::Array(olds)) => olds.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return err("`old` is not a list"),
    };
    let column = table.id_column();
    let mut ids = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let what = format!("data[{i}]");
        push_unique(&mut ids, required_id(as_object(row, &what)?, column, &what)?);
        if let Some(old) = olds.get(i).filter(|o| !o.is_null()) {
            let what = format!("old[{i}]");
            if let Some(id) = id_value(as_object(old, &what)?, column, &what)? {
                push_unique(&mut ids, id);
            }
        }
    }
    let commit_ms = millis(msg.get("es")).filter(|&ms| ms > 0).or_else(|| millis(msg.get("ts")));
    Ok(Parsed::Change(ChangeEvent { table, op, commit_ms, ids }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &str = r#"{"data":[{"id":"11","activity_id":"7001","goods_id":"1001","activity_price":"250","limit_per_user":"2","status":"1","updated_at":"2026-06-17 12:00:00.123"}],"database":"act_0","es":1781700000123,"id":42,"isDdl":false,"mysqlType":{"id":"bigint unsigned","goods_id":"bigint unsigned"},"old":[{"activity_price":"300","updated_at":"2026-06-17 11:00:00.000"}],"pkNames":["id"],"sql":"","sqlType":{"id":-5,"goods_id":-5},"table":"activity_goods_0001","ts":1781700000456,"type":"UPDATE"}"#;

    fn change(payload: &str) -> ChangeEvent {
        match parse(payload.as_bytes()).unwrap() {
            Parsed::Change(c) => c,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn update_of_a_goods_row() {
        let c = change(UPDATE);
        assert_eq!(
            c,
            ChangeEvent {
                table: LogicalTable::ActivityGoods,
                op: ChangeOp::Update,
                commit_ms: Some(1781700000123),
                ids: vec![1001]
            }
        );
    }

    #[test]
    fn goods_id_moved_yields_old_and_new() {
        let msg = UPDATE.replace(r#"{"activity_price":"300","#, r#"{"goods_id":"1009","activity_price":"300","#);
        assert_eq!(change(&msg).ids, vec![1001, 1009]);
    }

    #[test]
    fn multi_row_insert_and_delete_on_sku() {
        let msg = r#"{"data":[{"id":"1","activity_id":"7001","goods_id":"1001","sku_id":"88","activity_price":"240","status":"1"},{"id":"2","activity_id":"7001","goods_id":"1001","sku_id":"89","activity_price":"250","status":"1"},{"id":"3","activity_id":"7001","goods_id":"1011","sku_id":"90","activity_price":"250","status":"1"}],"database":"act_0","es":1781700000000,"id":5,"isDdl":false,"old":null,"pkNames":["id"],"table":"activity_sku_0003","ts":1781700000100,"type":"INSERT"}"#;
        let c = change(msg);
        assert_eq!((c.table, c.op, c.ids.clone()), (LogicalTable::ActivitySku, ChangeOp::Insert, vec![1001, 1011]));
        let del = msg.replace("INSERT", "DELETE");
        assert_eq!(change(&del).op, ChangeOp::Delete);
    }

    #[test]
    fn activity_change_yields_activity_id() {
        let msg = r#"{"data":[{"activity_id":"7001","name":"618","type":"2","biz_code":"main","tags":"","status":"2","priority":"10"}],"database":"act_meta","es":1781700000000,"isDdl":false,"old":[{"status":"1"}],"table":"activity","ts":1,"type":"UPDATE"}"#;
        let c = change(msg);
        assert_eq!((c.table, c.ids), (LogicalTable::Activity, vec![7001]));
    }

    #[test]
    fn ddl_and_other_tables_are_skipped() {
        let ddl = r#"{"data":null,"database":"act_0","es":1,"id":9,"isDdl":true,"mysqlType":null,"old":null,"pkNames":null,"sql":"ALTER TABLE activity_goods_0001 ADD COLUMN x INT","sqlType":null,"table":"activity_goods_0001","ts":2,"type":"ALTER"}"#;
        assert_eq!(parse(ddl.as_bytes()).unwrap(), Parsed::Skip("ddl"));
        let create = ddl.replace("\"isDdl\":true", "\"isDdl\":false").replace("ALTER", "CREATE");
        assert_eq!(parse(create.as_bytes()).unwrap(), Parsed::Skip("not a row change"));
        let other = UPDATE.replace("activity_goods_0001", "order_0001");
        assert_eq!(parse(other.as_bytes()).unwrap(), Parsed::Skip("unwatched table"));
    }

    #[test]
    fn commit_time_falls_back_to_ts() {
        let msg = UPDATE.replace("\"es\":1781700000123,", "");
        assert_eq!(change(&msg).commit_ms, Some(1781700000456));
        let none = msg.replace("\"ts\":1781700000456,", "");
        assert_eq!(change(&none).commit_ms, None);
    }

    #[test]
    fn malformed_messages_are_errors() {
        for (payload, needle) in [
            ("not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"table":"activity_goods_0001","data":[]}"#, "no `type`"),
            (r#"{"type":"UPDATE","data":[{"goods_id":"1"}]}"#, "no `table`"),
            (r#"{"type":"UPDATE","table":"activity_goods_0001"}"#, "no `data`"),
            (r#"{"type":"UPDATE","table":"activity_goods_0001","data":[]}"#, "`data` is empty"),
            (r#"{"type":"UPDATE","table":"activity_goods_0001","data":[{"id":"1"}]}"#, "has no `goods_id`"),
            (
                r#"{"type":"UPDATE","table":"activity_goods_0001","data":[{"goods_id":"x1"}]}"#,
                "not an unsigned 64-bit id",
            ),
            (r#"{"type":"UPDATE","table":"activity_goods_0001","data":[{"goods_id":null}]}"#, "is null"),
            (
                r#"{"type":"UPDATE","table":"activity_goods_0001","data":[{"goods_id":"1"}],"old":{"x":1}}"#,
                "`old` is not a list",
            ),
        ] {
            let e = parse(payload.as_bytes()).unwrap_err();
            assert!(e.0.contains(needle), "{payload}: {e} lacks {needle}");
        }
    }
}
