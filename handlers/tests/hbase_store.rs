//! The HBase adapter against an in-process emulator: reads, every repair kind, the
//! timestamp rules that keep repairs from masking or overwriting newer cells, the
//! orphan scan, and an unreachable server.

use std::collections::BTreeMap;
use std::sync::Arc;

use handlers::stores::hbase::HbaseStore;
use handlers::{ApplyOutcome, StoreError, Target};
use hbase_emulator::store::{DeleteTarget, FamilySpec, Op, RowMutation, Store};
use hbase_emulator::{EmulatorHandle, EmulatorOptions, Transport};
use model::config::{HbaseTarget, ThriftTransport};
use model::repair_plan::{CellRepair, CellWrite};
use model::{hbase_row_key, DriftKind, ObservedCell};

const TABLE: &[u8] = b"activity_goods";

fn spec() -> FamilySpec {
    FamilySpec {
        max_versions: 3,
        compression: "NONE".into(),
        in_memory: false,
        bloom_filter_type: "NONE".into(),
        block_cache_enabled: true,
        time_to_live: i32::MAX,
    }
}

fn emulator(transport: Transport) -> EmulatorHandle {
    let emu = hbase_emulator::start("127.0.0.1:0", EmulatorOptions { transport, ..Default::default() }).unwrap();
    let families = BTreeMap::from([(b"a".to_vec(), spec()), (b"b".to_vec(), spec())]);
    emu.store().create_table(TABLE, families).unwrap();
    emu
}

fn target(emu: &EmulatorHandle, transport: ThriftTransport) -> HbaseStore {
    HbaseStore::new(&HbaseTarget {
        name: "hbase-a".into(),
        address: emu.local_addr().to_string(),
        table: "activity_goods".into(),
        family: "a".into(),
        pool_size: 2,
        timeout_ms: 2000,
        transport,
    })
    .unwrap()
}

fn setup() -> (EmulatorHandle, HbaseStore) {
    let emu = emulator(Transport::Buffered);
    let store = target(&emu, ThriftTransport::Buffered);
    (emu, store)
}

/// What "the sync pipeline" (or a test) writes directly.
fn put(s: &Arc<Store>, goods: u64, family: &str, q: &str, value: &str, ts: i64) {
    let op = Op::Put { family: family.into(), qualifier: q.into(), value: value.into() };
    s.mutate_row(TABLE, &RowMutation { row: hbase_row_key(goods).into_bytes(), ops: vec![op] }, ts).unwrap();
}

fn delete(s: &Arc<Store>, goods: u64, q: &str, ts: i64) {
    let op = Op::Delete(DeleteTarget::Column { family: b"a".to_vec(), qualifier: q.into() });
    s.mutate_row(TABLE, &RowMutation { row: hbase_row_key(goods).into_bytes(), ops: vec![op] }, ts).unwrap();
}

fn cell(value: &str, ts: i64) -> ObservedCell {
    ObservedCell { value: value.into(), timestamp: Some(ts) }
}

fn repair(goods: u64, q: &str, kind: DriftKind, expected: Option<ObservedCell>, write: CellWrite) -> CellRepair {
    CellRepair { goods_id: goods, activity_id: q.parse().ok(), qualifier: q.into(), kind, expected, write }
}

fn put_w(value: &str, ver: i64) -> CellWrite {
    CellWrite::Put { value: value.into(), ver }
}

async fn cells_of(t: &HbaseStore, goods: u64) -> BTreeMap<String, (String, i64)> {
    let read = t.read(&[goods]).await.unwrap();
    read[0]
        .cells
        .iter()
        .map(|(q, c)| {
            (String::from_utf8(q.clone()).unwrap(), (String::from_utf8(c.value.clone()).unwrap(), c.timestamp.unwrap()))
        })
        .collect()
}

fn one(q: &str, v: &str, ts: i64) -> BTreeMap<String, (String, i64)> {
    BTreeMap::from([(q.to_string(), (v.to_string(), ts))])
}

