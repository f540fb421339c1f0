//! Rows per second through the emulator for the reconciler's two hot calls: batched
//! `mutateRowsTs` and `getRowsWithColumns` of 500 rows, with one client and with four.
//!
//! `cargo run --release -p hbase-emulator --example bench`

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use hbase_thrift::hbase::{BatchMutation, ColumnDescriptor, HbaseSyncClient, Mutation, THbaseSyncClient};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport};

const ROWS: usize = 50_000;
const BATCH: usize = 500;
const CELLS_PER_ROW: usize = 3;

type Client = HbaseSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<TcpStream>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<TcpStream>>,
>;

fn connect(addr: SocketAddr) -> Client {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let r = s.try_clone().unwrap();
    HbaseSyncClient::new(
        TBinaryInputProtocol::new(TBufferedReadTransport::new(r), true),
        TBinaryOutputProtocol::new(TBufferedWriteTransport::new(s), true),
    )
}

fn key(i: usize) -> Vec<u8> {
    format!("{:04x}_{i}", (i * 2654435761) & 0xffff).into_bytes()
}

fn value(i: usize, q: usize) -> Vec<u8> {
    format!(
        r#"{{"aid":{q},"type":2,"biz":"main","tags":["618","hot"],"prio":10,"start":1781740800000,"end":1781827199000,"price":{i},"limit":2,"skus":[[88,240],[89,250]],"ver":1781700000123}}"#
    )
    .into_bytes()
}

/// Runs `work(client, chunk)` over every chunk of row indexes with `clients` threads;
/// returns rows per second.
fn measure(addr: SocketAddr, clients: usize, work: fn(&mut Client, std::ops::Range<usize>)) -> f64 {
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = connect(addr);
                let mut start = t * BATCH;
                while start < ROWS {
                    work(&mut c, start..(start + BATCH).min(ROWS));
                    start += clients * BATCH;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    ROWS as f64 / started.elapsed().as_secs_f64()
}

fn write(c: &mut Client, rows: std::ops::Range<usize>) {
    let batch = rows
        .map(|i| {
            let muts =
                (0..CELLS_PER_ROW).map(|q| Mutation::new(false, format!("a:{q}").into_bytes(), value(i, q), true));
            BatchMutation::new(key(i), muts.collect::<Vec<_>>())
        })
        .collect();
    c.mutate_rows_ts(b"bench".to_vec(), batch, 1_781_700_000_123, BTreeMap::new()).unwrap();
}

fn read(c: &mut Client, rows: std::ops::Range<usize>) {
    let keys: Vec<_> = rows.clone().map(key).collect();
    let got = c.get_rows_with_columns(b"bench".to_vec(), keys, vec![b"a".to_vec()], BTreeMap::new()).unwrap();
    assert_eq!(got.len(), rows.len());
}

fn main() {
    let emu = hbase_emulator::start("127.0.0.1:0", Default::default()).unwrap();
    let addr = emu.local_addr();
    let fam = ColumnDescriptor { name: Some(b"a".to_vec()), max_versions: Some(1), ..Default::default() };
    connect(addr).create_table(b"bench".to_vec(), vec![fam]).unwrap();
    println!("{ROWS} rows of {CELLS_PER_ROW} cells (~190 B each), {BATCH} rows per call");
    for clients in [1, 4] {
        let w = measure(addr, clients, write);
        let r = measure(addr, clients, read);
        println!("{clients} client(s): mutateRowsTs {w:>9.0} rows/s   getRowsWithColumns {r:>9.0} rows/s");
    }
    emu.shutdown();
}
