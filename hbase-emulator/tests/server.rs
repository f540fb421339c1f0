//! The server around the processor: port 0, many concurrent clients, exception types
//! of bad arguments, clean shutdown.

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use hbase_emulator::{EmulatorOptions, Protocol, Transport};
use hbase_thrift::hbase::{BatchMutation, ColumnDescriptor, THbaseSyncClient};

fn table(c: &mut Client, name: &str) {
    let fam = ColumnDescriptor { name: Some(b("a")), max_versions: Some(3), ..Default::default() };
    c.create_table(b(name), vec![fam]).unwrap();
}

#[test]
fn many_concurrent_clients_see_each_others_writes() {
    let emu = hbase_emulator::start("127.0.0.1:0", EmulatorOptions { workers: 16, ..Default::default() }).unwrap();
    let addr = emu.local_addr();
    table(&mut connect(addr, Transport::Buffered, Protocol::Binary), "t");
    let threads: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = connect(addr, Transport::Buffered, Protocol::Binary);
                for j in 0..50 {
                    put(&mut c, "t", &format!("r{i:02}-{j:03}"), "a:q", "v", None);
                    c.atomic_increment(b("t"), b("ctr"), b("a:n"), 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = connect(addr, Transport::Buffered, Protocol::Binary);
    let id = c.scanner_open(b("t"), b("r"), vec![], BTreeMap::new()).unwrap();
    assert_eq!(scan_keys(&mut c, id).len(), 600);
    assert_eq!(c.atomic_increment(b("t"), b("ctr"), b("a:n"), 0).unwrap(), 600);
    emu.shutdown();
}

#[test]
fn bad_arguments_get_hbase_exception_types() {
    let emu = hbase_emulator::start("127.0.0.1:0", Default::default()).unwrap();
    let c = &mut connect(emu.local_addr(), Transport::Buffered, Protocol::Binary);
    table(c, "t");
    let none = BTreeMap::new;
    // mutateRowTs catches IllegalArgumentException: IllegalArgument
    assert!(is_illegal_argument(c.mutate_row_ts(b("t"), b("r"), vec![put_m("a:q", "v")], -1, none())));
    assert!(is_illegal_argument(c.mutate_row(b("t"), b(""), vec![put_m("a:q", "v")], none())));
    // mutateRowsTs builds its batch outside the try: an internal application error
    let bad = vec![BatchMutation::new(b("r"), vec![put_m("a", "v")])];
    assert!(matches!(c.mutate_rows(b("t"), bad, none()), Err(thrift::Error::Application(_))));
    // a bad family descriptor is IllegalArgument
    let fam = ColumnDescriptor { name: Some(b("a")), max_versions: Some(0), ..Default::default() };
    assert!(is_illegal_argument(c.create_table(b("u"), vec![fam])));
    assert!(is_io_error(c.get_ver(b("t"), b("r"), b("a:q"), 0, none())));
    assert!(is_io_error(c.enable_table(b("t"))), "already enabled");
    assert!(is_io_error(c.get_table_regions(b("t"))), "unsupported call");
    assert!(is_illegal_argument(c.scanner_close(12345)));
    emu.shutdown();
}

#[test]
fn shutdown_closes_connections_and_stops_listening() {
    let emu = hbase_emulator::start("127.0.0.1:0", Default::default()).unwrap();
    let addr = emu.local_addr();
    assert_ne!(addr.port(), 0);
    let mut idle = connect(addr, Transport::Buffered, Protocol::Binary);
    idle.get_table_names().unwrap();
    let started = std::time::Instant::now();
    emu.shutdown();
    assert!(started.elapsed() < Duration::from_secs(3), "shutdown took {:?}", started.elapsed());
    assert!(idle.get_table_names().is_err(), "open connection was closed");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(), "still accepting");
}

#[test]
fn clients_beyond_the_worker_pool_wait_for_a_free_worker() {
    let emu = hbase_emulator::start("127.0.0.1:0", EmulatorOptions { workers: 1, ..Default::default() }).unwrap();
    let addr = emu.local_addr();
    let mut first = connect(addr, Transport::Buffered, Protocol::Binary);
    first.get_table_names().unwrap();
    let waiter = std::thread::spawn(move || {
        let mut second = connect(addr, Transport::Buffered, Protocol::Binary);
        second.get_table_names().unwrap().len()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(!waiter.is_finished(), "second client was served while the only worker was busy");
    drop(first);
    assert_eq!(waiter.join().unwrap(), 0);
    emu.shutdown();
}

/// Regression (found by fuzzing, fuzz/seeds/thrift/crash-*): a list size of -1 made the
/// generated reader panic on `Vec::with_capacity`, which killed the connection's thread
/// without releasing its worker slot, so after `workers` such messages the emulator
/// served no one; a length near 2^31 made it allocate that much first. Now each is a
/// protocol error, answered (once the call is known) with an exception naming it, that
/// closes that connection only.
#[test]
fn malformed_messages_close_their_connection_and_free_the_worker() {
    use std::io::{Read, Write};
    let emu = hbase_emulator::start("127.0.0.1:0", EmulatorOptions { workers: 1, ..Default::default() }).unwrap();
    let addr = emu.local_addr();
    let header = |name: &str| {
        let mut m = vec![0x80, 0x01, 0x00, 0x01];
        m.extend_from_slice(&(name.len() as i32).to_be_bytes());
        m.extend_from_slice(name.as_bytes());
        m.extend_from_slice(&1i32.to_be_bytes());
        m
    };
    let mut negative_list = header("mutateRows");
    negative_list.extend_from_slice(&[0x0f, 0x00, 0x02, 0x0c, 0xff, 0xff, 0xff, 0xff]);
    let mut huge_string = header("getTableNames");
    huge_string.extend_from_slice(&[0x0b, 0x00, 0x01, 0x7f, 0xff, 0xff, 0xff]);
    let mut negative_name = vec![0x80, 0x01, 0x00, 0x01, 0xff, 0xff, 0xff, 0xf0];
    negative_name.extend_from_slice(&[0; 8]);
    let cases = [
        ("negative list size", negative_list, "negative list size: -1"),
        ("huge string", huge_string, "string length 2147483647 exceeds the message limit"),
        ("negative name length", negative_name, ""),
    ];
    for (what, message, answer) in cases {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&message).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.contains(answer), "{what}: {reply:?}");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let names = connect(addr, Transport::Buffered, Protocol::Binary).get_table_names();
            let _ = tx.send(names.is_ok());
        });
        let served = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(served, Ok(true), "{what}: the next client is served by the one worker");
    }
}