#[tokio::test]
async fn reads_present_and_absent_rows_in_input_order() {
    let (emu, t) = setup();
    let s = emu.store();
    put(s, 1001, "a", "7001", "x", 10);
    put(s, 1001, "a", "7002", "y", 20);
    put(s, 1001, "a", "7002", "y2", 30);
    put(s, 1001, "b", "other", "not ours", 5);
    let read = t.read(&[1002, 1001]).await.unwrap();
    assert!(read[0].cells.is_empty(), "absent row");
    assert_eq!(read[1].cells.len(), 2, "only family a: {:?}", read[1]);
    assert_eq!(read[1].cells[b"7001".as_slice()], cell("x", 10));
    assert_eq!(read[1].cells[b"7002".as_slice()], cell("y2", 30));
    assert_eq!(t.kind(), "hbase");
    emu.shutdown();
}

#[tokio::test]
async fn applies_every_repair_kind() {
    let (emu, t) = setup();
    let s = emu.store();
    put(s, 1, "a", "10", "stale", 100);
    put(s, 1, "a", "11", "{corrupt", 100);
    put(s, 1, "a", "12", "extra", 100);
    put(s, 2, "a", "20", "orphan", 100);
    let repairs = vec![
        repair(1, "9", DriftKind::Missing, None, put_w("new9", 150)),
        repair(1, "10", DriftKind::Stale, Some(cell("stale", 100)), put_w("fresh", 200)),
        repair(1, "11", DriftKind::Corrupt, Some(cell("{corrupt", 100)), put_w("fixed", 200)),
        repair(1, "12", DriftKind::Extra, Some(cell("extra", 100)), CellWrite::Delete),
        repair(2, "20", DriftKind::Orphan, Some(cell("orphan", 100)), CellWrite::Delete),
    ];
    let out = t.apply(&repairs).await.unwrap();
    let ts: Vec<_> = out
        .iter()
        .map(|o| match o {
            ApplyOutcome::Applied { timestamp } => *timestamp,
            other => panic!("not applied: {other:?}"),
        })
        .collect();
    assert_eq!(ts, vec![Some(150), Some(200), Some(200), Some(100), Some(100)]);
    let mut want = one("9", "new9", 150);
    want.extend(one("10", "fresh", 200));
    want.extend(one("11", "fixed", 200));
    assert_eq!(cells_of(&t, 1).await, want);
    assert!(cells_of(&t, 2).await.is_empty());
    emu.shutdown();
}

#[tokio::test]
async fn a_cell_changed_since_the_check_is_a_conflict_and_not_overwritten() {
    let (emu, t) = setup();
    let s = emu.store();
    put(s, 1, "a", "10", "seen", 100);
    put(s, 1, "a", "11", "seen", 100);
    let seen = t.read(&[1]).await.unwrap().remove(0);
    // between check and apply: one cell rewritten, one created where none was seen
    put(s, 1, "a", "10", "changed", 120);
    put(s, 1, "a", "12", "appeared", 130);
    let repairs = vec![
        repair(1, "10", DriftKind::Stale, seen.cells.get(b"10".as_slice()).cloned(), put_w("repair", 300)),
        repair(1, "11", DriftKind::Extra, seen.cells.get(b"11".as_slice()).cloned(), CellWrite::Delete),
        repair(1, "12", DriftKind::Missing, None, put_w("repair", 300)),
    ];
    let out = t.apply(&repairs).await.unwrap();
    assert_eq!(out[0], ApplyOutcome::Conflict { found: Some(cell("changed", 120)) });
    assert_eq!(out[1], ApplyOutcome::Applied { timestamp: Some(100) });
    assert_eq!(out[2], ApplyOutcome::Conflict { found: Some(cell("appeared", 130)) });
    let mut want = one("10", "changed", 120);
    want.extend(one("12", "appeared", 130));
    assert_eq!(cells_of(&t, 1).await, want);
    emu.shutdown();
}

