//! The committed seed corpora (fuzz/seeds/<target>/, built from the test fixtures), and
//! the generator of the `thrift` seeds: calls of the emulator's test scenario as a client
//! encodes them.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hbase_thrift::hbase::{BatchMutation, ColumnDescriptor, HbaseSyncClient, Mutation, THbaseSyncClient, TScan};
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol, TInputProtocol,
    TOutputProtocol,
};
use thrift::transport::TFramedWriteTransport;

pub fn dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target)
}

/// Every seed of a target, sorted by file name.
pub fn load(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<_> = std::fs::read_dir(dir(target))
        .unwrap_or_else(|e| panic!("seeds of {target}: {e}"))
        .map(|e| e.expect("seed entry").path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).expect("seed file")))
        .collect();
    seeds.sort();
    seeds
}

/// Bytes written by a client, shared with the code that collects them.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// No reply: every call fails after its request was written, which is all we want.
struct NoReply;

impl Read for NoReply {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Ok(0)
    }
}

type Client = HbaseSyncClient<Box<dyn TInputProtocol>, Box<dyn TOutputProtocol>>;

/// A named sequence of calls.
type Calls = Vec<(&'static str, fn(&mut Client))>;

/// The `thrift` seeds: (file name, mode byte + request bytes) for each call of the
/// scenario, in every transport and protocol the emulator serves.
pub fn thrift_requests() -> Vec<(String, Vec<u8>)> {
    let calls: Calls = vec![
        ("create_table", |c| {
            let fam = ColumnDescriptor { name: Some(b"b:".to_vec()), max_versions: Some(2), ..Default::default() };
            let _ = c.create_table(b"u".to_vec(), vec![fam]);
        }),
        ("mutate_rows_ts", |c| {
            let put = Mutation::new(false, b"a:7001".to_vec(), br#"{"aid":7001,"price":250}"#.to_vec(), true);
            let del = Mutation::new(true, b"a:7002".to_vec(), None, true);
            let rows = vec![BatchMutation::new(b"b8c3_1001".to_vec(), vec![put, del])];
            let _ = c.mutate_rows_ts(b"t".to_vec(), rows, 1_781_700_000_123, Default::default());
        }),
        ("get_rows_with_columns", |c| {
            let rows = vec![b"r".to_vec(), b"b8c3_1001".to_vec()];
            let _ = c.get_rows_with_columns(b"t".to_vec(), rows, vec![b"a".to_vec()], Default::default());
        }),
        ("get_ver_ts", |c| {
            let _ = c.get_ver_ts(b"t".to_vec(), b"r".to_vec(), b"a:q".to_vec(), 6, 3, Default::default());
        }),
        ("scanner", |c| {
            let scan = TScan { start_row: Some(b"a".to_vec()), caching: Some(10), ..Default::default() };
            let _ = c.scanner_open_with_scan(b"t".to_vec(), scan, Default::default());
            let _ = c.scanner_get_list(0, 100);
            let _ = c.scanner_close(0);
        }),
        ("check_and_put", |c| {
            let put = Mutation::new(false, b"a:q".to_vec(), b"w".to_vec(), true);
            let _ =
                c.check_and_put(b"t".to_vec(), b"r".to_vec(), b"a:q".to_vec(), b"v".to_vec(), put, Default::default());
        }),
        ("increment_and_delete", |c| {
            let _ = c.atomic_increment(b"t".to_vec(), b"n".to_vec(), b"a:c".to_vec(), 5);
            let _ = c.delete_all_row_ts(b"t".to_vec(), b"r".to_vec(), 9, Default::default());
            let _ = c.major_compact(b"t".to_vec());
        }),
    ];
    let mut seeds = Vec::new();
    for (name, call) in calls {
        for mode in 0u8..4 {
            let sink = Sink::default();
            let w: Box<dyn Write> =
                if mode & 2 == 0 { Box::new(sink.clone()) } else { Box::new(TFramedWriteTransport::new(sink.clone())) };
            let (i, o): (Box<dyn TInputProtocol>, Box<dyn TOutputProtocol>) = if mode & 1 == 0 {
                (Box::new(TBinaryInputProtocol::new(NoReply, true)), Box::new(TBinaryOutputProtocol::new(w, true)))
            } else {
                (Box::new(TCompactInputProtocol::new(NoReply)), Box::new(TCompactOutputProtocol::new(w)))
            };
            call(&mut HbaseSyncClient::new(i, o));
            let mut bytes = vec![mode];
            bytes.extend_from_slice(&sink.0.lock().unwrap());
            let kind = ["buffered-binary", "buffered-compact", "framed-binary", "framed-compact"][mode as usize];
            seeds.push((format!("{name}-{kind}"), bytes));
        }
    }
    seeds
}
