//! Debezium MySQL change events, with or without the `schema`/`payload` envelope of the
//! JSON converter. `before`/`after` are full row images; `source.ts_ms` is the commit
//! time; `op` is `c`, `u`, `d` or `r` (snapshot read). Tombstones, heartbeats
//! (`{"ts_ms":..}`), transaction markers (`status` BEGIN/END), schema changes (`ddl`),
//! truncates and logical messages are not row changes.

use serde_json::{Map, Value};

use super::event::{
    as_object, err, millis, parse_json, push_unique, required_id, ChangeEvent, ChangeOp, LogicalTable, ParseError,
    Parsed,
};

pub fn parse(payload: &[u8]) -> Result<Parsed, ParseError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Parsed::Skip("tombstone"));
    }
    let value = parse_json(payload)?;
    let mut msg = as_object(&value, "message")?;
    if msg.contains_key("schema") && msg.contains_key("payload") {
        match &msg["payload"] {
            Value::Null => return Ok(Parsed::Skip("tombstone")),
            inner => msg = as_object(inner, "payload")?,
        }
    }
    let Some(op) = msg.get("op") else {
        return not_a_row(msg);
    };
    let op = match op.as_str() {
        Some("c") => ChangeOp::Insert,
        Some("u") => ChangeOp::Update,
        Some("d") => ChangeOp::Delete,
        Some("r") => ChangeOp::Snapshot,
        Some("t") => return Ok(Parsed::Skip("truncate")),
        Some("m") => return Ok(Parsed::Skip("logical message")),
        _ => return err(format!("unknown `op` {op}")),
    };
    let Some(source) = msg.get("source") else {
        return err("no `source`");
    };
    let source = as_object(source, "source")?;
    let Some(table) = source.get("table").and_then(Value::as_str) else {
        return err("no `source.table`");
    };
    let Some(table) = LogicalTable::from_physical(table) else {
        return Ok(Parsed::Skip("unwatched table"));
    };
    let image = |name: &str| -> Result<Option<&Map<String, Value>>, ParseError> {
        match msg.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => as_object(v, name).map(Some),
        }
    };
    let (after, before) = (image("after")?, image("before")?);
    let column = table.id_column();
    let mut ids = Vec::new();
    match (op, after, before) {
        (ChangeOp::Delete, _, None) => return err("delete without `before`"),
        (ChangeOp::Insert | ChangeOp::Update | ChangeOp::Snapshot, None, _) => return err("change without `after`"),
        _ => {}
    }
    if let Some(after) = after {
        push_unique(&mut ids, required_id(after, column, "after")?);
    }
    if let Some(before) = before {
        push_unique(&mut ids, required_id(before, column, "before")?);
    }
    let commit_ms = millis(source.get("ts_ms")).filter(|&ms| ms > 0).or_else(|| millis(msg.get("ts_ms")));
    Ok(Parsed::Change(ChangeEvent { table, op, commit_ms, ids }))
}