#[tokio::test]
async fn a_delete_never_masks_a_newer_cell_of_the_sync_pipeline() {
    let (emu, t) = setup();
    let s = emu.store();
    put(s, 1, "a", "10", "old", 100);
    put(s, 1, "a", "11", "old", 100);
    // the pipeline rewrote cell 10 after the check: the repair sees the change
    put(s, 1, "a", "10", "new", 150);
    let out = t.apply(&[repair(1, "10", DriftKind::Extra, Some(cell("old", 100)), CellWrite::Delete)]).await.unwrap();
    assert_eq!(out[0], ApplyOutcome::Conflict { found: Some(cell("new", 150)) });
    // cell 11 is deleted at the seen ts; the pipeline's later, newer write stays visible
    let out = t.apply(&[repair(1, "11", DriftKind::Extra, Some(cell("old", 100)), CellWrite::Delete)]).await.unwrap();
    assert_eq!(out[0], ApplyOutcome::Applied { timestamp: Some(100) });
    put(s, 1, "a", "11", "new", 101);
    let mut want = one("10", "new", 150);
    want.extend(one("11", "new", 101));
    assert_eq!(cells_of(&t, 1).await, want);
    emu.shutdown();
}

#[tokio::test]
async fn a_put_converges_when_ver_went_backwards() {
    let (emu, t) = setup();
    let s = emu.store();
    // truth rows were deleted and re-created: the new entity's ver is below the cell's ts
    put(s, 1, "a", "10", "from the old row", 500);
    let out = t
        .apply(&[repair(1, "10", DriftKind::Stale, Some(cell("from the old row", 500)), put_w("recreated", 300))])
        .await
        .unwrap();
    assert_eq!(out[0], ApplyOutcome::Applied { timestamp: Some(500) });
    assert_eq!(cells_of(&t, 1).await, one("10", "recreated", 500));
    // the same with ver equal to the seen ts
    let out =
        t.apply(&[repair(1, "10", DriftKind::Stale, Some(cell("recreated", 500)), put_w("again", 500))]).await.unwrap();
    assert_eq!(out[0], ApplyOutcome::Applied { timestamp: Some(500) });
    assert_eq!(cells_of(&t, 1).await, one("10", "again", 500));
    emu.shutdown();
}

#[tokio::test]
async fn a_put_hidden_by_a_delete_marker_is_rewritten_above_it() {
    let (emu, t) = setup();
    let s = emu.store();
    put(s, 1, "a", "10", "v", 100);
    delete(s, 1, "10", 400); // e.g. an earlier repair deleted what it saw at 400
    assert!(cells_of(&t, 1).await.is_empty());
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let out = t.apply(&[repair(1, "10", DriftKind::Missing, None, put_w("back", 200))]).await.unwrap();
    let ApplyOutcome::Applied { timestamp: Some(ts) } = out[0] else { panic!("not applied: {:?}", out[0]) };
    assert!(ts >= before, "rewritten at now, got {ts}");
    assert_eq!(cells_of(&t, 1).await, one("10", "back", ts));
    emu.shutdown();
}

