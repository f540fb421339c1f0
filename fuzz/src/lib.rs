//! The bodies of the fuzz targets: each takes arbitrary bytes, feeds them to one parser
//! of outside input, and checks what must hold for any input: no panic, no hang, no
//! unbounded allocation, and what parses means what it says (round trips, documented
//! invariants). libFuzzer runs them (fuzz/libfuzzer/fuzz_targets/, `scripts/fuzz.sh`);
//! `cargo test -p fuzz-bodies` runs them over the committed seeds (fuzz/seeds/<target>/)
//! and a few thousand mutations of them, so every CI run exercises them on the pinned
//! stable toolchain.

pub mod mutate;
pub mod seeds;

use std::collections::BTreeMap;
use std::sync::Arc;

use hbase_emulator::store::{FamilySpec, Op, RowMutation, Store};
use hbase_emulator::{Protocol, Transport};
use model::change::Parsed;
use model::config::{Config, EventFormat};
use model::job::Job;
use model::pricing::{judge, Sample, SourceView, Verdict};
use model::Entity;

/// A target's body: any bytes in, a panic for a finding.
pub type Body = fn(&[u8]);

/// Every target: name (as in fuzz/libfuzzer/fuzz_targets/ and fuzz/seeds/) and body.
pub const TARGETS: &[(&str, Body)] = &[
    ("canal", canal),
    ("debezium", debezium),
    ("maxwell", maxwell),
    ("job", job),
    ("entity", entity),
    ("config", config),
    ("thrift", thrift),
    ("sample", sample),
];

pub fn canal(data: &[u8]) {
    change(EventFormat::Canal, data)
}

pub fn debezium(data: &[u8]) {
    change(EventFormat::Debezium, data)
}

pub fn maxwell(data: &[u8]) {
    change(EventFormat::Maxwell, data)
}

/// A change event names at least one id, each once; an error says what is wrong.
fn change(format: EventFormat, data: &[u8]) {
    match model::change::parse(format, data) {
        Ok(Parsed::Change(e)) => {
            assert!(!e.ids.is_empty(), "a change without ids: {e:?}");
            for (i, id) in e.ids.iter().enumerate() {
                assert!(!e.ids[..i].contains(id), "duplicate id {id} in {e:?}");
            }
        }
        Ok(Parsed::Skip(reason)) => assert!(!reason.is_empty()),
        Err(e) => assert!(!e.0.is_empty()),
    }
}

/// A decoded job encodes to a message that decodes to the same job; a decoded record
/// (a job or a bundle of jobs) re-bundled decodes to the same jobs.
pub fn job(data: &[u8]) {
    if let Ok(job) = Job::decode(data) {
        let again = Job::decode(&job.encode()).expect("an encoded job decodes");
        assert_eq!(again, job);
    }
    if let Ok(jobs) = model::job::decode_record(data) {
        assert!(!jobs.is_empty(), "a record holds at least one job");
        let again = model::job::decode_record(&model::job::encode_bundle(&jobs)).expect("a bundle decodes");
        assert_eq!(again, jobs);
    }
}

/// A decoded entity's canonical encoding decodes to the same entity.
pub fn entity(data: &[u8]) {
    if let Ok(e) = Entity::decode(data) {
        let again = Entity::decode(&e.encode()).expect("an encoded entity decodes");
        assert_eq!(again, e);
        assert!(e.differing_fields(&again).is_empty());
    }
}

/// A pricing sample: a decoded one holds what the decoder promises and can be judged
/// (against a goods with no rows: no activity applies, any named activity is gone);
/// an error says what is wrong.
pub fn sample(data: &[u8]) {
    match Sample::decode(data) {
        Ok(s) => {
            assert!(!s.sample_id.is_empty() && s.goods_id > 0 && s.at_ms >= 0, "{s:?}");
            let j = judge(&s, &model::GoodsTruth::default(), &SourceView::Absent);
            let names_any = s.named_activities().next().is_some();
            let want = if names_any { Verdict::Inconclusive } else { Verdict::Match };
            assert_eq!(j.verdict, want, "{s:?}: {j:?}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// TOML text, then optionally a NUL byte and `NAME=value` lines as the environment.
/// Every problem is reported with a message; a valid config prints (secrets redacted).
pub fn config(data: &[u8]) {
    let (text, env) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(text), Ok(env)) = (std::str::from_utf8(text), std::str::from_utf8(env)) else { return };
    let vars: BTreeMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let lookup = |name: &str| vars.get(name).map(|v| v.to_string());
    match Config::parse(text, "fuzz.toml", &lookup) {
        Ok(c) => drop(format!("{c:?}")),
        Err(e) => {
            assert!(!e.problems.is_empty());
            drop(e.to_string());
        }
    }
}

/// One connection's bytes to the HBase emulator: the first byte picks the transport
/// (bit 1: framed) and protocol (bit 0: compact), the rest is what the client sent. The
/// store has a table `t` (family `a`) with one row, so calls reach the cell code.
pub fn thrift(data: &[u8]) {
    let Some((&mode, request)) = data.split_first() else { return };
    let transport = if mode & 2 == 0 { Transport::Buffered } else { Transport::Framed };
    let protocol = if mode & 1 == 0 { Protocol::Binary } else { Protocol::Compact };
    let store = Arc::new(Store::new());
    let spec = FamilySpec {
        max_versions: 3,
        compression: "NONE".into(),
        in_memory: false,
        bloom_filter_type: "NONE".into(),
        block_cache_enabled: false,
        time_to_live: i32::MAX,
    };
    store.create_table(b"t", BTreeMap::from([(b"a".to_vec(), spec)])).expect("fresh store");
    let put = Op::Put { family: b"a".to_vec(), qualifier: b"q".to_vec(), value: b"v".to_vec() };
    store.mutate_row(b"t", &RowMutation { row: b"r".to_vec(), ops: vec![put] }, 5).expect("valid put");
    hbase_emulator::answer(store, transport, protocol, request);
}
