//! The happybase scenario again, through the Rust `hbase-thrift` client, over every
//! transport and protocol the emulator serves.

mod common;

use std::collections::BTreeMap;

use common::*;
use hbase_emulator::{EmulatorOptions, Protocol, Transport};
use hbase_thrift::hbase::{AlreadyExists, ColumnDescriptor, THbaseSyncClient, TScan};

fn family(name: &str, max_versions: i32) -> ColumnDescriptor {
    ColumnDescriptor { name: Some(b(name)), max_versions: Some(max_versions), ..Default::default() }
}

fn cell(v: &str, ts: i64) -> (String, i64) {
    (v.to_string(), ts)
}

fn one(col: &str, v: &str, ts: i64) -> BTreeMap<String, (String, i64)> {
    BTreeMap::from([(col.to_string(), cell(v, ts))])
}

fn scenario(transport: Transport, protocol: Protocol) {
    let emu =
        hbase_emulator::start("127.0.0.1:0", EmulatorOptions { transport, protocol, ..Default::default() }).unwrap();
    let c = &mut connect(emu.local_addr(), transport, protocol);
    let t = "scenario";
    let none = BTreeMap::new;

    // tables
    c.create_table(b(t), vec![family("a:", 3), family("b", 1)]).unwrap();
    assert_eq!(c.get_table_names().unwrap(), vec![b(t)]);
    let again = c.create_table(b(t), vec![family("a", 3)]);
    assert!(matches!(again, Err(thrift::Error::User(e)) if e.downcast_ref::<AlreadyExists>().is_some()));
    assert!(c.is_table_enabled(b(t)).unwrap());
    let fams = c.get_column_descriptors(b(t)).unwrap();
    assert_eq!(fams.keys().cloned().collect::<Vec<_>>(), vec![b("a:"), b("b:")]);
    assert_eq!(fams[&b("a:")].max_versions, Some(3));

    // versioned puts
    for (ts, v) in [(10, "v1"), (20, "v2"), (30, "v3"), (40, "v4")] {
        put(c, t, "r1", "a:q", v, Some(ts));
    }
    assert_eq!(row(c, t, "r1", &[], None), one("a:q", "v4", 40));
    assert_eq!(values(c, t, "r1", "a:q", i32::MAX, None), vec![cell("v4", 40), cell("v3", 30), cell("v2", 20)]);
    assert_eq!(row(c, t, "r1", &[], Some(30)), one("a:q", "v2", 20), "time range is exclusive");
    assert_eq!(values(c, t, "r1", "a:q", 2, Some(35)), vec![cell("v3", 30), cell("v2", 20)]);
    put(c, t, "r1", "a:q", "v4b", Some(40));
    assert_eq!(values(c, t, "r1", "a:q", 1, None), vec![cell("v4b", 40)]);
    put(c, t, "r1", "b:x", "1", Some(1));
    put(c, t, "r1", "b:x", "2", Some(2));
    assert_eq!(values(c, t, "r1", "b:x", 5, None), vec![cell("2", 2)]);
    assert_eq!(row(c, t, "r1", &["b"], None), one("b:x", "2", 2));
    assert!(row(c, t, "r1", &["a:"], None).is_empty(), "family: is the empty qualifier");
    assert!(row(c, t, "nope", &[], None).is_empty());

    // deletes with timestamps
    c.mutate_row_ts(b(t), b("r1"), vec![delete_m("a:q")], 30, none()).unwrap();
    assert_eq!(values(c, t, "r1", "a:q", 10, None), vec![cell("v4b", 40)]);
    put(c, t, "r1", "a:q", "late", Some(25));
    assert_eq!(values(c, t, "r1", "a:q", 10, None), vec![cell("v4b", 40)], "put below the marker stays hidden");
    c.delete_all_ts(b(t), b("r1"), b("a:q"), 40, none()).unwrap();
    assert!(row(c, t, "r1", &["a"], None).is_empty());
    put(c, t, "r1", "a:q", "old", Some(35));
    assert!(row(c, t, "r1", &["a"], None).is_empty());
    c.compact(b(t)).unwrap();
    assert!(row(c, t, "r1", &["a"], None).is_empty(), "minor compaction keeps markers");
    c.major_compact(b(t)).unwrap();
    assert!(row(c, t, "r1", &["a"], None).is_empty(), "major compaction purged the masked cell");
    put(c, t, "r1", "a:q", "again", Some(35));
    assert_eq!(row(c, t, "r1", &["a"], None), one("a:q", "again", 35));
    put(c, t, "r2", "a:q", "x", None);
    c.delete_all_row(b(t), b("r2"), none()).unwrap();
    assert!(row(c, t, "r2", &[], None).is_empty());
    put(c, t, "r2", "a:q", "y", Some(1000));
    assert!(row(c, t, "r2", &[], None).is_empty(), "delete at now masks later puts with older ts");
    std::thread::sleep(std::time::Duration::from_millis(5));
    put(c, t, "r2", "a:q", "z", None);
    assert_eq!(row(c, t, "r2", &[], None).get("a:q").map(|v| v.0.as_str()), Some("z"));
    c.delete_all_row_ts(b(t), b("r2"), 5, none()).unwrap();
    assert_eq!(row(c, t, "r2", &[], None).len(), 1, "a row delete below the cell keeps it");

    // scans
    for i in 0..10 {
        put(c, t, &format!("row-{i:02}"), "a:q", &i.to_string(), None);
    }
    put(c, t, "row-05", "b:x", "five", None);
    put(c, t, "other-1", "a:q", "o", None);
    let id = c.scanner_open_with_stop(b(t), b("row-03"), b("row-06"), vec![], none()).unwrap();
    assert_eq!(scan_keys(c, id), ["row-03", "row-04", "row-05"]);
    let id = c.scanner_open_with_prefix(b(t), b("row-0"), vec![b("a:q")], none()).unwrap();
    assert_eq!(scan_keys(c, id).len(), 10);
    let id = c.scanner_open(b(t), vec![], vec![], none()).unwrap();
    assert_eq!(scan_keys(c, id)[..3], ["other-1", "r1", "r2"]);
    let id = c.scanner_open(b(t), vec![], vec![b("b")], none()).unwrap();
    assert_eq!(scan_keys(c, id), ["r1", "row-05"]);
    let scan = TScan::new(b("row-05"), b("row-02"), None, None, 100, None, None, None, true, None);
    let id = c.scanner_open_with_scan(b(t), scan, none()).unwrap();
    assert_eq!(scan_keys(c, id), ["row-05", "row-04", "row-03"]);
    let id = c.scanner_open(b(t), b("row-08"), vec![], none()).unwrap();
    assert_eq!(scan_keys(c, id), ["row-08", "row-09"]);
    assert!(is_illegal_argument(c.scanner_get(id)), "closed scanner");

    // checkAndPut and atomicIncrement
    let mut cp = |expect: &str, value: &str| {
        c.check_and_put(b(t), b("cp"), b("a:c"), b(expect), put_m("a:c", value), none()).unwrap()
    };
    assert!(cp("", "1"));
    assert!(!cp("", "x"));
    assert!(cp("1", "2"));
    assert!(!cp("1", "3"));
    assert_eq!(row(c, t, "cp", &[], None).get("a:c").map(|v| v.0.as_str()), Some("2"));
    assert_eq!(c.atomic_increment(b(t), b("ctr"), b("a:n"), 1).unwrap(), 1);
    assert_eq!(c.atomic_increment(b(t), b("ctr"), b("a:n"), 5).unwrap(), 6);
    assert_eq!(c.atomic_increment(b(t), b("ctr"), b("a:n"), -1).unwrap(), 5);
    assert!(is_io_error(c.atomic_increment(b(t), b("cp"), b("a:c"), 1)), "not a counter");

    // errors
    assert!(is_io_error(c.get_row(b("no_such_table"), b("x"), none())));
    assert!(is_io_error(c.mutate_row(b(t), b("r9"), vec![put_m("zz:q", "v")], none())));
    assert!(is_io_error(c.get_row_with_columns(b(t), b("r1"), vec![b("zz")], none())));
    assert!(is_io_error(c.delete_table(b(t))), "enabled table");
    c.disable_table(b(t)).unwrap();
    assert!(!c.is_table_enabled(b(t)).unwrap());
    assert!(is_io_error(c.get_row(b(t), b("r1"), none())));
    c.delete_table(b(t)).unwrap();
    assert!(c.get_table_names().unwrap().is_empty());
    emu.shutdown();
}

#[test]
fn scenario_buffered_binary() {
    scenario(Transport::Buffered, Protocol::Binary);
}

#[test]
fn scenario_framed_binary() {
    scenario(Transport::Framed, Protocol::Binary);
}

#[test]
fn scenario_buffered_compact() {
    scenario(Transport::Buffered, Protocol::Compact);
}