#[tokio::test]
async fn scan_pages_through_every_row_and_reports_foreign_keys() {
    let (emu, t) = setup();
    let s = emu.store();
    let goods: Vec<u64> = (1..=25).map(|i| i * 37).collect();
    for &g in &goods {
        put(s, g, "a", "1", "v", 10);
    }
    for junk in ["junk", "0000_1001"] {
        let op = Op::Put { family: b"a".to_vec(), qualifier: b"1".to_vec(), value: b"v".to_vec() };
        s.mutate_row(TABLE, &RowMutation { row: junk.into(), ops: vec![op] }, 10).unwrap();
    }
    put(s, 999_999, "b", "1", "other family only", 10);
    let (mut seen, mut foreign, mut cursor, mut pages) = (Vec::new(), Vec::new(), None, 0);
    loop {
        let page = t.scan(cursor, 10).await.unwrap();
        pages += 1;
        seen.extend(page.goods);
        foreign.extend(page.foreign);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    seen.sort();
    foreign.sort();
    assert_eq!(seen, goods);
    assert_eq!(foreign, vec![b"0000_1001".to_vec(), b"junk".to_vec()]);
    assert_eq!(pages, 3);
    assert_eq!(emu.store().open_scanners(), 0, "every scanner closed");
    emu.shutdown();
}

#[tokio::test]
async fn framed_transport_works() {
    let emu = emulator(Transport::Framed);
    let t = target(&emu, ThriftTransport::Framed);
    put(emu.store(), 5, "a", "1", "v", 7);
    assert_eq!(cells_of(&t, 5).await, one("1", "v", 7));
    emu.shutdown();
}

#[tokio::test]
async fn a_stopped_server_is_unreachable_and_a_server_error_is_failed() {
    let (emu, t) = setup();
    assert!(t.read(&[1]).await.is_ok(), "pool holds a live connection now");
    let mut cfg_missing = HbaseTarget {
        name: "hbase-x".into(),
        address: emu.local_addr().to_string(),
        table: "no_such_table".into(),
        family: "a".into(),
        pool_size: 1,
        timeout_ms: 2000,
        transport: ThriftTransport::Buffered,
    };
    let missing = HbaseStore::new(&cfg_missing).unwrap();
    let err = missing.read(&[1]).await.unwrap_err();
    assert!(matches!(err, StoreError::Failed { .. }), "{err}");
    assert!(err.to_string().contains("TableNotFoundException"), "{err}");
    let err = missing.scan(None, 5).await.unwrap_err();
    assert!(matches!(err, StoreError::Failed { .. }), "{err}");

    emu.shutdown();
    let err = t.read(&[1]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(err.is_retryable());
    let err = t.apply(&[repair(1, "1", DriftKind::Missing, None, put_w("v", 1))]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(matches!(t.scan(None, 5).await, Err(StoreError::Unreachable { .. })));
    cfg_missing.table = "activity_goods".into();
    let never_connected = HbaseStore::new(&cfg_missing).unwrap();
    assert!(matches!(never_connected.read(&[1]).await, Err(StoreError::Unreachable { .. })));
}

#[tokio::test]
async fn a_restarted_server_is_reconnected_to() {
    let (emu, t) = setup();
    put(emu.store(), 1, "a", "1", "v", 5);
    assert_eq!(cells_of(&t, 1).await, one("1", "v", 5));
    let (addr, store) = (emu.local_addr(), emu.store().clone());
    emu.shutdown();
    let again = hbase_emulator::start_with_store(&addr.to_string(), EmulatorOptions::default(), store).unwrap();
    // the pooled connection is dead; the call reconnects instead of failing
    assert_eq!(cells_of(&t, 1).await, one("1", "v", 5));
    again.shutdown();
}

#[tokio::test]
async fn a_server_that_does_not_answer_times_out_as_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // accepts and holds connections, never answers
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let t = HbaseStore::new(&HbaseTarget {
        name: "hbase-silent".into(),
        address: addr.to_string(),
        table: "activity_goods".into(),
        family: "a".into(),
        pool_size: 1,
        timeout_ms: 300,
        transport: ThriftTransport::Buffered,
    })
    .unwrap();
    let started = std::time::Instant::now();
    let err = t.read(&[1]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_through_a_small_pool_all_succeed() {
    let (emu, t) = setup();
    for g in 0..40u64 {
        put(emu.store(), g, "a", "1", &g.to_string(), 5);
    }
    let t = Arc::new(t);
    let calls: Vec<_> = (0..40u64)
        .map(|g| {
            let t = t.clone();
            tokio::spawn(async move { t.read(&[g]).await.unwrap().remove(0) })
        })
        .collect();
    for (g, call) in calls.into_iter().enumerate() {
        let seen = call.await.unwrap();
        assert_eq!(seen.cells[b"1".as_slice()], cell(&g.to_string(), 5));
    }
    emu.shutdown();
}