fn not_a_row(msg: &Map<String, Value>) -> Result<Parsed, ParseError> {
    if msg.contains_key("status") && msg.contains_key("id") {
        Ok(Parsed::Skip("transaction marker"))
    } else if msg.contains_key("ddl") || msg.contains_key("tableChanges") || msg.contains_key("databaseName") {
        Ok(Parsed::Skip("schema change"))
    } else if msg.contains_key("ts_ms") && msg.keys().all(|k| k == "ts_ms") {
        Ok(Parsed::Skip("heartbeat"))
    } else {
        err("no `op`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"{"version":"2.7.0.Final","connector":"mysql","name":"act","ts_ms":1781700000123,"snapshot":"false","db":"act_0","table":"activity_goods_0005","server_id":1,"gtid":null,"file":"binlog.000003","pos":4567,"row":0,"thread":12,"query":null}"#;

    fn event(op: &str, before: &str, after: &str) -> String {
        format!(
            r#"{{"before":{before},"after":{after},"source":{SOURCE},"op":"{op}","ts_ms":1781700000999,"transaction":null}}"#
        )
    }

    const ROW: &str = r#"{"id":11,"activity_id":7001,"goods_id":1005,"activity_price":250,"limit_per_user":2,"status":1,"updated_at":1781700000123}"#;

    fn change(payload: &str) -> ChangeEvent {
        match parse(payload.as_bytes()).unwrap() {
            Parsed::Change(c) => c,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn create_update_delete_and_snapshot() {
        let c = change(&event("c", "null", ROW));
        assert_eq!(
            c,
            ChangeEvent {
                table: LogicalTable::ActivityGoods,
                op: ChangeOp::Insert,
                commit_ms: Some(1781700000123),
                ids: vec![1005]
            }
        );
        let moved = ROW.replace("1005", "1013");
        assert_eq!(change(&event("u", &moved, ROW)).ids, vec![1005, 1013]);
        assert_eq!(change(&event("u", ROW, ROW)).ids, vec![1005]);
        let d = change(&event("d", ROW, "null"));
        assert_eq!((d.op, d.ids), (ChangeOp::Delete, vec![1005]));
        assert_eq!(change(&event("r", "null", ROW)).op, ChangeOp::Snapshot);
    }

    #[test]
    fn schema_payload_envelope_is_unwrapped() {
        let wrapped = format!(
            r#"{{"schema":{{"type":"struct","fields":[],"optional":false,"name":"act.act_0.activity_goods_0005.Envelope"}},"payload":{}}}"#,
            event("u", ROW, ROW)
        );
        assert_eq!(change(&wrapped).ids, vec![1005]);
        let tombstone = r#"{"schema":null,"payload":null}"#;
        assert_eq!(parse(tombstone.as_bytes()).unwrap(), Parsed::Skip("tombstone"));
        assert_eq!(parse(b"").unwrap(), Parsed::Skip("tombstone"));
    }

    #[test]
    fn activity_and_sku_tables() {
        let activity = event("u", r#"{"activity_id":7001,"status":1}"#, r#"{"activity_id":7001,"status":2}"#)
            .replace("activity_goods_0005", "activity")
            .replace("\"db\":\"act_0\"", "\"db\":\"act_meta\"");
        let c = change(&activity);
        assert_eq!((c.table, c.ids), (LogicalTable::Activity, vec![7001]));
        let sku = event(
            "c",
            "null",
            r#"{"id":1,"activity_id":7001,"goods_id":1003,"sku_id":88,"activity_price":240,"status":1}"#,
        )
        .replace("activity_goods_0005", "activity_sku_0003");
        assert_eq!(change(&sku).table, LogicalTable::ActivitySku);
    }

    #[test]
    fn non_row_messages_are_skipped() {
        let heartbeat = r#"{"ts_ms":1781700000000}"#;
        assert_eq!(parse(heartbeat.as_bytes()).unwrap(), Parsed::Skip("heartbeat"));
        let begin = r#"{"status":"BEGIN","id":"571:53195829","ts_ms":1781700000000,"event_count":null,"data_collections":null}"#;
        assert_eq!(parse(begin.as_bytes()).unwrap(), Parsed::Skip("transaction marker"));
        let end = r#"{"status":"END","id":"571:53195829","ts_ms":1781700000000,"event_count":2,"data_collections":[{"data_collection":"act_0.activity_goods_0005","event_count":2}]}"#;
        assert_eq!(parse(end.as_bytes()).unwrap(), Parsed::Skip("transaction marker"));
        let ddl = format!(
            r#"{{"source":{SOURCE},"ts_ms":1,"databaseName":"act_0","schemaName":null,"ddl":"ALTER TABLE activity_goods_0005 ADD x INT","tableChanges":[]}}"#
        );
        assert_eq!(parse(ddl.as_bytes()).unwrap(), Parsed::Skip("schema change"));
        assert_eq!(parse(event("t", "null", "null").as_bytes()).unwrap(), Parsed::Skip("truncate"));
        let other = event("c", "null", ROW).replace("activity_goods_0005", "orders");
        assert_eq!(parse(other.as_bytes()).unwrap(), Parsed::Skip("unwatched table"));
    }

    #[test]
    fn commit_time_falls_back_to_envelope_ts() {
        let msg = event("c", "null", ROW).replace(r#""ts_ms":1781700000123,"#, "");
        assert_eq!(change(&msg).commit_ms, Some(1781700000999));
    }

    #[test]
    fn malformed_messages_are_errors() {
        let no_source = format!(r#"{{"before":null,"after":{ROW},"op":"c"}}"#);
        let no_table = no_source.replace(r#""op""#, r#""source":{"db":"act_0"},"op""#);
        for (payload, needle) in [
            ("{oops", "not JSON".to_string()),
            (r#"{"after":{}}"#, "no `op`".into()),
            (&event("x", "null", ROW) as &str, "unknown `op`".into()),
            (&no_source, "no `source`".into()),
            (&no_table, "no `source.table`".into()),
            (&event("c", "null", "null"), "without `after`".into()),
            (&event("d", "null", "null"), "without `before`".into()),
            (&event("c", "null", r#"{"id":1}"#), "`after` has no `goods_id`".into()),
            (&event("c", "null", r#"{"goods_id":-1}"#), "not an unsigned 64-bit id".into()),
            (&event("c", "null", "[1]"), "`after` is not a JSON object".into()),
        ] {
            let e = parse(payload.as_bytes()).unwrap_err();
            assert!(e.0.contains(&needle), "{payload}: {e} lacks {needle}");
        }
    }
}
